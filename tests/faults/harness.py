"""The fault campaign: the whole pipeline in live mode against the providers' fakes, one injected fault per case.

Each case runs campaign_job (the Dagster job, through assembling the videos) on a two-segment campaign against the
fakes over real HTTP with one fault injected where it strikes (submit, poll, result, download, the job itself, the
clip store: a full disk or a failing S3 swapped in as the run's clip storage), then reruns the job as an operator
would until every video is assembled (at most `MAX_RUNS` runs). It records:

- segments lost: planned segments without a stored clip at the end (must be 0);
- paid twice: submissions the fakes counted beyond the first for an identical request body (must be 0);
- paid unused: jobs a fake finished (billable) whose output was never stored (a cost the fault caused);
- time to recover: wall seconds from the first run's start until every video was assembled.

`run_case` is what the tests call and what `python -m tests.faults.report` tabulates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from resources.storage import ClipStorage
from tests.support.pipeline import (
    ASSEMBLY,
    GENERATION,
    TunedProviders,
    ephemeral_instance,
    fleet_environment,
    output,
    run_campaign_job,
    step_failures,
    storage_from,
)
from tests.support.services import fleet_on_free_ports, moto_s3, s3_client
from video_pipeline.config import PROJECT_ROOT, Settings
from video_pipeline.jobs.ledger import JobLedger, jobs
from video_pipeline.storage.netguard import DownloadPolicy
from video_pipeline.providers.fakes.fleet import FAKE_CREDENTIALS, Fleet, start_fleet
from video_pipeline.storage.s3store import S3ClipStore

MAX_RUNS = 3
FAKE_LATENCY = 0.25           # seconds a fake job takes
TIME_SCALE = "0.01"           # VIDEO_PIPELINE_TIME_SCALE: catalog latencies compressed 100x for polling
ADAPTER_TIMEOUT = 1.0         # seconds; the fakes' "slow" fault answers after 2 s, so it is a client timeout
STALL_TIMEOUT = 8.0           # the client waits this long where a held answer must arrive (stall, kill cases)
SUBMIT_LEASE = dt.timedelta(seconds=0.5)   # the submit lease in the stall and kill cases (30 s in production)
PROVIDER_KEYS = [k for creds in FAKE_CREDENTIALS.values() for k in creds]
FLEET_PROVIDERS = ["gemini", "minimax", "fal", "runway", "kling", "ark", "dashscope"]
#: each video provider's fake, and a catalog model that reaches it when only that provider has a key
VIDEO_PROVIDERS = {"gemini": "veo-3-1-fast", "fal": "veo-3-1-fast", "runway": "veo-3-1-fast", "kling": "kling-3-0",
                   "minimax": "hailuo-02", "ark": "seedance-2-0", "dashscope": "wan-2-6"}


@dataclass(frozen=True)
class Case:
    id: str
    fault: str                      # the fault kind, as the table names it
    stage: str                      # where it strikes
    phase: str | None = None        # FaultPlan phase on the target fake (None: not a fake-side fault)
    kind: str | None = None         # FaultPlan fault
    target: str = "gemini"          # the fake that gets the fault
    providers: tuple[str, ...] = ("gemini", "minimax", "runway")   # the providers this run has keys for
    model: str | None = None        # pin the shots to a model (to reach a provider's result step)
    expect: str = ""                # what should happen, for the table
    scenario: str = "fault"         # fault | stall (a second run starts while the answer is held) | kill (mid-submit)

    @property
    def can_look_up(self) -> bool:
        """Whether the target's adapter can find a job whose submit answer was lost (else an operator decides)."""
        from video_pipeline.providers.live import adapter_class

        return hasattr(adapter_class(self.target), "find_submitted")


CASES: list[Case] = [
    Case("none", "no fault (baseline)", "-", expect="one run"),
    Case("429-submit", "429 with Retry-After", "submit", "submit", "429", expect="retried after the hinted second"),
    Case("429-poll", "429 with Retry-After", "poll", "poll", "429", expect="poll retried, job kept"),
    Case("429-result", "429 with Retry-After", "result fetch (fal)", "result", "429", target="fal",
         providers=("fal", "minimax"), expect="result fetch retried"),
    Case("429n-submit", "429 without Retry-After", "submit", "submit", "429-no-retry-after",
         expect="retried with jittered backoff"),
    Case("429n-poll", "429 without Retry-After", "poll", "poll", "429-no-retry-after", expect="poll retried"),
    Case("5xx-submit", "5xx (503)", "submit", "submit", "503",
         expect="uncertain (Gemini cannot be searched): not resent; the operator finds no job and resubmits"),
    Case("5xx-poll", "5xx (500)", "poll", "poll", "500", expect="poll retried, job kept"),
    Case("5xx-result", "5xx (500)", "result fetch (MiniMax file)", "result", "500", target="minimax",
         providers=("minimax",), model="hailuo-02", expect="file lookup retried"),
    Case("reset-submit", "connection reset", "submit", "submit", "reset",
         expect="uncertain (Gemini cannot be searched): not resent; the operator finds no job and resubmits"),
    Case("reset-poll", "connection reset", "poll", "poll", "reset", expect="poll retried"),
    Case("reset-result", "connection reset", "result fetch (fal)", "result", "reset", target="fal",
         providers=("fal", "minimax"), expect="result fetch retried"),
    Case("timeout-submit", "timeout", "submit", "submit", "slow",
         expect="uncertain (Gemini cannot be searched): not resent; the operator finds no job and resubmits"),
    Case("5xx-submit-kling", "5xx (503)", "submit (kling)", "submit", "503", target="kling", providers=("kling",),
         model="kling-3-0", expect="uncertain; Kling's query by external_task_id finds no task: sent again"),
    Case("5xx-submit-ark", "5xx (503)", "submit (ark)", "submit", "503", target="ark", providers=("ark",),
         model="seedance-2-0", expect="uncertain; Ark's task list shows no task after the grace period: sent again"),
    Case("timeout-poll", "timeout", "poll", "poll", "slow", expect="poll retried"),
    Case("job-retryable", "failed job (retryable)", "job", "job", "fail-retryable",
         expect="submitted again on the same model (the failed job is not billed)"),
    Case("job-policy", "failed job (content policy)", "job", "job", "fail-policy",
         expect="falls back to the next model"),
    Case("job-stuck", "stuck job", "job", "job", "stuck", expect="cancelled after its deadline, falls back"),
    Case("url-expired", "expired result URL", "download", "download", "expired",
         expect="rerun reuses the paid job and downloads it"),
    Case("download-truncated", "truncated download", "download", "download", "truncated",
         expect="rejected by the length check; rerun downloads it again"),
    Case("store-full", "storage full (local store)", "store", None, None,
         expect="clip not kept; rerun after space is freed stores it"),
    Case("s3-errors", "S3 errors (production profile)", "store (S3)", None, None,
         expect="S3 answers 503 SlowDown through the first run: clips not kept; the rerun uploads both, "
                "checksums verified"),
]

LOST_WORDS = {"lost-reset": "job created, connection dropped before the answer",
              "lost-slow": "job created, answer held past the client's timeout",
              "lost-502": "job created, a proxy's 502 instead of the answer"}


def _settled_expectation(provider: str) -> str:
    from video_pipeline.providers.live import adapter_class

    cls = adapter_class(provider)
    if hasattr(cls, "find_submitted"):
        return f"uncertain, then found by {cls.lookup} and adopted: paid once, one run"
    return "uncertain, not resent by any run (no lookup); the operator adopts the job from the console"


for _provider, _model in VIDEO_PROVIDERS.items():
    for _kind, _words in LOST_WORDS.items():
        CASES.append(Case(f"{_kind}-{_provider}", _words, f"submit ({_provider})", "submit", _kind, target=_provider,
                          providers=(_provider,), model=_model, expect=_settled_expectation(_provider)))
    CASES.append(Case(f"stall-{_provider}", "answer stalled past the submit lease, a second run starts",
                      f"submit ({_provider})", "submit", "lost-slow", target=_provider, providers=(_provider,),
                      model=_model, scenario="stall",
                      expect="the live run renews its lease; the second run waits, then shares the job: paid once"))
    CASES.append(Case(f"kill-submit-{_provider}", "run killed mid-submit (SIGKILL)", f"submit ({_provider})", "submit",
                      "lost-slow", target=_provider, providers=(_provider,), model=_model, scenario="kill",
                      expect=_settled_expectation(_provider).replace("uncertain", "lease lapses: uncertain", 1)))

#: words of each shot's prompt in CAMPAIGN, by segment index (what an operator reads in a provider's console)
SHOT_WORDS = ["a paper boat on a puddle", "the rain stops over the harbour"]

CAMPAIGN = """\
campaign: fault-{case}
defaults: {{quality_tier: social, subtitles: none}}
videos:
  - id: clip
    target_seconds: 8
    shots:
      - {{prompt: "Case {case}: a paper boat on a puddle"{model}}}
      - {{prompt: "Case {case}: the rain stops over the harbour"{model}}}
"""


@dataclass
class CaseResult:
    case: Case
    planned: int = 0
    stored: int = 0
    runs: int = 0
    paid_twice: int = 0
    paid_unused: int = 0
    submissions: int = 0
    recover_seconds: float = 0.0
    assembled: bool = False
    note: str = ""
    errors: list[str] = field(default_factory=list)
    uncertain_runs: int = 0         # runs that ended with a segment uncertain (nothing was sent for it again)
    operator: str = ""              # the decision the operator took (`video-pipeline resolve`), if any

    @property
    def lost(self) -> int:
        return self.planned - self.stored


@contextlib.contextmanager
def environment(values: dict[str, str], drop: list[str]):
    """Set `values` and remove `drop` from os.environ for the block, then restore everything."""
    saved = {k: os.environ.get(k) for k in [*values, *drop]}
    try:
        for k in drop:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def new_data_dir(root: Path) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
    (data / "inbox").mkdir()
    return data


def live_environment(fleet: Fleet, providers: tuple[str, ...], data_dir: Path) -> dict[str, str]:
    env = fleet_environment(fleet, providers)
    env.update(VIDEO_PIPELINE_MODE="live", VIDEO_PIPELINE_DATA_DIR=str(data_dir), VIDEO_PIPELINE_TIME_SCALE=TIME_SCALE,
               VIDEO_PIPELINE_X264_PRESET="ultrafast")
    return env


def run_pipeline(settings: Settings, spec: Path, storage: ClipStorage | None = None,
                 timeout: float = ADAPTER_TIMEOUT, generate_only: bool = False) -> tuple[int, int, bool, list[str]]:
    """One run of campaign_job, as an operator starts it, through assembling the videos (`generate_only`: through
    generation, a second run started beside the first), on a Dagster instance of its own: what earlier runs did
    reaches it through the ledger, never through Dagster. `storage` swaps the run's clip storage (a full disk, S3).
    Returns (planned segments, stored segments (generate_only: generated), every video assembled, errors: the
    failed segments' and clips' reasons, then the videos' when every clip was stored, then any failed step's)."""
    providers = TunedProviders(latency_scale=None, backoff_base=0.05, timeout=timeout)   # polls on TIME_SCALE
    swapped = {"clip_storage": storage} if storage is not None else {}
    with ephemeral_instance() as instance:
        result = run_campaign_job(instance, settings, spec, raise_on_error=False,
                                  through=GENERATION if generate_only else ASSEMBLY, providers=providers, **swapped)
    failed_steps = [f"{step}: {message}" for step, message in step_failures(result).items()]
    plan = output(result, "routed_job_plans")
    planned = 0 if plan is None else len(plan)
    table = output(result, "generated_segments" if generate_only else "stored_clips")
    if table is None:
        return planned, 0, False, failed_steps
    errors = [str(e) for e in table["error"].dropna()]
    done = int((table["state"] == ("succeeded" if generate_only else "stored")).sum())
    assembled = False
    videos = None if generate_only or done != planned else output(result, "assembled_outputs")
    if videos is not None:
        assembled = bool((videos["state"] == "assembled").all())
        errors += [str(e) for e in videos["error"].dropna()]
    return planned, done, assembled, errors + failed_steps


def _stored_job_ids(settings: Settings) -> set[str]:
    engine = sa.create_engine(settings.ledger_url)
    try:
        with engine.connect() as conn:
            return {r.provider_job_id for r in conn.execute(sa.select(jobs.c.provider_job_id, jobs.c.stored_uri))
                    if r.provider_job_id and r.stored_uri}
    finally:
        engine.dispose()


def _billing(fleet: Fleet, before: dict[str, set[str]], stored_ids: set[str]) -> tuple[int, int, int]:
    """(submissions, paid twice, paid unused) among the jobs the fakes created since `before`.

    A job is billable unless it failed or was canceled (providers do not charge for those); paid twice counts
    billable jobs beyond the first for an identical request body."""
    bodies: Counter[str] = Counter()
    submissions = unused = 0
    for name, book in fleet.books.items():
        for job in list(book.jobs.values()):
            if job.id in before[name]:
                continue
            submissions += 1
            phase = job.phase()
            if phase in ("failed", "canceled"):
                continue
            bodies[job.body_sha256] += 1
            if not any(job.id in s for s in stored_ids):
                unused += 1
    return submissions, sum(n - 1 for n in bodies.values() if n > 1), unused


@contextlib.contextmanager
def full_disk(path: Path, warm=lambda: None):
    """`path` on a filesystem with no room for a clip: a one-page (4 KiB) tmpfs mounted there (needs root), or,
    where mounting is not allowed, RLIMIT_FSIZE of 4 KiB on this process (writes fail with EFBIG, not ENOSPC).
    The fakes' 180p clips can be smaller than 64 KiB, so the room must be smaller than any clip.
    Yields how the fault was made. `warm()` runs before a process-wide limit, so only the store's writes meet it
    (the fakes in this process render their clips first)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(path)],
                             capture_output=True).returncode == 0 if shutil.which("mount") else False
    if mounted:
        try:
            yield "a 4 KiB tmpfs mounted over the clip store (writes fail with ENOSPC)"
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    warm()
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024, hard))
    try:
        yield "RLIMIT_FSIZE of 4 KiB on the run process (writes fail with EFBIG; no mount permission)"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def _render_all(fleet: Fleet) -> None:
    for book in fleet.books.values():
        for job in list(book.jobs.values()):
            if job.phase() == "succeeded":
                book.mp4(job)


def run_case(case: Case, fleet: Fleet, root: Path) -> CaseResult:
    """Inject `case`'s fault, run the pipeline, rerun until every video is assembled; measure what it cost.

    Cases of submits whose answer is lost get a fresh fake of their provider, as a team with its own account:
    a provider's listing then holds only this campaign's jobs (lookups that cannot see a job's input, Ark's and
    DashScope's, would otherwise see the earlier cases' jobs of the same model and, rightly, call it ambiguous)."""
    if case.scenario != "fault" or case.kind in LOST_WORDS or case.id.startswith("5xx-submit-"):
        own = start_fleet(latency=FAKE_LATENCY, providers=[case.target], work_dir=root / case.id / "fakes")
        try:
            return _run_case(case, own, root)
        finally:
            own.stop()
    return _run_case(case, fleet, root)


def _run_case(case: Case, fleet: Fleet, root: Path) -> CaseResult:
    data = new_data_dir(root / case.id)
    model = f", model: {case.model}" if case.model else ""
    spec = data / f"fault-{case.id}.yaml"
    spec.write_text(CAMPAIGN.format(case=case.id, model=model), encoding="utf-8")
    result = CaseResult(case)
    before = {name: set(book.jobs) for name, book in fleet.books.items()}
    with environment(live_environment(fleet, case.providers, data), drop=PROVIDER_KEYS):
        settings = Settings.from_env()
        if case.phase is not None:
            fleet.books[case.target].faults.add(case.phase, case.kind)
        started = time.monotonic()
        lease = _short_lease() if case.scenario in ("stall", "kill") else contextlib.nullcontext()
        with lease:
            killed = 0
            if case.scenario == "kill":
                result.note = _killed_mid_submit(settings, spec, fleet.books[case.target])
                killed = 1
            for run in range(1, MAX_RUNS + 1):
                result.runs = run + killed
                planned, stored, assembled, errors = _one_run(case, run, fleet, root, settings, spec, result)
                result.planned, result.stored, result.assembled = planned, stored, assembled
                result.errors += errors
                if assembled:
                    break
                if _uncertain_rows(settings):
                    result.uncertain_runs += 1
                    if result.uncertain_runs == 2:   # a rerun did not guess either: the operator decides now
                        result.operator = _operator_decides(settings, fleet, case.id)
        result.recover_seconds = round(time.monotonic() - started, 2)
        result.submissions, result.paid_twice, result.paid_unused = _billing(fleet, before, _stored_job_ids(settings))
    if case.phase is not None:
        # the fault must have struck: a plan entry left over means the case tested nothing
        assert fleet.books[case.target].faults.take(case.phase) is None, f"{case.id}: the fault never struck"
    return result


def _one_run(case: Case, run: int, fleet: Fleet, root: Path, settings: Settings, spec: Path,
             result: CaseResult) -> tuple[int, int, bool, list[str]]:
    if case.id == "s3-errors":
        # the bucket is a real S3 endpoint (moto's server); during the first run every S3 request meets an endpoint
        # answering 503 SlowDown (past the client's retries), as in an S3 outage
        with s3_endpoints(root / case.id) as (healthy, failing, bucket):
            client = failing if run == 1 else healthy
            storage = storage_from(lambda run_settings: S3ClipStore(
                client, bucket, "faults", run_settings.clips_dir, policy=DownloadPolicy.from_settings(run_settings)))
            planned, stored, assembled, errors = run_pipeline(settings, spec, storage)
            if assembled:
                result.note = _bucket_note(healthy, bucket, settings)
        return planned, stored, assembled, errors
    if case.id == "store-full" and run == 1:
        # the store's own directory is full while clips are stored; space is freed before the rerun
        @contextlib.contextmanager
        def disk_full():
            with full_disk(settings.clips_dir, warm=lambda: _render_all(fleet)) as how:
                result.note = how
                yield
        return run_pipeline(settings, spec, storage_from(lambda run_settings: _StoringUnder(
            ClipStorage().store(run_settings), disk_full)))
    if case.scenario == "stall" and run == 1:
        second = _SecondRun(settings, spec)
        second.start()
        outcome = run_pipeline(settings, spec, timeout=STALL_TIMEOUT)
        result.note = second.finish()
        return outcome
    return run_pipeline(settings, spec)


class _StoringUnder:
    """A clip store whose every download into it runs inside `guard()` (a full disk under the store)."""

    def __init__(self, store, guard):
        self._store, self._guard = store, guard

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def store_url(self, *args, **kwargs):
        with self._guard():
            return self._store.store_url(*args, **kwargs)


@contextlib.contextmanager
def _short_lease():
    """A submit lease of SUBMIT_LEASE for the block (the ledger's default is 30 s), so a dead run's lapses soon."""
    from video_pipeline.jobs import ledger as ledger_module

    saved = ledger_module.SUBMIT_LEASE
    ledger_module.SUBMIT_LEASE = SUBMIT_LEASE
    try:
        yield
    finally:
        ledger_module.SUBMIT_LEASE = saved


def _sent_and_unanswered(settings: Settings) -> bool:
    """The ledger shows a job-creating request that left and has no answer yet."""
    engine = sa.create_engine(settings.ledger_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
                jobs.c.state == "submitting", jobs.c.sent_at.is_not(None))).scalar_one() > 0
    except sa.exc.OperationalError:   # no ledger yet
        return False
    finally:
        engine.dispose()


def _wait_for_sent(settings: Settings, alive=lambda: True, limit: float = 60.0) -> float:
    started = time.monotonic()
    while not _sent_and_unanswered(settings):
        if time.monotonic() - started > limit or not alive():
            raise RuntimeError("no submit was ever left waiting for its answer: the fault did not strike")
        time.sleep(0.02)
    return time.monotonic() - started


class _SecondRun(threading.Thread):
    """A second run of the same campaign that starts while the first run's submit answer is held."""

    def __init__(self, settings: Settings, spec: Path):
        super().__init__(daemon=True)
        self.settings, self.spec = settings, spec
        self.outcome: tuple | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            _wait_for_sent(self.settings)
            self.outcome = run_pipeline(self.settings, self.spec, timeout=STALL_TIMEOUT, generate_only=True)
        except BaseException as exc:   # noqa: BLE001 — reported by finish()
            self.error = exc

    def finish(self) -> str:
        self.join(timeout=120)
        if self.error is not None or self.outcome is None:
            raise RuntimeError(f"the second run failed: {self.error!r}")
        planned, shared, _, errors = self.outcome
        return (f"second run started while the answer was held: {shared}/{planned} segments shared, nothing sent"
                + (f"; its errors: {errors}" if errors else ""))


def _killed_mid_submit(settings: Settings, spec: Path, book) -> str:
    """Start a run in its own process and SIGKILL it once a submit has reached the provider (which created the job
    and holds the answer)."""
    jobs_before = len(book.jobs)
    child = multiprocessing.get_context("spawn").Process(target=run_pipeline, args=(settings, spec),
                                                         kwargs={"timeout": STALL_TIMEOUT}, daemon=True)
    child.start()
    try:
        started = time.monotonic()
        _wait_for_sent(settings, alive=child.is_alive, limit=120.0)
        while len(book.jobs) == jobs_before and child.is_alive() and time.monotonic() - started < 120:
            time.sleep(0.02)
        waited = time.monotonic() - started
    finally:
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    return f"run killed {waited:.1f} s after its start, its request sent and the answer not yet back"


def _uncertain_rows(settings: Settings) -> list:
    ledger = JobLedger(settings.ledger_url)
    try:
        return ledger.uncertain_rows()
    finally:
        ledger.dispose()


def _operator_decides(settings: Settings, fleet: Fleet, case_id: str) -> str:
    """What an operator does with uncertain jobs: look in the provider's console (here the fake's book) for a job
    created in the window that no segment owns; `resolve --adopt` it, or `resolve --resubmit` when there is none."""
    from video_pipeline.cli.main import main

    ledger = JobLedger(settings.ledger_url)
    try:
        rows = ledger.uncertain_rows()
        known = {r.provider: ledger.known_job_ids(r.provider) for r in rows}
    finally:
        ledger.dispose()
    decisions = []
    for row in rows:
        low = (row.uncertain_since - dt.timedelta(seconds=5)).timestamp()
        high = (row.uncertain_until + dt.timedelta(seconds=5)).timestamp()
        # the console shows each job's prompt: the operator matches it to the segment's shot
        console = [job for job in fleet.books[row.provider].jobs.values()
                   if low <= job.created <= high and f"Case {case_id}: {SHOT_WORDS[row.segment_index]}" in job.prompt
                   and not any(job.id in k for k in known[row.provider])]
        if console:
            code = main(["resolve", "--job", str(row.id), "--adopt", console[0].id])
            decisions.append(f"adopted {row.provider} job {console[0].id[:8]}… (exit {code})")
        else:
            code = main(["resolve", "--job", str(row.id), "--resubmit"])
            decisions.append(f"no job in the console: resubmitted (exit {code})")
    return "; ".join(decisions)


class _SlowDown(BaseHTTPRequestHandler):
    """An S3 endpoint in trouble: every request gets 503 SlowDown, S3's own throttling answer."""

    def _refuse(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("content-type", "application/xml")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _refuse

    def log_message(self, *args) -> None:
        pass


_S3: dict = {}


@contextlib.contextmanager
def s3_endpoints(work: Path):
    """(client of moto's S3 server with a fresh bucket, client of an endpoint answering 503, bucket name).

    moto runs as its own process on loopback (a real HTTP S3 API) and lives across the case's runs."""
    from botocore.config import Config

    if "stack" not in _S3:
        services = _S3["stack"] = contextlib.ExitStack()
        _S3["moto_url"] = services.enter_context(moto_s3())
        failing = ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
        threading.Thread(target=failing.serve_forever, daemon=True).start()
        services.callback(failing.shutdown)
        _S3["failing_url"] = f"http://127.0.0.1:{failing.server_address[1]}"
    quick = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=5)
    healthy = s3_client(_S3["moto_url"], config=quick)
    failing = s3_client(_S3["failing_url"], config=quick)
    bucket = "fault-" + work.name.lower()
    if not _bucket_exists(healthy, bucket):
        healthy.create_bucket(Bucket=bucket)
    yield healthy, failing, bucket


def _bucket_exists(client, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
        return True
    except client.exceptions.ClientError:
        return False


def stop_s3() -> None:
    if "stack" in _S3:
        _S3.pop("stack").close()
        _S3.clear()


def _bucket_note(client, bucket: str, settings: Settings) -> str:
    """What the bucket holds after the rerun: every stored clip's object, its SHA-256 as its key names it."""
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    clips = [k for k in keys if "/clips/" in k]
    import hashlib

    verified = sum(hashlib.sha256(client.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
                   == Path(k).stem for k in clips)
    return f"bucket holds {len(clips)} clips, {verified} with the SHA-256 their key names"


def start_fault_fleet(work: Path) -> Fleet:
    return start_fleet(latency=FAKE_LATENCY, providers=FLEET_PROVIDERS, work_dir=work / "fakes")


# --- SIGKILL of the run process at random points -------------------------------------------------------------

KILL_CAMPAIGN = """\
campaign: kill-loop
defaults: {quality_tier: social, subtitles: none}
videos:
  - id: four
    target_seconds: 16
    shots:
      - {prompt: "Kill loop: dawn over the dunes"}
      - {prompt: "Kill loop: wind lifts the sand"}
      - {prompt: "Kill loop: a caravan crosses"}
      - {prompt: "Kill loop: night falls on the camp"}
"""


@dataclass
class KillResult:
    kills: list[float]              # seconds after each start the process was killed
    states_at_kill: list[str]       # the ledger's job states at each kill ("-": no job yet)
    planned: int
    stored: int
    paid_twice: int
    paid_unused: int
    submissions: int
    recover_seconds: float          # the final, uninterrupted run
    output_ok: bool

    @property
    def lost(self) -> int:
        return self.planned - self.stored


def run_kill_loop(root: Path, kills: int = 3, seed: int = 8) -> KillResult:
    """`video-pipeline run` in fake mode, SIGKILLed `kills` times — once a job is in flight, once one has finished
    unstored, once a clip is stored — each a random fraction of a second after that moment, then run to the end."""
    import json

    rng = random.Random(seed)
    data = new_data_dir(root / "kill-loop")
    spec = data / "kill-loop.yaml"
    spec.write_text(KILL_CAMPAIGN, encoding="utf-8")
    home = root / "kill-loop" / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    fleet, base_port = fleet_on_free_ports(latency=1.5, work_dir=root / "kill-loop" / "fakes")
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
    env.update(VIDEO_PIPELINE_MODE="fake", VIDEO_PIPELINE_FAKES_PORT=str(base_port), VIDEO_PIPELINE_DATA_DIR=str(data),
               VIDEO_PIPELINE_TIME_SCALE="0.05", VIDEO_PIPELINE_X264_PRESET="ultrafast", DAGSTER_HOME=str(home))
    cmd = [sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--json"]
    at: list[float] = []
    states: list[str] = []
    try:
        for moment in KILL_MOMENTS[:kills]:
            victim = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
            started = time.monotonic()
            # wait for this kill's moment in the ledger (load-independent), then a random extra moment
            while victim.poll() is None and not _reached(Settings.from_env(env), moment):
                if time.monotonic() - started > 240:
                    raise RuntimeError(f"the run never reached {moment!r}")
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.6))
            if victim.poll() is None:
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(timeout=30)
            at.append(round(time.monotonic() - started, 2))
            states.append(f"{moment}: " + _ledger_states(Settings.from_env(env)))
        started = time.monotonic()
        final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        recover = round(time.monotonic() - started, 2)
        if final.returncode != 0:
            raise RuntimeError(f"the final run failed (exit {final.returncode}): {final.stderr[-2000:]}{final.stdout[-2000:]}")
        settings = Settings.from_env(env)
        payload = json.loads(final.stdout) if final.stdout.strip().startswith("{") else {}
        outputs = payload.get("outputs") or []
        ok = final.returncode == 0 and bool(outputs) and all(o["state"] == "assembled" for o in outputs)
        import pandas as pd

        table = settings.tables_dir / "stored_clips" / "kill-loop.parquet"
        clips = pd.read_parquet(table) if table.exists() else pd.DataFrame(columns=["state"])
        submissions, twice, unused = _billing(fleet, {n: set() for n in fleet.books}, _stored_job_ids(settings))
        return KillResult(at, states, planned=4, stored=int((clips["state"] == "stored").sum()), paid_twice=twice,
                          paid_unused=unused, submissions=submissions, recover_seconds=recover,
                          output_ok=ok and fleet.duplicate_submissions() == twice)
    finally:
        fleet.stop()


#: when each kill strikes: a job in flight, a job finished but its clip not stored, a clip stored (then assembly)
KILL_MOMENTS = ["in flight", "succeeded", "stored"]


def _reached(settings: Settings, moment: str) -> bool:
    """Whether the ledger shows a job at `moment` (in flight; succeeded but unstored; stored) in this run."""
    if not (settings.data_dir / "ledger.sqlite").exists():
        return False
    engine = sa.create_engine(settings.ledger_url)
    try:
        with engine.connect() as conn:
            rows = list(conn.execute(sa.select(jobs.c.state, jobs.c.provider_job_id, jobs.c.stored_uri)))
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()
    if moment == "in flight":
        return any(r.state in ("queued", "running") and r.provider_job_id for r in rows)
    if moment == "succeeded":
        return any(r.state == "succeeded" and not r.stored_uri for r in rows)
    return any(r.stored_uri for r in rows)


def _ledger_states(settings: Settings) -> str:
    if not (settings.data_dir / "ledger.sqlite").exists():
        return "-"
    engine = sa.create_engine(settings.ledger_url)
    try:
        with engine.connect() as conn:
            counts = Counter(r.state for r in conn.execute(sa.select(jobs.c.state)))
    except sa.exc.OperationalError:
        return "-"
    finally:
        engine.dispose()
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "-"


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="vp-faults-"))

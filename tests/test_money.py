"""Money as the person paying checks it: the fakes' invoices against the ledger, budgets held at every submit,
and the engine paths that used to spin, reuse a refused URL or misreport a model's latency."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from tests.conftest import write
from tests.support.pipeline import (
    STORAGE,
    TunedProviders,
    live_settings,
    quick_catalog,
    run_campaign_job,
    step_failures,
    storage_from,
)
from tests.support.services import fake_fleet
from video_pipeline.config import child_environment
from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.planning.planner import plan_campaign
from video_pipeline.cli.main import main
from video_pipeline.jobs.engine import JobEngine, run_segments
from video_pipeline.errors import BudgetExceeded
from video_pipeline.jobs.ledger import JobLedger, jobs
from video_pipeline.storage.netguard import DownloadPolicy
from video_pipeline.planning.observed import ObservationLog, observations
from video_pipeline.providers.base import JobState, JobStatus, ProviderRegistry
from video_pipeline.providers.fakes.fleet import start_fleet
from video_pipeline.providers.local import LocalProvider
from video_pipeline.storage.store import ClipStore

RUN_DATE = dt.date(2026, 11, 24)


def _ledger(settings) -> JobLedger:
    return JobLedger(settings.ledger_url)


def _spend(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["spend", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- the ledger against the fakes' invoices ----------------------------------------------------------------------

@pytest.mark.slow
def test_two_concurrent_runs_and_a_rerun_agree_with_the_fakes_invoices_to_the_cent(data_dir, tmp_path, capsys,
                                                                                     monkeypatch):
    """Each paid job counts once whichever run paid it: `spend`, `status` and the asset metadata all say what the
    providers' invoices say, and the rerun that reuses every clip adds nothing."""
    from dagster import AssetKey, DagsterInstance

    spec = data_dir / "samples" / "launch-teaser.yaml"
    cmd = [sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--json"]
    with start_fleet(latency=1.5, work_dir=tmp_path / "fakes", providers=["gemini", "kling"]) as fleet:
        env = child_environment({**fleet.environment(), "VIDEO_PIPELINE_CATALOG": str(quick_catalog(tmp_path))})
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not fleet.books["gemini"].jobs and time.monotonic() < deadline:   # the first run is paying now
            time.sleep(0.05)
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs = [p.communicate(timeout=300) for p in (first, second)]
        assert first.returncode == 0 and second.returncode == 0, [
            {k: v for k, v in json.loads(out).items() if k in ("status", "errors", "outputs", "uncertain")}
            if out.strip().startswith("{") else (out[-2000:], err[-2000:]) for out, err in runs]
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        invoice = fleet.invoice()
        for key, value in fleet.environment().items():     # `spend` reads the fakes' invoices where they answer
            monkeypatch.setenv(key, value)
        spend = _spend(capsys, "launch-teaser")["campaigns"][0]
    assert fleet.duplicate_submissions() == 0 and invoice["pending_usd"] == 0
    assert invoice["total_usd"] > 0
    assert spend["actual_usd"] == pytest.approx(invoice["total_usd"], abs=0.005)
    assert spend["would_cost"] is False and spend["uncertain_jobs"] == 0 and spend["reserved_usd"] == 0
    assert spend["invoice"]["difference_usd"] == 0 and spend["invoice"]["matched_jobs"] == invoice["jobs"]
    payloads = [json.loads(out) for out, _ in runs] + [json.loads(rerun.stdout)]
    for payload in payloads:        # every run states the campaign's bill, not only what it paid itself
        assert payload["spend"]["actual_usd"] == pytest.approx(invoice["total_usd"], abs=0.005)
        assert payload["spend"]["words"] == f"${invoice['total_usd']:.2f} spent"
    assert json.loads(rerun.stdout)["cost_usd"] == 0          # the rerun reused every clip: it paid nothing
    with DagsterInstance.get() as instance:                  # the runs' instance: the fixture's DAGSTER_HOME
        event = instance.get_latest_materialization_event(AssetKey("generated_segments"))
    metadata = event.asset_materialization.metadata
    assert metadata["cost_usd"].value == pytest.approx(invoice["total_usd"], abs=0.005)
    assert metadata["paid_this_run_usd"].value == 0


# --- budgets are reserved before every submit ---------------------------------------------------------------------

SOCIAL = """
campaign: tight
budget_usd: {budget}
defaults: {{quality_tier: social}}
videos:
  - id: clip
    target_seconds: 6
    shots: [{{prompt: "A paper boat on a puddle"}}]
"""


def test_fallback_that_would_pass_the_budget_stops_the_campaign_with_the_budget_message(instance, settings, tmp_path):
    """Veo on Runway is refused by content moderation, which Runway bills; the fallback would take the campaign past
    its budget, so it is never sent: the invoices stay within the budget."""
    spec = write(settings.data_dir / "tight.yaml", SOCIAL.format(budget="0.70"))
    with fake_fleet(latency=0.3, providers=["runway", "minimax"], work_dir=tmp_path / "fakes") as fleet:
        fleet.books["runway"].faults.add("job", "fail-policy")
        result = run_campaign_job(instance, live_settings(fleet, settings), spec, raise_on_error=False,
                                  providers=TunedProviders())
        invoice = fleet.invoice()
    plan = result.output_for_node("routed_job_plans")
    assert plan["model"][0] == "veo-3-1-fast" and plan["est_cost_usd"].sum() <= 0.70
    assert not result.success
    message = step_failures(result)["generated_segments"]
    assert message.startswith("campaign stopped: ")
    assert "budget_usd is $0.70" in message and "$0.60 is spent" in message and "clip segment 0" in message
    assert "hailuo-02" in message and "Nothing was sent for it" in message
    assert fleet.books["minimax"].total_submissions == 0      # the fallback was never sent
    assert invoice["total_usd"] == pytest.approx(0.60) and invoice["total_usd"] <= 0.70
    ledger = _ledger(settings)
    try:
        [row] = ledger.campaign_rows("tight")
    finally:
        ledger.dispose()
    assert (row.state, row.cost_usd) == ("failed", 0.60)     # the ledger bills the refused job as Runway does


def race_for_a_budget(url: str, campaign: str, writers: int = 10) -> tuple[list, float]:
    """`writers` threads, each on its own connection, claim a $0.60 job at once against a $2.00 budget.
    Returns what each got (a row id or BudgetExceeded) and the sum the ledger then holds in reservations."""
    JobLedger(url).dispose()                                 # the schema exists before the race
    outcomes: list = []
    barrier = threading.Barrier(writers)

    def claim(i: int) -> None:
        ledger = JobLedger(url)
        try:
            barrier.wait()
            outcomes.append(ledger.try_begin(job_key=f"{campaign}-{i}", campaign=campaign, video_id="v",
                                             segment_index=i, model="veo-3-1-fast", provider="gemini", attempt=1,
                                             limit=100, reserve_usd=0.60, budget_usd=2.00))
        except BudgetExceeded as exc:
            outcomes.append(exc)
        finally:
            ledger.dispose()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ledger = JobLedger(url)
    try:
        return outcomes, sum(r.reserved_usd for r in ledger.campaign_rows(campaign))
    finally:
        ledger.dispose()


def test_concurrent_submits_never_reserve_past_the_budget(settings):
    """Ten writers on separate connections race for a budget that fits three jobs: three rows, seven refusals."""
    outcomes, reserved = race_for_a_budget(settings.ledger_url, "race")
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(outcomes) == 10 and len(refused) == 7
    assert "budget_usd is $2.00; $0.00 is spent and $1.80 reserved" in str(refused[0])
    assert reserved == pytest.approx(1.80)


# --- engine paths that used to go wrong ---------------------------------------------------------------------------

TWO = """
campaign: paths
defaults: {quality_tier: social}
videos:
  - id: pair
    target_seconds: 12
    shots: [{prompt: "Dawn over the dunes"}, {prompt: "Night falls on the camp"}]
"""


ONE = TWO.replace("target_seconds: 12", "target_seconds: 6").replace(', {prompt: "Night falls on the camp"}', "")


@pytest.mark.slow
def test_lost_clip_whose_url_expired_is_generated_again_with_a_note_never_spun_on(instance, settings):
    spec = write(settings.data_dir / "paths.yaml", TWO)
    first = run_campaign_job(instance, settings, spec, through=STORAGE)
    assert list(first.output_for_node("stored_clips")["state"]) == ["stored"] * 2
    shutil.rmtree(settings.clips_dir)                        # the kept clips are gone…
    shutil.rmtree(settings.work_dir / "local-provider" / "jobs")   # …and the provider no longer has the jobs
    ledger = _ledger(settings)
    try:
        with ledger.engine.begin() as conn:                  # and every provider URL has expired
            conn.execute(jobs.update().values(url_expires_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
    finally:
        ledger.dispose()
    result: list = []
    worker = threading.Thread(target=lambda: result.append(run_campaign_job(instance, settings, spec, through=STORAGE)),
                              daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert result, "the rerun never finished: it spun on the lost clip's job key"
    out = result[0].output_for_node("generated_segments")
    assert list(out["state"]) == ["succeeded"] * 2 and not out["reused"].any()
    ledger = _ledger(settings)
    try:
        rows = ledger.campaign_rows("paths")
    finally:
        ledger.dispose()
    lost = [r for r in rows if r.state == "lost"]
    assert len(lost) == 2 and all("has no fresh URL for it: generated again" in r.last_error for r in lost)
    assert list(result[0].output_for_node("stored_clips")["state"]) == ["stored"] * 2


@pytest.mark.slow
def test_refused_download_is_retried_next_run_from_a_fresh_poll_not_the_refused_url(instance, settings, tmp_path):
    spec = write(settings.data_dir / "paths.yaml", TWO)
    with fake_fleet(latency=0.3, providers=["gemini"], work_dir=tmp_path / "fakes") as fleet:
        live = live_settings(fleet, settings)                # VIDEO_PIPELINE_GEMINI_BASE_URL: the fake
        book = fleet.books["gemini"]
        # the first run stores before the operator allowed the host: every download is refused by the policy
        refusing = storage_from(lambda run: ClipStore(run.clips_dir,
                                                      DownloadPolicy.from_settings(run.with_overrides(base_urls={}))))
        first = run_campaign_job(instance, live, spec, through=STORAGE, providers=TunedProviders(),
                                 clip_storage=refusing)
        clips = first.output_for_node("stored_clips")
        assert list(clips["state"]) == ["failed"] * 2 and "refusing" in clips["error"][0]
        polls_before = sum(1 for method, path in book.requests if method == "GET" and "/operations/" in path)
        rerun = run_campaign_job(instance, live, spec, through=STORAGE, providers=TunedProviders())
        polls_after = sum(1 for method, path in book.requests if method == "GET" and "/operations/" in path)
    again, clips = rerun.output_for_node("generated_segments"), rerun.output_for_node("stored_clips")
    assert again["reused"].all() and polls_after - polls_before == 2   # asked the provider again, paid nothing
    assert list(clips["state"]) == ["stored"] * 2 and book.total_submissions == 2


class PausingProvider:
    """A provider whose poll blocks the event loop once for two seconds, as a SIGSTOP or a starved process would."""

    name = "local"
    latency_scale = 0.01
    reports_sending = True

    def __init__(self, inner: LocalProvider):
        self.inner = inner
        self.paused = False

    async def submit(self, request):
        return await self.inner.submit(request)

    async def poll(self, job_id):
        if not self.paused:
            self.paused = True
            time.sleep(2.0)          # the whole process stands still: no coroutine runs
        status = await self.inner.poll(job_id)
        if status.state == JobState.SUCCEEDED:   # a provider that gives no timestamps of its own
            return JobStatus(status.state, progress=1.0, output_url=status.output_url,
                             url_expires_at=status.url_expires_at)
        return status

    async def cancel(self, job_id):
        return await self.inner.cancel(job_id)

    async def aclose(self):
        await self.inner.aclose()


@pytest.mark.slow
def test_latency_sample_taken_across_a_pause_is_not_recorded_as_the_models(settings):
    catalog = load_catalog(settings.catalog_file)
    plan = plan_campaign(load_campaign(write(settings.data_dir / "one.yaml", ONE), settings.data_dir), catalog,
                         settings.data_dir, on=RUN_DATE)
    provider = PausingProvider(LocalProvider(catalog, settings.work_dir, time_scale=0.01, preset="ultrafast"))
    ledger = _ledger(settings)
    log = ObservationLog(ledger.engine)
    engine = JobEngine(catalog, ProviderRegistry(catalog, {}, local=provider), settings.data_dir, settings.work_dir,
                       ledger=ledger, on_attempt=log.record)
    try:
        [outcome] = run_segments(engine, plan.segments)   # the engine alone, on the planner's segment
        with ledger.engine.connect() as conn:
            samples = [r.latency_seconds for r in conn.execute(sa.select(observations.c.latency_seconds))]
        [row] = ledger.campaign_rows("paths")
    finally:
        ledger.dispose()
    assert outcome.state == "succeeded" and provider.paused
    # without the guard the 2 s stall would be recorded as ~200 s of model latency (2 s / time scale 0.01)
    assert samples == [None] and row.latency_seconds is None


# --- resolve: an operator's word on uncertain jobs ----------------------------------------------------------------

def _uncertain_row(settings, video_id: str = "pair", segment: int = 0) -> int:
    ledger = _ledger(settings)
    try:
        row_id = ledger.try_begin(job_key=f"{segment:032x}", campaign="paths", video_id=video_id,
                                  segment_index=segment, model="veo-3-1-fast", provider="gemini", attempt=1,
                                  limit=10, reserve_usd=0.6)
        ledger.sending(row_id)
        t = dt.datetime.now(dt.timezone.utc)
        ledger.uncertain(row_id, since=t, until=t, fingerprint="f" * 64, error="POST: no answer (ReadTimeout)")
        return row_id
    finally:
        ledger.dispose()


def test_resolve_lists_uncertain_jobs_and_records_each_decision(settings, capsys):
    first, second = _uncertain_row(settings, segment=0), _uncertain_row(settings, segment=1)
    capsys.readouterr()
    assert main(["resolve", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["uncertain"]
    assert [u["job"] for u in listed] == [first, second] and listed[0]["fingerprint"] == "f" * 64
    assert listed[0]["reserved_usd"] == 0.6 and "ReadTimeout" in listed[0]["reason"]
    assert _spend(capsys, "paths")["campaigns"][0]["uncertain_usd"] == 1.2   # counted as spent until resolved

    assert main(["resolve", "--job", str(first), "--adopt", "op-123"]) == 0     # not configured here: kept as given
    assert main(["resolve", "--job", str(second), "--abandon"]) == 0
    assert main(["resolve", "--job", str(first), "--abandon"]) == 1             # no longer uncertain
    assert "is not uncertain (queued)" in capsys.readouterr().err
    ledger = _ledger(settings)
    try:
        adopted, abandoned = ledger.row(first), ledger.row(second)
        assert (adopted.state, adopted.provider_job_id) == ("queued", "op-123")
        assert adopted.resolution.startswith("operator: adopt op-123 at ")
        assert abandoned.state == "abandoned" and ledger.abandoned_by_operator(abandoned.job_key) is not None
    finally:
        ledger.dispose()
    spend = _spend(capsys, "paths")["campaigns"][0]
    assert spend["uncertain_jobs"] == 0 and spend["uncertain_usd"] == 0.6       # the abandoned one may be billed
    assert main(["resolve", "--job", str(second), "--resubmit"]) == 0            # the abandon taken back
    ledger = _ledger(settings)
    try:
        assert ledger.abandoned_by_operator(abandoned.job_key) is None
    finally:
        ledger.dispose()


def test_a_sqlite_ledger_made_by_the_previous_release_gains_the_money_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:      # the previous release's table: no reservations, no uncertainty columns
        conn.execute(sa.text(
            "CREATE TABLE provider_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, job_key VARCHAR(64) NOT NULL, "
            "campaign VARCHAR(64) NOT NULL, video_id VARCHAR(64) NOT NULL, segment_index INTEGER NOT NULL, "
            "model VARCHAR(64) NOT NULL, provider VARCHAR(64) NOT NULL, provider_job_id VARCHAR(512), "
            "state VARCHAR(16) NOT NULL, attempt INTEGER NOT NULL, error_kind VARCHAR(16), last_error TEXT, "
            "created_at DATETIME NOT NULL, submitted_at DATETIME, heartbeat_at DATETIME NOT NULL, "
            "finished_at DATETIME, latency_seconds FLOAT, cost_usd FLOAT, output_url TEXT, url_expires_at DATETIME, "
            "stored_uri TEXT, stored_sha256 VARCHAR(64), CONSTRAINT uq_provider_job UNIQUE (provider, provider_job_id))"))
        conn.execute(sa.text(
            "INSERT INTO provider_jobs (job_key, campaign, video_id, segment_index, model, provider, provider_job_id, "
            "state, attempt, created_at, heartbeat_at, cost_usd) VALUES ('k', 'old', 'v', 0, 'veo-3-1-fast', "
            "'gemini', 'op-1', 'stored', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00', 0.8)"))
    engine.dispose()
    ledger = JobLedger(f"sqlite:///{path}")
    try:
        [row] = ledger.campaign_rows("old")
        assert (row.state, row.cost_usd, row.reserved_usd, row.uncertain_since) == ("stored", 0.8, None, None)
        ledger.set_budget("old", 1.0)
        with pytest.raises(BudgetExceeded, match=r"\$0.80 is spent"):
            ledger.try_begin(job_key="k2", campaign="old", video_id="v", segment_index=1, model="veo-3-1-fast",
                             provider="gemini", attempt=1, limit=5, reserve_usd=0.8, budget_usd=1.0)
    finally:
        ledger.dispose()


@pytest.mark.slow
def test_a_run_with_an_uncertain_segment_names_it_and_does_not_end_as_a_success(data_dir, tmp_path, capsys,
                                                                                 monkeypatch):
    """Veo on the Gemini API creates the job and the answer is lost: `run` exits 4 naming the segment, provider,
    model and time window; nothing is sent again; `resolve --adopt` and a rerun finish the video, paid once."""
    spec = write(data_dir / "lost.yaml", SOCIAL.format(budget="5").replace("tight", "lost-answer"))
    cmd = [sys.executable, "-m", "video_pipeline.cli", "run", str(spec)]
    with start_fleet(latency=0.3, providers=["gemini"], work_dir=tmp_path / "fakes") as fleet:
        env = child_environment({**fleet.environment(), "VIDEO_PIPELINE_CATALOG": str(quick_catalog(tmp_path))})
        fleet.books["gemini"].faults.add("submit", "lost-502")
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 4, first.stderr + first.stdout
        line = next(x for x in first.stdout.splitlines() if x.startswith("uncertain: "))
        assert "clip[0] on veo-3-1-fast (gemini, sent" in line and "video-pipeline resolve --job 1" in line
        assert "1 uncertain job(s)" in first.stdout.splitlines()[-1]
        [job] = fleet.books["gemini"].jobs.values()              # the provider did make it; nothing sent again
        for key, value in fleet.environment().items():     # resolve checks the id with the provider
            monkeypatch.setenv(key, value)
        assert main(["resolve", "--job", "1", "--adopt", job.id]) == 0   # the operator's look at the console
        again = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr + again.stdout
        payload = json.loads(again.stdout)
    assert payload["uncertain"] == [] and payload["outputs"][0]["state"] == "assembled"
    assert fleet.books["gemini"].total_submissions == 1 and fleet.invoice()["total_usd"] == payload["spend"]["actual_usd"]

"""The job engine: runs every planned segment on one event loop, bounded per provider, with retries and fallbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import functools
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from video_pipeline.errors import PipelineError, ProviderError, SubmitUncertain
from video_pipeline.jobs.ledger import RUN_LEASE, TAKEN, JobLedger, JobRow
from video_pipeline.jobs.polling import PollPolicy
from video_pipeline.media.render import extract_last_frame
from video_pipeline.planning.catalog import Catalog, ModelSpec
from video_pipeline.planning.planner import SegmentPlan
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus, ProviderRegistry
from video_pipeline.providers.http import SEND_HOOK
from video_pipeline.spec.campaign import resolve_reference
from video_pipeline.storage.netguard import DownloadPolicy
from video_pipeline.storage.store import fetch
from video_pipeline.tables import GENERATED_SEGMENTS

#: clock skew allowed between us and a provider when a lost submit is looked up in its listing (NTP keeps both
#: within a second or two; a wider window only lets more of the account's other jobs look like ours)
LOOKUP_SKEW = dt.timedelta(seconds=15)
#: how long after a lost answer a provider's listing that shows no job is believed: a slow provider may still be
#: creating it (scaled like the provider's latencies, at least MIN_NOT_CREATED_GRACE)
NOT_CREATED_GRACE = dt.timedelta(minutes=2)
MIN_NOT_CREATED_GRACE = dt.timedelta(seconds=3)
#: words of a failed job's reason that mark a content-policy refusal (some providers bill those)
POLICY_HINTS = ("policy", "moderation", "safety", "sensitive", "risk control", "content security", "nsfw",
                "responsible ai", "rai")


def estimate_usd(spec: ModelSpec, seconds: float, resolution: str) -> float:
    """What a job of this length costs at the catalog's billing rule."""
    return round(spec.cost(seconds, resolution), 4)


def charge_usd(spec: ModelSpec, seconds: float, resolution: str, outcome: str, provider: str) -> float:
    """What `provider` bills for a job that ended as `outcome` (succeeded, failed, failed-policy, canceled)."""
    return round(spec.charge(seconds, resolution, outcome, provider=provider), 4)

OUTCOME_COLUMNS = GENERATED_SEGMENTS.names   # the generated_segments table (types in tables.py)


@dataclass
class SegmentOutcome:
    campaign: str
    video_id: str
    segment_index: int
    job_key: str
    state: str
    model: str
    planned_model: str
    provider: str = ""
    provider_job_id: str = ""
    attempts: int = 0
    fallbacks_taken: list[str] = field(default_factory=list)
    latency_seconds: float = 0.0
    cost_usd: float = 0.0
    output_url: str | None = None
    url_expires_at: str | None = None
    error: str | None = None
    reused: bool = False          # an earlier identical job's clip was reused: nothing paid this run
    resumed: bool = False         # an in-flight job from an earlier run was picked up, not resubmitted
    seconds: float = 0.0
    generate_seconds: int = 0
    target_seconds: float = 0.0
    resolution: str = ""
    aspect_ratio: str = ""
    est_cost_usd: float = 0.0     # the plan's estimate for this segment's job
    paid: bool = False            # money went to a provider for this outcome in this run (not local, not reused)
    settled: str = ""             # how an uncertain submit was settled: found at the provider, not created, …

    def row(self) -> dict:
        return asdict(self)


class _TakenElsewhere(Exception):
    """Raised inside the engine when another run holds the job key; the segment starts over and shares it."""


class _Next(enum.Enum):
    """What a segment does after an attempt that did not finish it."""

    RETRY = "retry"              # the same model again, after a back-off
    FALL_BACK = "fall back"      # the next model of the chain
    START_OVER = "start over"    # the ledger changed under us (a lost answer created another model's job)


@dataclass(frozen=True)
class _Route:
    """A model of the chain and the provider that serves it."""

    model: str
    provider: Any
    route_model_id: str
    spec: ModelSpec


@dataclass
class _Job:
    """One attempt's provider job: its ledger row (once taken) and when the attempt began."""

    started: float
    row_id: int | None = None


@dataclass(frozen=True)
class _Lookup:
    """An uncertain submit looked up at its provider: settled (found, or surely not created), or not and why."""

    settled: bool
    failure: str = ""


class _OffLoop:
    """The ledger as the engine calls it: each method runs on a worker thread, so the event loop (every other
    segment's polls and submits) never waits on the database."""

    def __init__(self, ledger: JobLedger):
        self._ledger = ledger

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._ledger, name)

        async def call(*args, **kwargs):
            return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

        return call


#: delivery states that say a job has not ended yet (the receiver's names)
_STILL_GOING = frozenset({JobState.QUEUED.value, JobState.RUNNING.value})


class _EventWatch:
    """One task for the whole run that reads new webhook deliveries from the ledger (a cursor over the events' ids)
    and wakes the job a delivery says has ended, once per delivery: a wake only brings the job's next poll
    forward, and the poll decides. A delivery that says the job is still queued or running changes nothing the
    schedule does not know, so a provider that calls back every second costs no extra polls."""

    def __init__(self, db: _OffLoop, every: float):
        self.db = db
        self.every = every
        self.cursor: int | None = None
        self.waiting: dict[tuple[str, str], asyncio.Event] = {}

    def wake_for(self, provider: str, job_id: str) -> asyncio.Event:
        """The event set when a new delivery for this job arrives (cleared by the waiter after each wake)."""
        return self.waiting.setdefault((provider, job_id), asyncio.Event())

    def done(self, provider: str, job_id: str) -> None:
        self.waiting.pop((provider, job_id), None)

    async def run(self) -> None:
        while True:
            try:
                if self.cursor is None:
                    self.cursor = await self.db.last_event_id()
                elif self.waiting:
                    for event_id, provider, job_id, state in await self.db.events_after(self.cursor):
                        self.cursor = max(self.cursor, event_id)
                        woken = self.waiting.get((provider, job_id))
                        if woken is not None and state not in _STILL_GOING:
                            woken.set()
            except Exception:   # noqa: BLE001 - a ledger hiccup costs a wake-up, never the run: polls decide
                pass
            await asyncio.sleep(self.every)


class CampaignAborted(PipelineError, RuntimeError):
    """A fatal provider error (auth, balance, no provider) stopped the campaign."""


class _Abort(asyncio.Event):
    """Set when a fatal error stops the run; holds the errors (by type, not by the text of an outcome)."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[ProviderError] = []


class JobEngine:
    """Submits, waits for and falls back across models for a campaign's segments, concurrently."""

    def __init__(self, catalog: Catalog, registry: ProviderRegistry, data_dir: Path, work_dir: Path,
                 max_attempts: int = 3, poll: PollPolicy | None = None, seed: int = 0,
                 on_change: Callable[[SegmentOutcome], None] | None = None,
                 on_attempt: Callable[..., None] | None = None, ledger: JobLedger | None = None,
                 webhooks: bool = False, event_check_seconds: float = 0.25, budget_usd: float | None = None,
                 download_policy: DownloadPolicy | None = None,
                 keep: Callable[[JobRow, JobStatus], None] | None = None, beat_seconds: float = 5.0,
                 run_lease: dt.timedelta = RUN_LEASE):
        self.catalog = catalog
        self.registry = registry
        self.data_dir = data_dir
        self.work_dir = work_dir
        self.max_attempts = max_attempts
        self.poll = poll or PollPolicy()
        self.rng = random.Random(seed)
        self.on_change = on_change or (lambda outcome: None)
        # called once per finished provider job: (model, provider, latency_seconds, succeeded, error_kind)
        self.on_attempt = on_attempt or (lambda *args, **kw: None)
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.ledger = ledger
        self.webhooks = webhooks
        self.event_check_seconds = event_check_seconds
        self.budget_usd = budget_usd          # every submission reserves against it (None: no budget)
        self._stalls: list[tuple[float, float]] = []   # (from, to) monotonic spans the event loop stood still
        self.download_policy = download_policy   # where a chained segment's previous output may be fetched from
        self.db = _OffLoop(ledger) if ledger is not None else None
        # a dead run's jobs in flight are taken over by a live one: `keep(row, status)` keeps the clip of one that
        # succeeded here (the stage's clip store), since no run of its campaign is there to store it
        self.keep = keep
        self.beat_seconds = beat_seconds
        self.run_lease = run_lease
        self._held: set[int] = set()        # ledger rows this run is waiting on: beaten while it lives
        self._events = _EventWatch(self.db, event_check_seconds) if self.db is not None and webhooks else None

    def _slot(self, model: str) -> asyncio.Semaphore:
        if model not in self._slots:
            self._slots[model] = asyncio.Semaphore(self.catalog.get(model).concurrency)
        return self._slots[model]

    async def run(self, segments: list[SegmentPlan]) -> list[SegmentOutcome]:
        """Run every segment; chained segments wait for their predecessor's last frame."""
        done: dict[str, asyncio.Future] = {s.job_key: asyncio.get_running_loop().create_future() for s in segments}
        abort = _Abort()
        first_of: dict[str, SegmentPlan] = {}
        for s in segments:
            first_of.setdefault(s.job_key, s)

        async def one(seg: SegmentPlan) -> SegmentOutcome:
            if first_of[seg.job_key] is not seg:
                # An identical request in the same run: one job serves both segments.
                twin: SegmentOutcome = await asyncio.shield(done[seg.job_key])
                return dataclasses.replace(twin, video_id=seg.video_id, segment_index=seg.segment_index,
                                           seconds=seg.seconds, target_seconds=seg.target_seconds, cost_usd=0.0,
                                           reused=twin.state == JobState.SUCCEEDED.value)
            seed_image = None
            if seg.chained_from:
                previous: SegmentOutcome = await asyncio.shield(done[seg.chained_from])
                if previous.state != JobState.SUCCEEDED.value:
                    outcome = self._outcome(seg, seg.model, state=JobState.FAILED.value,
                                            error=f"previous segment {previous.segment_index} failed; chained segments need its last frame")
                    done[seg.job_key].set_result(outcome)
                    return outcome
                seed_image = await asyncio.to_thread(self._last_frame, previous)
            outcome = await self._run_segment(seg, seed_image, abort)
            done[seg.job_key].set_result(outcome)
            return outcome

        watchers = [asyncio.create_task(self._watch_stalls())]
        if self._events is not None:
            watchers.append(asyncio.create_task(self._events.run()))
        if self.db is not None:
            watchers.append(asyncio.create_task(self._keep_alive()))
        try:
            outcomes = await asyncio.gather(*(one(s) for s in segments))
        finally:
            for watcher in watchers:
                watcher.cancel()
            await self.registry.aclose()
        if abort.errors:
            raise CampaignAborted(str(abort.errors[0]))
        return list(outcomes)

    async def _keep_alive(self) -> None:
        """Every few seconds: beat the jobs this run waits on (a run that dies stops beating them), and take over
        the jobs in flight a dead run left, whatever their campaign, where this run can reach their provider: poll
        each to its end, bill it, keep its clip, and so free its slot as soon as the provider says it ended."""
        adopted: set[asyncio.Task] = set()
        try:
            while True:
                await asyncio.sleep(self.beat_seconds)
                try:
                    await self.db.beat(sorted(self._held))
                    for row in await self.db.orphans(self.registry.configured, self.run_lease):
                        if row.id not in self._held and await self.db.take_over(row.id, self.run_lease):
                            task = asyncio.create_task(self._finish_orphan(row))
                            adopted.add(task)
                            task.add_done_callback(adopted.discard)
                except Exception:   # noqa: BLE001 - a ledger hiccup: the next beat tries again
                    pass
        finally:
            for task in adopted:
                task.cancel()

    async def _finish_orphan(self, row: JobRow) -> None:
        """A dead run's job, taken over: polled to its end here; its bill and clip recorded as its own run would."""
        try:
            provider, _ = self.registry.provider_named(row.provider, row.model)
        except ProviderError:
            return
        outcome = SegmentOutcome(campaign=row.campaign, video_id=row.video_id, segment_index=row.segment_index,
                                 job_key=row.job_key, state=row.state.value, model=row.model,
                                 planned_model=row.model, provider=row.provider,
                                 provider_job_id=row.provider_job_id or "")
        try:
            status = await self._wait(None, row.model, provider, row.provider_job_id, outcome, row.id, report=False)
        except ProviderError as exc:
            await self.db.failed(row.id, error=f"taken over from a run that died: {exc}", kind=exc.kind)
            return
        billed = getattr(status, "billed_usd", None)
        cost = round(billed, 4) if billed is not None else (row.estimated_usd or 0.0)
        await self.db.succeeded(row.id, output_url=status.output_url, url_expires_at=status.url_expires_at,
                                latency_seconds=None, cost_usd=cost)
        if self.keep is not None:
            try:
                await asyncio.to_thread(self.keep, row, status)
            except PipelineError:   # the URL stays in the ledger: the campaign's next run stores it
                pass

    def _last_frame(self, previous: SegmentOutcome) -> Path:
        frames = self.work_dir / "frames"
        frames.mkdir(parents=True, exist_ok=True)
        clip = frames / f"{previous.job_key}.mp4"
        if not clip.exists():
            fetch(previous.output_url, clip, policy=self.download_policy)
        return extract_last_frame(clip, frames / f"{previous.job_key}-last.png")

    def _outcome(self, seg: SegmentPlan, model: str, **kw) -> SegmentOutcome:
        return SegmentOutcome(campaign=seg.campaign, video_id=seg.video_id, segment_index=seg.segment_index,
                              job_key=seg.job_key, model=model, planned_model=seg.model, seconds=seg.seconds,
                              generate_seconds=seg.generate_seconds, target_seconds=seg.target_seconds,
                              resolution=seg.resolution, aspect_ratio=seg.aspect_ratio,
                              est_cost_usd=float(seg.est_cost_usd or 0.0),
                              **{"state": JobState.QUEUED.value, **kw})

    def _request(self, seg: SegmentPlan, model: str, route_model_id: str, seed_image: Path | None) -> GenerationRequest:
        image = seed_image or (resolve_reference(seg.image, self.data_dir) if seg.image else None)
        return GenerationRequest(
            job_key=seg.job_key, model=model, route_model_id=route_model_id, category=seg.category,
            prompt=seg.prompt, seconds=seg.generate_seconds, resolution=seg.resolution,
            aspect_ratio=seg.aspect_ratio, label=f"{model} | {seg.video_id} {seg.segment_index + 1}/{seg.segment_count}",
            image=image, video=resolve_reference(seg.video, self.data_dir) if seg.video else None,
            transform="upscale" if seg.category == "video_enhance" else ("style" if seg.video else None),
            audio=resolve_reference(seg.audio, self.data_dir) if seg.audio else None,
            audio_offset=seg.audio_offset_seconds, options=dict(seg.options),
        )

    async def _run_segment(self, seg: SegmentPlan, seed_image: Path | None, abort: _Abort) -> SegmentOutcome:
        while True:
            try:
                return await self._run_segment_once(seg, seed_image, abort)
            except _TakenElsewhere:
                # Another run claimed this exact request between our check and our claim: share its job.
                await asyncio.sleep(0.05)

    async def _settle_ledger(self, seg: SegmentPlan, seed_image: Path | None, outcome: SegmentOutcome,
                             abort: _Abort) -> SegmentOutcome | JobRow | None:
        """What the ledger already knows of this job key, before anything is sent: a finished outcome (reused,
        uncertain, given up), a job in flight to resume, or None (nothing: submit)."""
        db = self.db
        # Another run submitting the identical request right now (its lease moves while it waits for the
        # answer): wait for its job id, then share the job.
        while await db.submitting_elsewhere(seg.job_key):
            await asyncio.sleep(0.1)
        await db.settle_orphaned_submits(seg.job_key)
        hit = await db.reusable(seg.job_key)
        if hit is not None:
            return self._reused(outcome, hit)
        try:
            refreshed = await self._refresh_unkept(seg.job_key)
        except ProviderError as exc:
            if exc.kind == ProviderError.FATAL:   # the provider that was paid is not configured now: never repay
                return self._fatal(outcome, exc, abort)
            outcome.state = JobState.FAILED.value
            outcome.error = (f"the clip of job {exc.job_id or '?'} was paid for but its provider could not give a "
                             f"fresh URL now ({exc}); nothing was paid again, run the campaign again later")
            return outcome
        if refreshed is not None:
            return self._reused(outcome, refreshed)
        given_up = await db.abandoned_by_operator(seg.job_key)
        if given_up is not None:
            outcome.state, outcome.model = JobState.FAILED.value, given_up.model
            outcome.error = (f"an operator abandoned this segment ({given_up.resolution}); "
                             f"`video-pipeline resolve --job {given_up.id} --resubmit` generates it again")
            return outcome
        for row in await db.uncertain_rows(job_key=seg.job_key):
            lookup = await self._reconcile(seg, row, seed_image, outcome)
            if not lookup.settled:
                return self._uncertain(outcome, await db.row(row.id) or row, lookup)
        return await db.in_flight(seg.job_key)

    async def _run_segment_once(self, seg: SegmentPlan, seed_image: Path | None,
                                abort: _Abort) -> SegmentOutcome:
        """One pass over the segment: what the ledger knows, then each model of the chain until one succeeds."""
        outcome = self._outcome(seg, seg.model)
        started = time.monotonic()
        resume: JobRow | None = None
        if self.ledger is not None:
            known = await self._settle_ledger(seg, seed_image, outcome, abort)
            if isinstance(known, SegmentOutcome):
                return known
            resume = known
        chain = self._chain(seg, resume)
        for position, model in enumerate(chain):
            if abort.is_set():
                outcome.state, outcome.error = JobState.FAILED.value, "campaign stopped by a fatal error elsewhere"
                return outcome
            if position > 0:
                outcome.fallbacks_taken.append(f"{chain[position - 1]} -> {model}: {outcome.error}")
            outcome.model = model
            try:
                route = self._route(model, resume)
            except ProviderError as exc:
                outcome.error = str(exc)
                if exc.kind == ProviderError.FATAL:
                    return self._fatal(outcome, exc, abort)
                continue
            result = await self._try_model(seg, route, seed_image, outcome, resume, abort, started)
            resume = None
            if result is _Next.START_OVER:
                return await self._run_segment_once(seg, seed_image, abort)
            if isinstance(result, SegmentOutcome):
                return result
        outcome.state = JobState.FAILED.value
        outcome.latency_seconds = round(time.monotonic() - started, 3)
        self.on_change(outcome)
        return outcome

    @staticmethod
    def _chain(seg: SegmentPlan, resume: JobRow | None) -> list[str]:
        """The models to try in order: the plan's, then its fallbacks; a resumed job starts at its own model."""
        chain = [seg.model, *seg.fallbacks]
        if resume is not None:
            if resume.model not in chain:
                chain.insert(0, resume.model)
            chain = chain[chain.index(resume.model):]
        return chain

    def _route(self, model: str, resume: JobRow | None) -> _Route:
        """The provider that serves `model`: a resumed job's own provider, else the registry's first configured."""
        provider, route_model_id = (self.registry.provider_named(resume.provider, model)
                                    if resume is not None and resume.model == model
                                    else self.registry.provider_for(model))
        return _Route(model, provider, route_model_id, self.catalog.get(model))

    async def _try_model(self, seg: SegmentPlan, route: _Route, seed_image: Path | None, outcome: SegmentOutcome,
                         resume: JobRow | None, abort: _Abort, started: float) -> SegmentOutcome | _Next:
        """Up to `max_attempts` jobs on one model: the finished outcome, or what to do next (fall back along the
        chain, or start the segment over when a lost answer turned out to have created a job of another model)."""
        outcome.provider = route.provider.name
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            outcome.attempts += 1
            outcome.provider_job_id = ""
            job = _Job(started=time.monotonic())
            try:
                async with self._slot(route.model):
                    if resume is not None and resume.model == route.model:
                        job.row_id, outcome.provider_job_id = resume.id, resume.provider_job_id
                        outcome.resumed, resume = True, None
                    else:
                        await self._submit_new(seg, route, seed_image, outcome, job)
                    status = await self._wait(seg, route.model, route.provider, outcome.provider_job_id, outcome,
                                              job.row_id)
            except SubmitUncertain as exc:
                after = await self._after_uncertain(seg, route, seed_image, outcome, job, exc)
                if isinstance(after, SegmentOutcome) or after is _Next.START_OVER:
                    return after
                resume = after
                if resume is not None:
                    attempt -= 1   # the job the lost answer created is this attempt: poll it
                continue
            except ProviderError as exc:
                step = await self._after_failure(seg, route, outcome, job, exc, abort)
                if isinstance(step, SegmentOutcome):
                    return step
                if step is _Next.FALL_BACK:
                    return step
                await asyncio.sleep(min(30.0, 2 ** attempt * route.provider.latency_scale)
                                    * (1 + self.rng.random() * 0.2))
                continue
            return await self._after_success(seg, route, outcome, job, status, started)
        return _Next.FALL_BACK

    async def _submit_new(self, seg: SegmentPlan, route: _Route, seed_image: Path | None, outcome: SegmentOutcome,
                          job: _Job) -> None:
        """Reserve the budget and a slot in the ledger, send the job-creating request and record its id before
        anything else happens."""
        reserve = estimate_usd(route.spec, seg.generate_seconds, seg.resolution)
        job.row_id = await self._take_slot(seg, route.model, route.provider.name, outcome.attempts, reserve)
        request = self._request(seg, route.model, route.route_model_id, seed_image)
        try:
            job_id = await self._submit(route.provider, request, job.row_id)
        except ProviderError:
            raise
        except Exception as exc:
            sent = await self.db.row(job.row_id) if self.ledger is not None and job.row_id else None
            if sent is not None and sent.sent_at is not None:   # failed after the request left
                raise SubmitUncertain(f"{type(exc).__name__}: {exc}", sent_at=sent.sent_at,
                                      failed_at=dt.datetime.now(dt.timezone.utc), fingerprint="",
                                      provider=route.provider.name) from exc
            # an adapter that cannot build this request: not this model
            raise ProviderError(f"{type(exc).__name__}: {exc}", kind=ProviderError.TERMINAL,
                                provider=route.provider.name) from exc
        outcome.provider_job_id = job_id
        if self.ledger is not None:
            await self.db.submitted(job.row_id, job_id)
        outcome.state = JobState.QUEUED.value
        self.on_change(outcome)

    async def _after_uncertain(self, seg: SegmentPlan, route: _Route, seed_image: Path | None,
                               outcome: SegmentOutcome, job: _Job, exc: SubmitUncertain
                               ) -> SegmentOutcome | JobRow | None | _Next:
        """A submit whose answer was lost: record it, look the job up where the provider lets us. Returns the
        uncertain outcome (an operator decides), the job found (poll it as this attempt), None (nothing was
        created: try again) or START_OVER (the job found belongs to another model of the chain)."""
        outcome.error = str(exc)
        if self.ledger is None or job.row_id is None:
            return self._uncertain(outcome, None)
        await self.db.uncertain(job.row_id, since=exc.sent_at, until=exc.failed_at, fingerprint=exc.fingerprint,
                                error=str(exc))
        row = await self.db.row(job.row_id)
        lookup = await self._reconcile(seg, row, seed_image, outcome) if row is not None else _Lookup(False)
        if not lookup.settled:
            return self._uncertain(outcome, await self.db.row(job.row_id) or row, lookup)
        found = await self.db.in_flight(seg.job_key)
        return _Next.START_OVER if found is not None and found.model != route.model else found

    async def _after_failure(self, seg: SegmentPlan, route: _Route, outcome: SegmentOutcome, job: _Job,
                             exc: ProviderError, abort: _Abort) -> SegmentOutcome | _Next:
        """A failed attempt: bill it as the provider does, then stop the campaign (fatal), fall back (terminal)
        or retry the same model (retryable)."""
        outcome.error = str(exc)
        if self.ledger is not None and job.row_id is not None:
            billed = (charge_usd(route.spec, seg.generate_seconds, seg.resolution,
                                 exc.billed_as or _billed_as(JobState.FAILED, str(exc)), route.provider.name)
                      if outcome.provider_job_id else 0.0)
            await self.db.failed(job.row_id, error=str(exc), kind=exc.kind, cost_usd=billed)
        if outcome.provider_job_id:
            await asyncio.to_thread(self.on_attempt, route.model, route.provider.name, None, False, exc.kind)
        if exc.kind == ProviderError.FATAL:
            return self._fatal(outcome, exc, abort)
        return _Next.FALL_BACK if exc.kind == ProviderError.TERMINAL else _Next.RETRY

    async def _after_success(self, seg: SegmentPlan, route: _Route, outcome: SegmentOutcome, job: _Job,
                             status: JobStatus, started: float) -> SegmentOutcome:
        """A finished job: its latency observed, its bill and output URL in the ledger and the outcome."""
        latency = self._latency_sample(status, job.started, route.provider)
        await asyncio.to_thread(self.on_attempt, route.model, route.provider.name, latency, True, None)
        outcome.state = JobState.SUCCEEDED.value
        outcome.error = None
        outcome.latency_seconds = round(time.monotonic() - started, 3)
        billed = getattr(status, "billed_usd", None)
        outcome.cost_usd = (round(billed, 4) if billed is not None
                            else charge_usd(route.spec, seg.generate_seconds, seg.resolution, "succeeded",
                                            route.provider.name))
        outcome.paid = route.provider.name != "local"
        outcome.output_url = status.output_url
        outcome.url_expires_at = status.url_expires_at.isoformat() if status.url_expires_at else None
        if self.ledger is not None:
            await self.db.succeeded(job.row_id, output_url=status.output_url, url_expires_at=status.url_expires_at,
                                    latency_seconds=latency, cost_usd=outcome.cost_usd)
        self.on_change(outcome)
        return outcome

    def _latency_sample(self, status, attempt_started: float, provider) -> float | None:
        """The job's latency as the model's: the provider's own account when it gives one, else our wall clock,
        unless this process was paused or starved while it waited (the sample would describe us, not the model)."""
        if status.latency_seconds is not None:
            return round(status.latency_seconds, 3)
        now = time.monotonic()
        wall = now - attempt_started
        stalled = sum(max(0.0, min(end, now) - max(begin, attempt_started)) for begin, end in self._stalls)
        if stalled > max(1.0, 0.2 * wall):
            return None
        return round(wall / max(provider.latency_scale, 1e-9), 3)

    async def _watch_stalls(self, tick: float = 0.1, threshold: float = 0.5) -> None:
        """Note when this event loop stood still (the process was stopped, starved or blocked): waits measured
        across such a stall describe this process, not the model."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - last - tick > threshold:
                self._stalls.append((last + tick, now))
            last = now

    async def _submit(self, provider, request: GenerationRequest, row_id: int | None) -> str:
        """Send the job-creating request while renewing the `submitting` row's lease; the HTTP layer marks the
        moment the request leaves (adapters that cannot tell are marked as sent before they are called)."""
        if self.ledger is None or row_id is None:
            return await provider.submit(request)
        db = self.db
        if not getattr(provider, "reports_sending", False):
            await db.sending(row_id)
        stop = asyncio.Event()
        every = max(0.05, self.ledger.submit_lease.total_seconds() / 4)

        async def renew() -> None:
            while True:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=every)
                    return
                except asyncio.TimeoutError:
                    await db.renew_submit(row_id)

        async def mark_sent() -> None:   # awaited by the HTTP layer before the request leaves
            await db.sending(row_id)

        renewing = asyncio.create_task(renew())
        token = SEND_HOOK.set(mark_sent)
        try:
            return await provider.submit(request)
        finally:
            SEND_HOOK.reset(token)
            stop.set()
            await renewing

    async def _reconcile(self, seg: SegmentPlan, row: JobRow, seed_image: Path | None,
                         outcome: SegmentOutcome) -> _Lookup:
        """Settle an uncertain submit with its provider where the provider lets us: the job it created, found in
        its listing, is adopted (polled, paid once); a listing that still shows none after the grace period means
        nothing was created. Settled either way (or by another run), or not, with why the lookup could not say."""
        try:
            provider, route_model_id = self.registry.provider_named(row.provider, row.model)
        except ProviderError:
            return _Lookup(False)
        find = getattr(provider, "find_submitted", None)
        if find is None:
            return _Lookup(False)
        request = self._request(seg, row.model, route_model_id, seed_image)
        since = (row.uncertain_since or row.sent_at or row.created_at) - LOOKUP_SKEW
        until = (row.uncertain_until or row.heartbeat_at) + LOOKUP_SKEW
        scale = max(provider.latency_scale, 1e-6)
        grace = max(MIN_NOT_CREATED_GRACE, NOT_CREATED_GRACE * min(1.0, scale))
        believe_after = (row.uncertain_until or row.heartbeat_at) + grace
        # a listing that cannot answer yet (fal lists a request once it has ended) is asked again until the job,
        # if it exists, has surely ended; then the job stays uncertain for an operator
        spec = self.catalog.get(row.model)
        give_up = time.monotonic() + self.poll.timeout_factor * spec.latency.p95_seconds * scale + grace.total_seconds()
        interval = max(0.2, min(5.0, spec.latency.p50_seconds * scale / 2))
        how = getattr(provider, "lookup", "the provider's listing")
        db = self.db
        while True:
            if await db.competing_submits(row) and time.monotonic() < give_up:
                # another request for this model is still waiting for its answer: its job, when the provider
                # lists it without our input, could pass for ours; look once the ledger knows its id
                await asyncio.sleep(interval)
                continue
            try:
                found = await find(request, since, until, await db.known_job_ids(row.provider))
            except ProviderError as exc:
                if exc.kind == ProviderError.RETRYABLE and time.monotonic() < give_up:
                    await asyncio.sleep(interval)
                    continue
                return _Lookup(False, failure=f"looking the job up by {how} failed: {exc}")
            if found and not getattr(provider, "lookup_identifies", False) and \
                    await db.uncertain_siblings(row, LOOKUP_SKEW):
                # the listing cannot tell our job from one another segment's lost request (same model, same
                # moments) made: adopting it could give this segment that one's clip and resend the other's
                return _Lookup(False, failure=f"{how} shows a job that another uncertain request of {row.model} in "
                                              "the same moments could have made; ambiguous, left to an operator")
            if found:
                try:
                    settled = await db.adopt(row.id, found, f"found by {how}")
                except sa.exc.IntegrityError:   # another segment's submit answered with this id meanwhile
                    await asyncio.sleep(interval)
                    continue
                outcome.settled = f"found by {how}" if settled else "settled by another run"
                return _Lookup(True)
            wait = (believe_after - dt.datetime.now(dt.timezone.utc)).total_seconds()
            if wait <= 0:
                settled = await db.release(row.id, f"not created: {how} shows no such job", possibly_charged=False)
                outcome.settled = f"not created ({how} shows none)" if settled else "settled by another run"
                return _Lookup(True)
            await asyncio.sleep(min(wait, 5.0))

    def _uncertain(self, outcome: SegmentOutcome, row: JobRow | None, lookup: _Lookup | None = None) -> SegmentOutcome:
        """A submit whose outcome is unknown and cannot be looked up: neither resent nor sent to a fallback."""
        outcome.state = "uncertain"
        if row is not None:
            outcome.model, outcome.provider = row.model, row.provider
            window = (f"{row.uncertain_since:%Y-%m-%d %H:%M:%S}–{row.uncertain_until:%H:%M:%S} UTC"
                      if row.uncertain_since and row.uncertain_until else "an unknown time")
            outcome.error = (f"uncertain: {row.provider} may have created a job for {row.model} at {window} "
                             f"(ledger job {row.id}); nothing was sent again. Check the provider's console, then "
                             f"`video-pipeline resolve --job {row.id} --adopt JOB_ID | --resubmit | --abandon`"
                             + (f" ({lookup.failure})" if lookup is not None and lookup.failure else ""))
        else:
            outcome.error = f"uncertain: {outcome.error}; nothing was sent again"
        self.on_change(outcome)
        return outcome

    async def _refresh_unkept(self, job_key: str) -> JobRow | None:
        """A paid job whose clip is not kept (its URL expired or failed, or its stored file is gone): ask its
        provider again for a fresh URL (Runway and MiniMax re-issue them) instead of paying a second time. When the
        provider no longer has it, the row is marked lost with a note and the segment is generated again."""
        db = self.db
        row = await db.paid_unkept(job_key)
        if row is None:
            return None
        provider, _ = self.registry.provider_named(row.provider, row.model)   # fatal when not configured
        try:
            refresh = getattr(provider, "refresh_output_url", provider.poll)
            status = await refresh(row.provider_job_id)
        except ProviderError as exc:
            if exc.kind in (ProviderError.FATAL, ProviderError.RETRYABLE):
                raise ProviderError(str(exc), kind=exc.kind, provider=row.provider, job_id=row.provider_job_id) from exc
            status = None
        if status is None or status.state != JobState.SUCCEEDED or not status.output_url:
            await db.lost_clip(row.id, f"clip of job {row.provider_job_id} is no longer kept and {row.provider} "
                                          "has no fresh URL for it: generated again")
            return None
        await db.refreshed_url(row.id, status.output_url, status.url_expires_at)
        return await db.row(row.id)

    def _reused(self, outcome: SegmentOutcome, hit: JobRow) -> SegmentOutcome:
        """A job key that already succeeded: reuse its clip (or live URL) and pay nothing."""
        stored = hit.stored_file()
        outcome.state = JobState.SUCCEEDED.value
        outcome.model, outcome.provider, outcome.provider_job_id = hit.model, hit.provider, hit.provider_job_id or ""
        kept = stored.as_uri() if stored is not None else (hit.stored_uri if hit.kept_remotely else None)
        outcome.output_url = kept or hit.output_url
        outcome.url_expires_at = hit.url_expires_at.isoformat() if hit.url_expires_at and kept is None else None
        outcome.reused = True
        outcome.cost_usd = 0.0
        self.on_change(outcome)
        return outcome

    def _fatal(self, outcome: SegmentOutcome, exc: ProviderError, abort: _Abort) -> SegmentOutcome:
        abort.errors.append(exc)
        abort.set()
        outcome.state, outcome.error = JobState.FAILED.value, f"fatal: {exc}"
        self.on_change(outcome)
        return outcome

    async def _take_slot(self, seg: SegmentPlan, model: str, provider: str, attempt: int,
                         reserve_usd: float = 0.0) -> int | None:
        """A concurrency slot for `model` shared by every run on this ledger (its account limit), with the job's
        estimated cost reserved against the campaign's budget in the same transaction."""
        if self.ledger is None:
            return None
        limit = self.catalog.get(model).concurrency
        wait = 0.05
        while True:
            row_id = await self.db.try_begin(job_key=seg.job_key, campaign=seg.campaign, video_id=seg.video_id,
                                           segment_index=seg.segment_index, model=model, provider=provider,
                                           attempt=attempt, limit=limit, reserve_usd=reserve_usd,
                                           budget_usd=self.budget_usd)
            if row_id == TAKEN:
                raise _TakenElsewhere(seg.job_key)
            if row_id is not None:
                return row_id
            await asyncio.sleep(wait * (1 + self.rng.random() * 0.2))
            wait = min(wait * 1.5, 2.0)

    async def _wait(self, seg: SegmentPlan | None, model: str, provider, job_id: str, outcome: SegmentOutcome,
                    row_id: int | None, report: bool = True) -> JobStatus:
        """Wait for a submitted job: adaptive polling, or ledger events when webhooks deliver (polls as safety net)."""
        spec = self.catalog.get(model)
        scale = max(provider.latency_scale, 1e-6)
        p50, p95 = spec.latency.p50_seconds, spec.latency.p95_seconds
        # a resumed job picks up its schedule where it was: real seconds since it was submitted
        waited = await self.db.seconds_since_submitted(row_id) if self.ledger is not None and row_id else 0.0
        started = time.monotonic() - waited
        # stuck: past timeout_factor x p95 of provider time, plus the provider's grace in real seconds
        deadline = started + self.poll.timeout_factor * p95 * scale + getattr(provider, "stuck_grace_seconds", 30.0)
        next_at = self.poll.first_poll(p50, p95)
        event_key = getattr(provider, "event_key", lambda j: j)(job_id)
        if row_id is not None:
            self._held.add(row_id)
        polled = False
        try:
            while True:
                await self._sleep_or_event(max(self.poll.min_real_interval if polled else 0.0,
                                               started + next_at * scale - time.monotonic()), provider.name, event_key)
                polled = True
                try:
                    status = await provider.poll(job_id)
                except ProviderError as exc:
                    if exc.kind != ProviderError.RETRYABLE or time.monotonic() > deadline:
                        raise
                    # The job may still be running (and billed): keep polling it, never resubmit over a poll error.
                    elapsed = (time.monotonic() - started) / scale
                    next_at = self.poll.next_poll(elapsed, p50, p95, scale=scale)
                    continue
                if status.state == JobState.SUCCEEDED:
                    if not status.output_url:
                        raise ProviderError("job succeeded without an output URL", provider=provider.name,
                                            job_id=job_id)
                    return status
                if status.state in (JobState.FAILED, JobState.CANCELED):
                    reason = status.error or status.state.value
                    raise ProviderError(reason, kind=status.error_kind or ProviderError.RETRYABLE,
                                        provider=provider.name, job_id=job_id,
                                        billed_as=_billed_as(status.state, reason))
                if self.ledger is not None and row_id is not None:
                    await self.db.heartbeat(row_id, status.state.value)
                if outcome.state != JobState.RUNNING.value and status.state == JobState.RUNNING:
                    outcome.state = JobState.RUNNING.value
                    if report:
                        self.on_change(outcome)
                if time.monotonic() > deadline:
                    await provider.cancel(job_id)
                    raise ProviderError(f"job stuck for over {self.poll.timeout_factor:g}x its p95; cancelled",
                                        kind=ProviderError.TERMINAL, provider=provider.name, job_id=job_id,
                                        billed_as="canceled")
                elapsed = (time.monotonic() - started) / scale
                hint = status.poll_after / scale if status.poll_after is not None else None
                next_at = self.poll.next_poll(elapsed, p50, p95, status.progress, hint, scale)
        finally:
            self._held.discard(row_id)
            if self._events is not None:
                self._events.done(provider.name, event_key)

    async def _sleep_or_event(self, seconds: float, provider: str, job_id: str) -> None:
        """Sleep until the next poll; with webhooks on, a new delivery for the job brings the poll forward (once
        per delivery: the schedule resumes after it)."""
        if self._events is None:
            await asyncio.sleep(seconds)
            return
        woken = self._events.wake_for(provider, job_id)
        try:
            await asyncio.wait_for(woken.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return
        woken.clear()


def _billed_as(state: JobState, reason: str) -> str:
    """How a job the provider ended is billed: canceled, refused by its content policy (some providers bill those,
    and say so only in the reason's words) or failed."""
    if state == JobState.CANCELED:
        return "canceled"
    return "failed-policy" if any(hint in reason.lower() for hint in POLICY_HINTS) else "failed"


def run_segments(engine: JobEngine, segments: list[SegmentPlan]) -> list[SegmentOutcome]:
    """Synchronous entry point: run the engine on a fresh event loop."""
    return asyncio.run(engine.run(segments))


__all__ = ["JobEngine", "SegmentOutcome", "CampaignAborted", "PollPolicy", "run_segments", "OUTCOME_COLUMNS"]

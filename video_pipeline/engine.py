"""The job engine: runs every planned segment on one event loop, bounded per provider, with retries and fallbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .campaign import resolve_reference
from .catalog import Catalog
from .errors import ProviderError
from .ledger import TAKEN, JobLedger, JobRow
from .media.render import extract_last_frame
from .planner import SegmentPlan
from .polling import PollPolicy  # noqa: F401  (re-exported: the engine's public poll policy)
from .providers.base import GenerationRequest, JobState, ProviderRegistry
from .store import fetch

OUTCOME_COLUMNS = [
    "campaign", "video_id", "segment_index", "job_key", "state", "model", "planned_model", "provider",
    "provider_job_id", "attempts", "fallbacks_taken", "latency_seconds", "cost_usd", "output_url",
    "url_expires_at", "error", "reused", "resumed", "seconds", "generate_seconds", "target_seconds", "resolution", "aspect_ratio",
]


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

    def row(self) -> dict:
        return asdict(self)


class _TakenElsewhere(Exception):
    """Raised inside the engine when another run holds the job key; the segment starts over and shares it."""


class CampaignAborted(RuntimeError):
    """A fatal provider error (auth, balance, no provider) stopped the campaign."""


class JobEngine:
    """Submits, waits for and falls back across models for a campaign's segments, concurrently."""

    def __init__(self, catalog: Catalog, registry: ProviderRegistry, data_dir: Path, work_dir: Path,
                 max_attempts: int = 3, poll: PollPolicy | None = None, seed: int = 0,
                 on_change: Callable[[SegmentOutcome], None] | None = None,
                 on_attempt: Callable[..., None] | None = None, ledger: JobLedger | None = None,
                 webhooks: bool = False, event_check_seconds: float = 0.25):
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

    def _slot(self, model: str) -> asyncio.Semaphore:
        if model not in self._slots:
            self._slots[model] = asyncio.Semaphore(self.catalog.get(model).concurrency)
        return self._slots[model]

    async def run(self, segments: list[SegmentPlan]) -> list[SegmentOutcome]:
        """Run every segment; chained segments wait for their predecessor's last frame."""
        done: dict[str, asyncio.Future] = {s.job_key: asyncio.get_running_loop().create_future() for s in segments}
        abort = asyncio.Event()
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

        try:
            outcomes = await asyncio.gather(*(one(s) for s in segments))
        finally:
            await self.registry.aclose()
        fatal = [o for o in outcomes if o.error and o.error.startswith("fatal:")]
        if fatal:
            raise CampaignAborted(fatal[0].error.removeprefix("fatal: "))
        return list(outcomes)

    def _last_frame(self, previous: SegmentOutcome) -> Path:
        frames = self.work_dir / "frames"
        frames.mkdir(parents=True, exist_ok=True)
        clip = frames / f"{previous.job_key}.mp4"
        if not clip.exists():
            fetch(previous.output_url, clip)
        return extract_last_frame(clip, frames / f"{previous.job_key}-last.png")

    def _outcome(self, seg: SegmentPlan, model: str, **kw) -> SegmentOutcome:
        return SegmentOutcome(campaign=seg.campaign, video_id=seg.video_id, segment_index=seg.segment_index,
                              job_key=seg.job_key, model=model, planned_model=seg.model, seconds=seg.seconds,
                              generate_seconds=seg.generate_seconds, target_seconds=seg.target_seconds,
                              resolution=seg.resolution, aspect_ratio=seg.aspect_ratio,
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

    async def _run_segment(self, seg: SegmentPlan, seed_image: Path | None, abort: asyncio.Event) -> SegmentOutcome:
        while True:
            try:
                return await self._run_segment_once(seg, seed_image, abort)
            except _TakenElsewhere:
                # Another run claimed this exact request between our check and our claim: share its job.
                await asyncio.sleep(0.05)

    async def _run_segment_once(self, seg: SegmentPlan, seed_image: Path | None,
                                abort: asyncio.Event) -> SegmentOutcome:
        outcome = self._outcome(seg, seg.model)
        started = time.monotonic()
        resume: JobRow | None = None
        if self.ledger is not None:
            # Another run submitting the identical request right now: wait for its job id, then share the job.
            while self.ledger.submitting_elsewhere(seg.job_key):
                await asyncio.sleep(0.1)
            hit = self.ledger.reusable(seg.job_key)
            if hit is not None:
                return self._reused(outcome, hit)
            try:
                refreshed = await self._refresh_expired(seg.job_key)
            except ProviderError as exc:   # the provider that was paid is not configured now: stop, never repay
                return self._fatal(outcome, exc, abort)
            if refreshed is not None:
                return self._reused(outcome, refreshed)
            self.ledger.abandon_unsubmitted(seg.job_key)
            resume = self.ledger.in_flight(seg.job_key)
        chain = [seg.model, *seg.fallbacks]
        if resume is not None and resume.model not in chain:
            chain.insert(0, resume.model)
        if resume is not None:
            chain = chain[chain.index(resume.model):]
        for position, model in enumerate(chain):
            if abort.is_set():
                outcome.state, outcome.error = JobState.FAILED.value, "campaign stopped by a fatal error elsewhere"
                return outcome
            if position > 0:
                outcome.fallbacks_taken.append(f"{chain[position - 1]} -> {model}: {outcome.error}")
            outcome.model = model
            try:
                provider, route_model_id = (self.registry.provider_named(resume.provider, model)
                                            if resume is not None and resume.model == model
                                            else self.registry.provider_for(model))
            except ProviderError as exc:
                outcome.error = str(exc)
                if exc.kind == ProviderError.FATAL:
                    return self._fatal(outcome, exc, abort)
                continue
            outcome.provider = provider.name
            for attempt in range(1, self.max_attempts + 1):
                outcome.attempts += 1
                outcome.provider_job_id = ""
                attempt_started = time.monotonic()
                row_id: int | None = None
                try:
                    async with self._slot(model):
                        if resume is not None and resume.model == model:
                            row_id, outcome.provider_job_id = resume.id, resume.provider_job_id
                            outcome.resumed = True
                            resume = None
                            status = await self._wait(seg, model, provider, outcome.provider_job_id, outcome, row_id)
                        else:
                            row_id = await self._take_slot(seg, model, provider.name, outcome.attempts)
                            request = self._request(seg, model, route_model_id, seed_image)
                            try:
                                job_id = await provider.submit(request)
                            except ProviderError:
                                raise
                            except Exception as exc:  # an adapter that cannot build this request: not this model
                                raise ProviderError(f"{type(exc).__name__}: {exc}", kind=ProviderError.TERMINAL,
                                                    provider=provider.name) from exc
                            outcome.provider_job_id = job_id
                            if self.ledger is not None:   # before anything else happens
                                self.ledger.submitted(row_id, job_id)
                            outcome.state = JobState.QUEUED.value
                            self.on_change(outcome)
                            status = await self._wait(seg, model, provider, job_id, outcome, row_id)
                except ProviderError as exc:
                    outcome.error = str(exc)
                    if self.ledger is not None and row_id is not None:
                        self.ledger.failed(row_id, error=str(exc), kind=exc.kind)
                    if outcome.provider_job_id:
                        self.on_attempt(model, provider.name, None, False, exc.kind)
                    if exc.kind == ProviderError.FATAL:
                        return self._fatal(outcome, exc, abort)
                    if exc.kind == ProviderError.TERMINAL:
                        break
                    await asyncio.sleep(min(30.0, 2 ** attempt * provider.latency_scale) * (1 + self.rng.random() * 0.2))
                    continue
                spec = self.catalog.get(model)
                measured = (time.monotonic() - attempt_started) / max(provider.latency_scale, 1e-9)
                latency = round(status.latency_seconds or measured, 3)
                self.on_attempt(model, provider.name, latency, True, None)
                outcome.state = JobState.SUCCEEDED.value
                outcome.error = None
                outcome.latency_seconds = round(time.monotonic() - started, 3)
                outcome.cost_usd = round(spec.price(seg.resolution) * seg.generate_seconds, 4)
                outcome.output_url = status.output_url
                outcome.url_expires_at = status.url_expires_at.isoformat() if status.url_expires_at else None
                if self.ledger is not None:
                    self.ledger.succeeded(row_id, output_url=status.output_url, url_expires_at=status.url_expires_at,
                                          latency_seconds=latency, cost_usd=outcome.cost_usd)
                self.on_change(outcome)
                return outcome
        outcome.state = JobState.FAILED.value
        outcome.latency_seconds = round(time.monotonic() - started, 3)
        self.on_change(outcome)
        return outcome

    async def _refresh_expired(self, job_key: str) -> JobRow | None:
        """A succeeded job whose URL expired before it was stored: ask its provider again for a fresh URL
        (Runway and MiniMax re-issue them on a new query) instead of paying for the clip a second time."""
        row = self.ledger.succeeded_unstored(job_key)
        if row is None:
            return None
        provider, _ = self.registry.provider_named(row.provider, row.model)   # fatal when not configured
        try:
            refresh = getattr(provider, "refresh_output_url", provider.poll)
            status = await refresh(row.provider_job_id)
        except ProviderError as exc:
            if exc.kind == ProviderError.FATAL:
                raise
            return None   # the provider no longer has the job: it must be generated again
        if status.state != JobState.SUCCEEDED or not status.output_url:
            return None
        self.ledger.refreshed_url(row.id, status.output_url, status.url_expires_at)
        return next((r for r in self.ledger.rows(job_key) if r.id == row.id), None)

    def _reused(self, outcome: SegmentOutcome, hit: JobRow) -> SegmentOutcome:
        """A job key that already succeeded: reuse its clip (or live URL) and pay nothing."""
        stored = hit.stored_file()
        outcome.state = JobState.SUCCEEDED.value
        outcome.model, outcome.provider, outcome.provider_job_id = hit.model, hit.provider, hit.provider_job_id or ""
        kept = stored.as_uri() if stored is not None else (hit.stored_uri if hit.kept_remotely else None)
        outcome.output_url = kept or hit.output_url
        outcome.url_expires_at = hit.url_expires_at.isoformat() if hit.url_expires_at and kept is None else None
        outcome.reused = True
        self.on_change(outcome)
        return outcome

    def _fatal(self, outcome: SegmentOutcome, exc: ProviderError, abort: asyncio.Event) -> SegmentOutcome:
        abort.set()
        outcome.state, outcome.error = JobState.FAILED.value, f"fatal: {exc}"
        self.on_change(outcome)
        return outcome

    async def _take_slot(self, seg: SegmentPlan, model: str, provider: str, attempt: int) -> int | None:
        """A concurrency slot for `model` shared by every run on this ledger (its account limit)."""
        if self.ledger is None:
            return None
        limit = self.catalog.get(model).concurrency
        wait = 0.05
        while True:
            row_id = self.ledger.try_begin(job_key=seg.job_key, campaign=seg.campaign, video_id=seg.video_id,
                                           segment_index=seg.segment_index, model=model, provider=provider,
                                           attempt=attempt, limit=limit)
            if row_id == TAKEN:
                raise _TakenElsewhere(seg.job_key)
            if row_id is not None:
                return row_id
            await asyncio.sleep(wait * (1 + self.rng.random() * 0.2))
            wait = min(wait * 1.5, 2.0)

    async def _wait(self, seg: SegmentPlan, model: str, provider, job_id: str, outcome: SegmentOutcome,
                    row_id: int | None):
        """Wait for a submitted job: adaptive polling, or ledger events when webhooks deliver (polls as safety net)."""
        spec = self.catalog.get(model)
        scale = max(provider.latency_scale, 1e-6)
        p50, p95 = spec.latency.p50_seconds, spec.latency.p95_seconds
        # a resumed job picks up its schedule where it was: real seconds since it was submitted
        waited = self.ledger.seconds_since_submitted(row_id) if self.ledger is not None and row_id else 0.0
        started = time.monotonic() - waited
        # stuck: past timeout_factor x p95 of provider time, plus the provider's grace in real seconds
        deadline = started + self.poll.timeout_factor * p95 * scale + getattr(provider, "stuck_grace_seconds", 30.0)
        next_at = self.poll.first_poll(p50, p95)
        event_key = getattr(provider, "event_key", lambda j: j)(job_id)
        while True:
            await self._sleep_or_event(max(0.0, started + next_at * scale - time.monotonic()), provider.name, event_key)
            try:
                status = await provider.poll(job_id)
            except ProviderError as exc:
                if exc.kind != ProviderError.RETRYABLE or time.monotonic() > deadline:
                    raise
                # The job may still be running (and billed): keep polling it, never resubmit over a poll error.
                elapsed = (time.monotonic() - started) / scale
                next_at = self.poll.next_poll(elapsed, p50, p95)
                continue
            if status.state == JobState.SUCCEEDED:
                if not status.output_url:
                    raise ProviderError("job succeeded without an output URL", provider=provider.name, job_id=job_id)
                return status
            if status.state in (JobState.FAILED, JobState.CANCELED):
                raise ProviderError(status.error or status.state.value, kind=status.error_kind or ProviderError.RETRYABLE,
                                    provider=provider.name, job_id=job_id)
            if self.ledger is not None and row_id is not None:
                self.ledger.heartbeat(row_id, status.state.value)
            if outcome.state != JobState.RUNNING.value and status.state == JobState.RUNNING:
                outcome.state = JobState.RUNNING.value
                self.on_change(outcome)
            if time.monotonic() > deadline:
                await provider.cancel(job_id)
                raise ProviderError(f"job stuck for over {self.poll.timeout_factor:g}x its p95; cancelled",
                                    kind=ProviderError.TERMINAL, provider=provider.name, job_id=job_id)
            elapsed = (time.monotonic() - started) / scale
            hint = status.poll_after / scale if status.poll_after is not None else None
            next_at = self.poll.next_poll(elapsed, p50, p95, status.progress, hint)

    async def _sleep_or_event(self, seconds: float, provider: str, job_id: str) -> None:
        """Sleep until the next poll; with webhooks on, wake early when the ledger has an event for the job."""
        if self.ledger is None or not self.webhooks:
            await asyncio.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.ledger.latest_event(provider, job_id) is not None:
                return
            await asyncio.sleep(min(self.event_check_seconds, max(end - time.monotonic(), 0)))


def run_segments(engine: JobEngine, segments: list[SegmentPlan]) -> list[SegmentOutcome]:
    """Synchronous entry point: run the engine on a fresh event loop."""
    return asyncio.run(engine.run(segments))


__all__ = ["JobEngine", "SegmentOutcome", "CampaignAborted", "PollPolicy", "run_segments", "OUTCOME_COLUMNS"]

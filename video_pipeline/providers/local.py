"""The local provider: renders a real clip per job with ffmpeg after a simulated, model-shaped wait."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog
from ..errors import MediaError
from ..media.render import BUNDLED_FONT, ClipSpec, frame_size, render_clip
from .base import GenerationRequest, JobState, JobStatus


@dataclass
class _Job:
    request: GenerationRequest
    ready_at: float
    simulated_seconds: float     # the model-shaped latency, before the time scale
    output: Path
    task: asyncio.Task | None = None
    error: str | None = None
    canceled: bool = False


def simulated_latency(p50: float, p95: float, rng: random.Random) -> float:
    """A latency drawn from a log-normal fitted to the model's p50/p95, clipped to a sane range."""
    sigma = max(math.log(p95 / p50) / 1.645, 1e-6)
    return min(max(rng.lognormvariate(math.log(p50), sigma), 0.2 * p50), 3 * p95)


class LocalProvider:
    """Serves every catalog model offline; its output URLs are file:// URLs that expire like real ones."""

    name = "local"

    def __init__(self, catalog: Catalog, work_dir: Path, time_scale: float = 0.02, seed: int = 0,
                 preset: str = "veryfast", font: Path | None = None, render_slots: int | None = None):
        self.catalog = catalog
        self.work_dir = work_dir / "local-provider"
        self.latency_scale = time_scale
        self.seed = seed
        self.preset = preset
        self.font = font or BUNDLED_FONT
        self._jobs: dict[str, _Job] = {}
        self._render_slots = asyncio.Semaphore(render_slots or max(1, os.cpu_count() or 1))
        self.submissions = 0

    async def submit(self, request: GenerationRequest) -> str:
        spec = self.catalog.get(request.model)
        self.submissions += 1
        rng = random.Random(f"{self.seed}:{request.job_key}:{self.submissions}")
        simulated = simulated_latency(spec.latency.p50_seconds, spec.latency.p95_seconds, rng)
        job_id = f"local-{uuid.uuid4().hex[:16]}"
        job = _Job(request=request, ready_at=time.monotonic() + simulated * self.latency_scale,
                   simulated_seconds=round(simulated, 3), output=self.work_dir / f"{job_id}.mp4")
        job.task = asyncio.create_task(self._render(job, native_audio=spec.audio.output and request.audio is None))
        self._jobs[job_id] = job
        return job_id

    async def _render(self, job: _Job, native_audio: bool) -> None:
        r = job.request
        width, height = frame_size(r.resolution, r.aspect_ratio)
        clip = ClipSpec(text=r.prompt, label=r.label or r.model, seconds=r.seconds, width=width, height=height,
                        seed=r.job_key, image=r.image, video=r.video, transform=r.transform, audio=r.audio,
                        audio_offset=r.audio_offset, native_audio=native_audio, preset=self.preset, font=self.font)
        async with self._render_slots:
            try:
                await asyncio.to_thread(render_clip, clip, job.output)
            except MediaError as exc:
                job.error = str(exc)

    async def poll(self, job_id: str) -> JobStatus:
        job = self._jobs.get(job_id)
        if job is None:
            return JobStatus(JobState.FAILED, error=f"unknown job {job_id}", error_kind="terminal")
        if job.canceled:
            return JobStatus(JobState.CANCELED)
        remaining = job.ready_at - time.monotonic()
        if job.task is not None and job.task.done() and job.error:
            return JobStatus(JobState.FAILED, error=job.error, error_kind="retryable")
        if remaining > 0 or (job.task is not None and not job.task.done()):
            return JobStatus(JobState.RUNNING, poll_after=max(remaining, 0.05))
        lifetime = self.catalog.get(job.request.model).output_url_lifetime_seconds
        return JobStatus(JobState.SUCCEEDED, progress=1.0, output_url=job.output.resolve().as_uri(),
                         latency_seconds=job.simulated_seconds,
                         url_expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=lifetime))

    async def cancel(self, job_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None:
            return False
        job.canceled = True
        return True

    async def aclose(self) -> None:
        for job in self._jobs.values():
            if job.task is not None and not job.task.done():
                await asyncio.wait([job.task])

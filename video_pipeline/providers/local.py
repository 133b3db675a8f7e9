"""The local provider: renders a real clip per job with ffmpeg after a simulated, model-shaped wait.

Jobs are durable like a real provider's: each is a JSON file under <work>/local-provider/jobs/, so a run that
was killed can resume polling them; every submission is appended to submissions.jsonl (what a bill would show).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import math
import os
import random
import threading
import time
import uuid
from pathlib import Path

from video_pipeline.planning.catalog import Catalog
from video_pipeline.errors import MediaError
from video_pipeline.media.render import BUNDLED_FONT, ClipSpec, frame_size, render_clip
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus

_append_lock = threading.Lock()
#: the longest a poll waits for a render of this process to end before it answers "running"
LONG_POLL_SECONDS = 30.0
#: how often a job rendered by another process (a run sharing it) is looked at
OTHER_RENDER_POLL_SECONDS = 1.0


def simulated_latency(p50: float, p95: float, rng: random.Random) -> float:
    """A latency drawn from a log-normal fitted to the model's p50/p95, clipped to a sane range."""
    sigma = max(math.log(p95 / p50) / 1.645, 1e-6)
    return min(max(rng.lognormvariate(math.log(p50), sigma), 0.2 * p50), 3 * p95)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _request_to_json(request: GenerationRequest) -> dict:
    data = dataclasses.asdict(request)
    for key in ("image", "video", "audio"):
        data[key] = str(data[key]) if data[key] is not None else None
    return data


def _request_from_json(data: dict) -> GenerationRequest:
    data = dict(data)
    for key in ("image", "video", "audio"):
        data[key] = Path(data[key]) if data[key] is not None else None
    return GenerationRequest(**data)


class LocalProvider:
    """Serves every catalog model offline; its output URLs are file:// URLs that expire like real ones."""

    name = "local"
    #: renders in this process: a run that dies mid-submit created nothing anywhere else
    reports_sending = True
    #: rendering takes real time whatever the time scale: a job is stuck only well past it
    stuck_grace_seconds = 300.0

    def __init__(self, catalog: Catalog, work_dir: Path, time_scale: float = 0.02, seed: int = 0,
                 preset: str = "veryfast", font: Path | None = None, render_slots: int | None = None):
        self.catalog = catalog
        self.root = work_dir / "local-provider"
        self.jobs_dir = self.root / "jobs"
        self.latency_scale = time_scale
        self.seed = seed
        self.preset = preset
        self.font = font or BUNDLED_FONT
        self._render_slots = asyncio.Semaphore(render_slots or max(1, os.cpu_count() or 1))
        self._renders: dict[str, asyncio.Task] = {}
        self._errors: dict[str, str] = {}

    # --- the provider protocol -------------------------------------------------------------

    async def submit(self, request: GenerationRequest) -> str:
        spec = self.catalog.get(request.model)
        job_id = f"local-{uuid.uuid4().hex[:16]}"
        rng = random.Random(f"{self.seed}:{request.job_key}:{job_id}")
        simulated = simulated_latency(spec.latency.p50_seconds, spec.latency.p95_seconds, rng)
        record = {"job_id": job_id, "request": _request_to_json(request), "submitted_at": time.time(),
                  "ready_at": time.time() + simulated * self.latency_scale, "simulated_seconds": round(simulated, 3),
                  "canceled": False}
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._write(job_id, record)
        with _append_lock, (self.root / "submissions.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"job_id": job_id, "job_key": request.job_key, "model": request.model,
                                 "at": record["submitted_at"]}) + "\n")
        self._start_render(job_id, record)
        return job_id

    async def poll(self, job_id: str) -> JobStatus:
        record = self._read(job_id)
        if record is None:
            return JobStatus(JobState.FAILED, error=f"unknown job {job_id}", error_kind="retryable")
        if record["canceled"]:
            return JobStatus(JobState.CANCELED)
        output = self._output(job_id)
        if not output.exists():
            self._start_render(job_id, record)   # after a restart: the render died with the old process
            render = self._renders.get(job_id)
            if render is not None and not render.done():
                # a long poll: a render in this process answers the moment it ends (a job waiting for a render
                # slot costs one poll, not one every few milliseconds), bounded so stuck checks still run
                await asyncio.wait({render}, timeout=LONG_POLL_SECONDS)
        if job_id in self._errors:
            return JobStatus(JobState.FAILED, error=self._errors.pop(job_id), error_kind="retryable")
        remaining = record["ready_at"] - time.time()
        if remaining > 0 or not output.exists():
            # the simulated wait's end, or another process's render (a run sharing the job): a file to look at
            return JobStatus(JobState.RUNNING, poll_after=remaining if remaining > 0 else OTHER_RENDER_POLL_SECONDS)
        request = _request_from_json(record["request"])
        lifetime = self.catalog.get(request.model).output_url_lifetime_seconds
        done = dt.datetime.fromtimestamp(record["ready_at"], dt.timezone.utc)
        return JobStatus(JobState.SUCCEEDED, progress=1.0, output_url=output.resolve().as_uri(),
                         latency_seconds=record["simulated_seconds"],
                         url_expires_at=done + dt.timedelta(seconds=lifetime))

    async def cancel(self, job_id: str) -> bool:
        record = self._read(job_id)
        if record is None:
            return False
        record["canceled"] = True
        self._write(job_id, record)
        return True

    async def aclose(self) -> None:
        pending = [t for t in self._renders.values() if not t.done()]
        if pending:
            await asyncio.wait(pending)

    def download_headers(self, url: str) -> dict[str, str]:
        return {}

    # --- submissions, as a bill would list them ----------------------------------------------

    def submissions(self) -> list[dict]:
        path = self.root / "submissions.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # --- internals -------------------------------------------------------------------------

    def _output(self, job_id: str) -> Path:
        return self.root / "outputs" / f"{job_id}.mp4"

    def _write(self, job_id: str, record: dict) -> None:
        tmp = self.jobs_dir / f".{job_id}.json.tmp"
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.jobs_dir / f"{job_id}.json")

    def _read(self, job_id: str) -> dict | None:
        path = self.jobs_dir / f"{job_id}.json"
        if "/" in job_id or not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def _start_render(self, job_id: str, record: dict) -> None:
        task = self._renders.get(job_id)
        if task is not None and not (task.done() and not self._output(job_id).exists() and job_id not in self._errors):
            return
        if not self._claim_render(job_id):
            return   # another live process is rendering this job (a run that shares it): wait for its output
        self._renders[job_id] = asyncio.create_task(self._render(job_id, _request_from_json(record["request"])))

    def _claim_render(self, job_id: str) -> bool:
        """One renderer per job across processes: a lock file holding the renderer's pid; a dead one's is taken over."""
        lock = self.jobs_dir / f"{job_id}.render"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(lock.read_text() or "0")
                except (OSError, ValueError):
                    return False
                if pid == os.getpid() or _alive(pid):
                    return pid == os.getpid()
                lock.unlink(missing_ok=True)   # the renderer died (a killed run): take the job over
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return True
        return False

    async def _render(self, job_id: str, r: GenerationRequest) -> None:
        spec = self.catalog.get(r.model)
        width, height = frame_size(r.resolution, r.aspect_ratio)
        clip = ClipSpec(text=r.prompt, label=r.label or r.model, seconds=r.seconds, width=width, height=height,
                        seed=r.job_key, image=r.image, video=r.video, transform=r.transform, audio=r.audio,
                        audio_offset=r.audio_offset, native_audio=spec.audio.output and r.audio is None,
                        preset=self.preset, font=self.font)
        out = self._output(job_id)
        partial = out.with_name(f"{job_id}.{uuid.uuid4().hex[:8]}.part.mp4")
        async with self._render_slots:
            try:
                await asyncio.to_thread(render_clip, clip, partial)
                os.replace(partial, out)   # a killed render never leaves a half file behind as the output
            except MediaError as exc:
                self._errors[job_id] = str(exc)
            finally:
                (self.jobs_dir / f"{job_id}.render").unlink(missing_ok=True)

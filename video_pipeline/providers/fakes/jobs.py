"""The state every fake shares: jobs that advance with time, faults to inject, counts, and real MP4 bytes."""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from ...media.render import ClipSpec, render_clip

#: fault kinds: where they strike, and what the fake does
REQUEST_FAULTS = {"429", "429-no-retry-after", "500", "503", "reset"}          # on any HTTP call of that phase
JOB_FAULTS = {"fail-retryable", "fail-policy", "fail-invalid", "stuck"}         # decided when a job is created
DOWNLOAD_FAULTS = {"expired", "truncated"}                                      # on the result download


@dataclass
class FaultPlan:
    """Faults to inject, consumed in order per phase: submit, poll, result, download, job."""

    submit: list[str] = field(default_factory=list)
    poll: list[str] = field(default_factory=list)
    result: list[str] = field(default_factory=list)
    download: list[str] = field(default_factory=list)
    job: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._queues = {name: deque(getattr(self, name)) for name in ("submit", "poll", "result", "download", "job")}
        self._lock = threading.Lock()

    def take(self, phase: str) -> str | None:
        with self._lock:
            queue = self._queues[phase]
            return queue.popleft() if queue else None

    def add(self, phase: str, *faults: str) -> None:
        with self._lock:
            self._queues[phase].extend(faults)


@dataclass
class FakeJob:
    id: str
    body_sha256: str
    prompt: str
    seconds: float
    aspect_ratio: str
    created: float
    latency: float
    fault: str | None = None
    canceled: bool = False
    meta: dict = field(default_factory=dict)

    def phase(self, now: float | None = None, queue_fraction: float = 0.25) -> str:
        """queued → running → succeeded (or failed / stuck / canceled)."""
        if self.canceled:
            return "canceled"
        elapsed = (now or time.time()) - self.created
        if self.fault == "stuck":
            return "running" if elapsed >= self.latency * queue_fraction else "queued"
        if elapsed < self.latency * queue_fraction:
            return "queued"
        if elapsed < self.latency:
            return "running"
        return "failed" if self.fault in ("fail-retryable", "fail-policy", "fail-invalid") else "succeeded"


class JobBook:
    """Jobs of one fake server. Counts submissions per request body, so tests can prove nothing was paid twice."""

    def __init__(self, latency: float = 0.3, faults: FaultPlan | None = None, url_lifetime: float = 3600,
                 render_height: int = 180, work_dir: Path | None = None):
        self.latency = latency
        self.faults = faults or FaultPlan()
        self.url_lifetime = url_lifetime
        self.render_height = render_height
        self.jobs: dict[str, FakeJob] = {}
        self.submissions: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []       # (method, path) of every call, in order
        self._lock = threading.Lock()
        self._work = work_dir or Path(tempfile.mkdtemp(prefix="vp-fake-"))
        self._clips: dict[tuple, bytes] = {}

    @staticmethod
    def body_key(body: object) -> str:
        blob = body if isinstance(body, (bytes, str)) else json.dumps(body, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode() if isinstance(blob, str) else blob).hexdigest()

    def create(self, body: object, prompt: str, seconds: float, aspect_ratio: str = "16:9", **meta) -> FakeJob:
        job = FakeJob(id=uuid.uuid4().hex, body_sha256=self.body_key(body), prompt=prompt, seconds=float(seconds),
                      aspect_ratio=aspect_ratio, created=time.time(), latency=self.latency,
                      fault=self.faults.take("job"), meta=meta)
        with self._lock:
            self.jobs[job.id] = job
            self.submissions[job.body_sha256] += 1
        return job

    @property
    def total_submissions(self) -> int:
        return sum(self.submissions.values())

    def duplicate_submissions(self) -> int:
        """Submissions beyond the first for identical request bodies: money paid twice."""
        return sum(n - 1 for n in self.submissions.values() if n > 1)

    def get(self, job_id: str) -> FakeJob | None:
        return self.jobs.get(job_id)

    def expires_at(self, job: FakeJob) -> float:
        return job.created + job.latency + self.url_lifetime

    def mp4(self, job: FakeJob) -> bytes:
        """Real H.264 bytes for the job, rendered once per (text, seconds, shape) with the local renderer."""
        w, h = (int(x) for x in job.aspect_ratio.split(":"))
        height = self.render_height
        width = int(round(height * w / h / 2)) * 2
        if h > w:
            width, height = height, int(round(height * h / w / 2)) * 2
        key = (job.prompt[:200], job.seconds, width, height)
        with self._lock:
            cached = self._clips.get(key)
        if cached is None:
            out = self._work / f"{uuid.uuid4().hex}.mp4"
            render_clip(ClipSpec(text=job.prompt, label="fake", seconds=job.seconds, width=width, height=height,
                                 seed=job.prompt, preset="ultrafast"), out)
            cached = out.read_bytes()
            with self._lock:
                self._clips[key] = cached
        return cached

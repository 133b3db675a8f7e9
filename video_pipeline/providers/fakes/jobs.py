"""The state every fake shares: jobs that advance with time, faults to inject, counts, and real MP4 bytes."""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from video_pipeline.media.render import ClipSpec, render_clip
from video_pipeline.providers.fakes.invoice import Pricing, invoice_of
from video_pipeline.providers.fakes.webhooks import FalSigner, StandardSigner, handshake, new_secret, post

#: fault kinds: where they strike, and what the fake does
REQUEST_FAULTS = {"429", "429-no-retry-after", "500", "503", "reset"}          # on any HTTP call of that phase
JOB_FAULTS = {"fail-retryable", "fail-policy", "fail-invalid", "stuck"}         # decided when a job is created
DOWNLOAD_FAULTS = {"expired", "truncated"}                                      # on the result download
WEBHOOK_FAULTS = {"forged", "replay", "drop"}                                   # on a job's webhook delivery


@dataclass
class FaultPlan:
    """Faults to inject, consumed in order per phase: submit, poll, result, download, job, webhook."""

    submit: list[str] = field(default_factory=list)
    poll: list[str] = field(default_factory=list)
    result: list[str] = field(default_factory=list)
    download: list[str] = field(default_factory=list)
    job: list[str] = field(default_factory=list)
    webhook: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._queues = {name: deque(getattr(self, name))
                        for name in ("submit", "poll", "result", "download", "job", "webhook")}
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
    """Jobs of one fake server. Counts submissions per request body, so tests can prove nothing was paid twice.

    Webhooks: a fake that got a callback URL calls `schedule_webhook`; the delivery is POSTed once the job ends,
    signed with `webhook_secret` (Standard Webhooks) or `webhook_key` (fal's Ed25519, public half in `jwks()`),
    both generated per book unless given. Every POST attempt lands in `deliveries` as (url, status or None);
    MiniMax's challenge POSTs land in `handshakes` instead. With `progress_every` set, a job also sends its
    current (queued or running) state that often while it runs, as Kling's status callbacks and Replicate's
    `start`/`logs` events do; those POSTs land in `progress_deliveries`.

    Billing: `pricing` (see fakes.invoice; the fleet builds it from the catalog) prices each job, and `invoice()`
    lists every job ever created, deleted ones and ones whose answer never reached the client included.
    """

    def __init__(self, latency: float = 0.3, faults: FaultPlan | None = None, url_lifetime: float = 3600,
                 render_height: int = 180, work_dir: Path | None = None, webhook_secret: str | None = None,
                 webhook_key: Ed25519PrivateKey | None = None, webhook_user_id: str = "fake-user",
                 webhook_delay: float = 0.05, latency_p95: float | None = None, seed: int = 0,
                 pricing: Pricing | None = None, provider: str = "", progress_every: float | None = None):
        self.latency = latency            # each job's latency: this, or the median of a log-normal when
        self.latency_p95 = latency_p95    # a p95 is given (latencies then vary like a real provider's)
        self._rng = random.Random(seed)
        self.faults = faults or FaultPlan()
        self.url_lifetime = url_lifetime
        self.render_height = render_height
        self.jobs: dict[str, FakeJob] = {}
        self.created: list[FakeJob] = []   # every job in creation order; a deleted job is still billed
        self.pricing = pricing
        self.provider = provider
        self.submissions: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []       # (method, path) of every call, in order
        # per model: jobs not yet finished when another was created, as the provider's account counts them
        self.max_in_flight: Counter[str] = Counter()
        self._running_until: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._work = work_dir or Path(tempfile.mkdtemp(prefix="vp-fake-"))
        self._clips: dict[tuple, bytes] = {}
        self.webhook_secret = webhook_secret or new_secret()
        self.webhook_key = webhook_key or Ed25519PrivateKey.generate()
        self.webhook_user_id = webhook_user_id
        self.webhook_delay = webhook_delay        # seconds after a job ends before its delivery is sent
        self.deliveries: list[tuple[str, int | None]] = []
        self.handshakes: list[tuple[str, int | None]] = []
        self._timers: list[threading.Timer] = []
        self.progress_every = progress_every      # seconds between status callbacks while a job runs (None: none)
        self.progress_deliveries: list[tuple[str, int | None]] = []
        self._stopping = threading.Event()

    @staticmethod
    def body_key(body: object) -> str:
        blob = body if isinstance(body, (bytes, str)) else json.dumps(body, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode() if isinstance(blob, str) else blob).hexdigest()

    def create(self, body: object, prompt: str, seconds: float, aspect_ratio: str = "16:9", **meta) -> FakeJob:
        job = FakeJob(id=uuid.uuid4().hex, body_sha256=self.body_key(body), prompt=prompt, seconds=float(seconds),
                      aspect_ratio=aspect_ratio, created=time.time(), latency=self.draw_latency(),
                      fault=self.faults.take("job"), meta=meta)
        with self._lock:
            self.jobs[job.id] = job
            self.created.append(job)
            self.submissions[job.body_sha256] += 1
            ends = self._running_until.setdefault(str(meta.get("model", "")), [])
            while ends and ends[0] <= job.created:
                heapq.heappop(ends)
            heapq.heappush(ends, job.created + job.latency)
            model = str(meta.get("model", ""))
            self.max_in_flight[model] = max(self.max_in_flight[model], len(ends))
        return job

    def draw_latency(self) -> float:
        """A job's latency: fixed, or drawn from the log-normal with median `latency` and 95th percentile `latency_p95`."""
        if not self.latency_p95 or self.latency_p95 <= self.latency:
            return self.latency
        sigma = math.log(self.latency_p95 / self.latency) / 1.645
        with self._lock:
            return self._rng.lognormvariate(math.log(self.latency), sigma)

    @property
    def total_submissions(self) -> int:
        return sum(self.submissions.values())

    def duplicate_submissions(self) -> int:
        """Submissions beyond the first for identical request bodies: money paid twice."""
        return sum(n - 1 for n in self.submissions.values() if n > 1)

    def get(self, job_id: str) -> FakeJob | None:
        return self.jobs.get(job_id)

    def invoice(self, now: float | None = None) -> dict:
        """What the provider bills for every job created so far (see fakes.invoice for the shape)."""
        with self._lock:
            jobs = list(self.created)
        return invoice_of(jobs, self.pricing, self.provider, now)

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

    # --- webhooks -----------------------------------------------------------------------------------------------

    def standard_signer(self) -> StandardSigner:
        return StandardSigner(self.webhook_secret)

    def fal_signer(self) -> FalSigner:
        return FalSigner(self.webhook_key, self.webhook_user_id)

    def jwks(self) -> dict:
        """The JWKS (`{"keys": [...]}`) holding the public half of `webhook_key`."""
        return self.fal_signer().jwks()

    def schedule_webhook(self, job: FakeJob, url: str, payload: Callable[[], dict | None], signer,
                         challenge: bool = False) -> threading.Timer | None:
        """Deliver `payload()` to `url` a little after `job` ends, signed by `signer` (see fakes.webhooks).

        The payload is built when the timer fires, so it shows the job's final state; canceled jobs and jobs that
        never end (stuck) get no delivery, nor does a `payload` that returns None. `challenge=True` sends MiniMax's
        handshake first and delivers only if it was echoed. The plan's next "webhook" fault, taken now, applies:
        "forged" (signed with a secret or key nobody knows), "replay" (the same delivery sent twice), "drop".
        """
        fault = self.faults.take("webhook")
        if fault is not None and fault not in WEBHOOK_FAULTS:
            raise ValueError(f"unknown webhook fault {fault!r}")
        if fault == "drop":
            return None
        if self.progress_every:
            threading.Thread(target=self._progress, args=(job, url, payload, signer), daemon=True).start()
        delay = max(0.0, job.created + job.latency - time.time()) + self.webhook_delay
        timer = threading.Timer(delay, self._fire, args=(job, url, payload, signer, challenge, fault))
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        return timer

    def _fire(self, job: FakeJob, url: str, payload, signer, challenge: bool, fault: str | None) -> None:
        if job.phase() not in ("succeeded", "failed"):
            return
        body_obj = payload()
        if body_obj is None:
            return
        if challenge and not handshake(url, on_attempt=lambda u, s: self.handshakes.append((u, s))):
            return
        body = json.dumps(body_obj).encode()
        target, headers = signer.sign(url, body, f"msg_{uuid.uuid4().hex}", forged=fault == "forged")

        def record(attempted: str, status: int | None) -> None:
            self.deliveries.append((attempted, status))

        post(target, body, headers, on_attempt=record)
        if fault == "replay":
            post(target, body, headers, on_attempt=record)

    def _progress(self, job: FakeJob, url: str, payload, signer) -> None:
        """Status callbacks every `progress_every` seconds while the job is queued or running."""
        while not self._stopping.wait(self.progress_every) and job.phase() in ("queued", "running"):
            body_obj = payload()
            if body_obj is None:
                return
            body = json.dumps(body_obj).encode()
            target, headers = signer.sign(url, body, f"msg_{uuid.uuid4().hex}")
            post(target, body, headers, on_attempt=lambda u, s: self.progress_deliveries.append((u, s)))

    def stop_webhooks(self) -> None:
        """Cancel deliveries not yet sent (e.g. when the server stops)."""
        self._stopping.set()
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

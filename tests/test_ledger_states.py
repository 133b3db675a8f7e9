"""Ledger states only move forward, whoever writes them.

Several runs share jobs (the same requests in five campaigns started a moment apart: the later ones resume the
earlier one's jobs and poll them too). A sampler reads the ledger every few milliseconds while they run: no row is
ever seen moving back (a run that last saw "running" never takes back another's "succeeded" or "stored"), and the
jobs in flight per model never pass the model's limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from video_pipeline.jobs.engine import JobEngine
from video_pipeline.jobs.ledger import JobLedger, jobs
from video_pipeline.planning.catalog import Catalog, ModelSpec
from video_pipeline.planning.planner import SegmentPlan
from video_pipeline.providers.base import JobState, JobStatus, ProviderRegistry

LIMIT = 3
LATENCY = 0.6
#: the order a job's row may be seen in: each state, and what may follow it
FORWARD = {
    "submitting": {"queued", "uncertain", "failed", "abandoned"},
    "queued": {"running", "succeeded", "failed"},
    "running": {"succeeded", "failed"},
    "succeeded": {"stored"},
    "stored": set(),
    "failed": set(),
    "uncertain": {"queued", "abandoned"},
    "abandoned": set(),
}


class SharedProvider:
    """One provider account shared by every run: a job finishes LATENCY seconds after it was created."""

    name = "shared"
    latency_scale = 0.02   # polls on the model's profile scaled down: several polls per job, from every run

    def __init__(self):
        self.created: dict[str, float] = {}
        self.lock = threading.Lock()

    async def submit(self, request):
        with self.lock:
            job_id = f"job-{len(self.created)}"
            self.created[job_id] = time.monotonic()
        return job_id

    async def poll(self, job_id):
        if time.monotonic() - self.created[job_id] >= LATENCY:
            return JobStatus(JobState.SUCCEEDED, output_url=f"https://example.invalid/{job_id}.mp4")
        return JobStatus(JobState.RUNNING)

    async def cancel(self, job_id):
        return False

    async def aclose(self):
        pass


def _catalog() -> Catalog:
    spec = ModelSpec(id="shared-model", name="shared", tier="speed", categories=["text_to_video"],
                     latency={"p50_seconds": 20, "p95_seconds": 45}, durations=[4], resolutions=["720p"],
                     aspect_ratios=["16:9"], audio={"input": False, "output": False, "lip_sync": False},
                     price_per_second={"720p": 0.1}, price_source="test", price_date="2026-11-24",
                     concurrency=LIMIT, output_url_lifetime_seconds=3600,
                     routes=[{"provider": "shared", "model_id": "shared"}])
    return Catalog(models={"shared-model": spec})


def _plans(campaign: str, count: int) -> list[SegmentPlan]:
    return [SegmentPlan(campaign=campaign, video_id="v", segment_index=i, segment_count=count, shot_index=i,
                        category="text_to_video", model="shared-model", fallbacks=(), reason="test",
                        prompt=f"shot {i}", seconds=4, generate_seconds=4, start_seconds=4 * i,
                        target_seconds=4 * count, resolution="720p", aspect_ratio="16:9", image=None, video=None,
                        audio=None, audio_offset_seconds=0, continuity="parallel", transition="cut",
                        chained_from=None, options={}, est_cost_usd=0.4, est_latency_seconds=20,
                        p95_latency_seconds=45, job_key=f"shared-{i:02d}")   # the same requests in every campaign
            for i in range(count)]


def test_runs_sharing_jobs_never_move_a_row_back_nor_pass_the_limit(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    catalog, provider = _catalog(), SharedProvider()
    JobLedger(url).dispose()   # the schema, before the sampler reads
    seen: dict[int, list[str]] = {}
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            while not stop.is_set():
                rows = conn.execute(sa.select(jobs.c.id, jobs.c.state)).all()
                conn.rollback()
                peak = max(peak, sum(state in ("submitting", "queued", "running") for _, state in rows))
                for row_id, state in rows:
                    states = seen.setdefault(row_id, [])
                    if not states or states[-1] != state:
                        states.append(state)
                time.sleep(0.003)
        engine.dispose()

    def run(campaign: str, delay: float) -> list:
        time.sleep(delay)
        ledger = JobLedger(url)
        try:
            engine = JobEngine(catalog, ProviderRegistry(catalog, {"shared": provider}), tmp_path, tmp_path,
                               ledger=ledger)
            return asyncio.run(engine.run(_plans(campaign, 8)))
        finally:
            ledger.dispose()

    sampler = threading.Thread(target=sample)
    sampler.start()
    results: dict[str, list] = {}
    runs = [threading.Thread(target=lambda c=c, d=d: results.__setitem__(c, run(c, d)))
            for c, d in (("one", 0.0), ("two", 0.2), ("three", 0.3), ("four", 0.4), ("five", 0.5))]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=120)
    stop.set()
    sampler.join()

    assert sorted(results) == ["five", "four", "one", "three", "two"]
    assert all(o.state == "succeeded" for outcomes in results.values() for o in outcomes)
    assert len(provider.created) == 8                      # each request paid once, whichever run made it
    backwards = {row_id: states for row_id, states in seen.items()
                 if any(b not in FORWARD[a] for a, b in zip(states, states[1:]))}
    assert backwards == {}
    assert 0 < peak <= LIMIT
    resumed = sum(o.resumed for name in ("two", "three", "four", "five") for o in results[name])
    assert resumed > 0, "the later runs should have polled the first run's jobs too"


def test_a_late_writer_never_takes_back_a_finished_row(tmp_path: Path):
    """The writes a slower run sharing the job would make, after the row finished: none of them moves it."""
    ledger = JobLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        row = ledger.try_begin(job_key="k", campaign="c", video_id="v", segment_index=0, model="m", provider="p",
                               attempt=1, limit=1)
        assert ledger.submitted(row, "job-1")
        assert ledger.heartbeat(row, "running")
        assert ledger.succeeded(row, output_url="https://example.invalid/1.mp4", url_expires_at=None,
                                latency_seconds=1.0, cost_usd=0.4)
        ledger.stored("k", uri="file:///clips/1.mp4", sha256="0" * 64)
        assert not ledger.heartbeat(row, "running")          # a poll that saw it running before it ended
        assert not ledger.succeeded(row, output_url="https://example.invalid/again.mp4", url_expires_at=None,
                                    latency_seconds=2.0, cost_usd=0.9)
        assert not ledger.failed(row, error="late failure", kind="retryable", cost_usd=0.0)
        assert not ledger.submitted(row, "job-2")
        final = ledger.row(row)
        assert (final.state, final.provider_job_id, final.cost_usd) == ("stored", "job-1", 0.4)
        assert final.output_url == "https://example.invalid/1.mp4"
    finally:
        ledger.dispose()

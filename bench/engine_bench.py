"""Benchmarks of the job engine (issue 5).

P1: 200 segments on a fake provider with fixed latency L and concurrency C; wall time against the ideal
    ceil(200/C)·L (target: at most 1.10×), through the real engine with its SQLite ledger.
P2: on a simulated clock over the guide's latency profiles, the mean detection lag (time from a job finishing to
    the poll that sees it, as a share of the job's latency) and polls per job, for the guide's poller (10 s
    doubling to 60 s) and ours, on the same jobs; with and without provider progress reports.

Usage: .venv/bin/python bench/engine_bench.py [--latency 1.0] [--concurrency 20] [--jobs 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from video_pipeline.planning.catalog import Catalog, ModelSpec  # noqa: E402
from video_pipeline.jobs.engine import JobEngine, PollPolicy  # noqa: E402
from video_pipeline.jobs.ledger import JobLedger  # noqa: E402
from video_pipeline.planning.planner import SegmentPlan  # noqa: E402
from video_pipeline.providers.base import JobState, JobStatus, ProviderRegistry  # noqa: E402

GUIDE_PROFILES = {"veo-3-1-fast": (20, 45), "hailuo-02": (25, 50), "kling-3-0": (180, 300),
                  "veo-3-1-quality": (150, 270), "sora-2": (480, 900), "seedance-2-0": (90, 180), "wan-2-6": (120, 240)}


class FixedLatencyProvider:
    """Every job takes exactly `latency` seconds; no rendering, so only the engine's overhead is measured."""

    name = "bench"
    latency_scale = 1.0

    def __init__(self, latency: float):
        self.latency = latency
        self.started: dict[str, float] = {}
        self.polls = 0

    async def submit(self, request):
        job_id = f"job-{len(self.started)}"
        self.started[job_id] = time.monotonic()
        return job_id

    async def poll(self, job_id):
        self.polls += 1
        if time.monotonic() - self.started[job_id] >= self.latency:
            return JobStatus(JobState.SUCCEEDED, output_url=f"https://example.invalid/{job_id}.mp4")
        return JobStatus(JobState.RUNNING)

    async def cancel(self, job_id):
        return False

    async def aclose(self):
        pass


def p1(latency: float, concurrency: int, segments: int = 200) -> dict:
    spec = ModelSpec(id="bench-model", name="bench", tier="speed", categories=["text_to_video"],
                     latency={"p50_seconds": latency, "p95_seconds": latency * 1.2}, durations=[4],
                     resolutions=["720p"], aspect_ratios=["16:9"], audio={"input": False, "output": False, "lip_sync": False},
                     price_per_second={"720p": 0.1}, price_source="bench", price_date="2026-11-24",
                     concurrency=concurrency, output_url_lifetime_seconds=3600,
                     routes=[{"provider": "bench", "model_id": "bench"}])
    catalog = Catalog(models={"bench-model": spec})
    provider = FixedLatencyProvider(latency)
    registry = ProviderRegistry(catalog, {"bench": provider})
    with tempfile.TemporaryDirectory() as tmp:
        ledger = JobLedger(f"sqlite:///{tmp}/ledger.sqlite")
        engine = JobEngine(catalog, registry, Path(tmp), Path(tmp), ledger=ledger)
        plans = [SegmentPlan(campaign="bench", video_id="v", segment_index=i, segment_count=segments, shot_index=i,
                             category="text_to_video", model="bench-model", fallbacks=(), reason="bench",
                             prompt=f"segment {i}", seconds=4, generate_seconds=4, start_seconds=4 * i,
                             target_seconds=4 * segments, resolution="720p", aspect_ratio="16:9", image=None,
                             video=None, audio=None, audio_offset_seconds=0, continuity="parallel", transition="cut",
                             chained_from=None, options={}, est_cost_usd=0.4, est_latency_seconds=latency,
                             p95_latency_seconds=latency * 1.2, job_key=f"bench-{i:04d}")
                 for i in range(segments)]
        start = time.monotonic()
        outcomes = asyncio.run(engine.run(plans))
        wall = time.monotonic() - start
        ledger.dispose()
    ideal = math.ceil(segments / concurrency) * latency
    assert all(o.state == "succeeded" for o in outcomes)
    return {"segments": segments, "latency_seconds": latency, "concurrency": concurrency,
            "ideal_seconds": ideal, "wall_seconds": round(wall, 3), "ratio": round(wall / ideal, 3),
            "target_ratio": 1.10, "polls_per_job": round(provider.polls / segments, 2)}


def guide_poller(latency: float) -> tuple[float, int]:
    t, interval, polls = 0.0, 10.0, 0
    while True:
        t += interval
        polls += 1
        if t >= latency:
            return t - latency, polls
        interval = min(interval * 2, 60.0)


def our_poller(latency: float, p50: float, p95: float, policy: PollPolicy,
               progress: Callable[[float], float | None] | None = None) -> tuple[float, int]:
    t, polls = policy.first_poll(p50, p95), 1
    while t < latency:
        t = policy.next_poll(t, p50, p95, progress=progress(t) if progress else None)
        polls += 1
    return t - latency, polls


def coarse_progress(latency: float, speed_error: float) -> Callable[[float], float | None]:
    """A provider's progress report: whole 10 % steps, from a model of the job's speed that is off by speed_error."""
    return lambda t: math.floor(10 * min(t / (latency * speed_error), 0.99)) / 10 or None


def p2(jobs_per_model: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    jobs = [(m, p50, p95, rng.lognormvariate(math.log(p50), math.log(p95 / p50) / 1.645), rng.lognormvariate(0, 0.15))
            for m, (p50, p95) in GUIDE_PROFILES.items() for _ in range(jobs_per_model)]

    def summarise(results: list[tuple[float, int]], subset=None) -> dict:
        picked = [(r, j) for r, j in zip(results, jobs) if subset is None or j[0] == subset]
        return {"lag_share_of_latency": round(statistics.mean(r[0] / j[3] for r, j in picked), 4),
                "mean_lag_seconds": round(statistics.mean(r[0] for r, _ in picked), 2),
                "polls_per_job": round(statistics.mean(r[1] for r, _ in picked), 2)}

    guide = [guide_poller(j[3]) for j in jobs]
    watchers = {"ours": lambda j: None,
                "ours_with_coarse_progress": lambda j: coarse_progress(j[3], j[4]),
                "ours_with_exact_progress": lambda j: (lambda t, L=j[3]: t / L)}

    def watch(name: str, policy: PollPolicy) -> list[tuple[float, int]]:
        return [our_poller(j[3], j[1], j[2], policy, watchers[name](j)) for j in jobs]

    runs = {"guide": guide, **{name: watch(name, PollPolicy()) for name in watchers}}
    out = {"jobs": len(jobs), "all_models": {name: summarise(r) for name, r in runs.items()}}
    g = out["all_models"]["guide"]
    for name in watchers:
        out["all_models"][name]["improvement"] = round(g["lag_share_of_latency"] / out["all_models"][name]["lag_share_of_latency"], 2)
    # each watcher again at the poll_cost where it spends exactly the guide's polls per job (bisection)
    out["at_equal_polls"] = {}
    for name in watchers:
        low, high = 0.002, 0.2
        for _ in range(10):
            mid = math.sqrt(low * high)
            if summarise(watch(name, PollPolicy(poll_cost=mid)))["polls_per_job"] > g["polls_per_job"]:
                low = mid
            else:
                high = mid
        ours = summarise(watch(name, PollPolicy(poll_cost=high)))
        out["at_equal_polls"][name] = {"poll_cost": round(high, 4), **ours,
                                       "improvement": round(g["lag_share_of_latency"] / ours["lag_share_of_latency"], 2)}
    out["per_model"] = {m: {"guide": summarise(guide, m), "ours": summarise(runs["ours"], m)} for m in GUIDE_PROFILES}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args()
    print(json.dumps({"P1": p1(args.latency, args.concurrency), "P2": p2(args.jobs)}, indent=2))


if __name__ == "__main__":
    main()

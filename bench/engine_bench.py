"""Benchmarks of the job engine (issue 5).

P1: 200 segments on a fake provider with fixed latency L and concurrency C; wall time against the ideal
    ceil(200/C)·L (target: at most 1.10×), through the real engine with its SQLite ledger.
    P1 gives the poll schedule 3x the guide's polls for its profile: the guide's poller spends one poll on any
    job under 10 s (at 10 s), and P1 measures the engine's overhead, not a one-poll schedule's lag.
P2: over the guide's seven latency profiles (log-normals fitted to p50/p95), the expected detection lag (time from
    a job finishing to the poll that sees it, in seconds and as a share of the job's latency) and polls per job,
    for the guide's poller (10 s doubling to 60 s), ours, and ours before issue 20 (one poll price for all models,
    lag share): computed exactly (closed forms over each profile's log-normal), checked by a Monte Carlo with 95 %
    intervals, the schedule's grid against one four times finer, and provider progress reports simulated per job.

Usage: .venv/bin/python bench/engine_bench.py [--latency 1.0] [--concurrency 20] [--jobs 3000] [--mc-jobs 100000]
                                              [--only P1|P2]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from video_pipeline.planning.catalog import Catalog, ModelSpec  # noqa: E402
from video_pipeline.jobs.engine import JobEngine, PollPolicy  # noqa: E402
from video_pipeline.jobs.polling import (expected_lag, fit_lognormal, guide_poll_times,  # noqa: E402
                                         solve_schedule)
from video_pipeline.jobs.ledger import JobLedger  # noqa: E402
from video_pipeline.planning.planner import SegmentPlan  # noqa: E402
from video_pipeline.providers.base import JobState, JobStatus, ProviderRegistry  # noqa: E402

GUIDE_PROFILES = {"veo-3-1-fast": (20, 45), "hailuo-02": (25, 50), "kling-3-0": (180, 300),
                  "veo-3-1-quality": (150, 270), "sora-2": (480, 900), "seedance-2-0": (90, 180), "wan-2-6": (120, 240)}


P1_POLL_BUDGET = 3.0   # x the guide's polls on P1's profile (one poll, at 10 s): see the module doc


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
        engine = JobEngine(catalog, registry, Path(tmp), Path(tmp), ledger=ledger,
                           poll=PollPolicy(budget=P1_POLL_BUDGET))
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


@functools.lru_cache(maxsize=64)
def fraction_schedule(sigma: float, poll_cost: float) -> tuple[float, ...]:
    """The engine's schedule before issue 20 (for comparison): poll times in units of p50 minimising
    E[lag / latency] + poll_cost x E[polls], one poll_cost (0.019) for every model."""
    times = np.exp(np.linspace(-4.0 * sigma, 5.0 * sigma, 400))
    log_t = np.log(times)
    erf = np.vectorize(math.erf)
    cdf = np.concatenate([[0.0], 0.5 * (1 + erf(log_t / (sigma * math.sqrt(2))))])
    inv_mass = np.concatenate([[0.0], math.exp(sigma ** 2 / 2)
                               * 0.5 * (1 + erf((log_t / sigma + sigma) / math.sqrt(2)))])
    at = np.concatenate([[0.0], times])
    n = len(at)
    value = np.zeros(n)
    following = np.full(n, -1)
    for i in range(n - 2, -1, -1):
        later = slice(i + 1, n)
        cost = (at[later] * (inv_mass[later] - inv_mass[i]) - (cdf[later] - cdf[i])
                + poll_cost * (1 - cdf[i]) + value[later])
        best = int(np.argmin(cost))
        value[i], following[i] = cost[best], i + 1 + best
    schedule, i = [], 0
    while following[i] != -1:
        i = following[i]
        schedule.append(float(at[i]))
    return tuple(schedule)


@dataclass(frozen=True)
class PooledFractionPolicy(PollPolicy):
    """The engine's polling before issue 20: the same runtime rules, on `fraction_schedule`."""

    poll_cost: float = 0.019

    def plan(self, p50: float, p95: float) -> tuple[float, ...]:
        return tuple(p50 * t for t in fraction_schedule(round(fit_lognormal(p50, p95), 3), self.poll_cost))


def _horizon(p50: float, p95: float) -> float:
    """A time by which all but 1e-17 of the profile's jobs have ended."""
    return p50 * math.exp(8.5 * fit_lognormal(p50, p95))


def exact(pollers: dict[str, Callable[[float, float], list[float]]]) -> dict:
    """Expected lag (share of latency, seconds) and polls per job for each poller on each profile, integrated in
    closed form over the fitted log-normal; pooled = models weighted equally; ratios are the guide's over ours."""
    out: dict = {"per_model": {}, "pooled": {}}
    for m, (p50, p95) in GUIDE_PROFILES.items():
        sigma = fit_lognormal(p50, p95)
        out["per_model"][m] = {name: expected_lag(times(p50, p95), p50, sigma) for name, times in pollers.items()}
    for name in pollers:
        out["pooled"][name] = {k: statistics.mean(out["per_model"][m][name][k] for m in GUIDE_PROFILES)
                               for k in ("lag_share", "lag_seconds", "polls")}
    for block in [out["pooled"], *out["per_model"].values()]:
        for name in pollers:
            if name != "guide":
                block[name]["share_ratio"] = block["guide"]["lag_share"] / block[name]["lag_share"]
                block[name]["seconds_ratio"] = block["guide"]["lag_seconds"] / block[name]["lag_seconds"]
            block[name].pop("unseen", None)
    return out


def _ratio_interval(theirs: np.ndarray, ours: np.ndarray) -> tuple[float, float, float]:
    """mean(theirs) / mean(ours) over paired jobs and its 95 % interval (delta method, normal approximation)."""
    ratio = theirs.mean() / ours.mean()
    half = 1.96 * np.std(theirs - ratio * ours) / math.sqrt(len(ours)) / ours.mean()
    return float(ratio), float(ratio - half), float(ratio + half)


def _mean_interval(sample: np.ndarray) -> tuple[float, float, float]:
    """The sample's mean and its 95 % interval (normal approximation)."""
    half = 1.96 * sample.std() / math.sqrt(len(sample))
    return float(sample.mean()), float(sample.mean() - half), float(sample.mean() + half)


def monte_carlo(pollers: dict[str, Callable[[float, float], list[float]]], jobs_per_model: int, seed: int) -> dict:
    """The same expectations from sampled jobs (each poller sees the same jobs), with 95 % intervals."""
    rng = np.random.default_rng(seed)
    lags: dict[str, list[np.ndarray]] = {name: [] for name in pollers}
    polls: dict[str, list[np.ndarray]] = {name: [] for name in pollers}
    latencies = []
    for p50, p95 in GUIDE_PROFILES.values():
        latency = rng.lognormal(math.log(p50), fit_lognormal(p50, p95), jobs_per_model)
        latencies.append(latency)
        for name, times in pollers.items():
            at = np.array(times(p50, p95) + [math.inf])
            seen = np.searchsorted(at, latency, side="left")      # the first poll at or after the job's end
            lags[name].append(at[seen] - latency)
            polls[name].append(seen + 1.0)
    out: dict = {"jobs_per_model": jobs_per_model, "seed": seed, "pooled": {}, "per_model": {}}

    def block(pick) -> dict:
        res: dict = {}
        for name in pollers:
            lag, lat, n_polls = pick(lags[name]), pick(latencies), pick(polls[name])
            share = lag / lat
            res[name] = {"lag_share": _mean_interval(share), "lag_seconds": _mean_interval(lag),
                         "polls": _mean_interval(n_polls)}
            if name != "guide":
                guide_lag = pick(lags["guide"])
                res[name]["share_ratio"] = _ratio_interval(guide_lag / lat, share)
                res[name]["seconds_ratio"] = _ratio_interval(guide_lag, lag)
        return res

    out["pooled"] = block(np.concatenate)
    for k, m in enumerate(GUIDE_PROFILES):
        out["per_model"][m] = block(lambda xs, k=k: xs[k])
    return out


def grid_check() -> dict:
    """The schedule from the 400-point grid against a 1,600-point one: expected lag, polls, and the Lagrangian
    lower bound on the lag of any grid schedule within the budget."""
    out = {}
    for m, (p50, p95) in GUIDE_PROFILES.items():
        sigma = fit_lognormal(p50, p95)
        coarse, fine = solve_schedule(p50, sigma), solve_schedule(p50, sigma, points=1600)
        out[m] = {"budget_polls": coarse["limit"], "lag_400": coarse["lag_seconds"], "polls_400": coarse["polls"],
                  "bound_400": coarse["bound"], "lag_1600": fine["lag_seconds"], "polls_1600": fine["polls"],
                  "bound_1600": fine["bound"],
                  "lag_change_percent": 100 * (fine["lag_seconds"] / coarse["lag_seconds"] - 1)}
    return out


def progress_runs(jobs_per_model: int, seed: int = 7) -> dict:
    """Provider progress reports on top of the schedule, simulated per job (they depend on each job's latency)."""
    rng = random.Random(seed)
    jobs = [(m, p50, p95, rng.lognormvariate(math.log(p50), fit_lognormal(p50, p95)), rng.lognormvariate(0, 0.15))
            for m, (p50, p95) in GUIDE_PROFILES.items() for _ in range(jobs_per_model)]
    latency = np.array([j[3] for j in jobs])
    guide = np.array([guide_poller(j[3]) for j in jobs])
    watchers = {"ours": lambda j: None,
                "ours_with_coarse_progress": lambda j: coarse_progress(j[3], j[4]),
                "ours_with_exact_progress": lambda j: (lambda t, L=j[3]: t / L)}

    def watch(name: str, policy: PollPolicy) -> np.ndarray:
        return np.array([our_poller(j[3], j[1], j[2], policy, watchers[name](j)) for j in jobs])

    def summarise(runs: np.ndarray, budget: float) -> dict:
        return {"budget": round(budget, 4), "lag_share": float(np.mean(runs[:, 0] / latency)),
                "lag_seconds": float(np.mean(runs[:, 0])), "polls": float(np.mean(runs[:, 1])),
                "share_ratio": _ratio_interval(guide[:, 0] / latency, runs[:, 0] / latency),
                "seconds_ratio": _ratio_interval(guide[:, 0], runs[:, 0])}

    out = {"jobs": len(jobs), "guide": {"lag_share": float(np.mean(guide[:, 0] / latency)),
                                        "lag_seconds": float(np.mean(guide[:, 0])),
                                        "polls": float(np.mean(guide[:, 1]))}}
    out["default_budget"] = {name: summarise(watch(name, PollPolicy()), 1.0) for name in watchers}
    # progress reports bring polls forward, so the same budget spends more: each watcher again at the budget where
    # it spends the guide's polls per job on these jobs (bisection)
    out["at_equal_polls"] = {}
    for name in ("ours_with_coarse_progress", "ours_with_exact_progress"):
        low, high = 0.2, 1.5
        for _ in range(10):
            mid = math.sqrt(low * high)
            if np.mean(watch(name, PollPolicy(budget=mid))[:, 1]) > out["guide"]["polls"]:
                high = mid
            else:
                low = mid
        out["at_equal_polls"][name] = summarise(watch(name, PollPolicy(budget=low)), low)
    return out


def p2(mc_jobs_per_model: int, progress_jobs_per_model: int, seed: int = 7) -> dict:
    started = time.monotonic()
    pollers = {"guide": lambda p50, p95: guide_poll_times(_horizon(p50, p95)),
               "ours": lambda p50, p95: PollPolicy().poll_times(p50, p95, _horizon(p50, p95)),
               "pooled_fraction_before": lambda p50, p95: PooledFractionPolicy().poll_times(p50, p95,
                                                                                            _horizon(p50, p95))}
    out = {"exact": exact(pollers)}
    mc = monte_carlo(pollers, mc_jobs_per_model, seed)
    # is each exact value inside the Monte Carlo's 95 % interval?
    blocks = [(out["exact"]["pooled"], mc["pooled"])]
    blocks += [(out["exact"]["per_model"][m], mc["per_model"][m]) for m in GUIDE_PROFILES]
    for exact_block, mc_block in blocks:
        for name in pollers:
            for measure in ("lag_share", "lag_seconds", "polls", "share_ratio", "seconds_ratio"):
                if measure in mc_block[name]:
                    _, low, high = mc_block[name][measure]
                    mc_block[name][measure + "_holds_exact"] = low <= exact_block[name][measure] <= high
    held = [v for b in (mc["pooled"], *mc["per_model"].values()) for r in b.values() for k, v in r.items()
            if k.endswith("_holds_exact")]
    mc["intervals_holding_the_exact_value"] = f"{sum(held)} of {len(held)}"
    out["monte_carlo"] = mc
    out["grid"] = grid_check()
    out["progress"] = progress_runs(progress_jobs_per_model, seed)
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def _rounded(x):
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, (list, tuple)):
        return [_rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=3000, help="P2: jobs per model in the progress-report runs")
    parser.add_argument("--mc-jobs", type=int, default=100_000, help="P2: jobs per model in the Monte Carlo check")
    parser.add_argument("--only", choices=["P1", "P2"])
    args = parser.parse_args()
    out = {}
    if args.only in (None, "P1"):
        out["P1"] = p1(args.latency, args.concurrency)
    if args.only in (None, "P2"):
        out["P2"] = _rounded(p2(args.mc_jobs, args.jobs))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

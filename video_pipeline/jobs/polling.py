"""When to poll a provider job: the schedule that sees a job finish soonest for the polls it spends.

A model's latency profile (p50, p95) is fitted with a log-normal. For a job known only to be "still running", the
best deterministic schedule of poll times minimises

    E[detection lag / job latency] + poll_cost x E[number of polls]

and is found by dynamic programming over a log-spaced grid of times. Lag measured as a share of latency is
scale-free for a log-normal, so the schedule is computed once per spread (sigma) in units of p50 and multiplied by
each model's p50. Every poll answered "running" only tells us the job is still running, which the programme already
conditions on, so no adaptive policy that sees only running/done can beat this schedule at the same poll budget.
Provider hints come on top: a progress fraction gives an ETA to poll at, and `poll_after` caps the wait.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

_GRID_POINTS = 400
_LOW_SIGMAS, _HIGH_SIGMAS = 4.0, 5.0   # the grid spans the fitted distribution from its 0.003 % to its 99.99997 % point


def fit_lognormal(p50: float, p95: float) -> float:
    """The log-normal's sigma from a profile's p50 and p95 (its median is p50)."""
    return max(math.log(max(p95, p50) / p50) / 1.645, 1e-3)


@functools.lru_cache(maxsize=256)
def optimal_schedule(sigma: float, poll_cost: float) -> tuple[float, ...]:
    """Poll times in units of p50 that minimise expected lag share plus poll_cost per poll (see the module doc)."""
    times = np.exp(np.linspace(-_LOW_SIGMAS * sigma, _HIGH_SIGMAS * sigma, _GRID_POINTS))
    log_t = np.log(times)
    erf = np.vectorize(math.erf)
    # F: P(L <= t); G: E[1/L ; L <= t] for L ~ LogNormal(0, sigma), both with the t = 0 start state prepended
    cdf = np.concatenate([[0.0], 0.5 * (1 + erf(log_t / (sigma * math.sqrt(2))))])
    inv_mass = np.concatenate([[0.0], math.exp(sigma ** 2 / 2) * 0.5 * (1 + erf((log_t / sigma + sigma) / math.sqrt(2)))])
    at = np.concatenate([[0.0], times])
    n = len(at)
    value = np.zeros(n)
    following = np.full(n, -1)
    for i in range(n - 2, -1, -1):
        later = slice(i + 1, n)
        # a poll at t after one at s: jobs ending in (s, t] wait t - L (E[(t - L)/L] = t G - F over the
        # interval), and the poll is paid by every job still running at s
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
class PollPolicy:
    """Polling shaped by the model's latency profile; times are provider seconds (the engine applies the time scale).

    `poll_cost` is the price of one poll in lag share: 0.019 spends the same polls per job as the guide's 10 s
    doubling-to-60 s poller over the guide's profiles (see BENCHMARKS.md, P2). Lower polls more and sees sooner.
    """

    poll_cost: float = 0.019
    max_interval: float = 120.0           # real seconds: never wait longer than this between polls
    min_interval_fraction: float = 0.02   # of p50: never poll faster than this
    # past the schedule's end (a 3e-7 tail at the provider's own pace): each wait half the time waited so far.
    # Real providers almost never get there; a time scale that makes the profile shorter than the job really
    # takes (tests, demos: TIME_SCALE 0.002 or 0) gets there at once, and polls grow geometrically from then on
    tail_growth: float = 1.5
    timeout_factor: float = 4.0           # give up (cancel, fall back) after this many p95s
    min_real_interval: float = 0.1        # real seconds between two polls of a job, whatever the time scale

    def schedule(self, p50: float, p95: float) -> list[float]:
        return [p50 * t for t in optimal_schedule(round(fit_lognormal(p50, p95), 3), self.poll_cost)]

    def first_poll(self, p50: float, p95: float) -> float:
        return self.schedule(p50, p95)[0]

    def next_poll(self, elapsed: float, p50: float, p95: float, progress: float | None = None,
                  hint: float | None = None, scale: float = 1.0) -> float:
        """The elapsed time (provider seconds since submission) of the next poll; `scale` is real seconds per
        provider second (`max_interval` is real seconds)."""
        floor = max(self.min_interval_fraction * p50, 0.01)
        plan = self.schedule(p50, p95)
        at = next((t for t in plan if t >= elapsed + floor), None)
        if at is None:
            at = elapsed + max(floor, (self.tail_growth - 1) * elapsed)
        if progress is not None and 0.05 <= progress < 1:
            at = min(at, elapsed / progress)          # the provider's own progress gives an ETA
        at = min(max(at, elapsed + floor), elapsed + self.max_interval / scale)
        if hint is not None and hint > 0:
            at = min(at, elapsed + hint)
        return at

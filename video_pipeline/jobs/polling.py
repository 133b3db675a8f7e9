"""When to poll a provider job: the schedule that sees a job finish soonest, in seconds, for no more polls than the
guide's poller spends on the same model.

A model's latency profile (p50, p95) is fitted with a log-normal L (median p50, sigma from the p95). What a user
feels is the wait in seconds between their job finishing and the poll that sees it, for the model they chose. So for
each profile the schedule of poll times t1 < t2 < ... minimises

    E[detection lag in seconds]    subject to    E[polls per job] <= budget x E[polls of the guide's poller]

where the guide's poller waits 10 s, doubling to 60 s, and `budget` is 1.0 by default: the same expected polls per
job as the guide's poller on that same profile. The budget is per model, so no model pays for another's speed (one
budget pooled over models moves polls from slow models to fast ones, and a slow model's users then wait longer than
under the guide's poller). All expectations are exact for the fitted log-normal: with F the distribution function,

    E[polls] = sum_k P(L > t_{k-1})                                   (t_0 = 0: the first poll is always made)
    E[lag]   = sum_k t_k (F(t_k) - F(t_{k-1})) - E[L; t_{k-1} < L <= t_k]

and E[L; L <= t] = p50 exp(sigma^2/2) Phi(z - sigma), z = ln(t/p50)/sigma (see `expected_lag`). The constrained
problem is solved through its Lagrangian, E[lag] + lambda E[polls], by dynamic programming over 400 log-spaced times
(the fitted distribution's 0.003 % to 99.99997 % points), with each gap between polls at least
`min_interval_fraction` of p50 and at most `max_interval`; lambda (a poll's price in seconds of lag) is found by
bisection so the budget is met from below. The budget usually falls between two adjacent schedules of the
Lagrangian, so the best join of one's early polls to the other's later ones within the budget is taken; over the
guide's profiles this ends within 0.22 % of the Lagrangian's lower bound for the grid, and a 1,600-point grid
lowers the lag by at most 0.44 % (BENCHMARKS.md, P2). A poll answered "running" only tells the schedule what it
already conditions on, so no policy that sees only running/done does better at the same expected polls, up to
those fractions of a percent. The schedule depends on p50 as well as sigma (the guide's poller counts seconds), so
it is computed once per profile, in about 20 ms, and cached.

The budget is an expectation over the profile: one job may get more polls than under the guide's poller, another
fewer. On a profile that ends within 10 s the guide's poller spends exactly one poll (at 10 s), and so does this
schedule at budget 1.0 (one poll where almost every job has ended); raise `budget` where that matters.

Provider hints come on top: a progress fraction gives an ETA to poll at, and `poll_after` caps the wait.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass

import numpy as np

_GRID_POINTS = 400
_LOW_SIGMAS, _HIGH_SIGMAS = 4.0, 5.0   # the grid spans the fitted distribution from its 0.003 % to its 99.99997 % point
GUIDE_FIRST_INTERVAL, GUIDE_MAX_INTERVAL = 10.0, 60.0   # the guide's poller: 10 s, doubling to 60 s


def fit_lognormal(p50: float, p95: float) -> float:
    """The log-normal's sigma from a profile's p50 and p95 (its median is p50)."""
    return max(math.log(max(p95, p50) / p50) / 1.645, 1e-3)


def guide_poll_times(until: float) -> list[float]:
    """The guide's poller (10 s, doubling to 60 s): its poll times since submission, up to the first >= until."""
    times, t, interval = [], 0.0, GUIDE_FIRST_INTERVAL
    while not times or times[-1] < until:
        t += interval
        times.append(t)
        interval = min(interval * 2, GUIDE_MAX_INTERVAL)
    return times


def _lognormal_parts(times: np.ndarray, p50: float, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F(t) = P(L <= t), M(t) = E[L; L <= t] and G(t) = E[1/L; L <= t] for L ~ LogNormal(ln p50, sigma); t >= 0."""
    with np.errstate(divide="ignore"):
        z = np.log(np.asarray(times, dtype=float) / p50) / sigma
    phi = np.vectorize(lambda x: 0.5 * math.erfc(-x / math.sqrt(2)), otypes=[float])
    scale = math.exp(sigma ** 2 / 2)
    return phi(z), p50 * scale * phi(z - sigma), scale / p50 * phi(z + sigma)


def expected_lag(times, p50: float, sigma: float) -> dict[str, float]:
    """Exact expectations for a job of latency L ~ LogNormal(ln p50, sigma) watched by polls at `times` (increasing,
    seconds since submission): mean detection lag in seconds and as a share of the job's latency, mean polls per
    job, and the probability `unseen` that the job is still running after the last poll (its lag is not counted)."""
    at = np.concatenate([[0.0], np.asarray(times, dtype=float)])
    cdf, mass, inverse = _lognormal_parts(at, p50, sigma)
    dF, dM, dG = np.diff(cdf), np.diff(mass), np.diff(inverse)
    return {"lag_seconds": float(np.sum(at[1:] * dF - dM)), "lag_share": float(np.sum(at[1:] * dG - dF)),
            "polls": float(np.sum(1 - cdf[:-1])), "unseen": float(1 - cdf[-1])}


def guide_polls(p50: float, sigma: float) -> float:
    """The guide's poller's expected polls per job on this profile (jobs past the last poll listed: under 1e-15)."""
    return expected_lag(guide_poll_times(p50 * math.exp(8.5 * sigma)), p50, sigma)["polls"]


def _lagrangian_schedules(at, cdf, mass, floor, cap, prices):
    """For each poll price lambda in `prices` (seconds of lag one poll is worth), the grid schedule minimising
    E[lag] + lambda E[polls]; `at` is the grid with 0 prepended. Returns the schedules (grid indices), their
    expected polls and the minimum of E[lag] + lambda E[polls] for each price."""
    n, k = len(at), len(prices)
    survive = 1 - cdf
    lo = np.minimum(np.maximum(np.searchsorted(at, at + floor, side="left"), np.arange(1, n + 1)), n - 1)
    hi = np.maximum(np.searchsorted(at, at + cap, side="right") - 1, lo)
    hi[0] = n - 1                                   # the first wait, from submission, is the schedule's own
    value = np.zeros((k, n))
    following = np.full((k, n), -1)
    rows = np.arange(k)
    for i in range(n - 2, -1, -1):
        a, b = lo[i], hi[i] + 1
        # polling at t after a poll at s: jobs ending in (s, t] wait t - L; the poll is made by every job running at s
        cost = (at[a:b] * (cdf[a:b] - cdf[i]) - (mass[a:b] - mass[i]))[None, :] + value[:, a:b]
        best = np.argmin(cost, axis=1)
        value[:, i] = cost[rows, best] + prices * survive[i]
        following[:, i] = a + best
    schedules, polls = [], []
    for r in range(k):
        path, i, spent = [], 0, 0.0
        while following[r, i] != -1:
            spent += survive[i]
            i = following[r, i]
            path.append(i)
        schedules.append(path)
        polls.append(spent)
    return schedules, np.array(polls), value[:, 0].copy()


def _grid_cost(path, at, cdf, mass) -> tuple[float, float]:
    """E[lag] and E[polls] of the grid schedule `path` (grid indices), exactly as the programme counts them."""
    now = np.asarray(path)
    before = np.concatenate([[0], now[:-1]])
    return (float(np.sum(at[now] * (cdf[now] - cdf[before]) - (mass[now] - mass[before]))),
            float(np.sum(1 - cdf[before])))


def solve_schedule(p50: float, sigma: float, budget: float = 1.0, floor_fraction: float = 0.02,
                   max_interval: float = 120.0, points: int = _GRID_POINTS) -> dict:
    """The schedule minimising E[lag in seconds] with E[polls] <= budget x the guide's poller's on this profile, and
    how close it is to optimal: `bound` is the Lagrangian dual's lower bound on E[lag] for any grid schedule
    within the budget. Gaps between polls lie in [floor_fraction x p50, max_interval] where the grid allows (the
    first wait, from submission, is free). If even one poll is over budget: one poll, past the grid's end."""
    at = np.concatenate([[0.0], p50 * np.exp(np.linspace(-_LOW_SIGMAS * sigma, _HIGH_SIGMAS * sigma, points))])
    cdf, mass, _ = _lognormal_parts(at, p50, sigma)
    cdf[0], mass[0] = 0.0, 0.0
    limit = budget * guide_polls(p50, sigma)
    floor = floor_fraction * p50
    low, high = 1e-5 * p50, 1e1 * p50          # prices of a poll in seconds of lag: from many polls to a single one
    for _ in range(4):                         # a 16-way bisection on log(price): four rounds narrow it 15^4-fold
        prices = np.exp(np.linspace(math.log(low), math.log(high), 16))
        schedules, polls, minimum = _lagrangian_schedules(at, cdf, mass, floor, max(max_interval, floor), prices)
        within = np.flatnonzero(polls <= limit + 1e-12)
        if len(within) == 0:
            path = [len(at) - 1]
            lag, spent = _grid_cost(path, at, cdf, mass)
            return {"times": (float(at[-1]),), "lag_seconds": lag, "polls": spent, "limit": limit, "bound": lag}
        first = int(within[0])
        if first == 0:
            break
        low, high = prices[first - 1], prices[first]
    bound = float(np.max(minimum - prices * limit))
    path = schedules[first]
    lag, spent = _grid_cost(path, at, cdf, mass)
    if first > 0:
        # the budget usually falls between the two schedules either side of the price (one more poll, or one less):
        # the best join of one's early polls to the other's later ones that is still within the budget
        for head, tail in ((schedules[first - 1], path), (path, schedules[first - 1])):
            tail_times = at[tail]
            for cut in range(1, len(head) + 1):
                rest = tail[int(np.searchsorted(tail_times, at[head[cut - 1]] + floor)):]
                if not rest or at[rest[0]] - at[head[cut - 1]] > max(max_interval, floor):
                    continue
                joined = head[:cut] + rest
                joined_lag, joined_polls = _grid_cost(joined, at, cdf, mass)
                if joined_polls <= limit + 1e-12 and joined_lag < lag:
                    path, lag, spent = joined, joined_lag, joined_polls
    return {"times": tuple(float(at[i]) for i in path), "lag_seconds": lag, "polls": spent, "limit": limit,
            "bound": bound}


@functools.lru_cache(maxsize=1024)
def optimal_schedule(p50: float, p95: float, budget: float = 1.0, floor_fraction: float = 0.02,
                     max_interval: float = 120.0) -> tuple[float, ...]:
    """Poll times in seconds since submission for the profile (p50, p95) (see `solve_schedule` and the module
    doc); cached per profile."""
    return solve_schedule(p50, fit_lognormal(p50, p95), budget, floor_fraction, max_interval)["times"]


@dataclass(frozen=True)
class PollPolicy:
    """Polling shaped by the model's latency profile; times are provider seconds (the engine applies the time scale).

    `budget` is the expected polls per job as a multiple of the guide's poller's (10 s doubling to 60 s) on the same
    profile: 1.0 spends no more polls per job than the guide's poller for each model, and for every model in the
    guide and the catalog it sees jobs end 2.1x to 3.6x sooner in mean seconds (BENCHMARKS.md, P2). Higher polls
    more and sees sooner.
    """

    budget: float = 1.0
    max_interval: float = 120.0           # real seconds: never wait longer than this between polls
    min_interval_fraction: float = 0.02   # of p50: never poll faster than this
    # past the schedule's end (a 3e-7 tail at the provider's own pace): each wait half the time waited so far.
    # Real providers almost never get there; a time scale that makes the profile shorter than the job really
    # takes (tests, demos: TIME_SCALE 0.002 or 0) gets there at once, and polls grow geometrically from then on
    tail_growth: float = 1.5
    timeout_factor: float = 4.0           # give up (cancel, fall back) after this many p95s
    min_real_interval: float = 0.1        # real seconds between two polls of a job, whatever the time scale

    def plan(self, p50: float, p95: float) -> tuple[float, ...]:
        """The schedule's poll times in provider seconds (cached per profile)."""
        return optimal_schedule(round(p50, 3), round(p95, 3), self.budget, self.min_interval_fraction,
                                self.max_interval)

    def schedule(self, p50: float, p95: float) -> list[float]:
        return list(self.plan(p50, p95))

    def first_poll(self, p50: float, p95: float) -> float:
        return self.plan(p50, p95)[0]

    def next_poll(self, elapsed: float, p50: float, p95: float, progress: float | None = None,
                  hint: float | None = None, scale: float = 1.0) -> float:
        """The elapsed time (provider seconds since submission) of the next poll; `scale` is real seconds per
        provider second (`max_interval` is real seconds)."""
        floor = max(self.min_interval_fraction * p50, 0.01)
        plan = self.plan(p50, p95)
        k = bisect.bisect_left(plan, elapsed + floor * (1 - 1e-9))
        at = plan[k] if k < len(plan) else elapsed + max(floor, (self.tail_growth - 1) * elapsed)
        if progress is not None and 0.05 <= progress < 1:
            at = min(at, elapsed / progress)          # the provider's own progress gives an ETA
        at = min(max(at, elapsed + floor), elapsed + self.max_interval / scale)
        if hint is not None and hint > 0:
            at = min(at, elapsed + hint)
        return at

    def poll_times(self, p50: float, p95: float, until: float) -> list[float]:
        """The polls a job still running at `until` would get (no progress reports or hints, time scale 1)."""
        times = [self.first_poll(p50, p95)]
        while times[-1] < until:
            times.append(self.next_poll(times[-1], p50, p95))
        return times

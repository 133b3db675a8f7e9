"""Polls per job stay a small constant whatever the time scale, against the providers' fakes over real HTTP: a
profile scaled to nothing (TIME_SCALE 0) meets jobs that really take a second or more, and the engine neither
hammers them every few milliseconds (before: 30 polls per job on average, 69 at most, here) nor waits long after
they end; scaled to 2 %, the models whose scaled profile covers the fakes' 1.5 s (p95 3 s) are polled as the
schedule says. (A job slower than its profile spends the schedule's polls to its end, then each wait is half
the time waited so far.)"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import pytest

from tests.test_local_polls import _segment
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.jobs.engine import JobEngine, run_segments
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.providers.fakes.fleet import start_fleet

pytestmark = pytest.mark.slow

MODELS = ["veo-3-1-fast", "kling-3-0", "hailuo-02", "seedance-2-0", "wan-2-6", "omnihuman"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    fleet = start_fleet(latency=1.5, latency_p95=3.0, work_dir=tmp_path_factory.mktemp("poll-fakes"))
    yield fleet
    fleet.stop()


@pytest.mark.parametrize("time_scale", [0.0, 0.02])
def test_jobs_that_really_take_seconds_are_polled_a_dozen_times_at_most(fleet, tmp_path, time_scale):
    catalog = load_catalog(PROJECT_ROOT / "data" / "catalog.yaml")
    registry = fleet.registry(catalog, latency_scale=time_scale)
    polls: Counter = Counter()
    for adapter in registry.providers.values():
        adapter.stuck_grace_seconds = 30.0       # as outside tests: a profile scaled to 0 is not a stuck job
        def counted(job_id, _poll=adapter.poll):
            polls[job_id] += 1
            return _poll(job_id)
        adapter.poll = counted
    segments = []
    models = MODELS if time_scale == 0 else [m for m in MODELS
                                             if catalog.get(m).latency.p95_seconds * time_scale >= 3.0]
    for i, model in enumerate(models * 2):
        seg = _segment(i)
        lip_sync = model == "omnihuman"
        segments.append(dataclasses.replace(
            seg, model=model, **({} if model.startswith("veo") else dict(seconds=5, generate_seconds=5)), campaign=f"polls-{time_scale}", job_key=f"polls-{time_scale}-{i}",
            category="audio_lip_sync" if lip_sync else seg.category,
            image="samples/media/presenter.png" if lip_sync else None,
            audio="samples/media/voice.m4a" if lip_sync else None))
    engine = JobEngine(catalog, registry, PROJECT_ROOT / "data", tmp_path / "work")
    started = time.monotonic()
    outcomes = run_segments(engine, segments)
    wall = time.monotonic() - started
    assert [o.state for o in outcomes] == ["succeeded"] * len(segments), [o.error for o in outcomes]
    assert len(polls) == len(segments)
    print(f"time scale {time_scale}: polls per job mean {sum(polls.values()) / len(polls):.1f}, "
          f"max {max(polls.values())}, wall {wall:.1f} s")
    assert max(polls.values()) <= 12, polls
    # and the jobs are still seen soon after they end: the slowest fake job is a few seconds
    assert wall < 20, wall

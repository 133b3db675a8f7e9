"""Polls stay bounded whatever the time scale: a job waiting for a local render slot is not polled every few
milliseconds (before: ~20 polls a second per waiting job; 3,667 polls for 3 jobs at VIDEO_PIPELINE_TIME_SCALE=0)."""

from __future__ import annotations

import pytest

from video_pipeline.config import PROJECT_ROOT
from video_pipeline.jobs.engine import JobEngine, run_segments
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.planning.planner import SegmentPlan
from video_pipeline.providers.base import ProviderRegistry
from video_pipeline.providers.local import LocalProvider

pytestmark = pytest.mark.slow

JOBS = 4


class CountingLocal(LocalProvider):
    """The local provider, counting the polls it answers per job."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.polls: dict[str, int] = {}

    async def poll(self, job_id):
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        return await super().poll(job_id)


def _segment(i: int) -> SegmentPlan:
    return SegmentPlan(campaign="polls", video_id=f"v{i}", segment_index=0, segment_count=1, shot_index=0,
                       category="text_to_video", model="veo-3-1-fast", fallbacks=(), reason="test",
                       prompt=f"a paper lantern drifting, take {i}", seconds=4, generate_seconds=4, start_seconds=0,
                       target_seconds=4, resolution="720p", aspect_ratio="16:9", image=None, video=None, audio=None,
                       audio_offset_seconds=0, continuity="parallel", transition="cut", chained_from=None,
                       options={}, est_cost_usd=0.0, est_latency_seconds=20, p95_latency_seconds=45,
                       job_key=f"polls-{i}")


@pytest.mark.parametrize("time_scale", [0.0, 0.02])
def test_jobs_queued_behind_one_render_slot_are_polled_a_few_times_each(tmp_path, time_scale):
    catalog = load_catalog(PROJECT_ROOT / "data" / "catalog.yaml")
    local = CountingLocal(catalog, tmp_path / "work", time_scale=time_scale, preset="ultrafast", render_slots=1)
    engine = JobEngine(catalog, ProviderRegistry(catalog, {}, local=local), PROJECT_ROOT / "data",
                       tmp_path / "work")
    outcomes = run_segments(engine, [_segment(i) for i in range(JOBS)])
    assert [o.state for o in outcomes] == ["succeeded"] * JOBS, [o.error for o in outcomes]
    assert len(local.polls) == JOBS
    # the last job waits for three renders before its own: still a handful of polls, not hundreds
    assert max(local.polls.values()) <= 4, local.polls

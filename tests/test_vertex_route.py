"""Veo through Vertex AI end to end: a sample campaign in fake mode with only Vertex AI's variables set routes its
Veo segments to the Vertex fake (the Gemini API's fake sees nothing), and the clips Vertex returns inline are
fetched again from the operation and stored."""

from __future__ import annotations

import pytest

from tests.conftest import assert_video
from tests.support.pipeline import run_campaign_job
from tests.support.services import fleet_on_free_ports
from video_pipeline.config import Settings

JOB_SECONDS = 0.5


@pytest.mark.slow
def test_a_sample_campaign_with_only_vertex_credentials_routes_veo_through_vertex(data_dir, monkeypatch, instance):
    fleet, base = fleet_on_free_ports(latency=JOB_SECONDS, work_dir=data_dir.parent / "fakes")
    try:
        monkeypatch.setenv("VIDEO_PIPELINE_MODE", "fake")
        monkeypatch.setenv("VIDEO_PIPELINE_FAKES_PORT", str(base))
        monkeypatch.setenv("VIDEO_PIPELINE_TIME_SCALE", str(JOB_SECONDS / 20))      # Veo Fast's p50 is 20 s
        # a team's own Vertex settings; fake mode swaps in the fakes' test project and key file
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "our-video-project")
        monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
        result = run_campaign_job(instance, Settings.from_env(), data_dir / "samples" / "social-ideas.csv")
    finally:
        fleet.stop()

    plans = result.output_for_node("routed_job_plans")
    assert set(plans["model"]) <= {"veo-3-1-fast", "veo-3-1-quality"} and len(plans) == 3
    segments = result.output_for_node("generated_segments")
    assert set(segments["provider"]) == {"vertex"}, segments[["provider", "error"]]
    assert fleet.books["vertex"].total_submissions == 3
    assert all(book.total_submissions == 0 for name, book in fleet.books.items() if name != "vertex")
    assert all(url.startswith("vertex-inline:") for url in segments["output_url"])
    outputs = result.output_for_node("assembled_outputs").set_index("video_id")
    assert set(outputs["state"]) == {"assembled"}, outputs["error"]
    for video, seconds in (("morning", 6), ("ocean", 8), ("neon", 6)):
        assert_video(outputs.loc[video, "output_path"], seconds)

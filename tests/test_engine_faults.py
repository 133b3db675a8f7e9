"""The engine against the providers' fakes over real HTTP, with each fault injected: every clip arrives,
nothing is paid twice, and each fault takes the path it should (retry, fallback, refresh, stop)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import write
from video_pipeline.flow import stages
from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.jobs.engine import CampaignAborted
from video_pipeline.jobs.ledger import JobLedger
from video_pipeline.storage.netguard import DownloadPolicy
from video_pipeline.providers.base import ProviderRegistry
from video_pipeline.providers.fakes.fleet import start_fleet
from video_pipeline.storage.store import ClipStore

RUN_DATE = dt.date(2026, 11, 24)
SOCIAL = """
campaign: faults
defaults: {quality_tier: social}
videos:
  - id: clip
    target_seconds: 6
    shots: [{prompt: "A paper boat on a puddle"}]
"""


@pytest.fixture
def fleet(tmp_path):
    with start_fleet(latency=0.3, providers=["gemini", "minimax", "fal", "runway"], work_dir=tmp_path / "fakes") as f:
        yield f


def registry_for(fleet, catalog, wrong_key: bool = False) -> ProviderRegistry:
    return fleet.registry(catalog, wrong_key=wrong_key)


def run(settings, fleet, wrong_key: bool = False):
    catalog = load_catalog(settings.catalog_file)
    campaign = load_campaign(write(settings.data_dir / "faults.yaml", SOCIAL), settings.data_dir)
    _, frame = stages.routed_job_plans(campaign, catalog, settings, on=RUN_DATE)
    registry = registry_for(fleet, catalog, wrong_key)
    out = stages.generated_segments(frame, catalog, settings, registry=registry)
    ledger = JobLedger(settings.ledger_url)
    try:   # Gemini's output URLs need the key: the registry says which headers go with which download
        clips = stages.stored_clips(out, ClipStore(settings.clips_dir, DownloadPolicy.from_settings(settings)), ledger, registry.download_headers)
    finally:
        ledger.dispose()
    return out.iloc[0], clips.iloc[0]


@pytest.mark.parametrize("phase, fault", [
    ("submit", "429"), ("submit", "429-no-retry-after"),
    ("poll", "500"), ("poll", "reset"), ("poll", "429"),
])
@pytest.mark.slow
def test_transient_http_faults_are_retried_and_the_clip_is_paid_once(settings, fleet, phase, fault):
    fleet.books["gemini"].faults.add(phase, fault)
    outcome, clip = run(settings, fleet)
    assert (outcome["state"], outcome["model"], clip["state"]) == ("succeeded", "veo-3-1-fast", "stored")
    assert fleet.books["gemini"].total_submissions == 1 and fleet.duplicate_submissions() == 0


@pytest.mark.parametrize("fault", ["503", "reset"])
@pytest.mark.slow
def test_submit_whose_answer_is_lost_is_uncertain_and_never_sent_again(settings, fleet, fault):
    # A 5xx or a reset after the request left may hide a created job; Gemini's API cannot be searched for it.
    fleet.books["gemini"].faults.add("submit", fault)
    outcome, clip = run(settings, fleet)
    assert (outcome["state"], outcome["model"], clip["state"]) == ("uncertain", "veo-3-1-fast", "uncertain")
    assert "video-pipeline resolve" in outcome["error"] and "gemini" in outcome["error"]
    assert sum(book.total_submissions for book in fleet.books.values()) == 0   # no resend, no fallback
    outcome, _ = run(settings, fleet)                        # a rerun does not guess either
    assert outcome["state"] == "uncertain"
    assert sum(book.total_submissions for book in fleet.books.values()) == 0


@pytest.mark.slow
def test_retryable_job_failure_is_submitted_again_on_the_same_model(settings, fleet):
    fleet.books["gemini"].faults.add("job", "fail-retryable")
    outcome, clip = run(settings, fleet)
    assert (outcome["state"], outcome["model"], outcome["attempts"], clip["state"]) == (
        "succeeded", "veo-3-1-fast", 2, "stored")
    assert fleet.books["gemini"].total_submissions == 2      # the failed job was not billed as a clip


@pytest.mark.slow
def test_content_policy_failure_falls_back_to_the_next_model(settings, fleet):
    fleet.books["gemini"].faults.add("job", "fail-policy")
    outcome, clip = run(settings, fleet)
    assert outcome["state"] == "succeeded" and outcome["model"] == "hailuo-02" and clip["state"] == "stored"
    [taken] = outcome["fallbacks_taken"]
    assert taken.startswith("veo-3-1-fast -> hailuo-02:")
    assert fleet.books["gemini"].total_submissions == 1 and fleet.books["minimax"].total_submissions == 1


@pytest.mark.slow
def test_stuck_job_is_given_up_and_falls_back(settings, fleet):
    fleet.books["gemini"].faults.add("job", "stuck")
    outcome, _ = run(settings, fleet)
    assert outcome["state"] == "succeeded" and outcome["model"] == "hailuo-02"
    [taken] = outcome["fallbacks_taken"]
    assert taken.startswith("veo-3-1-fast -> hailuo-02:") and "stuck" in taken


@pytest.mark.parametrize("fault", ["expired", "truncated"])
@pytest.mark.slow
def test_failed_download_is_retried_from_the_ledger_without_paying_again(settings, fleet, fault):
    fleet.books["gemini"].faults.add("download", fault)
    outcome, clip = run(settings, fleet)
    assert outcome["state"] == "succeeded" and clip["state"] == "failed" and "storing failed" in clip["error"]
    outcome, clip = run(settings, fleet)                     # the rerun reuses the paid job and stores it
    assert outcome["reused"] and clip["state"] == "stored"
    assert fleet.books["gemini"].total_submissions == 1


def test_wrong_key_stops_the_campaign_with_a_fatal_error_and_no_job(settings, fleet):
    with pytest.raises(CampaignAborted, match="401|403|API_KEY|key"):
        run(settings, fleet, wrong_key=True)
    assert fleet.books["gemini"].total_submissions == 0

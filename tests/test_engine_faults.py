"""The engine against the providers' fakes over real HTTP, with each fault injected: every clip arrives,
nothing is paid twice, and each fault takes the path it should (retry, fallback, refresh, stop)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import write
from tests.support.pipeline import STORAGE, TunedProviders, live_settings, output, run_campaign_job, step_failures
from tests.support.services import fake_fleet

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
    with fake_fleet(latency=0.3, providers=["gemini", "minimax", "fal", "runway"], work_dir=tmp_path / "fakes") as f:
        yield f


def run(instance, settings, fleet, wrong_key: bool = False):
    """A run of campaign_job in live mode against the fakes, through storing the clips: the segment's outcome and its
    clip (None when the run stopped before storing), and the run."""
    live = live_settings(fleet, settings, wrong_key=wrong_key)
    result = run_campaign_job(instance, live, write(settings.data_dir / "faults.yaml", SOCIAL), raise_on_error=False,
                              through=STORAGE, providers=TunedProviders())
    outcomes, clips = output(result, "generated_segments"), output(result, "stored_clips")
    return (None if outcomes is None else outcomes.iloc[0]), (None if clips is None else clips.iloc[0]), result


@pytest.mark.parametrize("phase, fault", [
    ("submit", "429"), ("submit", "429-no-retry-after"),
    ("poll", "500"), ("poll", "reset"), ("poll", "429"),
])
@pytest.mark.slow
def test_transient_http_faults_are_retried_and_the_clip_is_paid_once(instance, settings, fleet, phase, fault):
    fleet.books["gemini"].faults.add(phase, fault)
    outcome, clip, _ = run(instance, settings, fleet)
    assert (outcome["state"], outcome["model"], clip["state"]) == ("succeeded", "veo-3-1-fast", "stored")
    assert fleet.books["gemini"].total_submissions == 1 and fleet.duplicate_submissions() == 0


@pytest.mark.parametrize("fault", ["503", "reset"])
@pytest.mark.slow
def test_submit_whose_answer_is_lost_is_uncertain_and_never_sent_again(instance, settings, fleet, fault):
    # A 5xx or a reset after the request left may hide a created job; Gemini's API cannot be searched for it.
    fleet.books["gemini"].faults.add("submit", fault)
    outcome, clip, _ = run(instance, settings, fleet)
    assert (outcome["state"], outcome["model"], clip["state"]) == ("uncertain", "veo-3-1-fast", "uncertain")
    assert "video-pipeline resolve" in outcome["error"] and "gemini" in outcome["error"]
    assert sum(book.total_submissions for book in fleet.books.values()) == 0   # no resend, no fallback
    outcome, _, _ = run(instance, settings, fleet)                        # a rerun does not guess either
    assert outcome["state"] == "uncertain"
    assert sum(book.total_submissions for book in fleet.books.values()) == 0


@pytest.mark.slow
def test_retryable_job_failure_is_submitted_again_on_the_same_model(instance, settings, fleet):
    fleet.books["gemini"].faults.add("job", "fail-retryable")
    outcome, clip, _ = run(instance, settings, fleet)
    assert (outcome["state"], outcome["model"], outcome["attempts"], clip["state"]) == (
        "succeeded", "veo-3-1-fast", 2, "stored")
    assert fleet.books["gemini"].total_submissions == 2      # the failed job was not billed as a clip


@pytest.mark.slow
def test_content_policy_failure_falls_back_to_the_next_model(instance, settings, fleet):
    fleet.books["gemini"].faults.add("job", "fail-policy")
    outcome, clip, _ = run(instance, settings, fleet)
    assert outcome["state"] == "succeeded" and outcome["model"] == "hailuo-02" and clip["state"] == "stored"
    [taken] = outcome["fallbacks_taken"]
    assert taken.startswith("veo-3-1-fast -> hailuo-02:")
    assert fleet.books["gemini"].total_submissions == 1 and fleet.books["minimax"].total_submissions == 1


@pytest.mark.slow
def test_stuck_job_is_given_up_and_falls_back(instance, settings, fleet):
    fleet.books["gemini"].faults.add("job", "stuck")
    outcome, _, _ = run(instance, settings, fleet)
    assert outcome["state"] == "succeeded" and outcome["model"] == "hailuo-02"
    [taken] = outcome["fallbacks_taken"]
    assert taken.startswith("veo-3-1-fast -> hailuo-02:") and "stuck" in taken


@pytest.mark.parametrize("fault", ["expired", "truncated"])
@pytest.mark.slow
def test_failed_download_is_retried_from_the_ledger_without_paying_again(instance, settings, fleet, fault):
    fleet.books["gemini"].faults.add("download", fault)
    outcome, clip, _ = run(instance, settings, fleet)
    assert outcome["state"] == "succeeded" and clip["state"] == "failed" and "storing failed" in clip["error"]
    outcome, clip, _ = run(instance, settings, fleet)                     # the rerun reuses the paid job and stores it
    assert outcome["reused"] and clip["state"] == "stored"
    assert fleet.books["gemini"].total_submissions == 1


@pytest.mark.slow       # a Dagster run; the adapters' own wrong-key tests (tests/providers/) stay in the fast set
def test_wrong_key_stops_the_campaign_with_a_fatal_error_and_no_job(instance, settings, fleet):
    _, clip, result = run(instance, settings, fleet, wrong_key=True)
    assert not result.success and clip is None               # the run stopped at generation: nothing to store
    stopped = step_failures(result)["generated_segments"]
    assert stopped.startswith("campaign stopped: ") and re.search("401|403|API_KEY|key", stopped), stopped
    assert fleet.books["gemini"].total_submissions == 0

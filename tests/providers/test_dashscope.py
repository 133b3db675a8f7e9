"""DashScope (Wan) adapter against its fake over real loopback HTTP."""

from __future__ import annotations

from functools import partial

import pytest

from tests.providers.conftest import request
from tests.providers.contract import (
    DOWNLOAD_FAULTS,
    TRANSIENT_POLL_FAULTS,
    TRANSIENT_SUBMIT_FAULTS,
    assert_download_fault_raises,
    assert_failed_job_is_classified,
    assert_happy_path,
    assert_transient_poll_fault_retried,
    assert_transient_submit_fault_retried,
    assert_wrong_key_is_fatal,
    cancel_stuck_then_pending,
    fake_and_adapter,
    run_to_terminal,
    submit_once,
)
from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import JobState
from video_pipeline.providers.dashscope import DashScopeProvider
from video_pipeline.providers.fakes.dashscope import create_app

KEY = "test-dashscope-key"
SUBMIT = "/api/v1/services/aigc/video-generation/video-synthesis"


app, adapter = fake_and_adapter(create_app, DashScopeProvider, KEY)
wan = partial(request, route_model_id="wan2.6-t2v")      # the fake knows only DashScope's own model ids


def test_happy_path_goes_through_every_status_and_downloads_a_real_mp4(connect, book, latency, tmp_path):
    outcome = run_to_terminal(connect, request(route_model_id="wan2.6-t2v", options={"shot_type": "multi"}))
    assert outcome.status.latency_seconds == pytest.approx(latency, abs=0.05)
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4",
                            seen=[JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], seconds=2)
    assert job.meta["model"] == "wan2.6-t2v"


def test_request_body_follows_the_legacy_protocol():
    body = DashScopeProvider("k").body(request(route_model_id="wan2.6-t2v", seconds=10, options={"shot_type": "multi"}))
    assert body == {"model": "wan2.6-t2v", "input": {"prompt": wan().prompt},
                    "parameters": {"size": "1280*720", "duration": 10, "prompt_extend": False, "watermark": False,
                                   "shot_type": "multi"}}


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    assert_transient_submit_fault_retried(connect, wan(), book, fault, submit_path=SUBMIT)


@pytest.mark.parametrize("fault", TRANSIENT_POLL_FAULTS)
def test_transient_poll_faults_are_retried(connect, book, fault):
    assert_transient_poll_fault_retried(connect, wan(), book, fault)


@pytest.mark.parametrize("fault, kind, code", [
    ("fail-policy", ProviderError.TERMINAL, "DataInspectionFailed"),
    ("fail-invalid", ProviderError.TERMINAL, "InvalidParameter"),
    ("fail-retryable", ProviderError.RETRYABLE, "InternalError"),
])
def test_failed_tasks_carry_the_providers_code_and_are_classified(connect, book, fault, kind, code):
    assert_failed_job_is_classified(connect, wan(), book, fault, kind=kind, says=code)


def test_stuck_task_stays_running_and_can_be_cancelled_only_while_pending(connect, book):
    cancels = cancel_stuck_then_pending(connect, book, wan("a"), wan("b", prompt="other"))
    # RUNNING: DashScope refuses; PENDING: it cancels
    assert (cancels.still, cancels.refused, cancels.accepted, cancels.after.state) == (JobState.RUNNING, False, True,
                                                                      JobState.CANCELED)


def test_wrong_key_is_fatal_with_the_providers_401(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, key="wrong"), wan()), book,
                              secrets=["wrong"], says=["401", "InvalidApiKey"])


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, wan())
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match)


@pytest.mark.parametrize("payload, state, kind", [
    ({"output": {"task_id": "t", "task_status": "PENDING"}}, JobState.QUEUED, None),
    ({"output": {"task_id": "t", "task_status": "SUSPENDED"}}, JobState.QUEUED, None),
    ({"output": {"task_id": "t", "task_status": "RUNNING"}}, JobState.RUNNING, None),
    ({"output": {"task_id": "t", "task_status": "SUCCEEDED", "video_url": "https://x/v.mp4",
                 "submit_time": "2025-01-08 16:43:54.123", "end_time": "2025-01-08 16:45:54.123"}},
     JobState.SUCCEEDED, None),
    ({"output": {"task_id": "t", "task_status": "FAILED", "code": "DataInspectionFailed", "message": "x"}},
     JobState.FAILED, ProviderError.TERMINAL),
    ({"output": {"task_id": "t", "task_status": "UNKNOWN"}}, JobState.FAILED, ProviderError.RETRYABLE),
    ({"output": {"task_id": "t", "task_status": "CANCELED"}}, JobState.CANCELED, None),
])
def test_status_mapping_from_documented_payloads(payload, state, kind):
    status = DashScopeProvider.status_from(payload)
    assert (status.state, status.error_kind) == (state, kind)
    if state == JobState.SUCCEEDED:
        assert status.output_url == "https://x/v.mp4" and status.latency_seconds == 120


def test_job_latencies_follow_the_configured_distribution(tmp_path):
    import statistics

    from video_pipeline.providers.fakes import JobBook

    book = JobBook(latency=0.4, latency_p95=1.2, seed=3, work_dir=tmp_path)
    drawn = sorted(book.create({"n": i}, "p", 2).latency for i in range(400))
    assert statistics.median(drawn) == pytest.approx(0.4, rel=0.15)
    assert drawn[int(0.95 * len(drawn))] == pytest.approx(1.2, rel=0.25)
    assert JobBook(latency=0.4, work_dir=tmp_path).create({}, "p", 2).latency == 0.4

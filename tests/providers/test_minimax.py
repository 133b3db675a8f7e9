"""MiniMax Hailuo (v1) adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import replace
from functools import partial

import httpx
import pytest

from tests.providers.conftest import request
from tests.providers.contract import (
    DOWNLOAD_FAULTS,
    TRANSIENT_SUBMIT_FAULTS,
    assert_download_fault_raises,
    assert_failed_job_is_classified,
    assert_happy_path,
    assert_stuck_job_runs_and_cancel_is_refused_without_a_call,
    assert_terminal_before_any_call,
    assert_transient_poll_fault_retried,
    assert_transient_submit_fault_retried,
    assert_wrong_key_is_fatal,
    fake_and_adapter,
    run_to_terminal,
    submit_once,
)
from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.minimax import create_app
from video_pipeline.providers.minimax import MiniMaxProvider

KEY = "test-minimax-key"
MODEL = "MiniMax-Hailuo-02"
SUBMIT, QUERY, RETRIEVE = "/v1/video_generation", "/v1/query/video_generation", "/v1/files/retrieve"


app, adapter = fake_and_adapter(create_app, MiniMaxProvider, KEY)


def hailuo(job_key: str = "k1", **kw):
    return request(job_key, route_model_id=MODEL, **{"seconds": 6, **kw})


def test_happy_path_goes_through_every_status_resolves_the_file_and_downloads_a_real_mp4(connect, server, book,
                                                                                         tmp_path):
    outcome = run_to_terminal(connect, hailuo())
    status = outcome.status
    assert status.output_url.startswith(f"{server.url}/download/")
    hours = (status.url_expires_at - dt.datetime.now(dt.timezone.utc)).total_seconds() / 3600
    assert hours == pytest.approx(9, abs=0.01)
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4",
                            seen=[JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], seconds=6)
    assert (job.meta["model"], job.meta["resolution"], job.seconds) == (MODEL, "768P", 6.0)
    # the download URL only exists after files/retrieve, called once, when the task reports Success
    assert [p for _, p in book.requests].count(RETRIEVE) == 1
    assert book.requests.index(("GET", RETRIEVE)) == len(book.requests) - 2


def test_request_body_uses_v1_fields_durations_and_resolution_tiers(tmp_path):
    image = tmp_path / "first.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake-frame")
    a = MiniMaxProvider("k")
    assert a.body(hailuo()) == {"model": MODEL, "prompt": request().prompt, "duration": 6, "resolution": "768P",
                                "prompt_optimizer": False}
    tall = a.body(replace(hailuo(seconds=8, image=image), resolution="1080p"))
    assert (tall["duration"], tall["resolution"]) == (10, "1080P")
    assert tall["first_frame_image"] == "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    assert [MiniMaxProvider.duration_for(s) for s in (2, 6, 7, 10, 12)] == [6, 6, 10, 10, 10]


def test_an_input_video_is_refused_before_anything_is_sent(tmp_path):
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"\x00")
    assert_terminal_before_any_call(lambda: MiniMaxProvider("k").body(hailuo(video=clip)))


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    assert_transient_submit_fault_retried(connect, hailuo(), book, fault, submit_path=SUBMIT)


def test_rate_limit_is_an_http_200_with_base_resp_1002(server, book):
    book.faults.add("submit", "429-no-retry-after")
    answer = httpx.post(f"{server.url}{SUBMIT}", json=MiniMaxProvider("k").body(hailuo()),
                        headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200
    assert answer.json()["base_resp"] == {"status_code": 1002, "status_msg": "rate limit"}
    assert book.total_submissions == 0


@pytest.mark.parametrize("phase, path, fault", [
    pytest.param("poll", QUERY, "429", marks=pytest.mark.slow), ("poll", QUERY, "429-no-retry-after"),
    ("poll", QUERY, "reset"),
    ("result", RETRIEVE, "429-no-retry-after"), ("result", RETRIEVE, "500"), ("result", RETRIEVE, "reset"),
])
def test_transient_query_and_retrieve_faults_are_retried(connect, book, phase, path, fault):
    assert_transient_poll_fault_retried(connect, hailuo(), book, fault, phase=phase)
    assert [p for _, p in book.requests].count(path) >= 2


def test_a_rate_limit_that_never_clears_ends_as_a_retryable_error(connect, book):
    book.faults.add("submit", *["429-no-retry-after"] * 5)
    with pytest.raises(ProviderError) as exc:
        submit_once(connect, hailuo())
    assert exc.value.kind == ProviderError.RETRYABLE and "1002" in str(exc.value)
    assert book.total_submissions == 0


@pytest.mark.parametrize("fault, kind, code", [
    ("fail-policy", ProviderError.TERMINAL, "1027"),
    ("fail-invalid", ProviderError.TERMINAL, "2013"),
    ("fail-retryable", ProviderError.RETRYABLE, "1000"),
])
def test_failed_tasks_carry_the_providers_code_and_are_classified(connect, book, fault, kind, code):
    assert_failed_job_is_classified(connect, hailuo(), book, fault, kind=kind, says=code)
    assert RETRIEVE not in [p for _, p in book.requests]


def test_invalid_parameters_on_an_http_200_are_terminal_and_not_retried(connect, book):
    with pytest.raises(ProviderError) as exc:
        submit_once(connect, replace(hailuo(seconds=10), resolution="1080p"))   # 1080P is 6 s only
    assert exc.value.kind == ProviderError.TERMINAL and "2013" in str(exc.value)
    assert book.total_submissions == 0
    assert [p for _, p in book.requests] == [SUBMIT]


def test_stuck_task_stays_processing_and_cancel_is_refused_without_a_call(connect, book):
    # one query, no cancel call: MiniMax has none
    assert_stuck_job_runs_and_cancel_is_refused_without_a_call(connect, hailuo(), book)


def test_wrong_key_is_fatal_with_the_providers_base_resp_code(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, key="wrong-secret"), hailuo()), book,
                              secrets=["wrong-secret"], says=["2049", "invalid api key"])
    assert len(book.requests) == 1


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, hailuo())
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match)


def _ok(**kw) -> dict:
    return {"task_id": "106916112212032", "file_id": "", "base_resp": {"status_code": 0, "status_msg": "success"}, **kw}


FILE = {"file": {"file_id": "205258526306433", "bytes": 5896337, "created_at": 1700469398, "filename": "output.mp4",
                 "purpose": "video_generation", "download_url": "https://public-cdn.example/output.mp4?sig=x"},
        "base_resp": {"status_code": 0, "status_msg": "success"}}


@pytest.mark.parametrize("payload, file, state, kind", [
    (_ok(status="Preparing"), None, JobState.QUEUED, None),
    (_ok(status="Queueing"), None, JobState.QUEUED, None),
    (_ok(status="Processing"), None, JobState.RUNNING, None),
    (_ok(status="Success", file_id="205258526306433", video_width=1366, video_height=768), FILE,
     JobState.SUCCEEDED, None),
    (_ok(status="Success", file_id="205258526306433"), None, JobState.FAILED, ProviderError.RETRYABLE),
    (_ok(status="Fail", base_resp={"status_code": 1026, "status_msg": "input new_sensitive"}), None,
     JobState.FAILED, ProviderError.TERMINAL),
    (_ok(status="Fail", base_resp={"status_code": 1027, "status_msg": "output new_sensitive"}), None,
     JobState.FAILED, ProviderError.TERMINAL),
    (_ok(status="Fail", base_resp={"status_code": 1008, "status_msg": "insufficient balance"}), None,
     JobState.FAILED, ProviderError.FATAL),
    (_ok(status="Fail"), None, JobState.FAILED, ProviderError.RETRYABLE),
])
def test_status_mapping_from_documented_payloads(payload, file, state, kind):
    status = MiniMaxProvider.status_from(payload, file)
    assert (status.state, status.error_kind) == (state, kind)
    if state == JobState.SUCCEEDED:
        assert status.output_url == FILE["file"]["download_url"] and status.url_expires_at is not None
    if kind is not None:
        assert status.error.startswith("MiniMax")

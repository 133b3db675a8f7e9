"""Gemini API (Veo) adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import base64
from dataclasses import replace
from functools import partial

import httpx
import pytest

from tests.providers.conftest import request
from tests.providers.contract import (
    FAKES_ONLY,
    DOWNLOAD_FAULTS,
    TRANSIENT_POLL_FAULTS,
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
from video_pipeline.providers.fakes.gemini import create_app
from video_pipeline.providers.gemini import GeminiProvider
from video_pipeline.storage.store import fetch

KEY = "test-gemini-key"
MODEL = "veo-3.1-fast-generate-preview"
SUBMIT = f"/v1beta/models/{MODEL}:predictLongRunning"


app, adapter = fake_and_adapter(create_app, GeminiProvider, KEY)


def veo(job_key: str = "k1", **kw):
    return request(job_key, route_model_id=MODEL, seconds=4, **kw)


def operation_id(job_id: str) -> str:
    """The fake's job id: the last segment of `models/{model}/operations/{id}`."""
    return job_id.rsplit("/", 1)[1]


def test_happy_path_runs_to_success_and_the_video_downloads_only_with_the_key(connect, server, book, tmp_path):
    outcome = run_to_terminal(connect, veo())
    status = outcome.status
    assert outcome.job_id.startswith(f"models/{MODEL}/operations/")
    assert status.output_url.startswith(f"{server.url}/v1beta/files/") and status.output_url.endswith(":download?alt=media")
    assert status.url_expires_at is not None
    with pytest.raises(ProviderError, match="403"):
        fetch(status.output_url, tmp_path / "nokey.mp4", policy=FAKES_ONLY)
    headers = outcome.adapter.download_headers(status.output_url)
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4", headers=headers,
                            seen=[JobState.RUNNING, JobState.SUCCEEDED], seconds=4)   # the Gemini API has no queued state
    assert (job.meta["model"], job.seconds, job.aspect_ratio) == (MODEL, 4.0, "16:9")
    assert [m for m, _ in book.requests].count("POST") == 1


def test_download_headers_carry_the_key_only_to_the_adapters_own_host():
    a = GeminiProvider("secret-key")
    own = "https://generativelanguage.googleapis.com/v1beta/files/abc:download?alt=media"
    assert a.download_headers(own) == {"x-goog-api-key": "secret-key"}
    for foreign in ("https://storage.googleapis.com/abc.mp4", "http://generativelanguage.googleapis.com/v1beta/files/a",
                    "https://generativelanguage.googleapis.com.evil.example/v1beta/files/a",
                    "https://generativelanguage.googleapis.com:8443/v1beta/files/a"):
        assert a.download_headers(foreign) == {}, foreign


def test_request_body_follows_the_gemini_api_form(tmp_path):
    image = tmp_path / "first.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake-frame")
    portrait = replace(request(route_model_id=MODEL, seconds=6, image=image, options={"negative_prompt": "text overlays"}),
                       aspect_ratio="9:16", resolution="1080p")
    body = GeminiProvider("k").body(portrait)
    assert body == {
        "instances": [{"prompt": request().prompt,
                       "image": {"bytesBase64Encoded": base64.b64encode(image.read_bytes()).decode(),
                                 "mimeType": "image/png"}}],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 6, "resolution": "1080p",
                       "negativePrompt": "text overlays"},
    }
    assert isinstance(body["parameters"]["durationSeconds"], int)


@pytest.mark.parametrize("kw, match", [({"seconds": 5}, "4/6/8"), ({"seconds": 4, "video": "clip.mp4"}, "image")])
def test_inputs_veo_cannot_take_are_terminal_before_any_call(kw, match, tmp_path):
    if "video" in kw:
        kw["video"] = tmp_path / kw["video"]
    assert_terminal_before_any_call(lambda: GeminiProvider("k").body(request(route_model_id=MODEL, **kw)), match)


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    assert_transient_submit_fault_retried(connect, veo(), book, fault, submit_path=SUBMIT, book_id=operation_id)


@pytest.mark.parametrize("fault", TRANSIENT_POLL_FAULTS)
def test_transient_poll_faults_are_retried(connect, book, fault):
    assert_transient_poll_fault_retried(connect, veo(), book, fault)


#: how Veo's finished operations fail (the Gemini API's and Vertex AI's alike) and how each is classified
FAILED_OPERATIONS = [
    ("fail-policy", ProviderError.TERMINAL, "RAI filter"),
    ("fail-invalid", ProviderError.TERMINAL, "operation error 3"),
    ("fail-retryable", ProviderError.RETRYABLE, "operation error 13"),
]


@pytest.mark.parametrize("fault, kind, text", FAILED_OPERATIONS)
def test_failed_operations_are_classified(connect, book, fault, kind, text):
    outcome = assert_failed_job_is_classified(connect, veo(), book, fault, kind=kind, says=text)
    assert outcome.seen == [JobState.RUNNING, JobState.FAILED]


def test_stuck_operation_stays_running_and_cancel_is_refused_without_a_call(connect, book):
    assert_stuck_job_runs_and_cancel_is_refused_without_a_call(connect, veo(), book)


def test_wrong_key_is_fatal_with_googles_api_key_invalid_answer(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, key="wrong-key-123"), veo()), book,
                              secrets=["wrong-key-123"], says=["HTTP 400", "API key not valid"])
    assert len(book.requests) == 1                      # fatal: not retried


@pytest.mark.parametrize("status, body, kind", [
    (400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
                     "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}},
     ProviderError.FATAL),
    (400, {"error": {"code": 400, "message": "durationSeconds out of bound", "status": "INVALID_ARGUMENT"}},
     ProviderError.TERMINAL),
    (400, {"error": {"code": 400, "message": "User location is not supported for the API use.",
                     "status": "FAILED_PRECONDITION"}}, ProviderError.FATAL),
    (403, {"error": {"code": 403, "message": "Method doesn't allow unregistered callers", "status": "PERMISSION_DENIED"}},
     ProviderError.FATAL),
    (429, {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}},
     ProviderError.RETRYABLE),
    (503, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
     ProviderError.RETRYABLE),
])
def test_http_errors_are_classified_from_googles_error_envelope(status, body, kind):
    response = httpx.Response(status, json=body)
    a = GeminiProvider("k")
    assert a.error_kind(response) == kind
    assert body["error"]["status"] in a.error_message(response)


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, veo())
    headers = outcome.adapter.download_headers(outcome.status.output_url)
    assert headers == {"x-goog-api-key": KEY}
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match, headers=headers)


OP = "models/veo-3.1-generate-preview/operations/abc123"


@pytest.mark.parametrize("payload, state, kind", [
    ({"name": OP}, JobState.RUNNING, None),
    ({"name": OP, "done": False, "metadata": {}}, JobState.RUNNING, None),
    ({"name": OP, "done": True, "response": {"generateVideoResponse": {"generatedSamples": [
        {"video": {"uri": "https://generativelanguage.googleapis.com/v1beta/files/f1:download?alt=media"}}]}}},
     JobState.SUCCEEDED, None),
    ({"name": OP, "done": True, "response": {"generateVideoResponse": {
        "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["blocked by safety settings"]}}},
     JobState.FAILED, ProviderError.TERMINAL),
    ({"name": OP, "done": True, "error": {"code": 3, "message": "invalid image"}}, JobState.FAILED, ProviderError.TERMINAL),
    ({"name": OP, "done": True, "error": {"code": 7, "message": "permission denied"}}, JobState.FAILED, ProviderError.FATAL),
    ({"name": OP, "done": True, "error": {"code": 13, "message": "internal"}}, JobState.FAILED, ProviderError.RETRYABLE),
    ({"name": OP, "done": True, "error": {"code": 8, "message": "quota"}}, JobState.FAILED, ProviderError.RETRYABLE),
    ({"name": OP, "done": True, "response": {"generateVideoResponse": {}}}, JobState.FAILED, ProviderError.RETRYABLE),
])
def test_status_mapping_from_documented_operations(payload, state, kind):
    status = GeminiProvider.status_from(payload)
    assert (status.state, status.error_kind) == (state, kind)
    if state == JobState.SUCCEEDED:
        assert status.output_url.endswith("files/f1:download?alt=media") and status.url_expires_at is not None
    if state == JobState.FAILED:
        assert status.error

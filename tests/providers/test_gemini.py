"""Gemini API (Veo) adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace

import httpx
import pytest

from tests.providers.conftest import poll_until_terminal, request, run, serve
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.gemini import create_app
from video_pipeline.providers.gemini import GeminiProvider
from video_pipeline.store import fetch

KEY = "test-gemini-key"
MODEL = "veo-3.1-fast-generate-preview"
SUBMIT = f"/v1beta/models/{MODEL}:predictLongRunning"


@pytest.fixture
def server(book):
    srv = serve(create_app(book, api_key=KEY))
    yield srv
    srv.stop()


def adapter(server, key: str = KEY) -> GeminiProvider:
    a = GeminiProvider(key, base_url=server.url)
    a.backoff_base = 0.01
    return a


def veo(job_key: str = "k1", **kw):
    return request(job_key, route_model_id=MODEL, seconds=4, **kw)


def test_happy_path_runs_to_success_and_the_video_downloads_only_with_the_key(server, book, tmp_path):
    async def go():
        a = adapter(server)
        try:
            job_id = await a.submit(veo())
            return job_id, await poll_until_terminal(a, job_id), a.download_headers
        finally:
            await a.aclose()

    job_id, (status, seen), headers_for = run(go())
    assert job_id.startswith(f"models/{MODEL}/operations/")
    assert seen == [JobState.RUNNING, JobState.SUCCEEDED]      # the Gemini API has no queued state
    assert status.output_url.startswith(f"{server.url}/v1beta/files/") and status.output_url.endswith(":download?alt=media")
    assert status.url_expires_at is not None
    with pytest.raises(ProviderError, match="403"):
        fetch(status.output_url, tmp_path / "nokey.mp4")
    fetch(status.output_url, tmp_path / "out.mp4", headers=headers_for(status.output_url))
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(4, abs=0.1)
    [job] = book.jobs.values()
    assert (job.meta["model"], job.seconds, job.aspect_ratio) == (MODEL, 4.0, "16:9")
    assert book.total_submissions == 1
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
    with pytest.raises(ProviderError, match=match) as exc:
        GeminiProvider("k").body(request(route_model_id=MODEL, **kw))
    assert exc.value.kind == ProviderError.TERMINAL


@pytest.mark.parametrize("fault", ["429", "429-no-retry-after", "500", "503", "reset"])
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(server, book, fault):
    book.faults.add("submit", fault)

    async def go():
        a = adapter(server)
        try:
            return await a.submit(veo())
        finally:
            await a.aclose()

    job_id = run(go())
    assert job_id.rsplit("/", 1)[1] in book.jobs
    assert book.total_submissions == 1
    assert [p for m, p in book.requests if m == "POST"].count(SUBMIT) == 2


@pytest.mark.parametrize("fault", ["429", "500", "reset"])
def test_transient_poll_faults_are_retried(server, book, fault):
    async def go():
        a = adapter(server)
        try:
            job_id = await a.submit(veo())
            book.faults.add("poll", fault)
            return await poll_until_terminal(a, job_id)
        finally:
            await a.aclose()

    status, _ = run(go())
    assert status.state == JobState.SUCCEEDED
    assert book.faults.take("poll") is None          # the fault was served, not skipped


@pytest.mark.parametrize("fault, kind, text", [
    ("fail-policy", ProviderError.TERMINAL, "RAI filter"),
    ("fail-invalid", ProviderError.TERMINAL, "operation error 3"),
    ("fail-retryable", ProviderError.RETRYABLE, "operation error 13"),
])
def test_failed_operations_are_classified(server, book, fault, kind, text):
    book.faults.add("job", fault)

    async def go():
        a = adapter(server)
        try:
            return await poll_until_terminal(a, await a.submit(veo()))
        finally:
            await a.aclose()

    status, seen = run(go())
    assert seen == [JobState.RUNNING, JobState.FAILED]
    assert (status.state, status.error_kind) == (JobState.FAILED, kind)
    assert text in status.error


def test_stuck_operation_stays_running_and_cancel_is_refused_without_a_call(server, book):
    book.faults.add("job", "stuck")

    async def go():
        a = adapter(server)
        try:
            job_id = await a.submit(veo())
            await asyncio.sleep(0.6)
            before = len(book.requests)
            return (await a.poll(job_id)).state, await a.cancel(job_id), len(book.requests) - before
        finally:
            await a.aclose()

    assert run(go()) == (JobState.RUNNING, False, 1)     # only the poll reached the server


def test_wrong_key_is_fatal_with_googles_api_key_invalid_answer(server, book):
    async def go():
        a = adapter(server, key="wrong-key-123")
        try:
            await a.submit(veo())
        finally:
            await a.aclose()

    with pytest.raises(ProviderError) as exc:
        run(go())
    assert exc.value.kind == ProviderError.FATAL
    assert "HTTP 400" in str(exc.value) and "API key not valid" in str(exc.value)
    assert "wrong-key-123" not in str(exc.value)
    assert book.total_submissions == 0
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


@pytest.mark.parametrize("fault, match", [("expired", "403"), ("truncated", "truncated")])
def test_expired_and_truncated_downloads_are_errors_not_clips(server, book, tmp_path, fault, match):
    async def go():
        a = adapter(server)
        try:
            status, _ = await poll_until_terminal(a, await a.submit(veo()))
            return status, a.download_headers(status.output_url)
        finally:
            await a.aclose()

    status, headers = run(go())
    assert headers == {"x-goog-api-key": KEY}
    book.faults.add("download", fault)
    with pytest.raises(Exception, match=match):
        fetch(status.output_url, tmp_path / "x.mp4", headers=headers)


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

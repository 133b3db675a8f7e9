"""DashScope (Wan) adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import asyncio

import pytest

from tests.providers.conftest import poll_until_terminal, request, run, serve
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.base import JobState
from video_pipeline.providers.dashscope import DashScopeProvider
from video_pipeline.providers.fakes.dashscope import create_app
from video_pipeline.store import fetch

KEY = "test-dashscope-key"


@pytest.fixture
def server(book):
    srv = serve(create_app(book, api_key=KEY))
    yield srv
    srv.stop()


def adapter(server, key: str = KEY) -> DashScopeProvider:
    a = DashScopeProvider(key, base_url=server.url)
    a.backoff_base = 0.01
    return a


def test_happy_path_goes_through_every_status_and_downloads_a_real_mp4(server, book, tmp_path):
    async def go():
        a = adapter(server)
        try:
            job_id = await a.submit(request(route_model_id="wan2.6-t2v", options={"shot_type": "multi"}))
            return await poll_until_terminal(a, job_id)
        finally:
            await a.aclose()

    status, seen = run(go())
    assert seen == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED]
    assert status.latency_seconds == pytest.approx(0.4, abs=0.05)
    fetch(status.output_url, tmp_path / "out.mp4")
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(2, abs=0.1)
    [job] = book.jobs.values()
    assert job.meta["model"] == "wan2.6-t2v"
    assert book.total_submissions == 1


def test_request_body_follows_the_legacy_protocol():
    body = DashScopeProvider("k").body(request(route_model_id="wan2.6-t2v", seconds=10, options={"shot_type": "multi"}))
    assert body == {"model": "wan2.6-t2v", "input": {"prompt": request().prompt},
                    "parameters": {"size": "1280*720", "duration": 10, "prompt_extend": False, "watermark": False,
                                   "shot_type": "multi"}}


@pytest.mark.parametrize("fault", ["429", "429-no-retry-after", "500", "503", "reset"])
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(server, book, fault):
    book.faults.add("submit", fault)

    async def go():
        a = adapter(server)
        try:
            return await a.submit(request())
        finally:
            await a.aclose()

    job_id = run(go())
    assert job_id in book.jobs
    assert book.total_submissions == 1
    assert [p for m, p in book.requests if m == "POST"].count("/api/v1/services/aigc/video-generation/video-synthesis") == 2


@pytest.mark.parametrize("fault", ["429", "500", "reset"])
def test_transient_poll_faults_are_retried(server, book, fault):
    async def go():
        a = adapter(server)
        try:
            job_id = await a.submit(request())
            book.faults.add("poll", fault)
            return await poll_until_terminal(a, job_id)
        finally:
            await a.aclose()

    status, _ = run(go())
    assert status.state == JobState.SUCCEEDED


@pytest.mark.parametrize("fault, kind, code", [
    ("fail-policy", ProviderError.TERMINAL, "DataInspectionFailed"),
    ("fail-invalid", ProviderError.TERMINAL, "InvalidParameter"),
    ("fail-retryable", ProviderError.RETRYABLE, "InternalError"),
])
def test_failed_tasks_carry_the_providers_code_and_are_classified(server, book, fault, kind, code):
    book.faults.add("job", fault)

    async def go():
        a = adapter(server)
        try:
            return await poll_until_terminal(a, await a.submit(request()))
        finally:
            await a.aclose()

    status, _ = run(go())
    assert (status.state, status.error_kind) == (JobState.FAILED, kind)
    assert code in status.error


def test_stuck_task_stays_running_and_can_be_cancelled_only_while_pending(server, book):
    book.faults.add("job", "stuck")

    async def go():
        a = adapter(server)
        try:
            stuck = await a.submit(request("a"))
            await asyncio.sleep(0.6)
            still = (await a.poll(stuck)).state
            refused = await a.cancel(stuck)            # RUNNING: DashScope refuses
            pending = await a.submit(request("b", prompt="other"))
            accepted = await a.cancel(pending)
            return still, refused, accepted, (await a.poll(pending)).state
        finally:
            await a.aclose()

    assert run(go()) == (JobState.RUNNING, False, True, JobState.CANCELED)


def test_wrong_key_is_fatal_with_the_providers_401(server, book):
    async def go():
        a = adapter(server, key="wrong")
        try:
            await a.submit(request())
        finally:
            await a.aclose()

    with pytest.raises(ProviderError) as exc:
        run(go())
    assert exc.value.kind == ProviderError.FATAL
    assert "401" in str(exc.value) and "InvalidApiKey" in str(exc.value)
    assert "wrong" not in str(exc.value)        # the key never appears in errors
    assert book.total_submissions == 0


@pytest.mark.parametrize("fault, match", [("expired", "403"), ("truncated", "truncated")])
def test_expired_and_truncated_downloads_are_errors_not_clips(server, book, tmp_path, fault, match):
    async def go():
        a = adapter(server)
        try:
            return await poll_until_terminal(a, await a.submit(request()))
        finally:
            await a.aclose()

    status, _ = run(go())
    book.faults.add("download", fault)
    with pytest.raises(Exception, match=match):
        fetch(status.output_url, tmp_path / "x.mp4")


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

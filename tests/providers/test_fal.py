"""fal.ai queue adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import replace
from functools import partial

import httpx
import pytest

from tests.providers.conftest import poll_until_terminal, request
from tests.support.services import served
from tests.providers.contract import (
    DOWNLOAD_FAULTS,
    TRANSIENT_SUBMIT_FAULTS,
    assert_download_fault_raises,
    assert_failed_job_is_classified,
    assert_happy_path,
    assert_transient_poll_fault_retried,
    assert_transient_submit_fault_retried,
    assert_wrong_key_is_fatal,
    cancel_stuck_then_pending,
    fake_and_adapter,
    finish,
    run_to_terminal,
    submit_once,
    using,
)
from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.fal import create_app
from video_pipeline.providers.fakes.jobs import JobBook
from video_pipeline.providers.fal import URL_LIFETIME, FalProvider

KEY = "test-fal-key"
VEO = "fal-ai/veo3.1/fast"


app, adapter = fake_and_adapter(create_app, FalProvider, KEY)


def veo(job_key: str = "k1", **kw):
    return request(job_key, route_model_id=VEO, **kw)


def test_happy_path_uses_the_returned_urls_without_the_subpath_and_downloads_a_real_mp4(connect, server, book,
                                                                                        tmp_path):
    outcome = run_to_terminal(connect, veo())
    status = outcome.status
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4",
                            seen=[JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], seconds=2)
    assert outcome.job_id == f"fal-ai/veo3.1/requests/{job.id}"
    assert status.output_url.startswith(f"{server.url}/files/{job.id}.mp4")
    expected_expiry = dt.datetime.now(dt.timezone.utc) + URL_LIFETIME
    assert abs((status.url_expires_at - expected_expiry).total_seconds()) < 30
    paths = [p for _, p in book.requests]
    assert paths[0] == f"/{VEO}"
    assert f"/fal-ai/veo3.1/requests/{job.id}/status" in paths
    assert f"/fal-ai/veo3.1/requests/{job.id}" in paths                  # the result GET, done by poll itself
    assert not any("/fast/requests" in p for p in paths)
    assert set(server.app.state.seen["status_queries"]) == {"logs=1"}
    assert json.loads(server.app.state.seen["lifecycle"][0]) == {"expiration_duration_seconds": 7 * 24 * 3600}
    assert job.meta["model"] == VEO


def test_a_job_id_alone_is_enough_to_poll_after_a_restart(connect, book):
    job_id = submit_once(connect, veo())
    # a new process: no memory of the submit response
    status, _ = using(connect, lambda fresh: poll_until_terminal(fresh, job_id))
    assert status.state == JobState.SUCCEEDED and status.output_url
    assert book.total_submissions == 1


@pytest.mark.parametrize("endpoint, submitted, job_id", [
    (VEO, {"request_id": "r1", "response_url": "https://queue.fal.run/fal-ai/veo3.1/requests/r1"},
     "fal-ai/veo3.1/requests/r1"),
    (VEO, {"request_id": "r1"}, "fal-ai/veo3.1/requests/r1"),                    # rebuilt as fal_client does
    ("workflows/acme/promo/render", {"request_id": "r2"}, "workflows/acme/promo/requests/r2"),
    (VEO, {"request_id": "r3", "response_url": "https://eu.queue.fal.run/fal-ai/veo3.1/requests/r3"},
     "https://eu.queue.fal.run/fal-ai/veo3.1/requests/r3"),                    # another host: kept whole
])
def test_job_ids_carry_the_response_url(endpoint, submitted, job_id):
    a = FalProvider("k")
    assert a._job_id(endpoint, submitted) == job_id
    assert a._urls(job_id)["status_url"] == a.url(job_id) + "/status"


def test_a_request_id_as_the_dashboard_shows_it_is_the_job_an_operator_adopts(connect, book):
    job_id = submit_once(connect, veo())
    [job] = book.jobs.values()
    a = FalProvider("k", base_url="https://queue.fal.run")
    for copied in (job.id, f" {job.id}\n", f"https://queue.fal.run/fal-ai/veo3.1/requests/{job.id}/status",
                   f"fal-ai/veo3.1/requests/{job.id}"):
        assert a.job_id_from(copied, VEO) == job_id
    # and it polls: what `resolve --adopt` asks before recording it
    status, _ = using(connect, lambda fresh: poll_until_terminal(fresh, fresh.job_id_from(job.id, VEO)))
    assert status.state == JobState.SUCCEEDED


def test_queue_position_sets_longer_waits_deeper_in_the_queue(tmp_path):
    slow = JobBook(latency=8.0, work_dir=tmp_path / "w")

    async def scenario(a):
        ids = [await a.submit(veo(f"k{i}", prompt=f"shot {i}")) for i in range(3)]
        statuses = [await a.poll(i) for i in ids]
        cancelled = [await a.cancel(i) for i in ids]
        return statuses, cancelled

    with served(create_app(slow, api_key=KEY)) as srv:
        statuses, cancelled = using(partial(adapter, srv), scenario)
    assert [s.state for s in statuses] == [JobState.QUEUED] * 3
    hints = [s.poll_after for s in statuses]
    assert hints[0] < hints[1] < hints[2]
    assert cancelled == [True, True, True]


def test_request_bodies_follow_each_category(tmp_path):
    image, audio, video = tmp_path / "face.png", tmp_path / "voice.mp3", tmp_path / "clip.mp4"
    for path, data in ((image, b"\x89PNG fake"), (audio, b"ID3 fake"), (video, b"\x00\x00\x00\x18ftyp")):
        path.write_bytes(data)
    t2v = FalProvider.body(veo(seconds=8))
    assert t2v == {"prompt": veo().prompt, "duration": "8s", "aspect_ratio": "16:9", "resolution": "720p"}
    kling = FalProvider.body(request(route_model_id="fal-ai/kling-video/v3/pro/text-to-video", seconds=5))
    assert kling["duration"] == "5"
    hailuo = FalProvider.body(request(route_model_id="fal-ai/minimax/hailuo-02/standard/text-to-video", seconds=6))
    assert (hailuo["duration"], hailuo["resolution"], hailuo["prompt_optimizer"]) == ("6", "768P", False)
    wan = FalProvider.body(request(route_model_id="fal-ai/wan/v2.6/text-to-video", options={"shot_type": "multi"}))
    assert wan["multi_shots"] is True and wan["enable_prompt_expansion"] is False
    i2v = FalProvider.body(replace(veo(), category="image_to_video", image=image))
    assert i2v["image_url"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    lip = FalProvider.body(replace(request(route_model_id="fal-ai/bytedance/omnihuman", image=image, audio=audio),
                                   category="audio_lip_sync"))
    assert set(lip) == {"image_url", "audio_url"} and lip["audio_url"].startswith("data:audio/mpeg;base64,")
    up = FalProvider.body(replace(request(route_model_id="fal-ai/topaz/upscale/video", video=video),
                                  category="video_enhance"))
    assert set(up) == {"video_url"} and up["video_url"].startswith("data:video/mp4;base64,")
    with pytest.raises(ProviderError) as exc:
        FalProvider.body(replace(request(), category="audio_lip_sync"))
    assert exc.value.kind == ProviderError.TERMINAL


@pytest.mark.parametrize("route, category, endpoint", [
    ("fal-ai/veo3.1/fast", "text_to_video", "fal-ai/veo3.1/fast"),
    ("fal-ai/veo3.1/fast", "image_to_video", "fal-ai/veo3.1/fast/image-to-video"),
    ("fal-ai/kling-video/v3/pro/text-to-video", "image_to_video", "fal-ai/kling-video/v3/pro/image-to-video"),
    ("fal-ai/wan/v2.6/text-to-video", "video_to_video", "fal-ai/wan/v2.6/reference-to-video"),
    ("fal-ai/bytedance/omnihuman", "audio_lip_sync", "fal-ai/bytedance/omnihuman"),
    ("fal-ai/topaz/upscale/video", "video_enhance", "fal-ai/topaz/upscale/video"),
])
def test_endpoint_follows_the_category(route, category, endpoint):
    assert FalProvider.endpoint_for(replace(request(route_model_id=route), category=category)) == endpoint


def test_lip_sync_and_upscale_run_end_to_end_on_their_own_endpoints(connect, book, tmp_path):
    image, audio, video = tmp_path / "face.png", tmp_path / "voice.wav", tmp_path / "clip.mp4"
    for path in (image, audio, video):
        path.write_bytes(b"fake media")

    async def scenario(a):
        lip = await finish(a, replace(request("a", route_model_id="fal-ai/bytedance/omnihuman", image=image,
                                              audio=audio), category="audio_lip_sync"))
        up = await finish(a, replace(request("b", route_model_id="fal-ai/topaz/upscale/video", video=video),
                                     category="video_enhance"))
        return lip.status, up.status

    lip, up = using(connect, scenario)
    assert lip.state == up.state == JobState.SUCCEEDED
    assert sorted(job.meta["model"] for job in book.jobs.values()) == ["fal-ai/bytedance/omnihuman",
                                                                       "fal-ai/topaz/upscale/video"]
    assert "/fal-ai/topaz/requests/" in "".join(p for _, p in book.requests)


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    assert_transient_submit_fault_retried(connect, veo(), book, fault, submit_path=f"/{VEO}",
                                          book_id=lambda job_id: job_id.rsplit("/", 1)[-1])


@pytest.mark.parametrize("phase, fault", [pytest.param("poll", "429", marks=pytest.mark.slow), ("poll", "500"),
                                          ("poll", "reset"), ("result", "503"), ("result", "reset")])
def test_transient_status_and_result_faults_are_retried(connect, book, phase, fault):
    assert_transient_poll_fault_retried(connect, veo(), book, fault, phase=phase)


@pytest.mark.parametrize("fault, kind, error_type, status_errors", [
    ("fail-policy", ProviderError.TERMINAL, "content_policy_violation", True),
    ("fail-invalid", ProviderError.TERMINAL, "one_of", True),
    ("fail-retryable", ProviderError.RETRYABLE, "runner_server_error", True),
    # endpoints not yet on the status-body error fields: the result GET answers 422 / 5xx instead
    ("fail-policy", ProviderError.TERMINAL, "content_policy_violation", False),
    ("fail-retryable", ProviderError.RETRYABLE, "runner_server_error", False),
])
def test_failed_requests_carry_the_error_type_and_are_classified(book, fault, kind, error_type, status_errors):
    with served(create_app(book, api_key=KEY, status_errors=status_errors)) as srv:
        assert_failed_job_is_classified(partial(adapter, srv), veo(), book, fault, kind=kind, says=error_type)


@pytest.mark.slow
def test_stuck_request_stays_in_progress_and_only_a_queued_one_can_be_cancelled(connect, book):
    book.latency = 2.0            # queued for 0.5 s: room to cancel the second request before it starts
    # IN_PROGRESS: fal answers 400 ALREADY_COMPLETED to the stuck request's cancel
    cancels = cancel_stuck_then_pending(connect, book, veo("a"), veo("b", prompt="other"))
    assert (cancels.still, cancels.refused, cancels.accepted) == (JobState.RUNNING, False, True)
    assert cancels.after.state == JobState.CANCELED and "client_cancelled" in cancels.after.error
    stuck_job, pending_job = sorted(book.jobs.values(), key=lambda j: j.created)
    assert [p for m, p in book.requests if m == "PUT"] == [f"/fal-ai/veo3.1/requests/{stuck_job.id}/cancel",
                                                           f"/fal-ai/veo3.1/requests/{pending_job.id}/cancel"]


def test_wrong_key_is_fatal_with_fals_401(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, key="wrong-secret"), veo()), book,
                              secrets=["wrong-secret"], says=["401", "No user found for Key ID and Secret"])


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, veo())
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match)


@pytest.mark.parametrize("status_code, body, headers, kind", [
    (422, {"detail": [{"loc": ["body", "prompt"], "msg": "flagged", "type": "content_policy_violation"}]}, {},
     ProviderError.TERMINAL),
    (403, {"detail": "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."},
     {}, ProviderError.FATAL),
    (504, {"detail": "Request timed out", "error_type": "request_timeout"}, {}, ProviderError.RETRYABLE),
    (503, {"detail": "No runner"}, {"X-Fal-Error-Type": "runner_scheduling_failure"}, ProviderError.RETRYABLE),
    (500, {"detail": "bad input reached the model"}, {"X-Fal-Retryable": "false"}, ProviderError.TERMINAL),
    (429, {"detail": "Too many requests"}, {}, ProviderError.RETRYABLE),
])
def test_http_errors_are_classified_by_fals_error_type(status_code, body, headers, kind):
    response = httpx.Response(status_code, json=body, headers=headers)
    a = FalProvider("k")
    assert a.error_kind(response) == kind
    assert a.error_message(response)


@pytest.mark.parametrize("payload, result, state, kind", [
    ({"status": "IN_QUEUE", "queue_position": 0}, None, JobState.QUEUED, None),
    ({"status": "IN_PROGRESS", "logs": [{"message": "step 3/30"}]}, None, JobState.RUNNING, None),
    ({"status": "COMPLETED", "metrics": {"inference_time": 41.2}},
     {"video": {"url": "https://v3.fal.media/files/x/out.mp4", "content_type": "video/mp4"}}, JobState.SUCCEEDED, None),
    ({"status": "COMPLETED"}, {"videos": [{"url": "https://v3.fal.media/files/y.mp4"}]}, JobState.SUCCEEDED, None),
    ({"status": "COMPLETED"}, {"images": []}, JobState.FAILED, ProviderError.RETRYABLE),
    ({"status": "COMPLETED", "error": "flagged", "error_type": "content_policy_violation"}, None, JobState.FAILED,
     ProviderError.TERMINAL),
    ({"status": "COMPLETED", "error": "Runner disconnected", "error_type": "runner_disconnected"}, None,
     JobState.FAILED, ProviderError.RETRYABLE),
    ({"status": "COMPLETED", "error": "Invalid key", "error_type": "invalid_api_key"}, None, JobState.FAILED,
     ProviderError.FATAL),
    ({"status": "COMPLETED", "error": "cancelled", "error_type": "client_cancelled"}, None, JobState.CANCELED, None),
    ({"status": "FAILED", "error": "boom"}, None, JobState.FAILED, ProviderError.RETRYABLE),
])
def test_status_mapping_from_documented_payloads(payload, result, state, kind):
    status = FalProvider.status_from(payload, result)
    assert (status.state, status.error_kind) == (state, kind)
    if state == JobState.SUCCEEDED:
        assert status.output_url.startswith("https://v3.fal.media/files/") and status.url_expires_at
    if state == JobState.QUEUED:
        assert status.poll_after < FalProvider.status_from({"status": "IN_QUEUE", "queue_position": 10}).poll_after

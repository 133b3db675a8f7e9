"""Replicate predictions adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from dataclasses import replace
from functools import partial

import pytest

from tests.providers.conftest import request, until_ended
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
    fake_and_adapter,
    run_to_terminal,
    submit_once,
    using,
)
from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.replicate import create_app
from video_pipeline.providers.replicate import ReplicateProvider

TOKEN = "test-replicate-token"
VEO = "google/veo-3.1-fast"
CREATE = f"/v1/models/{VEO}/predictions"


app, adapter = fake_and_adapter(create_app, ReplicateProvider, TOKEN, key_arg="api_token")


def veo(job_key: str = "k1", **kw):
    return request(job_key, **{"route_model_id": VEO, **kw})


def test_happy_path_goes_through_every_status_and_downloads_a_real_mp4(connect, server, book, tmp_path):
    outcome = run_to_terminal(connect, veo())
    status = outcome.status
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4",
                            seen=[JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], seconds=2)
    assert status.latency_seconds == pytest.approx(0.3, abs=0.01)       # completed_at - created_at
    completed = dt.datetime.fromtimestamp(job.created + job.latency, dt.timezone.utc)
    assert abs((status.url_expires_at - completed).total_seconds() - 3600) < 0.01
    assert book.requests[0] == ("POST", CREATE)
    assert ("GET", f"/v1/predictions/{job.id}") in book.requests
    assert server.app.state.seen["prefer"] == [None]                    # no `Prefer: wait`: async by default
    assert job.meta["model"] == VEO


def test_a_version_pinned_route_uses_the_predictions_endpoint(connect, book):
    assert run_to_terminal(connect, veo(route_model_id=f"{VEO}:af87cbb0ee4d")).status.state == JobState.SUCCEEDED
    [job] = book.jobs.values()
    assert book.requests[0] == ("POST", "/v1/predictions") and job.meta["version"] == "af87cbb0ee4d"


def test_request_bodies_follow_each_category(tmp_path):
    image, audio, video = tmp_path / "face.png", tmp_path / "voice.mp3", tmp_path / "clip.mp4"
    for path, data in ((image, b"\x89PNG fake"), (audio, b"ID3 fake"), (video, b"\x00\x00\x00\x18ftyp")):
        path.write_bytes(data)
    t2v = ReplicateProvider.body(veo(seconds=8))
    assert t2v == {"input": {"prompt": veo().prompt, "duration": 8, "aspect_ratio": "16:9", "resolution": "720p"}}
    i2v = ReplicateProvider.body(replace(veo(), category="image_to_video", image=image))["input"]
    assert i2v["image"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    kling = ReplicateProvider.body(replace(request(route_model_id="kwaivgi/kling-v3-video", image=image),
                                           category="image_to_video"))["input"]
    assert "start_image" in kling and "image" not in kling
    hailuo = ReplicateProvider.body(request(route_model_id="minimax/hailuo-02", seconds=6))["input"]
    assert (hailuo["duration"], hailuo["resolution"]) == (6, "768p")
    wan = ReplicateProvider.body(replace(request(route_model_id="wan-video/wan-2.6-t2v"), aspect_ratio="9:16"))["input"]
    assert wan["size"] == "720*1280" and "aspect_ratio" not in wan
    wan_i2v = replace(request(route_model_id="wan-video/wan-2.6-t2v", image=image), category="image_to_video")
    assert ReplicateProvider.model_for(wan_i2v) == "wan-video/wan-2.6-i2v"
    assert ReplicateProvider.model_for(replace(veo(image=image), category="image_to_video")) == VEO
    lip = ReplicateProvider.body(replace(request(route_model_id="bytedance/omni-human", image=image, audio=audio),
                                         category="audio_lip_sync"))
    assert set(lip["input"]) == {"image", "audio"} and lip["input"]["audio"].startswith("data:audio/mpeg;base64,")
    up = ReplicateProvider.body(replace(request(route_model_id="topazlabs/video-upscale", video=video),
                                        category="video_enhance", resolution="1080p"))
    assert up == {"input": {"video": "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode(),
                            "target_resolution": "1080p"}}
    with pytest.raises(ProviderError) as exc:
        ReplicateProvider.body(replace(request(), category="video_enhance"))
    assert exc.value.kind == ProviderError.TERMINAL


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_prediction(connect, book, fault):
    assert_transient_submit_fault_retried(connect, veo(), book, fault, submit_path=CREATE)


@pytest.mark.parametrize("fault", TRANSIENT_POLL_FAULTS)
def test_transient_poll_faults_are_retried(connect, book, fault):
    assert_transient_poll_fault_retried(connect, veo(), book, fault)


@pytest.mark.slow
def test_throttling_honours_retry_after(connect, book):
    book.faults.add("submit", "429")

    async def scenario(a):
        started = asyncio.get_running_loop().time()
        await a.submit(veo())
        return asyncio.get_running_loop().time() - started

    assert using(connect, scenario) >= 1.0           # the fake's Retry-After: 1, not the 0.01 s backoff


@pytest.mark.parametrize("fault, kind, text", [
    ("fail-policy", ProviderError.TERMINAL, "(E005)"),
    ("fail-invalid", ProviderError.TERMINAL, "ValueError"),
    ("fail-retryable", ProviderError.RETRYABLE, "(code: PA)"),
])
def test_failed_predictions_carry_replicates_error_and_are_classified(connect, book, fault, kind, text):
    assert_failed_job_is_classified(connect, veo(), book, fault, kind=kind, says=text)


def test_input_validation_failure_on_create_is_terminal(connect, book):
    with pytest.raises(ProviderError) as exc:
        submit_once(connect, veo(prompt=""))
    assert exc.value.kind == ProviderError.TERMINAL
    assert "422" in str(exc.value) and "Input validation failed" in str(exc.value)
    assert book.total_submissions == 0


def test_stuck_prediction_can_be_cancelled_while_processing_but_not_after_it_finished(connect, book):
    book.faults.add("job", "stuck")

    async def scenario(a):
        stuck = await a.submit(veo("a"))
        done = await a.submit(veo("b", prompt="other"))
        await until_ended(*book.jobs.values())           # "done" has finished; the stuck one would have too
        still = (await a.poll(stuck)).state
        accepted = await a.cancel(stuck)         # Replicate cancels running predictions too
        refused = await a.cancel(done)           # succeeded: the prediction comes back unchanged
        return still, accepted, refused, (await a.poll(stuck)).state, (await a.poll(done)).state

    assert using(connect, scenario) == (JobState.RUNNING, True, False, JobState.CANCELED, JobState.SUCCEEDED)


def test_wrong_token_is_fatal_with_replicates_401(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, key="r8_wrong-token"), veo()), book,
                              secrets=["r8_wrong-token"], says=["401", "You did not pass a valid authentication token"])


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, veo())
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match)


CREATED, COMPLETED = "2025-06-02T10:00:00.000000Z", "2025-06-02T10:01:30.500000Z"


@pytest.mark.parametrize("prediction, state, kind", [
    ({"id": "p", "status": "starting", "created_at": CREATED}, JobState.QUEUED, None),
    ({"id": "p", "status": "processing", "logs": "50%"}, JobState.RUNNING, None),
    ({"id": "p", "status": "succeeded", "output": "https://replicate.delivery/xezq/out.mp4", "created_at": CREATED,
      "completed_at": COMPLETED}, JobState.SUCCEEDED, None),
    ({"id": "p", "status": "succeeded", "output": ["https://replicate.delivery/xezq/out.mp4"],
      "created_at": CREATED, "completed_at": COMPLETED}, JobState.SUCCEEDED, None),
    ({"id": "p", "status": "succeeded", "output": None}, JobState.FAILED, ProviderError.RETRYABLE),
    ({"id": "p", "status": "failed", "error": "The input or output was flagged as sensitive. (E005)"},
     JobState.FAILED, ProviderError.TERMINAL),
    ({"id": "p", "status": "failed", "error": "Prediction interrupted; please retry (code: PA)"},
     JobState.FAILED, ProviderError.RETRYABLE),
    ({"id": "p", "status": "canceled"}, JobState.CANCELED, None),
    ({"id": "p", "status": "aborted"}, JobState.CANCELED, None),
])
def test_status_mapping_from_documented_payloads(prediction, state, kind):
    status = ReplicateProvider.status_from(prediction)
    assert (status.state, status.error_kind) == (state, kind)
    if state == JobState.SUCCEEDED:
        assert status.output_url == "https://replicate.delivery/xezq/out.mp4"
        assert status.latency_seconds == 90.5
        assert status.url_expires_at == dt.datetime(2025, 6, 2, 11, 1, 30, 500000, tzinfo=dt.timezone.utc)

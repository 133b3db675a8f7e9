"""Replicate predictions adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from dataclasses import replace

import pytest

from tests.providers.conftest import poll_until_terminal, request, run, serve
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.jobs import JobBook
from video_pipeline.providers.fakes.replicate import create_app
from video_pipeline.providers.replicate import ReplicateProvider
from video_pipeline.store import fetch

TOKEN = "test-replicate-token"
VEO = "google/veo-3.1-fast"
CREATE = f"/v1/models/{VEO}/predictions"


@pytest.fixture
def book(tmp_path) -> JobBook:
    return JobBook(latency=0.3, work_dir=tmp_path / "fake-work")


@pytest.fixture
def server(book):
    srv = serve(create_app(book, api_token=TOKEN))
    yield srv
    srv.stop()


def adapter(server, token: str = TOKEN) -> ReplicateProvider:
    a = ReplicateProvider(token, base_url=server.url)
    a.backoff_base = 0.01
    return a


def veo(job_key: str = "k1", **kw):
    return request(job_key, **{"route_model_id": VEO, **kw})


async def finish(a: ReplicateProvider, req=None):
    return await poll_until_terminal(a, await a.submit(req or veo()))


def test_happy_path_goes_through_every_status_and_downloads_a_real_mp4(server, book, tmp_path):
    async def go():
        a = adapter(server)
        try:
            return await finish(a)
        finally:
            await a.aclose()

    status, seen = run(go())
    [job] = book.jobs.values()
    assert seen == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED]
    assert status.latency_seconds == pytest.approx(0.3, abs=0.01)       # completed_at - created_at
    completed = dt.datetime.fromtimestamp(job.created + job.latency, dt.timezone.utc)
    assert abs((status.url_expires_at - completed).total_seconds() - 3600) < 0.01
    fetch(status.output_url, tmp_path / "out.mp4")
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(2, abs=0.1)
    assert book.requests[0] == ("POST", CREATE)
    assert ("GET", f"/v1/predictions/{job.id}") in book.requests
    assert server.app.state.seen["prefer"] == [None]                    # no `Prefer: wait`: async by default
    assert job.meta["model"] == VEO and book.total_submissions == 1


def test_a_version_pinned_route_uses_the_predictions_endpoint(server, book):
    async def go():
        a = adapter(server)
        try:
            return await finish(a, veo(route_model_id=f"{VEO}:af87cbb0ee4d"))
        finally:
            await a.aclose()

    status, _ = run(go())
    assert status.state == JobState.SUCCEEDED
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


@pytest.mark.parametrize("fault", ["429", "429-no-retry-after", "500", "503", "reset"])
def test_transient_submit_faults_are_retried_and_create_exactly_one_prediction(server, book, fault):
    book.faults.add("submit", fault)

    async def go():
        a = adapter(server)
        try:
            return await a.submit(veo())
        finally:
            await a.aclose()

    prediction_id = run(go())
    assert prediction_id in book.jobs
    assert book.total_submissions == 1
    assert [p for m, p in book.requests if m == "POST"] == [CREATE] * 2


@pytest.mark.parametrize("fault", ["429", "500", "reset"])
def test_transient_poll_faults_are_retried(server, book, fault):
    async def go():
        a = adapter(server)
        try:
            prediction_id = await a.submit(veo())
            book.faults.add("poll", fault)
            return await poll_until_terminal(a, prediction_id)
        finally:
            await a.aclose()

    status, _ = run(go())
    assert status.state == JobState.SUCCEEDED and status.output_url


def test_throttling_honours_retry_after(server, book):
    book.faults.add("submit", "429")
    started = []

    async def go():
        a = adapter(server)
        try:
            started.append(asyncio.get_running_loop().time())
            await a.submit(veo())
            return asyncio.get_running_loop().time() - started[0]
        finally:
            await a.aclose()

    assert run(go()) >= 1.0                        # the fake's Retry-After: 1, not the 0.01 s backoff


@pytest.mark.parametrize("fault, kind, text", [
    ("fail-policy", ProviderError.TERMINAL, "(E005)"),
    ("fail-invalid", ProviderError.TERMINAL, "ValueError"),
    ("fail-retryable", ProviderError.RETRYABLE, "(code: PA)"),
])
def test_failed_predictions_carry_replicates_error_and_are_classified(server, book, fault, kind, text):
    book.faults.add("job", fault)

    async def go():
        a = adapter(server)
        try:
            return await finish(a)
        finally:
            await a.aclose()

    status, _ = run(go())
    assert (status.state, status.error_kind) == (JobState.FAILED, kind)
    assert text in status.error


def test_input_validation_failure_on_create_is_terminal(server, book):
    async def go():
        a = adapter(server)
        try:
            await a.submit(veo(prompt=""))
        finally:
            await a.aclose()

    with pytest.raises(ProviderError) as exc:
        run(go())
    assert exc.value.kind == ProviderError.TERMINAL
    assert "422" in str(exc.value) and "Input validation failed" in str(exc.value)
    assert book.total_submissions == 0


def test_stuck_prediction_can_be_cancelled_while_processing_but_not_after_it_finished(server, book):
    book.faults.add("job", "stuck")

    async def go():
        a = adapter(server)
        try:
            stuck = await a.submit(veo("a"))
            done = await a.submit(veo("b", prompt="other"))
            await asyncio.sleep(0.5)
            still = (await a.poll(stuck)).state
            accepted = await a.cancel(stuck)         # Replicate cancels running predictions too
            refused = await a.cancel(done)           # succeeded: the prediction comes back unchanged
            return still, accepted, refused, (await a.poll(stuck)).state, (await a.poll(done)).state
        finally:
            await a.aclose()

    assert run(go()) == (JobState.RUNNING, True, False, JobState.CANCELED, JobState.SUCCEEDED)


def test_wrong_token_is_fatal_with_replicates_401(server, book):
    async def go():
        a = adapter(server, token="r8_wrong-token")
        try:
            await a.submit(veo())
        finally:
            await a.aclose()

    with pytest.raises(ProviderError) as exc:
        run(go())
    assert exc.value.kind == ProviderError.FATAL
    assert "401" in str(exc.value) and "You did not pass a valid authentication token" in str(exc.value)
    assert "r8_wrong-token" not in str(exc.value)
    assert book.total_submissions == 0


@pytest.mark.parametrize("fault, match", [("expired", "403"), ("truncated", "truncated")])
def test_expired_and_truncated_downloads_are_errors_not_clips(server, book, tmp_path, fault, match):
    async def go():
        a = adapter(server)
        try:
            return await finish(a)
        finally:
            await a.aclose()

    status, _ = run(go())
    book.faults.add("download", fault)
    with pytest.raises(Exception, match=match):
        fetch(status.output_url, tmp_path / "x.mp4")


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

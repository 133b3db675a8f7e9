"""BytePlus ModelArk (Seedance) adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import base64
import datetime as dt
from functools import partial

import httpx
import pytest

from tests.providers.conftest import poll_until_terminal, request
from tests.providers.contract import (
    DOWNLOAD_FAULTS,
    TRANSIENT_POLL_FAULTS,
    TRANSIENT_SUBMIT_FAULTS,
    assert_download_fault_raises,
    assert_failed_job_is_classified,
    assert_happy_path,
    assert_terminal_before_any_call,
    assert_transient_poll_fault_retried,
    assert_transient_submit_fault_retried,
    assert_wrong_key_is_fatal,
    cancel_stuck_then_pending,
    fake_and_adapter,
    run_to_terminal,
    submit_once,
    using,
)
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.ark import ArkProvider
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.ark import create_app

KEY = "test-ark-key"
MODEL = "dreamina-seedance-2-0-260128"
TASKS = "/api/v3/contents/generations/tasks"
MEDIA = PROJECT_ROOT / "data" / "samples" / "media"


app, adapter = fake_and_adapter(create_app, ArkProvider, KEY)


def seedance(job_key: str = "k1", **kw):
    return request(job_key, **{"route_model_id": "seedance-2-0", "seconds": 4, **kw})


def test_happy_path_goes_through_every_status_and_downloads_a_real_mp4(connect, book, tmp_path):
    outcome = run_to_terminal(connect, seedance())
    status = outcome.status
    assert 0 <= status.latency_seconds <= 1          # Ark stamps tasks in whole Unix seconds
    to_expiry = status.url_expires_at - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(hours=23, minutes=59) < to_expiry <= dt.timedelta(hours=24)
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4",
                            seen=[JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], seconds=4)
    assert (job.meta["model"], job.meta["ratio"], job.meta["resolution"], job.seconds) == (MODEL, "16:9", "720p", 4.0)


def test_request_body_puts_duration_ratio_and_resolution_at_the_top_level():
    body = ArkProvider("k").body(seedance(seconds=7, options={"seed": 42}))
    assert body == {"model": MODEL, "content": [{"type": "text", "text": request().prompt}], "ratio": "16:9",
                    "resolution": "720p", "duration": 7, "generate_audio": False, "watermark": False, "seed": 42}
    assert [ArkProvider.duration_for(s) for s in (2, 4, 6.5, 15, 20)] == [4, 4, 7, 15, 15]
    assert ArkProvider.model_for("dreamina-seedance-2-0-fast-260128") == "dreamina-seedance-2-0-fast-260128"


def test_an_image_alone_is_the_first_frame():
    [_, image] = ArkProvider("k").body(seedance(image=MEDIA / "bottle.png"))["content"]
    assert image["role"] == "first_frame"
    encoded = base64.b64encode((MEDIA / "bottle.png").read_bytes()).decode()
    assert image["image_url"]["url"] == "data:image/png;base64," + encoded


@pytest.mark.parametrize("offset, expected", [(2.0, 5.0), (7.0, 3.0)])
def test_audio_becomes_a_reference_cut_from_the_segments_offset(tmp_path, offset, expected):
    body = ArkProvider("k").body(seedance(seconds=5, image=MEDIA / "bottle.png", audio=MEDIA / "beat.m4a",
                                          audio_offset=offset))
    _, image, audio = body["content"]
    assert image["role"] == "reference_image"        # reference mode: no first frame next to an audio reference
    assert (audio["type"], audio["role"]) == ("audio_url", "reference_audio")
    prefix = "data:audio/wav;base64,"
    assert audio["audio_url"]["url"].startswith(prefix)
    wav = tmp_path / "ref.wav"
    wav.write_bytes(base64.b64decode(audio["audio_url"]["url"][len(prefix):]))
    info = probe(wav)                                 # beat.m4a is 10 s long: from 7 s only 3 s remain
    assert info.audio_codec == "pcm_s16le" and info.duration == pytest.approx(expected, abs=0.05)


def test_image_and_audio_references_are_accepted_by_the_service(connect, book):
    req = seedance(seconds=5, image=MEDIA / "bottle.png", audio=MEDIA / "beat.m4a", audio_offset=1.0)
    assert run_to_terminal(connect, req).status.state == JobState.SUCCEEDED
    [job] = book.jobs.values()
    assert job.meta["roles"] == ["reference_image", "reference_audio"]


@pytest.mark.parametrize("kw", [dict(audio=MEDIA / "beat.m4a"), dict(video=MEDIA / "street.mp4")])
def test_inputs_ark_cannot_take_are_refused_before_anything_is_sent(kw):
    assert_terminal_before_any_call(lambda: ArkProvider("k").body(seedance(**kw)))


@pytest.mark.parametrize("content, message", [
    ([{"type": "text", "text": "x"}, {"type": "audio_url", "audio_url": {"url": "https://a/b.wav"},
                                      "role": "reference_audio"}], "Audio references require"),
    ([{"type": "text", "text": "x"},
      {"type": "image_url", "image_url": {"url": "https://a/b.png"}, "role": "first_frame"},
      {"type": "image_url", "image_url": {"url": "https://a/c.png"}, "role": "reference_image"},
      {"type": "audio_url", "audio_url": {"url": "https://a/b.wav"}, "role": "reference_audio"}], "cannot be mixed"),
])
def test_the_fake_refuses_reference_combinations_ark_refuses(server, book, content, message):
    answer = httpx.post(f"{server.url}{TASKS}", json={"model": MODEL, "content": content},
                        headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidParameter" and message in answer.json()["error"]["message"]
    assert book.total_submissions == 0


def test_an_unknown_model_id_is_terminal(connect, book):
    with pytest.raises(ProviderError) as exc:
        submit_once(connect, seedance(route_model_id="seedance-9-0"))
    assert exc.value.kind == ProviderError.TERMINAL and "InvalidEndpointOrModel.NotFound" in str(exc.value)
    assert [p for _, p in book.requests] == [TASKS]


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    assert_transient_submit_fault_retried(connect, seedance(), book, fault, submit_path=TASKS,
                                          book_id=lambda task_id: task_id.removeprefix("cgt-"))


@pytest.mark.parametrize("fault", TRANSIENT_POLL_FAULTS)
def test_transient_poll_faults_are_retried(connect, book, fault):
    assert_transient_poll_fault_retried(connect, seedance(), book, fault)


@pytest.mark.parametrize("fault, kind, code", [
    ("fail-policy", ProviderError.TERMINAL, "OutputVideoSensitiveContentDetected"),
    ("fail-invalid", ProviderError.TERMINAL, "InvalidParameter"),
    ("fail-retryable", ProviderError.RETRYABLE, "InternalServiceError"),
])
def test_failed_tasks_carry_the_providers_code_and_are_classified(connect, book, fault, kind, code):
    assert_failed_job_is_classified(connect, seedance(), book, fault, kind=kind, says=code)


def test_stuck_task_stays_running_and_only_a_queued_task_is_cancelled(connect, book):
    cancels = cancel_stuck_then_pending(connect, book, seedance("a"), seedance("b", prompt="other"))
    # running: no DELETE is sent for the stuck task; the queued one is deleted
    assert (cancels.still, cancels.refused, cancels.accepted, cancels.after.state) == (JobState.RUNNING, False, True,
                                                                                      JobState.CANCELED)
    assert [p for m, p in book.requests if m == "DELETE"] == [f"{TASKS}/{cancels.pending_id}"]


def test_cancel_never_deletes_a_finished_task(connect, book):
    async def scenario(a):
        task_id = await a.submit(seedance())
        await poll_until_terminal(a, task_id)
        return await a.cancel(task_id), (await a.poll(task_id)).state

    assert using(connect, scenario) == (False, JobState.SUCCEEDED)
    assert "DELETE" not in [m for m, _ in book.requests]


def test_wrong_key_is_fatal_with_the_providers_401(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, key="wrong-secret"), seedance()), book,
                              secrets=["wrong-secret"], says=["401", "AuthenticationError"])


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, seedance())
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match)


def _task(status: str, **kw) -> dict:
    return {"id": "cgt-20250331175019-68d9t", "model": MODEL, "status": status, "created_at": 1743414619,
            "updated_at": 1743414619, **kw}


@pytest.mark.parametrize("payload, state, kind", [
    (_task("queued"), JobState.QUEUED, None),
    (_task("running"), JobState.RUNNING, None),
    (_task("succeeded", updated_at=1743414709, content={"video_url": "https://ark-content.example/v.mp4"},
           usage={"completion_tokens": 108900, "total_tokens": 108900}), JobState.SUCCEEDED, None),
    (_task("failed", error={"code": "OutputVideoSensitiveContentDetected.PolicyViolation", "message": "x"}),
     JobState.FAILED, ProviderError.TERMINAL),
    (_task("failed", error={"code": "InputImageSensitiveContentDetected.PrivacyInformation", "message": "x"}),
     JobState.FAILED, ProviderError.TERMINAL),
    (_task("failed", error={"code": "InvalidParameter", "message": "x"}), JobState.FAILED, ProviderError.TERMINAL),
    (_task("failed", error={"code": "AccountOverdueError", "message": "x"}), JobState.FAILED, ProviderError.FATAL),
    (_task("failed", error={"code": "ServerOverloaded", "message": "x"}), JobState.FAILED, ProviderError.RETRYABLE),
    (_task("failed", error={"code": "InternalServiceError", "message": "x"}), JobState.FAILED, ProviderError.RETRYABLE),
    (_task("expired"), JobState.FAILED, ProviderError.RETRYABLE),
    (_task("cancelled"), JobState.CANCELED, None),
])
def test_status_mapping_from_documented_payloads(payload, state, kind):
    status = ArkProvider.status_from(payload)
    assert (status.state, status.error_kind) == (state, kind)
    if state == JobState.SUCCEEDED:
        assert status.output_url == "https://ark-content.example/v.mp4" and status.latency_seconds == 90
        assert status.url_expires_at == dt.datetime(2025, 4, 1, 9, 51, 49, tzinfo=dt.timezone.utc)

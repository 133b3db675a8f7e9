"""Runway adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.providers.conftest import poll_until_terminal, request, until_ended
from tests.providers.contract import (
    FAKES_ONLY,
    DOWNLOAD_FAULTS,
    SLOW_429,
    TRANSIENT_SUBMIT_FAULTS,
    Outcome,
    assert_download_fault_raises,
    assert_failed_job_is_classified,
    assert_happy_path,
    assert_terminal_before_any_call,
    assert_transient_poll_fault_retried,
    assert_transient_submit_fault_retried,
    assert_wrong_key_is_fatal,
    fake_and_adapter,
    finish,
    run_to_terminal,
    submit_once,
    using,
)
from tests.support.services import served
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes import JobBook
from video_pipeline.providers.fakes.runway import create_app
from video_pipeline.providers.runway import THROTTLED_POLL_SECONDS, RunwayProvider
from video_pipeline.storage.store import fetch

KEY = "key_" + "0123456789abcdef" * 8
MEDIA = Path(__file__).resolve().parents[2] / "data" / "samples" / "media"


app, adapter = fake_and_adapter(create_app, RunwayProvider, KEY)


def shot(*args, route_model_id: str = "gen4.5", **kw):
    """A shot routed to a model Runway serves (the fake refuses unknown model ids, as Runway does)."""
    return request(*args, route_model_id=route_model_id, **kw)


def test_happy_path_goes_through_every_status_and_downloads_a_real_mp4(connect, book, tmp_path):
    async def scenario(a):
        job_id = await a.submit(shot(route_model_id="veo3.1_fast", seconds=2))
        first = await a.poll(job_id)
        status, seen = await poll_until_terminal(a, job_id)
        return first, Outcome(job_id, status, seen, a)

    first, outcome = using(connect, scenario)
    status = outcome.status
    assert first.state == JobState.QUEUED and first.poll_after is None      # PENDING, not THROTTLED
    assert status.latency_seconds is None          # a Runway task carries createdAt only, no finish time
    assert status.url_expires_at is not None
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4",
                            seen=[JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], seconds=2)
    assert job.meta == {"model": "veo3.1_fast", "endpoint": "/v1/text_to_video", "resolution": "720p"}


def test_running_tasks_report_progress(connect, book):
    async def scenario(a):
        job_id = await a.submit(shot(route_model_id="gen4.5"))
        await asyncio.sleep(0.2)
        return await a.poll(job_id)

    status = using(connect, scenario)
    assert status.state == JobState.RUNNING
    assert 0.25 <= status.progress < 1.0


def test_request_body_is_camel_case_with_a_runway_ratio():
    body = RunwayProvider("k").body(shot(route_model_id="veo3.1", seconds=8, options={"seed": 7, "audio": False}))
    assert body == {"model": "veo3.1", "promptText": shot().prompt, "ratio": "1280:720", "duration": 8,
                    "seed": 7, "audio": False}
    tall = RunwayProvider("k").body(replace(shot(route_model_id="veo3.1"), resolution="1080p", aspect_ratio="9:16"))
    assert tall["ratio"] == "1080:1920"


def test_category_picks_the_endpoint_and_inputs_travel_as_data_uris(connect, book):
    image = shot(route_model_id="gen4.5", image=MEDIA / "bottle.png")
    image = replace(image, category="image_to_video")
    video = replace(shot(route_model_id="gen4_aleph", seconds=5, video=MEDIA / "street.mp4"),
                    category="video_to_video", aspect_ratio="1:1")

    async def scenario(a):
        return [await a.submit(image), await a.submit(video)]

    i2v, v2v = (book.jobs[j] for j in using(connect, scenario))
    assert (i2v.meta["endpoint"], v2v.meta["endpoint"]) == ("/v1/image_to_video", "/v1/video_to_video")
    i2v_body = RunwayProvider("k").body(image)
    assert i2v_body["promptImage"].startswith("data:image/png;base64,")
    assert base64.b64decode(i2v_body["promptImage"].split(",", 1)[1]) == (MEDIA / "bottle.png").read_bytes()
    v2v_body = RunwayProvider("k").body(video)
    assert v2v_body["model"] == "gen4_aleph" and v2v_body["ratio"] == "960:960"
    assert v2v_body["videoUri"].startswith("data:video/mp4;base64,")
    assert "duration" not in v2v_body               # Aleph's output is as long as its input
    assert v2v.aspect_ratio == "1:1"


def test_prompt_over_1000_utf16_units_is_refused_before_any_request(connect, book):
    # 600 emoji are 600 code points but 1200 UTF-16 code units, which is what Runway counts
    long = shot(prompt="🌊" * 600)
    with pytest.raises(ProviderError) as exc:
        submit_once(connect, long)
    assert exc.value.kind == ProviderError.TERMINAL
    assert "1200 UTF-16 code units" in str(exc.value) and "at most 1000" in str(exc.value)
    assert book.requests == []
    assert RunwayProvider("k").body(shot(prompt="a" * 1000))["promptText"] == "a" * 1000


def test_categories_runway_does_not_serve_are_terminal():
    assert_terminal_before_any_call(lambda: RunwayProvider("k").body(replace(shot(), category="video_enhance")),
                                    "video_enhance")


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    assert_transient_submit_fault_retried(connect, shot(), book, fault, submit_path="/v1/text_to_video")


@pytest.mark.parametrize("fault", [SLOW_429, "503", "reset"])
def test_transient_poll_faults_are_retried(connect, book, fault):
    assert_transient_poll_fault_retried(connect, shot(), book, fault)


@pytest.mark.parametrize("fault, kind, code", [
    ("fail-policy", ProviderError.TERMINAL, "SAFETY.INPUT.TEXT"),
    ("fail-invalid", ProviderError.TERMINAL, "ASSET.INVALID"),
    ("fail-retryable", ProviderError.RETRYABLE, "INPUT_PREPROCESSING.INTERNAL"),
])
def test_failed_tasks_carry_the_failure_code_and_are_classified(connect, book, fault, kind, code):
    outcome = assert_failed_job_is_classified(connect, shot(), book, fault, kind=kind, says=code)
    assert outcome.status.error.startswith(code + ": ")


def test_tasks_over_the_concurrency_limit_are_throttled_with_a_longer_poll_hint(tmp_path):
    book = JobBook(latency=2.0, work_dir=tmp_path / "fake-work")

    async def scenario(a):
        ids = [await a.submit(shot(str(i), prompt=f"shot {i}")) for i in range(3)]
        return [await a.poll(i) for i in ids]

    with served(create_app(book, api_key=KEY, concurrency=2)) as srv:
        first, second, third = using(partial(adapter, srv), scenario)
    assert [s.state for s in (first, second, third)] == [JobState.QUEUED] * 3
    assert (first.poll_after, second.poll_after) == (None, None)
    assert third.poll_after == THROTTLED_POLL_SECONDS


def test_stuck_task_stays_running_and_cancel_is_a_delete_only_while_unfinished(connect, book):
    book.faults.add("job", "stuck")

    async def scenario(a):
        stuck = await a.submit(shot("a"))
        await until_ended(*book.jobs.values())           # a job without the fault would have finished
        still = (await a.poll(stuck)).state
        cancelled = await a.cancel(stuck)
        after = (await a.poll(stuck)).state
        done = await a.submit(shot("b", prompt="other"))
        await poll_until_terminal(a, done)
        refused = await a.cancel(done)        # DELETE would erase a finished task's output
        kept = (await a.poll(done)).state
        return still, cancelled, after, refused, kept

    assert using(connect, scenario) == (JobState.RUNNING, True, JobState.CANCELED, False, JobState.SUCCEEDED)
    assert [p for m, p in book.requests if m == "DELETE"] == [f"/v1/tasks/{next(iter(book.jobs))}"]


def test_wrong_key_is_fatal_with_runways_401(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, key="key_wrong_secret"), shot()), book,
                              secrets=["key_wrong_secret"], says=["401", "Invalid API key"])


def test_exhausted_credits_are_fatal_and_validation_errors_terminal():
    a = RunwayProvider("k")
    credits = httpx.Response(400, json={"error": "You do not have enough credits to run this task."})
    invalid = httpx.Response(400, json={"error": "Validation of body failed",
                                        "issues": [{"path": ["ratio"], "message": "Invalid enum value"}]})
    assert a.error_kind(credits) == ProviderError.FATAL
    assert a.error_kind(invalid) == ProviderError.TERMINAL
    assert a.error_message(invalid) == "Validation of body failed (ratio: Invalid enum value)"


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, shot())
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match)


@pytest.mark.slow
def test_refresh_output_url_re_signs_an_expired_url(book, tmp_path):
    async def scenario(a):
        outcome = await finish(a, shot())
        await asyncio.sleep(1.1)
        return outcome.status, await a.refresh_output_url(outcome.job_id)

    with served(create_app(book, api_key=KEY, url_lifetime=1.0)) as srv:
        stale, fresh = using(partial(adapter, srv), scenario)
        with pytest.raises(ProviderError, match="403"):
            fetch(stale.output_url, tmp_path / "stale.mp4", policy=FAKES_ONLY)
        assert fresh.state == JobState.SUCCEEDED and fresh.output_url != stale.output_url
        fetch(fresh.output_url, tmp_path / "fresh.mp4", policy=FAKES_ONLY)
    assert probe(tmp_path / "fresh.mp4").duration == pytest.approx(2, abs=0.1)


@pytest.mark.parametrize("payload, state, kind, poll_after", [
    ({"id": "t", "createdAt": "2024-11-06T10:00:00.000Z", "status": "PENDING"}, JobState.QUEUED, None, None),
    ({"id": "t", "createdAt": "2024-11-06T10:00:00.000Z", "status": "THROTTLED"}, JobState.QUEUED, None,
     THROTTLED_POLL_SECONDS),
    ({"id": "t", "createdAt": "2024-11-06T10:00:00.000Z", "status": "RUNNING", "progress": 0.42},
     JobState.RUNNING, None, None),
    ({"id": "t", "createdAt": "2024-11-06T10:00:00.000Z", "status": "SUCCEEDED",
      "output": ["https://dnznrvs05pmza.cloudfront.net/v.mp4?_jwt=x"]}, JobState.SUCCEEDED, None, None),
    ({"id": "t", "createdAt": "2024-11-06T10:00:00.000Z", "status": "SUCCEEDED", "output": []},
     JobState.FAILED, ProviderError.RETRYABLE, None),
    ({"id": "t", "status": "FAILED", "failure": "x", "failureCode": "SAFETY.OUTPUT.VIDEO"},
     JobState.FAILED, ProviderError.TERMINAL, None),
    ({"id": "t", "status": "FAILED", "failure": "x", "failureCode": "INPUT_PREPROCESSING.SAFETY.TEXT"},
     JobState.FAILED, ProviderError.TERMINAL, None),
    ({"id": "t", "status": "FAILED", "failure": "x", "failureCode": "INTERNAL.BAD_OUTPUT.CODE01"},
     JobState.FAILED, ProviderError.TERMINAL, None),
    ({"id": "t", "status": "FAILED", "failure": "x", "failureCode": "INTERNAL"},
     JobState.FAILED, ProviderError.RETRYABLE, None),
    ({"id": "t", "status": "CANCELLED"}, JobState.CANCELED, None, None),
])
def test_status_mapping_from_documented_payloads(payload, state, kind, poll_after):
    status = RunwayProvider.status_from(payload)
    assert (status.state, status.error_kind, status.poll_after) == (state, kind, poll_after)
    if payload.get("progress") is not None:
        assert status.progress == 0.42
    if state == JobState.SUCCEEDED:
        assert status.output_url == payload["output"][0] and status.url_expires_at is not None
    if payload.get("failureCode"):
        assert status.error == f"{payload['failureCode']}: x"

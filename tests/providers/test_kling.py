"""Kling adapter against its fake over real loopback HTTP."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from functools import partial

import httpx
import jwt
import pytest

from tests.providers.conftest import poll_until_terminal, request, run
from tests.providers.contract import (
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
    fast_retries,
    opened,
    run_to_terminal,
    submit_once,
)
from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.kling import create_app
from video_pipeline.providers.kling import KlingProvider
from video_pipeline.providers.live import adapter_class

# Kling secret keys are 32 characters; shorter ones would trip PyJWT's HMAC key-length warning.
AK, SK = "test-kling-access-key-0123456789ab", "test-kling-secret-key-0123456789ab"
T2V = "/v1/videos/text2video"


@pytest.fixture
def app(book):
    return create_app(book, access_key=AK, secret_key=SK)


def adapter(server, ak: str = AK, sk: str = SK) -> KlingProvider:
    return fast_retries(KlingProvider(ak, sk, base_url=server.url))


def kling(job_key: str = "k1", seconds: int = 5, **kw):
    return request(job_key, route_model_id="kling-v3", seconds=seconds, **kw)


def task_id(job_id: str) -> str:
    """The fake's task id: the part after `{family}:`."""
    return job_id.split(":", 1)[1]


def png(tmp_path):
    path = tmp_path / "first.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nfake-frame-bytes")
    return path


def test_happy_path_goes_through_every_status_and_downloads_a_real_mp4(connect, book, latency, tmp_path):
    outcome = run_to_terminal(connect, kling())
    status = outcome.status
    assert status.latency_seconds == pytest.approx(latency, abs=0.01)
    job = assert_happy_path(outcome, book, tmp_path / "out.mp4",
                            seen=[JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], seconds=5)
    assert outcome.job_id == f"text2video:{job.id}"
    assert status.url_expires_at.timestamp() == pytest.approx(job.created + 0.4 + 30 * 86400, abs=1)
    assert (job.meta["model"], job.meta["mode"], job.meta["external_task_id"]) == ("kling-v3", "std", "k1")
    assert ("GET", f"{T2V}/{job.id}") in book.requests


def test_image_to_video_uses_its_own_family_for_submit_and_poll(connect, book, tmp_path):
    image = png(tmp_path)
    outcome = run_to_terminal(connect, kling(image=image))
    [job] = book.jobs.values()
    assert outcome.job_id == f"image2video:{job.id}" and outcome.status.state == JobState.SUCCEEDED
    assert job.meta["image"] == base64.b64encode(image.read_bytes()).decode()
    assert ("POST", "/v1/videos/image2video") in book.requests
    assert ("GET", f"/v1/videos/image2video/{job.id}") in book.requests


def test_request_bodies_follow_the_documented_fields(tmp_path):
    a = KlingProvider(AK, SK)
    t2v = a.body(replace(kling(seconds=10, options={"negative_prompt": "blur"}), resolution="1080p", aspect_ratio="1:1"))
    assert t2v == {"model_name": "kling-v3", "prompt": request().prompt, "mode": "pro", "duration": "10",
                   "aspect_ratio": "1:1", "external_task_id": "k1", "negative_prompt": "blur"}
    image = png(tmp_path)
    i2v = a.body(kling(image=image), external_task_id="k1-2")
    assert i2v == {"model_name": "kling-v3", "prompt": request().prompt, "mode": "std", "duration": "5",
                   "external_task_id": "k1-2", "image": base64.b64encode(image.read_bytes()).decode()}
    assert not i2v["image"].startswith("data:")


@pytest.mark.parametrize("kw, match", [({"seconds": 6}, "5 or 10"), ({"audio": "a.wav"}, "prompt and a start image")])
def test_inputs_kling_cannot_take_are_terminal_before_any_call(kw, match, tmp_path):
    if "audio" in kw:
        kw["audio"] = tmp_path / kw["audio"]
    assert_terminal_before_any_call(
        lambda: KlingProvider(AK, SK).body(request(route_model_id="kling-v3", **{"seconds": 5, **kw})), match)


def test_the_bearer_token_is_the_documented_hs256_jwt_and_is_reminted_before_expiry():
    a = KlingProvider(AK, SK)
    now = time.time()
    token = a.token(now)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SK, algorithms=["HS256"])
    assert claims == {"iss": AK, "exp": int(now) + 1800, "nbf": int(now) - 5}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SK.upper(), algorithms=["HS256"])
    assert a.token(now + 1000) == token                  # still 800 s left: reused
    fresh = a.token(now + 1600)                          # 200 s left: a new one
    later = jwt.decode(fresh, SK, algorithms=["HS256"], options={"verify_nbf": False})
    assert fresh != token and (later["exp"], later["nbf"]) == (int(now + 1600) + 1800, int(now + 1600) - 5)
    assert a.auth_headers() == {"Authorization": f"Bearer {a.token()}"}


def test_the_registry_builds_the_adapter_from_both_environment_keys():
    cls = adapter_class("kling")
    assert cls is KlingProvider and cls.env_keys == ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")
    provider = cls.from_keys({"KLING_ACCESS_KEY": f" {AK} ", "KLING_SECRET_KEY": f"{SK}\n"})
    assert jwt.decode(provider.token(), SK, algorithms=["HS256"])["iss"] == AK


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    assert_transient_submit_fault_retried(connect, kling(), book, fault, submit_path=T2V, book_id=task_id)


@pytest.mark.parametrize("fault", TRANSIENT_POLL_FAULTS)
def test_transient_poll_faults_are_retried(connect, book, fault):
    assert_transient_poll_fault_retried(connect, kling(), book, fault)


@pytest.mark.parametrize("fault, kind, text", [
    ("fail-policy", ProviderError.TERMINAL, "risk control"),
    ("fail-invalid", ProviderError.TERMINAL, "Invalid parameter"),
    ("fail-retryable", ProviderError.RETRYABLE, "Internal error"),
])
def test_failed_tasks_carry_the_providers_message_and_are_classified(connect, book, fault, kind, text):
    outcome = assert_failed_job_is_classified(connect, kling(), book, fault, kind=kind, says=text)
    assert outcome.seen == [JobState.QUEUED, JobState.RUNNING, JobState.FAILED]


def test_resubmitting_a_job_key_adopts_its_live_task_and_retries_past_a_failed_one(connect, book):
    book.faults.add("job", "fail-retryable")

    async def go():
        async with opened(connect) as first:
            failed_id = await first.submit(kling("k9"))
            failed, _ = await poll_until_terminal(first, failed_id)
            retry_id = await first.submit(kling("k9"))          # the engine's next attempt after a failure
        async with opened(connect) as restarted:                 # a new process, same job key
            return failed.state, failed_id, retry_id, await restarted.submit(kling("k9"))

    state, failed_id, retry_id, adopted_id = run(go())
    assert state == JobState.FAILED and retry_id != failed_id
    assert adopted_id == retry_id                                # no third task paid for
    assert book.total_submissions == 2
    assert sorted(j.meta["external_task_id"] for j in book.jobs.values()) == ["k9", "k9-2"]


def test_stuck_task_stays_running_and_cancel_is_refused_without_a_call(connect, book):
    assert_stuck_job_runs_and_cancel_is_refused_without_a_call(connect, kling(), book)


@pytest.mark.parametrize("ak, sk, code", [(AK, "wrong-secret-key-0123456789abcdef", 1002), ("wrong-access-xyz", SK, 1000)])
def test_wrong_keys_are_fatal_with_klings_401_codes(connect, book, ak, sk, code):
    assert_wrong_key_is_fatal(lambda: submit_once(partial(connect, ak=ak, sk=sk), kling()), book,
                              secrets=["wrong-secret-key-0123456789abcdef", SK], says=["HTTP 401", f"code {code}"])
    assert len(book.requests) == 1


def test_the_fake_verifies_the_token_claims_and_signature(server):
    now = int(time.time())

    def status_code(authorization: str | None) -> tuple[int, int]:
        headers = {"Authorization": authorization} if authorization is not None else {}
        r = httpx.get(f"{server.url}{T2V}/nope", headers=headers)
        return r.status_code, r.json()["code"]

    def bearer(claims: dict, secret: str = SK) -> str:
        return "Bearer " + jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})

    assert status_code(None) == (401, 1001)
    assert status_code("Bearer not-a-jwt") == (401, 1002)
    assert status_code(bearer({"iss": AK, "exp": now - 60, "nbf": now - 1900})) == (401, 1004)
    assert status_code(bearer({"iss": AK, "exp": now + 1800, "nbf": now + 600})) == (401, 1003)
    assert status_code(bearer({"iss": AK, "exp": now + 1800})) == (401, 1002)         # nbf is required
    assert status_code(bearer({"iss": AK, "exp": now + 1800, "nbf": now - 5})) == (404, 1203)


@pytest.mark.parametrize("http, code, kind", [
    (429, 1302, ProviderError.RETRYABLE), (429, 1303, ProviderError.RETRYABLE),
    (429, 1100, ProviderError.FATAL), (429, 1101, ProviderError.FATAL), (429, 1102, ProviderError.FATAL),
    (401, 1004, ProviderError.FATAL), (403, 1103, ProviderError.FATAL), (429, 1304, ProviderError.FATAL),
    (400, 1301, ProviderError.TERMINAL), (400, 1201, ProviderError.TERMINAL), (404, 1203, ProviderError.TERMINAL),
    (500, 5000, ProviderError.RETRYABLE), (504, 5002, ProviderError.RETRYABLE),
])
def test_envelope_codes_decide_the_error_kind(http, code, kind):
    response = httpx.Response(http, json={"code": code, "message": "m", "request_id": "r1"})
    a = KlingProvider(AK, SK)
    assert a.error_kind(response) == kind
    assert f"code {code}" in a.error_message(response) and "r1" in a.error_message(response)


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(connect, kling())
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match)


def _task(status: str, **extra) -> dict:
    return {"code": 0, "message": "SUCCEED", "request_id": "r",
            "data": {"task_id": "t1", "task_status": status, "task_status_msg": "",
                     "task_info": {"external_task_id": "k1"}, "created_at": 1722769557708,
                     "updated_at": 1722769677708, **extra}}


@pytest.mark.parametrize("payload, state, kind", [
    (_task("submitted"), JobState.QUEUED, None),
    (_task("processing"), JobState.RUNNING, None),
    (_task("succeed", task_result={"videos": [{"id": "v1", "url": "https://cdn.example/v1.mp4", "duration": "5"}]}),
     JobState.SUCCEEDED, None),
    (_task("failed", task_status_msg="Failure to pass the risk control system"), JobState.FAILED, ProviderError.TERMINAL),
    (_task("failed", task_status_msg="Invalid parameter: image too small"), JobState.FAILED, ProviderError.TERMINAL),
    (_task("failed", task_status_msg="Internal error"), JobState.FAILED, ProviderError.RETRYABLE),
    (_task("failed"), JobState.FAILED, ProviderError.RETRYABLE),
])
def test_status_mapping_from_documented_payloads(payload, state, kind):
    status = KlingProvider.status_from(payload)
    assert (status.state, status.error_kind) == (state, kind)
    if state == JobState.SUCCEEDED:
        assert status.output_url == "https://cdn.example/v1.mp4" and status.latency_seconds == 120
        assert status.url_expires_at.timestamp() == pytest.approx(1722769677.708 + 30 * 86400)

"""Webhook delivery end to end over loopback HTTP: each fake provider signs its delivery with its own scheme and
POSTs it to the callback the adapter registered; the real receiver verifies it and writes the ledger.

Per provider: a finished job arrives as "succeeded", a failed one as "failed"; a forged delivery is refused (401,
nothing recorded), a replayed one is refused the second time (409). Also: dropped and canceled jobs send nothing,
MiniMax's challenge comes first, and the receiver takes fal's keys from the fake's JWKS URL."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, replace

import httpx
import pytest

from tests.providers.conftest import request
from tests.support.services import free_port, stop_soon, wait_until
from tests.support.webhooks import in_flight
from video_pipeline.config import Settings
from video_pipeline.jobs.ledger import JobLedger
from video_pipeline.providers.fakes import FakeServer, FaultPlan, JobBook
from video_pipeline.providers.fakes import fal as fake_fal
from video_pipeline.providers.fakes import gemini as fake_gemini
from video_pipeline.providers.fakes import kling as fake_kling
from video_pipeline.providers.fakes import minimax as fake_minimax
from video_pipeline.providers.fakes import replicate as fake_replicate
from video_pipeline.providers.fal import FalProvider
from video_pipeline.providers.gemini import GeminiProvider
from video_pipeline.providers.kling import KlingProvider
from video_pipeline.providers.minimax import MiniMaxProvider
from video_pipeline.providers.replicate import ReplicateProvider
from video_pipeline.jobs.webhooks import ReceiverConfig, create_receiver

TOKEN = "receiver-token-0123"
LATENCY = 0.15
WEBHOOK_DELAY = 0.3
PROVIDERS = ["replicate", "gemini", "fal", "minimax", "kling"]
FAKES = {"replicate": fake_replicate, "gemini": fake_gemini, "fal": fake_fal, "minimax": fake_minimax,
         "kling": fake_kling}
KLING_AK, KLING_SK = "test-kling-access-key-0123456789ab", "test-kling-secret-key-0123456789ab"
#: how each adapter is built against its fake, and a request its fake accepts
ADAPTERS = {
    "replicate": (lambda url, **kw: ReplicateProvider("test-replicate-token", base_url=url, **kw),
                  lambda: request(route_model_id="google/veo-3.1-fast")),
    "gemini": (lambda url, **kw: GeminiProvider("test-gemini-key", base_url=url, **kw),
               lambda: request(route_model_id="veo-3.1-fast-generate-preview", seconds=4)),
    "fal": (lambda url, **kw: FalProvider("test-fal-key", base_url=url, **kw), lambda: request(route_model_id="fal-ai/veo3.1/fast")),
    "minimax": (lambda url, **kw: MiniMaxProvider("test-minimax-key", base_url=url, **kw),
                lambda: request(route_model_id="MiniMax-Hailuo-02", seconds=6)),
    "kling": (lambda url, **kw: KlingProvider(KLING_AK, KLING_SK, base_url=url, **kw),
              lambda: request(route_model_id="kling-v3", seconds=5)),
}
#: a job fault whose finished operation reports an error the receiver reads as "failed". Gemini's fail-policy
#: (RAI-filtered: done, no error, zero samples) is read as "succeeded" by the receiver, so Gemini uses fail-invalid.
FAILING = {"replicate": "fail-policy", "gemini": "fail-invalid", "fal": "fail-policy", "minimax": "fail-policy",
           "kling": "fail-policy"}


@dataclass
class Rig:
    ledger: JobLedger
    receiver: FakeServer
    servers: dict[str, FakeServer]
    books: dict[str, JobBook]
    webhook_url: str = ""       # what the adapters register (the receiver, unless a test points elsewhere)

    def submit(self, provider: str, req=None) -> tuple[str, str]:
        """Submit through the real adapter; returns (job id, the key its webhook events are recorded under)."""
        make, default_request = ADAPTERS[provider]
        adapter = make(self.servers[provider].url, webhook_url=self.webhook_url, webhook_token=TOKEN)

        async def go():
            try:
                # a fresh job key each time: Kling's adapter would otherwise adopt an earlier test's task
                return await adapter.submit(req or replace(default_request(), job_key=uuid.uuid4().hex))
            finally:
                await adapter.aclose()

        job_id = asyncio.run(go())
        in_flight(self.ledger, provider, job_id)      # what the engine writes the moment the provider answers
        return job_id, getattr(adapter, "event_key", lambda j: j)(job_id)

    def hook(self, provider: str) -> str:
        return f"{self.receiver.url}/webhooks/{provider}"

    def wait_event(self, provider: str, key: str, timeout: float = 5.0):
        """The receiver's latest event for the job, once there is one (None if none came within `timeout`)."""
        try:
            return wait_until(lambda: self.ledger.latest_event(provider, key), timeout, f"a {provider} event")
        except TimeoutError:
            return None

    def settled(self, provider: str, timeout: float = 10.0) -> list[tuple[str, int | None]]:
        """Every POST attempt the provider's fake made, once every delivery it scheduled has run: sent (and retried,
        and replayed) or skipped (a canceled job, a dropped delivery). A further delivery cannot come after this, so
        "nothing (more) was sent" is a bounded wait on the fake's own delivery timers, not a guess of how long one
        would take. The book keeps no public record of its timers; `_timers` is read, never changed."""
        book = self.books[provider]
        wait_until(lambda: not any(timer.is_alive() for timer in list(book._timers)), timeout,
                   f"{provider}'s fake finishing its webhook deliveries")
        return list(book.deliveries)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The five fakes and the receiver, started once for this file (each test gets them reset by `rig`)."""
    tmp = tmp_path_factory.mktemp("webhook-delivery")
    ledger = JobLedger(f"sqlite:///{tmp / 'ledger.sqlite'}")
    # deliveries leave WEBHOOK_DELAY after a job ends: time for the test to write the job into the ledger, as the
    # engine does when the provider answers (the receiver stores deliveries only for jobs the ledger waits on)
    books = {name: JobBook(latency=LATENCY, work_dir=tmp / name, webhook_delay=WEBHOOK_DELAY) for name in PROVIDERS}
    servers = {name: FakeServer(FAKES[name].create_app(books[name])).start() for name in PROVIDERS}
    # the receiver learns fal's keys the way it does in production: from the JWKS URL (here the fake's)
    config = ReceiverConfig.from_settings(Settings.from_env({
        "REPLICATE_WEBHOOK_SECRET": books["replicate"].webhook_secret,
        "GEMINI_WEBHOOK_SECRET": books["gemini"].webhook_secret,
        "VIDEO_PIPELINE_FAL_JWKS_URL": f"{servers['fal'].url}/.well-known/jwks.json",
        "VIDEO_PIPELINE_WEBHOOK_TOKEN": TOKEN,
    }))
    receiver = FakeServer(create_receiver(ledger, config)).start()
    yield Rig(ledger, receiver, servers, books)
    for book in books.values():
        book.stop_webhooks()
    stop_soon(*servers.values(), receiver)
    ledger.dispose()


@pytest.fixture
def rig(fleet):
    """The fleet with no faults planned and no deliveries seen, and the adapters registering the receiver."""
    for name, book in fleet.books.items():
        fleet.settled(name)          # an earlier test's delivery still running would land in this test's list
        book.faults = FaultPlan()
        book.deliveries.clear()
        book.handshakes.clear()
    fleet.webhook_url = fleet.receiver.url + "/"
    return fleet


def expected_url(rig: Rig, provider: str) -> str:
    unsigned = provider in ("minimax", "kling")
    return rig.hook(provider) + (f"?token={TOKEN}" if unsigned else "")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_finished_job_is_delivered_signed_and_recorded_as_succeeded(rig, provider):
    started = time.monotonic()
    job_id, key = rig.submit(provider)
    event = rig.wait_event(provider, key)
    assert event is not None, f"no {provider} event for {key}; deliveries: {rig.books[provider].deliveries}"
    state, payload = event
    assert state == "succeeded"
    assert time.monotonic() - started >= LATENCY * 0.9        # sent when the job ended, not at submission
    assert rig.settled(provider) == [(expected_url(rig, provider), 200)]
    # the body is the provider's own shape, showing the finished job
    if provider == "replicate":
        assert payload["id"] == job_id and payload["status"] == "succeeded" and payload["completed_at"]
        assert payload["output"].startswith(f"{rig.servers['replicate'].url}/files/{job_id}.mp4?expires=")
    elif provider == "gemini":
        assert payload["type"] == "video.generated"
        operation = payload["data"]["operation"]
        assert operation["name"] == job_id and operation["done"] is True
        assert operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"].startswith(
            rig.servers["gemini"].url)
    elif provider == "fal":
        assert payload["request_id"] == payload["gateway_request_id"] == key
        assert payload["status"] == "OK" and payload["error"] is None
        assert payload["payload"]["video"]["content_type"] == "video/mp4"
        assert payload["payload"]["video"]["file_size"] > 1000
    elif provider == "minimax":
        assert payload == {"task_id": job_id, "status": "Success", "file_id": payload["file_id"],
                           "base_resp": {"status_code": 0, "status_msg": "success"}}
        assert payload["file_id"].isdigit()
        assert rig.books["minimax"].handshakes == [(expected_url(rig, provider), 200)]   # the challenge came first
    else:
        assert payload["code"] == 0 and payload["data"]["task_id"] == key
        assert payload["data"]["task_status"] == "succeed"
        assert payload["data"]["task_result"]["videos"][0]["url"].startswith(rig.servers["kling"].url)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_failed_job_is_recorded_as_failed(rig, provider):
    rig.books[provider].faults.add("job", FAILING[provider])
    _, key = rig.submit(provider)
    event = rig.wait_event(provider, key)
    assert event is not None
    state, payload = event
    assert state == "failed"
    if provider == "fal":
        assert payload["status"] == "ERROR" and payload["error"] == "Invalid status code: 422"
        assert payload["payload"]["detail"][0]["type"] == "content_policy_violation"
    elif provider == "minimax":
        assert payload["status"] == "Fail" and payload["base_resp"]["status_code"] == 1027
    elif provider == "gemini":
        assert payload["data"]["operation"]["error"]["code"] == 3
    elif provider == "kling":
        assert payload["data"]["task_status_msg"] == fake_kling.FAILURES["fail-policy"]
    else:
        assert "E005" in payload["error"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_forged_delivery_is_refused_and_not_recorded(rig, provider):
    rig.books[provider].faults.add("webhook", "forged")
    _, key = rig.submit(provider)
    deliveries = rig.settled(provider)
    assert [status for _, status in deliveries] == [401]          # refused: no retries of a refusal
    assert rig.ledger.latest_event(provider, key) is None
    if provider in ("minimax", "kling"):
        assert f"token={TOKEN}" not in deliveries[0][0]             # the forgery is a wrong token


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_replayed_delivery_is_refused_the_second_time(rig, provider):
    rig.books[provider].faults.add("webhook", "replay")
    _, key = rig.submit(provider)
    assert rig.wait_event(provider, key)[0] == "succeeded"
    assert rig.settled(provider) == [(expected_url(rig, provider), 200), (expected_url(rig, provider), 409)]


def test_faults_apply_one_job_at_a_time_and_dropped_or_canceled_jobs_send_nothing(rig):
    book = rig.books["replicate"]
    book.faults.add("webhook", "drop")
    _, dropped = rig.submit("replicate")
    # canceled while running: the fake's prediction ends as canceled, and a canceled job is not delivered. Its
    # latency is long enough that it is still running when the cancel comes, however loaded the machine is (at
    # LATENCY a busy CI machine let it finish first), and short enough that its delivery timer ends in `settled`.
    book.latency = 2.0
    try:
        _, canceled = rig.submit("replicate", request("cancel-me", route_model_id="google/veo-3.1-fast"))
    finally:
        book.latency = LATENCY
    response = httpx.post(f"{rig.servers['replicate'].url}/v1/predictions/{canceled}/cancel",
                          headers={"authorization": "Bearer test-replicate-token"})
    assert response.json()["status"] == "canceled"
    _, delivered = rig.submit("replicate", request("deliver-me", route_model_id="google/veo-3.1-fast"))
    assert rig.wait_event("replicate", delivered)[0] == "succeeded"
    # the canceled job's delivery ran (and sent nothing); the dropped one was never scheduled
    assert rig.settled("replicate") == [(expected_url(rig, "replicate"), 200)]
    assert rig.ledger.latest_event("replicate", dropped) is None
    assert rig.ledger.latest_event("replicate", canceled) is None


@pytest.mark.slow
def test_a_delivery_is_retried_at_most_three_times_when_the_receiver_is_down(rig):
    down = f"http://127.0.0.1:{free_port()}"            # nothing listens there
    rig.webhook_url = down
    _, key = rig.submit("kling")
    # three attempts, then the fake gives up: no fourth comes once its delivery has run to its end
    assert rig.settled("kling") == [(f"{down}/webhooks/kling?token={TOKEN}", None)] * 3
    assert rig.ledger.latest_event("kling", key) is None


def test_the_fal_fake_serves_the_public_half_of_its_signing_key(rig):
    jwks = httpx.get(f"{rig.servers['fal'].url}/.well-known/jwks.json").json()
    [key] = jwks["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and "d" not in key
    assert jwks == rig.books["fal"].jwks()
    assert JobBook().jwks() != jwks           # each book makes its own key (and secret)
    assert JobBook().webhook_secret.startswith("whsec_")

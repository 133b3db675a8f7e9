"""The webhook receiver: each provider's scheme accepts good deliveries and refuses forged, stale and replayed ones;
with webhooks on, the engine notices a completion within a second of its delivery."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

from tests.support.services import served, until, wait_until
from tests.support.webhooks import in_flight
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.jobs.engine import JobEngine
from video_pipeline.jobs.ledger import JobLedger
from video_pipeline.planning.planner import SegmentPlan
from video_pipeline.providers.base import JobState, JobStatus, ProviderRegistry
from video_pipeline.jobs.webhooks import ReceiverConfig, create_receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
TOKEN = "s3cret-token"


@pytest.fixture
def ledger(tmp_path):
    ledger = JobLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield ledger
    ledger.dispose()


@pytest.fixture
def fal_key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def client(ledger, fal_key):
    x = base64.urlsafe_b64encode(fal_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).rstrip(b"=")
    config = ReceiverConfig(replicate_secret=SECRET, gemini_secret=SECRET, token=TOKEN,
                            fal_jwks=[{"kty": "OKP", "crv": "Ed25519", "x": x.decode()}])
    with served(create_receiver(ledger, config)) as server, httpx.Client(base_url=server.url) as http:   # real HTTP
        yield http


def standard(body: dict, msg_id: str = "msg_1", when: dt.datetime | None = None, secret: str = SECRET):
    raw = json.dumps(body)
    when = when or dt.datetime.now(dt.timezone.utc)
    signature = Webhook(secret).sign(msg_id, when, raw)
    return raw, {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
                 "webhook-signature": signature, "content-type": "application/json"}


def fal_signed(key, body: dict, request_id: str = "req-1", ts: int | None = None):
    raw = json.dumps(body).encode()
    ts = str(ts or int(time.time()))
    message = "\n".join([request_id, "user-1", ts, hashlib.sha256(raw).hexdigest()]).encode()
    return raw, {"x-fal-webhook-request-id": request_id, "x-fal-webhook-user-id": "user-1",
                 "x-fal-webhook-timestamp": ts, "x-fal-webhook-signature": key.sign(message).hex()}


@pytest.mark.parametrize("provider, body, job_id", [
    ("replicate", {"id": "pred-1", "status": "succeeded", "output": "https://x/y.mp4"}, "pred-1"),
    ("gemini", {"type": "video.generated", "data": {"operation": {
        "name": "models/veo/operations/op-1", "done": True,
        "response": {"generateVideoResponse": {"generatedSamples": [{"video": {"uri": "https://x/v.mp4"}}]}}}}},
     "models/veo/operations/op-1"),
])
def test_standard_webhooks_accept_good_and_refuse_forged_stale_and_replayed(client, ledger, provider, body, job_id):
    in_flight(ledger, provider, job_id)
    raw, headers = standard(body)
    assert client.post(f"/webhooks/{provider}", content=raw, headers=headers).status_code == 200
    assert ledger.latest_event(provider, job_id)[0] == "succeeded"
    assert client.post(f"/webhooks/{provider}", content=raw, headers=headers).status_code == 409   # replay
    forged_raw, forged = standard(body, "msg_2", secret="whsec_" + base64.b64encode(b"x" * 32).decode())
    assert client.post(f"/webhooks/{provider}", content=forged_raw, headers=forged).status_code == 401
    tampered = raw.replace("succeeded", "failed") if "succeeded" in raw else raw.replace("true", "false")
    _, good_headers = standard(body, "msg_3")
    assert client.post(f"/webhooks/{provider}", content=tampered, headers=good_headers).status_code == 401
    stale_raw, stale = standard(body, "msg_4", when=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    assert client.post(f"/webhooks/{provider}", content=stale_raw, headers=stale).status_code == 401


def test_veo_operation_emptied_by_the_safety_filter_is_recorded_as_failed(client, ledger):
    body = {"type": "video.generated", "data": {"operation": {
        "name": "models/veo/operations/op-2", "done": True,
        "response": {"generateVideoResponse": {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["x"]}}}}}
    in_flight(ledger, "gemini", "models/veo/operations/op-2")
    raw, headers = standard(body, "msg_rai")
    assert client.post("/webhooks/gemini", content=raw, headers=headers).status_code == 200
    assert ledger.latest_event("gemini", "models/veo/operations/op-2")[0] == "failed"


def test_fal_ed25519_accepts_good_and_refuses_forged_stale_and_replayed(client, ledger, fal_key):
    in_flight(ledger, "fal", "fal-ai/veo3.1/requests/req-1")     # fal's deliveries name the last part
    body = {"request_id": "req-1", "status": "OK", "payload": {"video": {"url": "https://v3.fal.media/x.mp4"}}}
    raw, headers = fal_signed(fal_key, body)
    assert client.post("/webhooks/fal", content=raw, headers=headers).status_code == 200
    assert ledger.latest_event("fal", "req-1")[0] == "succeeded"
    assert client.post("/webhooks/fal", content=raw, headers=headers).status_code == 409
    other = Ed25519PrivateKey.generate()
    raw2, forged = fal_signed(other, body, ts=int(time.time()) + 1)
    assert client.post("/webhooks/fal", content=raw2, headers=forged).status_code == 401
    raw3, stale = fal_signed(fal_key, body, ts=int(time.time()) - 600)
    assert client.post("/webhooks/fal", content=raw3, headers=stale).status_code == 401
    raw4, headers4 = fal_signed(fal_key, body, ts=int(time.time()) + 2)
    assert client.post("/webhooks/fal", content=raw4.replace(b"OK", b"ERROR"), headers=headers4).status_code == 401


def test_minimax_challenge_is_echoed_and_unsigned_callbacks_need_the_token(client, ledger):
    assert client.post(f"/webhooks/minimax?token={TOKEN}", json={"challenge": "abc"}).json() == {"challenge": "abc"}
    in_flight(ledger, "minimax", "t-1")
    in_flight(ledger, "kling", "text2video:k-1")                  # Kling's deliveries name the task id
    status = {"task_id": "t-1", "status": "Success", "file_id": "f-1", "base_resp": {"status_code": 0}}
    assert client.post("/webhooks/minimax", json=status).status_code == 401
    assert client.post("/webhooks/minimax?token=wrong", json=status).status_code == 401
    assert client.post(f"/webhooks/minimax?token={TOKEN}", json=status).status_code == 200
    assert client.post(f"/webhooks/minimax?token={TOKEN}", json=status).status_code == 409
    assert ledger.latest_event("minimax", "t-1")[0] == "succeeded"
    kling = {"code": 0, "data": {"task_id": "k-1", "task_status": "succeed"}}
    assert client.post(f"/webhooks/kling?token={TOKEN}", json=kling).status_code == 200
    assert ledger.latest_event("kling", "k-1")[0] == "succeeded"


class SlowPollProvider:
    """Finishes its job at once but is polled on a 20-second-p50 schedule: only a webhook can make it prompt."""

    name = "replicate"
    latency_scale = 1.0

    def __init__(self):
        self.polls = 0

    async def submit(self, request):
        return "pred-42"

    async def poll(self, job_id):
        self.polls += 1
        return JobStatus(JobState.SUCCEEDED, output_url="https://example.invalid/x.mp4")

    async def cancel(self, job_id):
        return False

    async def aclose(self):
        pass


def test_with_webhooks_on_a_completion_is_noticed_within_a_second_of_delivery(ledger, client):
    catalog = load_catalog(PROJECT_ROOT / "data" / "catalog.yaml")
    provider = SlowPollProvider()
    registry = ProviderRegistry(catalog, {"replicate": provider})
    registry.provider_for = lambda model: (provider, "google/veo-3.1-fast")
    engine = JobEngine(catalog, registry, PROJECT_ROOT / "data", PROJECT_ROOT / "data" / "work", ledger=ledger,
                       webhooks=True)
    segment = SegmentPlan(campaign="c", video_id="v", segment_index=0, segment_count=1, shot_index=0,
                          category="text_to_video", model="veo-3-1-fast", fallbacks=(), reason="r", prompt="p",
                          seconds=4, generate_seconds=4, start_seconds=0, target_seconds=4, resolution="720p",
                          aspect_ratio="16:9", image=None, video=None, audio=None, audio_offset_seconds=0,
                          continuity="parallel", transition="cut", chained_from=None, options={}, est_cost_usd=0.4,
                          est_latency_seconds=20, p95_latency_seconds=45, job_key="k-webhook")

    async def scenario():
        task = asyncio.create_task(engine.run([segment]))
        # the delivery comes once the provider has the job: when the ledger holds its id
        await until(lambda: any(r.provider_job_id == "pred-42" for r in ledger.rows("k-webhook")), 10,
                    "the engine submitting the job")
        raw, headers = standard({"id": "pred-42", "status": "succeeded"}, "msg_42")
        delivered = time.monotonic()
        assert await asyncio.to_thread(client.post, "/webhooks/replicate", content=raw, headers=headers)
        [outcome] = await task
        return outcome, time.monotonic() - delivered

    outcome, lag = asyncio.run(scenario())
    assert outcome.state == "succeeded"
    assert lag < 1.0          # without the webhook the first poll would come about 19 s after the submit
    assert provider.polls == 1


def test_adapters_register_the_receiver_when_a_public_webhook_url_is_set():
    from tests.providers.conftest import request
    from video_pipeline.providers.fal import FalProvider
    from video_pipeline.providers.gemini import GeminiProvider
    from video_pipeline.providers.kling import KlingProvider
    from video_pipeline.providers.minimax import MiniMaxProvider
    from video_pipeline.providers.replicate import ReplicateProvider

    from video_pipeline.config import Settings
    from video_pipeline.providers.live import configured_providers

    req = request(seconds=6, route_model_id="m")
    assert "webhookConfig" not in GeminiProvider("k").body(req)
    # what the settings module reads from VIDEO_PIPELINE_WEBHOOK_URL / _TOKEN reaches every adapter it builds
    settings = Settings.from_env({"VIDEO_PIPELINE_WEBHOOK_URL": "https://hooks.example.com/",
                                  "VIDEO_PIPELINE_WEBHOOK_TOKEN": TOKEN, "GEMINI_API_KEY": "k",
                                  "REPLICATE_API_TOKEN": "k", "MINIMAX_API_KEY": "k",
                                  "KLING_ACCESS_KEY": "a" * 32, "KLING_SECRET_KEY": "b" * 32})
    adapters = configured_providers(settings)
    assert isinstance(adapters["gemini"], GeminiProvider) and isinstance(adapters["kling"], KlingProvider)
    assert adapters["gemini"].body(req)["webhookConfig"] == {"uris": ["https://hooks.example.com/webhooks/gemini"]}
    assert isinstance(adapters["replicate"], ReplicateProvider)
    assert adapters["replicate"].webhook_fields() == {"webhook": "https://hooks.example.com/webhooks/replicate",
                                                      "webhook_events_filter": ["completed"]}
    assert isinstance(adapters["minimax"], MiniMaxProvider)
    assert adapters["minimax"].body(req)["callback_url"] == f"https://hooks.example.com/webhooks/minimax?token={TOKEN}"
    kling = adapters["kling"].body(request(seconds=5, route_model_id="kling-v3"))
    assert kling["callback_url"] == f"https://hooks.example.com/webhooks/kling?token={TOKEN}"
    assert FalProvider.event_key("fal-ai/veo3.1/requests/abc-123") == "abc-123"
    assert KlingProvider.event_key("text2video:task-9") == "task-9"


@pytest.mark.parametrize("provider", ["replicate", "gemini", "fal", "minimax", "kling"])
def test_oversize_deliveries_are_refused_with_413_before_anything_is_verified_or_written(client, ledger, provider,
                                                                                          fal_key):
    from video_pipeline.jobs.webhooks import MAX_BODY_BYTES

    in_flight(ledger, provider, "pred-big")
    big = json.dumps({"id": "pred-big", "status": "succeeded", "logs": "x" * MAX_BODY_BYTES})
    raw, headers = standard(json.loads(big), "msg_big")
    headers.update(fal_signed(fal_key, {"request_id": "pred-big"})[1])   # well-formed headers of every scheme
    answer = client.post(f"/webhooks/{provider}?token={TOKEN}", content=raw, headers=headers)
    assert answer.status_code == 413
    # a body that declares no length (chunked) is cut off while it streams in
    chunked = client.post(f"/webhooks/{provider}?token={TOKEN}", headers=headers,
                          content=(raw[i:i + 65536].encode() for i in range(0, len(raw), 65536)))
    assert chunked.status_code == 413
    assert ledger.latest_event(provider, "pred-big") is None


def test_fal_keys_are_fetched_again_after_their_lifetime_and_the_last_ones_serve_while_the_jwks_is_down():
    from tests.support.webhook_attacks import Jwks, jwk
    from video_pipeline.jobs.webhooks import FalKeys

    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    jwks = Jwks([jwk(old)])
    keys = FalKeys(url=jwks.url, lifetime=0.3, refetch_after=0.3)
    assert keys.prime().startswith("fal: 1 key(s)")
    assert keys.verify(old.sign(b"m"), b"m")
    jwks.keys = [jwk(new)]                                 # fal rotates: the old key is withdrawn
    wait_until(lambda: keys.verify(new.sign(b"m"), b"m"), 5, "the new key, once the cached set has expired")
    assert not keys.verify(old.sign(b"m"), b"m")
    fetches = jwks.fetches
    jwks.close()                                           # the JWKS goes away: the keys fetched last still serve
    # each verification after the lifetime tries the JWKS (at most every 0.3 s), fails, and goes on with the last keys
    wait_until(lambda: keys.verify(new.sign(b"m"), b"m") and keys.error, 5, "a failed fetch after the lifetime")
    assert "URLError" in keys.error or "Connection" in keys.error, keys.error
    assert jwks.fetches == fetches

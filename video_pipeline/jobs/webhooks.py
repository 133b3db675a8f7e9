"""The webhook receiver: verifies each provider's signature scheme and writes deliveries to the ledger.

A delivery only wakes the engine: it then polls the provider for the job's real state, so a forged event can at
worst cause one extra poll. Forged, stale and replayed deliveries are refused before anything is written.

Schemes:
- Standard Webhooks (Replicate, Google Veo): HMAC-SHA256 over "{id}.{timestamp}.{body}", 5-minute tolerance,
  verified with the `standardwebhooks` library; secret `whsec_...` from REPLICATE_WEBHOOK_SECRET / GEMINI_WEBHOOK_SECRET.
- fal: Ed25519 over "request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)" against any key of fal's JWKS
  (VIDEO_PIPELINE_FAL_JWKS_URL or VIDEO_PIPELINE_FAL_JWKS_FILE), 5-minute tolerance.
- MiniMax and Kling send no signature: their callback URL carries a secret token
  (`?token=$VIDEO_PIPELINE_WEBHOOK_TOKEN`); MiniMax's `{"challenge": ...}` handshake is echoed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from video_pipeline.jobs.ledger import JobLedger

TOLERANCE_SECONDS = 300
#: the largest delivery read: provider events are small JSON (a Replicate prediction with its logs is the biggest)
MAX_BODY_BYTES = 1024 * 1024
FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"

#: provider status words → the common state, for what the event says (the engine still polls for the truth)
EVENT_STATES = {
    "succeeded": "succeeded", "success": "succeeded", "succeed": "succeeded", "completed": "succeeded", "ok": "succeeded",
    "failed": "failed", "fail": "failed", "error": "failed", "canceled": "canceled", "cancelled": "canceled",
    "processing": "running", "running": "running", "starting": "queued", "queueing": "queued",
}


@dataclass
class ReceiverConfig:
    replicate_secret: str | None = None
    gemini_secret: str | None = None
    fal_jwks: list[dict] = field(default_factory=list)
    token: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "ReceiverConfig":
        """The receiver's secrets from the settings; fal's public keys from VIDEO_PIPELINE_FAL_JWKS_FILE, else
        fetched from VIDEO_PIPELINE_FAL_JWKS_URL (fal's own when a fal key is set)."""
        jwks: list[dict] = []
        if settings.fal_jwks_file:
            jwks = json.loads(Path(settings.fal_jwks_file).read_text())["keys"]
        elif settings.secret("FAL_KEY") or settings.fal_jwks_url:
            url = settings.fal_jwks_url or FAL_JWKS_URL
            jwks = httpx.get(url, timeout=10).raise_for_status().json()["keys"]
        return cls(replicate_secret=settings.secret("REPLICATE_WEBHOOK_SECRET"),
                   gemini_secret=settings.secret("GEMINI_WEBHOOK_SECRET"), fal_jwks=jwks,
                   token=settings.webhook_token.get_secret_value() if settings.webhook_token else None)


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verify_standard(secret: str | None, headers, body: bytes) -> str:
    """Standard Webhooks: returns the delivery id, or raises Refused (401) for a forged or stale delivery."""
    if not secret:
        raise Refused(503, "no signing secret configured for this provider")
    try:
        Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
    except WebhookVerificationError as exc:
        raise Refused(401, f"signature rejected: {exc}") from None
    return headers["webhook-id"]


def verify_fal(jwks: list[dict], headers, body: bytes, now: float | None = None) -> str:
    """fal: Ed25519 over request id, user id, timestamp and the body's SHA-256, within the tolerance."""
    try:
        request_id = headers["x-fal-webhook-request-id"]
        user_id = headers["x-fal-webhook-user-id"]
        timestamp = headers["x-fal-webhook-timestamp"]
        signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    except (KeyError, ValueError):
        raise Refused(401, "missing or malformed fal signature headers") from None
    if abs((now or time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        raise Refused(401, "timestamp outside the 5-minute tolerance")
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
    for key in jwks:
        if key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
            continue
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
            return f"{request_id}:{timestamp}"
        except InvalidSignature:
            continue
    raise Refused(401, "signature matches no key of the JWKS")


def verify_token(expected: str | None, request: Request) -> None:
    if not expected:
        raise Refused(503, "VIDEO_PIPELINE_WEBHOOK_TOKEN is not set; unsigned callbacks are refused")
    if not hmac.compare_digest(request.query_params.get("token", ""), expected):
        raise Refused(401, "missing or wrong token")


def _state(value) -> str:
    return EVENT_STATES.get(str(value or "").lower(), "running")


def create_receiver(ledger: JobLedger, config: ReceiverConfig) -> Starlette:
    """The ASGI app `video-pipeline webhooks serve` runs: POST /webhooks/{replicate,gemini,fal,minimax,kling}."""

    def record(provider: str, delivery_id: str, job_id: str, state: str, payload: dict) -> JSONResponse:
        if not job_id:
            return JSONResponse({"error": "no job id in the delivery"}, status_code=400)
        if not ledger.record_event(provider=provider, delivery_id=delivery_id, provider_job_id=job_id,
                                   state=state, payload=payload):
            return JSONResponse({"error": "replayed delivery"}, status_code=409)
        return JSONResponse({"ok": True})

    async def read_body(request: Request) -> bytes:
        """The body, refused with 413 past MAX_BODY_BYTES (by its declared length, or while it streams in)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def guarded(request: Request, handler) -> JSONResponse:
        try:
            body = await read_body(request)
            return await handler(request, body)
        except Refused as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "malformed body"}, status_code=400)

    async def replicate(request: Request) -> JSONResponse:
        async def handle(request, body):
            delivery = verify_standard(config.replicate_secret, request.headers, body)
            payload = json.loads(body)
            return record("replicate", delivery, payload.get("id", ""), _state(payload.get("status")), payload)
        return await guarded(request, handle)

    async def gemini(request: Request) -> JSONResponse:
        async def handle(request, body):
            delivery = verify_standard(config.gemini_secret, request.headers, body)
            payload = json.loads(body)
            operation = payload.get("data", payload).get("operation", payload.get("data", payload))
            done = operation.get("done")
            samples = (operation.get("response", {}).get("generateVideoResponse", {}).get("generatedSamples") or [])
            # done without an error but with no video: the safety filter removed it, which is a failure
            state = ("failed" if operation.get("error") or (done and not samples)
                     else "succeeded" if done else "running")
            return record("gemini", delivery, operation.get("name", ""), state, payload)
        return await guarded(request, handle)

    async def fal(request: Request) -> JSONResponse:
        async def handle(request, body):
            delivery = verify_fal(config.fal_jwks, request.headers, body)
            payload = json.loads(body)
            return record("fal", delivery, payload.get("request_id", ""), _state(payload.get("status")), payload)
        return await guarded(request, handle)

    async def minimax(request: Request) -> JSONResponse:
        async def handle(request, body):
            verify_token(config.token, request)
            payload = json.loads(body)
            if "challenge" in payload:
                return JSONResponse({"challenge": payload["challenge"]})
            delivery = hashlib.sha256(body).hexdigest()
            return record("minimax", delivery, str(payload.get("task_id", "")), _state(payload.get("status")), payload)
        return await guarded(request, handle)

    async def kling(request: Request) -> JSONResponse:
        async def handle(request, body):
            verify_token(config.token, request)
            payload = json.loads(body)
            task = payload.get("data", payload)
            delivery = hashlib.sha256(body).hexdigest()
            return record("kling", delivery, str(task.get("task_id", "")), _state(task.get("task_status")), payload)
        return await guarded(request, handle)

    return Starlette(routes=[
        Route("/webhooks/replicate", replicate, methods=["POST"]),
        Route("/webhooks/gemini", gemini, methods=["POST"]),
        Route("/webhooks/fal", fal, methods=["POST"]),
        Route("/webhooks/minimax", minimax, methods=["POST"]),
        Route("/webhooks/kling", kling, methods=["POST"]),
    ])

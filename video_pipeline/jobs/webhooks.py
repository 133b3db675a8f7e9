"""The webhook receiver: verifies each provider's signature scheme and writes deliveries to the ledger.

A delivery only wakes the engine: it then polls the provider for the job's real state, so a forged event can at
worst cause one extra poll. Forged, stale and replayed deliveries are refused before anything is written.

Schemes:
- Standard Webhooks (Replicate, Google Veo): HMAC-SHA256 over "{id}.{timestamp}.{body}", 5-minute tolerance,
  verified with the `standardwebhooks` library; secret `whsec_...` from REPLICATE_WEBHOOK_SECRET / GEMINI_WEBHOOK_SECRET.
- fal: Ed25519 over "request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)" against any key of fal's JWKS
  (VIDEO_PIPELINE_FAL_JWKS_URL or VIDEO_PIPELINE_FAL_JWKS_FILE), 5-minute tolerance; the JWKS is cached for
  JWKS_LIFETIME_SECONDS and fetched again when a signature matches no cached key (at most once per
  JWKS_REFETCH_SECONDS); with VIDEO_PIPELINE_FAL_USER_ID set, deliveries signed for another account are refused.
- MiniMax and Kling send no signature: their callback URL carries a secret token
  (`?token=$VIDEO_PIPELINE_WEBHOOK_TOKEN`); MiniMax's `{"challenge": ...}` handshake is echoed.

Each delivery meets the cheap checks first, and nothing is read or written until they pass: method and path,
content type, the scheme's headers present once each and well-formed (the token, for the unsigned schemes),
timestamp within the tolerance, declared length within the cap and the shared body budget; then the body is read
within its deadline, the signature verified, and the JSON object parsed into a `WebhookEvent`. An event is stored
only when the ledger has its job in flight; others are acknowledged and counted. `webhook_server.py` serves the
app with the connection-level bounds (header size, receipt deadline, connections).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt import PyJWKClient, PyJWKSet
from jwt.exceptions import PyJWTError
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.jobs.ledger import EVENT_BODY_LIMIT, JobLedger
from video_pipeline.providers.fal import FalProvider
from video_pipeline.providers.kling import KlingProvider

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
#: the largest delivery read: provider events are small JSON (a Replicate prediction with its logs is the biggest)
MAX_BODY_BYTES = 1024 * 1024
#: delivery ids, fal request and user ids: 1 to this many visible ASCII characters (the ledger keeps 256)
MAX_ID_CHARS = 200
#: a job id named in a delivery's body
MAX_JOB_ID_CHARS = 256
#: what a body of undeclared length (chunked) reserves from the budget before it is read: the most uvicorn hands
#: the app at once (its 64 KiB high-water mark plus one 256 KiB socket read)
UNDECLARED_RESERVE = 320 * 1024
#: a signature header (Standard Webhooks may carry several space-separated signatures while a secret rotates)
MAX_SIGNATURE_CHARS = 1024
FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
#: how long a fetched JWKS is used before it is fetched again
JWKS_LIFETIME_SECONDS = 900
#: the least time between two fetches of the JWKS prompted by a signature no cached key verifies (or by a failure)
JWKS_REFETCH_SECONDS = 30
JWKS_TIMEOUT_SECONDS = 5

#: the providers the receiver has a route for, and their signature scheme
SCHEMES = {"replicate": "standard", "gemini": "standard", "fal": "fal", "minimax": "token", "kling": "token"}
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
FAL_HEADERS = ("x-fal-webhook-request-id", "x-fal-webhook-user-id", "x-fal-webhook-timestamp",
               "x-fal-webhook-signature")
#: how a provider's deliveries name a job, from our job id (the adapters' own `event_key`)
EVENT_KEYS = {"fal": FalProvider.event_key, "kling": KlingProvider.event_key}

#: provider status words → the common state, for what the event says (the engine still polls for the truth)
EVENT_STATES = {
    "succeeded": "succeeded", "success": "succeeded", "succeed": "succeeded", "completed": "succeeded", "ok": "succeeded",
    "failed": "failed", "fail": "failed", "error": "failed", "canceled": "canceled", "cancelled": "canceled",
    "processing": "running", "running": "running", "starting": "queued", "queueing": "queued",
}

_ID = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_ID_CHARS)
_DIGITS = re.compile(r"[0-9]{1,12}")
_ED25519_HEX = re.compile(r"[0-9a-fA-F]{128}")


@dataclass(frozen=True)
class ReceiverLimits:
    """The receiver's bounds; docs/RELIABILITY.md ("Webhook receiver under abuse") has the measurements behind them."""

    #: request line and headers together (h11's largest incomplete event): more is refused with 400 and closed
    header_bytes: int = 16 * 1024
    #: seconds a connection may take to deliver a request's head (from its opening or the previous answer), and
    #: to finish sending a body the receiver refused without reading; then it is closed
    head_seconds: float = 10.0
    #: seconds a body may take to arrive once its head is in (the ASGI read deadline): then 408, closed
    body_seconds: float = 10.0
    max_body_bytes: int = MAX_BODY_BYTES
    #: bodies up to this size are read without drawing on the shared budget (provider events are a few KB)
    small_body_bytes: int = 16 * 1024
    #: bytes of larger bodies held at once across all requests; a request that would pass it gets 503 Retry-After
    body_budget_bytes: int = 32 * 1024 * 1024
    #: connections and requests in progress (uvicorn's limit_concurrency): requests past it get 503
    connections: int = 4096
    #: seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive)
    keep_alive_seconds: int = 5


@dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery as the engine needs it: whose job, which delivery, the state it reports, and its JSON
    when that fits the ledger's EVENT_BODY_LIMIT (else None: the event is kept without it)."""

    provider: str
    job_id: str
    delivery_id: str
    state: str
    received_at: float
    body: str | None = None


class Refused(Exception):
    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


class FalKeys:
    """fal's public keys: fixed ones (a file, or given), and those of a JWKS URL, fetched through PyJWT, cached for
    `lifetime` seconds, and fetched again when a signature matches no key (at most once per `refetch_after`
    seconds, which also spaces attempts after a failed fetch). The last keys fetched stay in use while a new
    fetch fails. Blocking: call from a worker thread."""

    def __init__(self, keys: list[dict] | None = None, url: str | None = None, *,
                 lifetime: float = JWKS_LIFETIME_SECONDS, refetch_after: float = JWKS_REFETCH_SECONDS,
                 timeout: float = JWKS_TIMEOUT_SECONDS):
        self.fixed = _ed25519_keys({"keys": list(keys or [])}) if keys else []
        self.url = url
        self.lifetime = lifetime
        self.refetch_after = refetch_after
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout) if url else None
        self._fetched: list[Ed25519PublicKey] = []
        self._fetched_at: float | None = None
        self._failed_at = float("-inf")
        self._miss_fetch_at = float("-inf")
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.fixed) or self._client is not None

    def count(self) -> int:
        return len(self.fixed) + len(self._fetched)

    def prime(self) -> str:
        """Fetch the JWKS now (at start-up); a line saying where fal's keys come from and whether they loaded."""
        if self._client is None:
            return f"fal: {len(self.fixed)} key(s) from a file" if self.fixed else "fal: no JWKS configured"
        with self._lock:
            self._fetch()
        if self.error:
            return (f"fal: JWKS at {self.url} not reachable now ({self.error}); fal deliveries are refused until it "
                    f"is, tried again at most every {self.refetch_after:g} s")
        return f"fal: {len(self._fetched)} key(s) from {self.url}, refreshed every {self.lifetime:g} s"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether any of fal's keys signed `message`; a miss fetches the JWKS again when that is allowed."""
        if _any_verifies(self._current(), signature, message):
            return True
        with self._lock:
            now = time.monotonic()
            if self._client is None or now - self._miss_fetch_at < self.refetch_after or \
                    now - self._failed_at < self.refetch_after:
                return False
            self._miss_fetch_at = now
            self._fetch()
        return _any_verifies(self._current(), signature, message)

    def _current(self) -> list[Ed25519PublicKey]:
        if self._client is not None:
            with self._lock:
                now = time.monotonic()
                stale = self._fetched_at is None or now - self._fetched_at > self.lifetime
                if stale and now - self._failed_at >= self.refetch_after:
                    self._fetch()
        return self.fixed + self._fetched

    def _fetch(self) -> None:
        try:
            keys = _ed25519_keys(self._client.get_jwk_set())
        except (PyJWTError, OSError, ValueError) as exc:
            self._failed_at = time.monotonic()
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            return
        self._fetched, self._fetched_at, self.error = keys, time.monotonic(), None


def _ed25519_keys(jwks) -> list[Ed25519PublicKey]:
    jwk_set = jwks if isinstance(jwks, PyJWKSet) else PyJWKSet.from_dict(jwks)
    return [k.key for k in jwk_set.keys if isinstance(k.key, Ed25519PublicKey)]


def _any_verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


@dataclass
class ReceiverConfig:
    replicate_secret: str | None = None
    gemini_secret: str | None = None
    fal_jwks: list[dict] = field(default_factory=list)
    token: str | None = None
    fal_jwks_url: str | None = None
    fal_user_id: str | None = None
    limits: ReceiverLimits = field(default_factory=ReceiverLimits)

    def __post_init__(self):
        self.fal_keys = FalKeys(self.fal_jwks, self.fal_jwks_url)

    @classmethod
    def from_settings(cls, settings) -> "ReceiverConfig":
        """The receiver's secrets from the settings; fal's public keys from VIDEO_PIPELINE_FAL_JWKS_FILE, else from
        VIDEO_PIPELINE_FAL_JWKS_URL (fal's own when a fal key is set), fetched when first needed (see `prime`)."""
        jwks: list[dict] = []
        url = None
        if settings.fal_jwks_file:
            jwks = json.loads(Path(settings.fal_jwks_file).read_text())["keys"]
        elif settings.secret("FAL_KEY") or settings.fal_jwks_url:
            url = settings.fal_jwks_url or FAL_JWKS_URL
        return cls(replicate_secret=settings.secret("REPLICATE_WEBHOOK_SECRET"),
                   gemini_secret=settings.secret("GEMINI_WEBHOOK_SECRET"), fal_jwks=jwks, fal_jwks_url=url,
                   token=settings.webhook_token.get_secret_value() if settings.webhook_token else None,
                   fal_user_id=settings.fal_user_id)

    def configured(self) -> dict[str, bool]:
        """Which providers' deliveries can be verified (told only to an authenticated caller of /healthz)."""
        return {"replicate": bool(self.replicate_secret), "gemini": bool(self.gemini_secret),
                "fal": self.fal_keys.configured, "minimax": bool(self.token), "kling": bool(self.token)}


# --- the cheap checks, before the body is read ----------------------------------------------------------------------

def _one(request: Request, name: str, missing: str) -> str:
    """The single value of header `name`: 401 when absent, 400 when repeated (a repeated signature header would let
    what is verified and what is recorded differ)."""
    values = request.headers.getlist(name)
    if not values:
        raise Refused(401, missing)
    if len(values) > 1:
        raise Refused(400, f"header {name} is repeated; expected it once")
    return values[0]


def _within_tolerance(timestamp: str, now: float | None = None) -> None:
    if abs((now or time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        raise Refused(401, "timestamp outside the 5-minute tolerance")


def _id(value: str, name: str) -> str:
    if not _ID.fullmatch(value):
        raise Refused(400, f"{name}: expected 1 to {MAX_ID_CHARS} visible ASCII characters")
    return value


def standard_head(request: Request) -> dict[str, str]:
    """Standard Webhooks' three headers, once each and well-formed, with a timestamp within the tolerance."""
    values = {name: _one(request, name, "missing signature headers") for name in STANDARD_HEADERS}
    _id(values["webhook-id"], "webhook-id")
    if len(values["webhook-signature"]) > MAX_SIGNATURE_CHARS:
        raise Refused(400, f"webhook-signature: expected at most {MAX_SIGNATURE_CHARS} characters")
    if not _DIGITS.fullmatch(values["webhook-timestamp"]):
        raise Refused(401, "webhook-timestamp: expected whole seconds since 1970")
    _within_tolerance(values["webhook-timestamp"])
    return values


def fal_head(request: Request, user_id: str | None) -> dict[str, str]:
    """fal's four headers, once each and well-formed, from the configured account, within the tolerance."""
    values = {name: _one(request, name, "missing or malformed fal signature headers") for name in FAL_HEADERS}
    _id(values["x-fal-webhook-request-id"], "x-fal-webhook-request-id")
    _id(values["x-fal-webhook-user-id"], "x-fal-webhook-user-id")
    if not _DIGITS.fullmatch(values["x-fal-webhook-timestamp"]) or \
            not _ED25519_HEX.fullmatch(values["x-fal-webhook-signature"]):
        raise Refused(401, "missing or malformed fal signature headers")
    if user_id and not hmac.compare_digest(values["x-fal-webhook-user-id"].encode(), user_id.encode()):
        raise Refused(401, "delivery for another fal account")
    _within_tolerance(values["x-fal-webhook-timestamp"])
    return values


def token_head(request: Request, expected: str | None) -> None:
    """The unsigned schemes' one guard: the token in the callback URL (an unset token refuses like a wrong one)."""
    given = request.query_params.getlist("token")
    if len(given) > 1:
        raise Refused(400, "token is repeated; expected it once")
    if not expected or not given or not hmac.compare_digest(given[0].encode(), expected.encode()):
        raise Refused(401, "missing or wrong token")


def _head_size(request: Request, limit: int) -> None:
    """h11 refuses a head that grows past the limit before it is complete; one that arrived whole in a single read
    is measured here."""
    size = len(request.scope.get("raw_path", b"")) + len(request.scope.get("query_string", b"")) + sum(
        len(name) + len(value) + 4 for name, value in request.scope["headers"])
    if size > limit:
        raise Refused(431, f"request line and headers over {limit} bytes")


def _content_type(request: Request) -> None:
    """JSON or unstated: anything else is not a provider's delivery."""
    values = request.headers.getlist("content-type")
    if len(values) > 1:
        raise Refused(400, "header content-type is repeated; expected it once")
    kind = values[0].split(";", 1)[0].strip().lower() if values else ""
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise Refused(415, "expected content-type application/json")


class BodyBudget:
    """Bytes of bodies over the small size held at once, across every request (one event loop: no lock)."""

    def __init__(self, total: int):
        self.total = total
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.total:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class BodyReader:
    """Reads one request's body within the limits, drawing on the shared budget past the small size."""

    def __init__(self, request: Request, limits: ReceiverLimits, budget: BodyBudget):
        self.request, self.limits, self.budget = request, limits, budget
        self.held = 0
        self.received = 0

    def _need(self, size: int) -> None:
        if size > self.limits.max_body_bytes:
            raise Refused(413, f"body over {self.limits.max_body_bytes} bytes")
        extra = max(0, size - self.limits.small_body_bytes) - self.held
        if extra > 0:
            if not self.budget.take(extra):
                # closed after the answer: reading (and dropping) the rest of many large bodies is the attack's aim
                raise Refused(503, "too many large deliveries at once; retry later",
                              {"retry-after": "5", "connection": "close"})
            self.held += extra

    def declared(self) -> None:
        """The declared length against the cap and the budget, before a byte of the body is read. A body of
        unknown length (chunked) first reserves what the server may hand over in one piece."""
        declared = self.request.headers.get("content-length", "")
        self._need(int(declared) if declared.isdigit() else self.limits.small_body_bytes + UNDECLARED_RESERVE)

    async def read(self) -> bytes:
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(self.limits.body_seconds):
                async for chunk in self.request.stream():
                    self.received += len(chunk)
                    self._need(self.received)
                    chunks.append(chunk)
        except TimeoutError:
            raise Refused(408, f"body not received within {self.limits.body_seconds:g} s",
                          {"connection": "close"}) from None
        return b"".join(chunks)

    def release(self) -> None:
        self.budget.give(self.held)
        self.held = 0


# --- verification and parsing -----------------------------------------------------------------------------------

def verify_standard(secret: str | None, head: dict[str, str], body: bytes) -> str:
    """Standard Webhooks over exactly the header values checked (and recorded); returns the delivery id. An unset
    secret refuses like a wrong signature, so a caller cannot tell which providers are configured."""
    try:
        if not secret:
            raise WebhookVerificationError("No matching signature found")
        Webhook(secret).verify(body, head, json_parse=False)
    except WebhookVerificationError as exc:
        raise Refused(401, f"signature rejected: {exc}") from None
    return head["webhook-id"]


def verify_fal(keys: FalKeys, head: dict[str, str], body: bytes) -> str:
    """fal: Ed25519 over request id, user id, timestamp and the body's SHA-256; returns the delivery id."""
    request_id, timestamp = head["x-fal-webhook-request-id"], head["x-fal-webhook-timestamp"]
    message = "\n".join([request_id, head["x-fal-webhook-user-id"], timestamp,
                         hashlib.sha256(body).hexdigest()]).encode()
    if not keys.verify(bytes.fromhex(head["x-fal-webhook-signature"]), message):
        raise Refused(401, "signature matches no key of the JWKS")
    return f"{request_id}:{timestamp}"


def _state(value) -> str:
    return EVENT_STATES.get(str(value or "").lower(), "running")


def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    """A job id as the body gives it (a string or a whole number), else ''."""
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def job_and_state(provider: str, payload: dict) -> tuple[str, str]:
    """Which job a delivery is about and the state it reports, read from each provider's shape."""
    if provider == "gemini":
        data = _obj(payload.get("data", payload))
        operation = _obj(data.get("operation", data))
        done = operation.get("done") is True
        response = _obj(_obj(operation.get("response")).get("generateVideoResponse"))
        samples = response.get("generatedSamples") or []
        # done without an error but with no video: the safety filter removed it, which is a failure
        state = ("failed" if operation.get("error") or (done and not samples)
                 else "succeeded" if done else "running")
        return _text(operation.get("name")), state
    if provider == "kling":
        task = _obj(payload.get("data", payload))
        return _text(task.get("task_id")), _state(task.get("task_status"))
    key = {"replicate": "id", "fal": "request_id", "minimax": "task_id"}[provider]
    return _text(payload.get(key)), _state(payload.get("status"))


def json_object(body: bytes) -> dict:
    """A verified body's JSON: 400 unless it is an object."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise Refused(400, "body is not JSON") from None
    if not isinstance(payload, dict):
        raise Refused(400, f"body is a JSON {type(payload).__name__}; expected an object")
    return payload


def parse_delivery(provider: str, delivery_id: str, payload: dict, body: bytes) -> WebhookEvent:
    """A verified delivery as a typed event: 400 unless it names a job."""
    job_id, state = job_and_state(provider, payload)
    if not job_id:
        raise Refused(400, "no job id in the delivery")
    if len(job_id) > MAX_JOB_ID_CHARS:
        raise Refused(400, f"job id over {MAX_JOB_ID_CHARS} characters")
    text = body.decode("utf-8")
    return WebhookEvent(provider=provider, job_id=job_id, delivery_id=delivery_id, state=state,
                        received_at=time.time(), body=text if len(text) <= EVENT_BODY_LIMIT else None)


# --- the app --------------------------------------------------------------------------------------------------------

def create_receiver(ledger: JobLedger, config: ReceiverConfig) -> Starlette:
    """The ASGI app `video-pipeline webhooks serve` runs: POST /webhooks/{replicate,gemini,fal,minimax,kling} and
    GET /healthz ("ok" to anyone; with `Authorization: Bearer $VIDEO_PIPELINE_WEBHOOK_TOKEN`, which providers are
    configured and what was delivered)."""
    limits = config.limits
    budget = BodyBudget(limits.body_budget_bytes)
    counts: Counter[str] = Counter()

    def head_checks(provider: str, request: Request) -> dict[str, str]:
        scheme = SCHEMES[provider]
        if scheme == "standard":
            return standard_head(request)
        if scheme == "fal":
            return fal_head(request, config.fal_user_id)
        token_head(request, config.token)
        return {}

    async def verified(provider: str, head: dict[str, str], body: bytes) -> str:
        scheme = SCHEMES[provider]
        if scheme == "standard":
            return verify_standard(getattr(config, f"{provider}_secret"), head, body)
        if scheme == "fal":
            return await run_in_threadpool(verify_fal, config.fal_keys, head, body)
        return hashlib.sha256(body).hexdigest()

    async def store(event: WebhookEvent) -> JSONResponse:
        waiting = await run_in_threadpool(ledger.waiting_job, event.provider, event.job_id,
                                          EVENT_KEYS.get(event.provider))
        if waiting is None:
            counts["not waited for"] += 1
            return JSONResponse({"ok": True, "stored": False})
        stored = await run_in_threadpool(
            lambda: ledger.record_event(provider=event.provider, delivery_id=event.delivery_id,
                                        provider_job_id=event.job_id, state=event.state, body=event.body))
        if not stored:
            raise Refused(409, "replayed delivery")
        counts["stored"] += 1
        return JSONResponse({"ok": True, "stored": True})

    async def deliver(request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in SCHEMES:
            return JSONResponse({"error": "no such route"}, status_code=404)
        reader = BodyReader(request, limits, budget)
        try:
            _head_size(request, limits.header_bytes)
            _content_type(request)
            head = head_checks(provider, request)
            reader.declared()
            body = await reader.read()
            delivery_id = await verified(provider, head, body)
            payload = json_object(body)
            if provider == "minimax" and "challenge" in payload:
                return JSONResponse({"challenge": _text(payload["challenge"])[:MAX_ID_CHARS]})
            return await store(parse_delivery(provider, delivery_id, payload, body))
        except Refused as exc:
            counts[f"refused {exc.status}"] += 1
            log.log(logging.WARNING if exc.status in (408, 503) else logging.INFO, "webhook %s: answered %d: %s",
                    provider, exc.status, exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=exc.headers)
        except ClientDisconnect:
            counts["aborted"] += 1
            log.warning("webhook %s: the sender closed the connection after %d body bytes", provider,
                        reader.received)
            return Response(status_code=400)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            # never the exception's text: a database error quotes the statement's parameters (the payload)
            counts["ledger errors"] += 1
            log.error("webhook %s: the ledger could not take a delivery (%s); answered 503", provider,
                      type(exc).__name__)
            return JSONResponse({"error": "the ledger is unavailable; retry later"}, status_code=503,
                                headers={"retry-after": "30"})
        finally:
            reader.release()

    async def health(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {config.token}" if config.token else ""
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return JSONResponse({"ok": True})
        fal = config.fal_keys
        return JSONResponse({"ok": True, "providers": config.configured(),
                             "fal_keys": {"keys": fal.count(), "url": fal.url, "error": fal.error},
                             "deliveries": dict(counts), "body_budget_held": budget.held})

    return Starlette(routes=[
        Route("/webhooks/{provider}", deliver, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ])

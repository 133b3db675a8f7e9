"""Webhook delivery for the fakes, each signed with its provider's scheme, plus a small POST helper.

Signers share one method, `sign(url, body, delivery_id, forged=False) -> (url, headers)`: the URL to POST to (the
token-guarded schemes carry their secret there) and the headers. `forged=True` gives a delivery a receiver must
refuse: signed with a secret or key it does not know, or carrying a wrong token.

- `StandardSigner` (Replicate, Google Veo): Standard Webhooks, HMAC-SHA256 with a `whsec_` secret.
- `FalSigner`: Ed25519 over "request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)"; `jwks()` is what fal serves at
  /.well-known/jwks.json.
- `TokenSigner` (MiniMax, Kling): nothing signed; the callback URL's `?token=` is the only guard. MiniMax first
  sends a `{"challenge": ...}` handshake (`handshake()`), and only posts status once it was echoed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

TIMEOUT_SECONDS = 5.0
MAX_TRIES = 3
RETRY_BACKOFF_SECONDS = 0.2
#: statuses a sender retries (the receiver's refusals, 4xx, are final)
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}

Attempt = Callable[[str, "int | None"], None]


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class StandardSigner:
    """Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`), via `standardwebhooks`."""

    def __init__(self, secret: str):
        self.secret = secret

    def sign(self, url: str, body: bytes, delivery_id: str, forged: bool = False) -> tuple[str, dict[str, str]]:
        when = dt.datetime.now(dt.timezone.utc)
        secret = new_secret() if forged else self.secret
        signature = Webhook(secret).sign(delivery_id, when, body.decode())
        return url, {"webhook-id": delivery_id, "webhook-timestamp": str(int(when.timestamp())),
                     "webhook-signature": signature, "content-type": "application/json"}


def public_jwk(key: Ed25519PrivateKey) -> dict:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
            "kid": hashlib.sha256(raw).hexdigest()[:16], "use": "sig", "alg": "EdDSA"}


class FalSigner:
    """fal's Ed25519 scheme: `x-fal-webhook-{request-id,user-id,timestamp,signature}`, the signature in hex."""

    def __init__(self, key: Ed25519PrivateKey, user_id: str = "fake-user"):
        self.key = key
        self.user_id = user_id

    def jwks(self) -> dict:
        return {"keys": [public_jwk(self.key)]}

    def sign(self, url: str, body: bytes, delivery_id: str, forged: bool = False) -> tuple[str, dict[str, str]]:
        request_id = json.loads(body).get("request_id") or delivery_id
        timestamp = str(int(time.time()))
        message = "\n".join([request_id, self.user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
        key = Ed25519PrivateKey.generate() if forged else self.key
        return url, {"x-fal-webhook-request-id": request_id, "x-fal-webhook-user-id": self.user_id,
                     "x-fal-webhook-timestamp": timestamp, "x-fal-webhook-signature": key.sign(message).hex(),
                     "content-type": "application/json"}


class TokenSigner:
    """MiniMax and Kling sign nothing: the receiver's token rides in the callback URL the adapter registered."""

    def sign(self, url: str, body: bytes, delivery_id: str, forged: bool = False) -> tuple[str, dict[str, str]]:
        if forged:
            parts = urlsplit(url)
            query = [(k, v) for k, v in parse_qsl(parts.query) if k != "token"] + [("token", "forged-" + delivery_id)]
            url = urlunsplit(parts._replace(query=urlencode(query)))
        return url, {"content-type": "application/json"}


def post(url: str, body: bytes, headers: dict[str, str], *, tries: int = MAX_TRIES,
         timeout: float = TIMEOUT_SECONDS, on_attempt: Attempt | None = None,
         backoff: float = RETRY_BACKOFF_SECONDS) -> httpx.Response | None:
    """POST `body`, retrying network errors, 429 and 5xx up to `tries` times in all; every attempt is reported to
    `on_attempt(url, status_code or None)`. Returns the last response (None if no attempt got one)."""
    response = None
    tries = max(1, min(tries, MAX_TRIES))
    for attempt in range(1, tries + 1):
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError:
            response = None
        if on_attempt is not None:
            on_attempt(url, None if response is None else response.status_code)
        if response is not None and response.status_code not in RETRY_STATUSES:
            return response
        if attempt < tries:
            time.sleep(backoff * 2 ** (attempt - 1))
    return response


def handshake(url: str, *, on_attempt: Attempt | None = None, timeout: float = TIMEOUT_SECONDS) -> bool:
    """MiniMax's callback check: POST `{"challenge": ...}` and require the same challenge echoed back."""
    challenge = uuid.uuid4().hex
    response = post(url, json.dumps({"challenge": challenge}).encode(), {"content-type": "application/json"},
                    timeout=timeout, on_attempt=on_attempt)
    if response is None or response.status_code != 200:
        return False
    try:
        return response.json().get("challenge") == challenge
    except ValueError:
        return False

"""The one HTTP layer for provider adapters: client factory, error classification and the retry policy.

Every adapter subclasses `HttpProvider`: it gets an `httpx.AsyncClient` (injectable, so tests can point it at a
fake server), `request()` that retries rate limits, 5xx and network errors with tenacity (honouring
`Retry-After`), and errors classified as retryable, terminal (for this model) or fatal (stop the campaign).

A request that may create a paid job (a POST made inside an adapter's `submit`) is retried only when it surely
was not processed: the connection was never made, or the provider answered 408/425/429. Any other failure after
the request left (a read timeout, a reset, a proxy's 5xx) raises `SubmitUncertain`: the engine then reconciles
with the provider or leaves the decision to an operator, and never sends the request again on a guess.
"""

from __future__ import annotations

import abc
import contextvars
import datetime as dt
import email.utils
import functools
import hashlib
import random
import time
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from video_pipeline.errors import ProviderError, SubmitUncertain
from video_pipeline.providers.base import GenerationRequest, JobStatus

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
USER_AGENT = "video-pipeline/0.1"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class RetryableHTTPError(ProviderError):
    def __init__(self, message: str, retry_after: float | None = None, **kw):
        super().__init__(message, kind=ProviderError.RETRYABLE, **kw)
        self.retry_after = retry_after


def classify_status(status: int) -> str:
    """Map an HTTP status to an error kind: 401/403/402 fatal, 408/409/425/429/5xx retryable, other 4xx terminal."""
    if status in (401, 403, 402):
        return ProviderError.FATAL
    if status in (408, 409, 425, 429) or status >= 500:
        return ProviderError.RETRYABLE
    return ProviderError.TERMINAL


def _summary(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


#: set while an adapter's `submit` runs: its POSTs may create a paid job
SUBMITTING: contextvars.ContextVar[bool] = contextvars.ContextVar("vp_submitting", default=False)
#: within a `submit`: (sent at, fingerprint) of each job-creating request the provider accepted (a 2xx answer)
ANSWERED: contextvars.ContextVar[list | None] = contextvars.ContextVar("vp_answered", default=None)
#: set by the engine while it submits: called the moment a job-creating request is about to leave
SEND_HOOK: contextvars.ContextVar[Any] = contextvars.ContextVar("vp_send_hook", default=None)
#: network failures that happen before a single byte of the request is sent: the provider saw nothing
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


#: what a parser raises on an answer it did not expect (a missing key, a string where a dict was, bad JSON/UTF-8)
PARSE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
#: protocol methods whose answers are parsed → the kind of error an unparseable answer is: a submit (or a
#: request the adapter cannot build) is terminal for the model, a poll is retried (the job may still be running)
PARSED_METHODS = {"submit": ProviderError.TERMINAL, "poll": ProviderError.RETRYABLE,
                  "refresh_output_url": ProviderError.RETRYABLE, "synthesize": ProviderError.TERMINAL}


def _own_errors(method, kind: str):
    """Wrap an adapter's protocol method so a parsing failure surfaces as a ProviderError with a message."""

    @functools.wraps(method)
    async def guarded(self, *args, **kwargs):
        submitting = method.__name__ == "submit"
        token = SUBMITTING.set(True) if submitting else None
        answered = ANSWERED.set([]) if submitting else None
        try:
            return await method(self, *args, **kwargs)
        except ProviderError:
            raise
        except PARSE_ERRORS as exc:
            job_id = args[0] if args and isinstance(args[0], str) else ""
            why = f"could not use the request or the provider's answer ({type(exc).__name__}: {str(exc)[:200]})"
            if submitting and ANSWERED.get():
                # the provider accepted a job-creating request and we cannot read which job it made
                sent_at, fingerprint = ANSWERED.get()[-1]
                raise SubmitUncertain(f"{method.__name__}: {why}; the provider may have created the job",
                                      sent_at=sent_at, failed_at=dt.datetime.now(dt.timezone.utc),
                                      fingerprint=fingerprint, provider=self.name) from exc
            raise ProviderError(f"{method.__name__}: {why}", kind=kind, provider=self.name, job_id=job_id) from exc
        finally:
            if token is not None:
                SUBMITTING.reset(token)
                ANSWERED.reset(answered)
    return guarded


class HttpProvider(abc.ABC):
    """Base for adapters: subclasses set `name`, `default_base_url`, `auth_headers()` and the protocol methods.

    Each subclass's `submit`, `poll`, `refresh_output_url` and `synthesize` are wrapped so that an answer its parser
    did not expect raises ProviderError (see PARSED_METHODS), never a bare KeyError or JSONDecodeError."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, kind in PARSED_METHODS.items():
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__wrapped__", None):
                setattr(cls, name, _own_errors(method, kind))

    name = "http"
    default_base_url = ""
    latency_scale = 1.0
    #: this layer tells the engine (SEND_HOOK) the moment a job-creating request leaves
    reports_sending = True
    max_attempts = 5
    backoff_base = 1.0
    backoff_cap = 30.0

    def __init__(self, *, base_url: str | None = None, client: httpx.AsyncClient | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, webhook_url: str | None = None,
                 webhook_token: str | None = None):
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._webhook_url = (webhook_url or "").strip().rstrip("/") or None
        self._webhook_token = (webhook_token or "").strip() or None
        self._client = client
        self._owns_client = client is None
        self._timeout = timeout

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers={"user-agent": USER_AGENT},
                                             follow_redirects=True)
        return self._client

    def auth_headers(self) -> dict[str, str]:
        return {}

    def callback_url(self, unsigned: bool = False) -> str | None:
        """Where the provider should deliver webhooks, when a webhook URL (the public base URL of `video-pipeline
        webhooks serve`) is configured. Unsigned schemes (MiniMax, Kling) carry the shared token."""
        if not self._webhook_url:
            return None
        url = f"{self._webhook_url}/webhooks/{self.name}"
        return f"{url}?token={self._webhook_token}" if unsigned and self._webhook_token else url

    def download_headers(self, url: str) -> dict[str, str]:
        """Headers a download of an output URL needs (most providers: none; the URL itself is signed)."""
        return {}

    def error_message(self, response: httpx.Response) -> str:
        """The provider's own error text; adapters override to read their error envelope."""
        return _summary(response)

    def error_kind(self, response: httpx.Response) -> str:
        """Adapters override when the provider's body says more than the status (e.g. content policy)."""
        return classify_status(response.status_code)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _wait(self, retry_state) -> float:
        exc = retry_state.outcome.exception()
        hinted = getattr(exc, "retry_after", None)
        if hinted is not None:
            return min(hinted, 300.0)
        backoff = min(self.backoff_cap, self.backoff_base * 2 ** (retry_state.attempt_number - 1))
        return backoff * random.uniform(0.5, 1.0)

    async def request(self, method: str, path: str, *, job_id: str = "", creates_job: bool | None = None,
                      **kwargs: Any) -> httpx.Response:
        """Send with auth; retry 429/5xx/network errors (Retry-After first, else jittered backoff); classify the rest.

        `creates_job` (default: a POST inside `submit`) narrows the retries to failures that surely created nothing
        and turns every other failure after the request left into `SubmitUncertain`."""
        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        paid = SUBMITTING.get() and method.upper() == "POST" if creates_job is None else creates_job
        retrying = AsyncRetrying(stop=stop_after_attempt(self.max_attempts), wait=self._wait, reraise=True,
                                 retry=retry_if_exception(lambda e: isinstance(e, RetryableHTTPError)))
        async for attempt in retrying:
            with attempt:
                if paid:
                    return await self._send_once_paid(method, path, headers, kwargs)
                try:
                    response = await self.client.request(method, self.url(path), headers=headers, **kwargs)
                except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                    raise RetryableHTTPError(f"{method} {path}: {type(exc).__name__}", provider=self.name,
                                             job_id=job_id) from None
                return self._checked(method, path, response, job_id)
        raise ProviderError(f"{method} {path}: no attempt was made", provider=self.name, job_id=job_id)

    def _checked(self, method: str, path: str, response: httpx.Response, job_id: str = "") -> httpx.Response:
        if response.status_code < 400:
            return response
        kind = self.error_kind(response)
        message = f"{method} {path}: HTTP {response.status_code}: {self.error_message(response)}"
        if kind == ProviderError.RETRYABLE:
            raise RetryableHTTPError(message, retry_after_seconds(response), provider=self.name, job_id=job_id)
        raise ProviderError(message, kind=kind, provider=self.name, job_id=job_id)

    async def _send_once_paid(self, method: str, path: str, headers: dict, kwargs: dict) -> httpx.Response:
        """One try of a job-creating request: RetryableHTTPError only when nothing was created for sure."""
        request = self.client.build_request(method, self.url(path), headers=headers, **kwargs)
        fingerprint = hashlib.sha256(f"{method} {request.url.path}\n".encode() + request.read()).hexdigest()
        sent_at = dt.datetime.now(dt.timezone.utc)

        def uncertain(why: str) -> SubmitUncertain:
            return SubmitUncertain(f"{method} {path}: {why}; the provider may have created the job",
                                   sent_at=sent_at, failed_at=dt.datetime.now(dt.timezone.utc),
                                   fingerprint=fingerprint, provider=self.name)

        if (hook := SEND_HOOK.get()) is not None:
            await hook()
        try:
            response = await self.client.send(request)
        except NOT_SENT as exc:
            raise RetryableHTTPError(f"{method} {path}: {type(exc).__name__} (not sent)", provider=self.name) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise uncertain(f"no answer ({type(exc).__name__})") from None
        if 400 <= response.status_code < 500:
            # refused: nothing was created. Throttling (408/425/429) is sent again; the adapter's reading of the
            # body decides the rest (Kling's balance codes arrive as 429 and stop the campaign)
            return self._checked(method, path, response)
        if response.status_code >= 500:
            raise uncertain(f"HTTP {response.status_code} {self.error_message(response)[:120]}")
        try:
            self.created_job_answer(response)
        except (ValueError, KeyError, TypeError):
            raise uncertain("the answer was cut or unreadable") from None
        if (accepted := ANSWERED.get()) is not None:
            accepted.append((sent_at, fingerprint))
        return response

    def created_job_answer(self, response: httpx.Response) -> None:
        """Raise ValueError when a 2xx answer to a job-creating request is not whole JSON (the answer was cut)."""
        if "json" in response.headers.get("content-type", "") or response.content[:1] in (b"{", b"["):
            response.json()

    @abc.abstractmethod
    async def submit(self, request: GenerationRequest) -> str:
        """Create the provider job; return its id (the engine writes it to the ledger at once)."""

    @abc.abstractmethod
    async def poll(self, job_id: str) -> JobStatus:
        """The job's state mapped onto queued / running / succeeded / failed / canceled."""

    async def cancel(self, job_id: str) -> bool:
        return False

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


class BearerKeyProvider(HttpProvider):
    """An adapter authenticated by one API key sent as `Authorization: Bearer <key>`."""

    def __init__(self, api_key: str, **kw):
        super().__init__(**kw)
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

"""Google Veo 3.x through the Gemini API: a long-running operation per video.

Submit `POST /v1beta/models/{model}:predictLongRunning` with `{instances: [{prompt, image?}], parameters: {...}}`,
poll `GET /v1beta/{operation.name}` until `done`; the result is
`response.generateVideoResponse.generatedSamples[].video.uri`, downloaded with the same `x-goog-api-key` header.
Auth: `x-goog-api-key: $GEMINI_API_KEY` (googleapis/python-genai `_api_client.py`, `models.py`, `operations.py`).
No queued state (done=false is running), no cancel in the Gemini API SDK; RAI-filtered outputs end as failures.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import httpx

from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import HttpProvider, classify_status
from video_pipeline.providers.media_inputs import mime_type, raw_base64

#: google.rpc.Code values in a finished operation's `error.code`
RPC_INVALID_ARGUMENT, RPC_FAILED_PRECONDITION, RPC_OUT_OF_RANGE = 3, 9, 11
RPC_PERMISSION_DENIED, RPC_UNAUTHENTICATED = 7, 16
TERMINAL_RPC_CODES = {RPC_INVALID_ARGUMENT, RPC_FAILED_PRECONDITION, RPC_OUT_OF_RANGE}
FATAL_RPC_CODES = {RPC_PERMISSION_DENIED, RPC_UNAUTHENTICATED}
#: HTTP error `status` names that no retry and no other model on this key will fix
FATAL_STATUSES = {"UNAUTHENTICATED", "PERMISSION_DENIED", "FAILED_PRECONDITION"}
#: Google answers a bad key with 400 INVALID_ARGUMENT; only this ErrorInfo reason tells it from a bad request
FATAL_REASONS = {"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED"}
DURATIONS = (4, 6, 8)
# Generated videos are kept on the server for 2 days (Google docs as widely quoted; unconfirmed).
URL_LIFETIME = dt.timedelta(days=2)


def google_error(response: httpx.Response) -> dict:
    """The `error` object of a Google API error answer (`{error: {code, message, status, details}}`), or {}."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def operation_failure(error: dict) -> JobStatus:
    """A finished operation's `error` (a google.rpc.Status) as a failed job, classified by its code."""
    code = error.get("code")
    kind = (ProviderError.TERMINAL if code in TERMINAL_RPC_CODES else
            ProviderError.FATAL if code in FATAL_RPC_CODES else ProviderError.RETRYABLE)
    return JobStatus(JobState.FAILED, error=f"operation error {code}: {error.get('message', '')}", error_kind=kind)


def rai_filtered(result: dict) -> JobStatus:
    """A finished operation whose samples the safety filter removed: failed, terminal for this prompt."""
    reasons = "; ".join(result.get("raiMediaFilteredReasons", [])) or "no reason given"
    return JobStatus(JobState.FAILED, error=f"RAI filter removed the video: {reasons}",
                     error_kind=ProviderError.TERMINAL)


def veo_body(request: GenerationRequest, provider: str) -> dict:
    """`{instances: [{prompt, image?}], parameters: {aspectRatio, durationSeconds, resolution, negativePrompt?}}`, the
    predictLongRunning body the Gemini API and Vertex AI share; inputs Veo cannot take are refused before any call."""
    if request.video is not None or request.audio is not None:
        # Veo extends only its own outputs (by URI) and takes no audio input.
        raise ProviderError("Veo accepts only a prompt and an image as inputs", kind=ProviderError.TERMINAL,
                            provider=provider)
    if request.seconds not in DURATIONS:
        raise ProviderError(f"Veo clips are {'/'.join(map(str, DURATIONS))} s, not {request.seconds} s",
                            kind=ProviderError.TERMINAL, provider=provider)
    instance: dict = {"prompt": request.prompt}
    if request.image is not None:
        instance["image"] = {"bytesBase64Encoded": raw_base64(request.image), "mimeType": mime_type(request.image)}
    parameters: dict = {"aspectRatio": request.aspect_ratio, "durationSeconds": int(request.seconds),
                        "resolution": request.resolution}
    if request.options.get("negative_prompt"):
        parameters["negativePrompt"] = request.options["negative_prompt"]
    return {"instances": [instance], "parameters": parameters}


def same_origin(url: str, other: str) -> bool:
    """Whether two URLs share scheme, host and port (auth headers go only to their own origin)."""
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)


class GoogleErrors:
    """Error reading shared by Google's APIs (the Gemini API and Vertex AI): the `{error: {status, message}}`
    envelope; a bad key or credential, a denied permission or a failed precondition stop the campaign."""

    def error_message(self, response: httpx.Response) -> str:
        error = google_error(response)
        if not error:
            return super().error_message(response)
        return f"{error.get('status', '')}: {error.get('message', '')}".strip(": ")

    def error_kind(self, response: httpx.Response) -> str:
        error = google_error(response)
        reasons = {d.get("reason") for d in error.get("details", []) if isinstance(d, dict)}
        if reasons & FATAL_REASONS or error.get("status") in FATAL_STATUSES:
            return ProviderError.FATAL
        return classify_status(response.status_code)


class GeminiProvider(GoogleErrors, HttpProvider):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    env_keys = ("GEMINI_API_KEY",)

    def __init__(self, api_key: str, **kw):
        super().__init__(**kw)
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key}

    def download_headers(self, url: str) -> dict[str, str]:
        """The key header, but only for URLs on this adapter's own API host: never hand the key to another host."""
        return self.auth_headers() if same_origin(url, self.base_url) else {}

    def body(self, request: GenerationRequest) -> dict:
        body = veo_body(request, self.name)
        if hook := self.callback_url():
            body["webhookConfig"] = {"uris": [hook]}   # Veo's `video.generated` event (beta)
        return body

    @staticmethod
    def job_id_from(raw: str, route_model_id: str) -> str:
        """An operation id as an operator copies it (bare, or the whole name) in the form `submit` returns."""
        raw = raw.strip().removeprefix("v1beta/")
        return raw if raw.startswith("models/") else f"models/{route_model_id}/operations/{raw}"

    async def submit(self, request: GenerationRequest) -> str:
        response = await self.request("POST", f"/v1beta/models/{request.route_model_id}:predictLongRunning",
                                      json=self.body(request))
        return response.json()["name"]

    async def poll(self, job_id: str) -> JobStatus:
        response = await self.request("GET", f"/v1beta/{job_id}", job_id=job_id)
        return self.status_from(response.json())

    @staticmethod
    def status_from(operation: dict) -> JobStatus:
        """Map an Operation (as the Gemini API returns it) onto the common status."""
        if not operation.get("done"):
            return JobStatus(JobState.RUNNING)
        if error := operation.get("error"):
            return operation_failure(error)
        result = operation.get("response", {}).get("generateVideoResponse", {})
        uris = [s["video"]["uri"] for s in result.get("generatedSamples", []) if s.get("video", {}).get("uri")]
        if uris:
            return JobStatus(JobState.SUCCEEDED, progress=1.0, output_url=uris[0],
                             url_expires_at=dt.datetime.now(dt.timezone.utc) + URL_LIFETIME)
        if result.get("raiMediaFilteredCount"):
            return rai_filtered(result)
        return JobStatus(JobState.FAILED, error="operation finished without a video",
                         error_kind=ProviderError.RETRYABLE)

"""fal.ai queue API: one queued request per video, for fal's own models and its gateway routes to others.

Submit `POST https://queue.fal.run/{owner}/{app}[/{subpath}]` → `{request_id, response_url, status_url, cancel_url,
queue_position}`; poll `GET status_url?logs=1` → `IN_QUEUE` (+ `queue_position`) · `IN_PROGRESS` · `COMPLETED`
(a failure is COMPLETED with `error`/`error_type`, or the result GET answering an error); result `GET response_url`
→ model JSON such as `{"video": {"url", ...}}`; cancel `PUT cancel_url` (queued requests only, else 400).
The returned URLs drop the subpath, so they are used verbatim. Auth: `Authorization: Key $FAL_KEY`.
A lost submit is looked up on fal's platform API (another host, same key): `GET https://api.fal.ai/v1/models/
requests/by-endpoint?endpoint_id=…&start=…&expand=payloads&limit=…&cursor=…` → `{items[{request_id, endpoint_id,
sent_at, started_at, ended_at, status_code, duration, json_input, json_output}], next_cursor, has_more}`, sorted by
end time; its status filter knows only outcomes (success, error, user_error).
Sources: fal-ai/fal `projects/fal_client/src/fal_client/client.py`; docs.fal.ai model-endpoints/queue,
documentation/model-apis/errors and request-errors; fal.ai/docs/platform-apis/v1/models/requests/by-endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx

from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import HttpProvider, classify_status
from video_pipeline.providers.media_inputs import data_uri

STATES = {"IN_QUEUE": JobState.QUEUED, "IN_PROGRESS": JobState.RUNNING, "COMPLETED": JobState.SUCCEEDED,
          # only in a third-party schema of the queue API; mapped so they are never mistaken for "running"
          "FAILED": JobState.FAILED, "CANCELED": JobState.CANCELED, "CANCELLED": JobState.CANCELED}
#: model error `type`s (docs.fal.ai/errors) that the same input on this model will hit again
TERMINAL_TYPES = {
    "content_policy_violation", "no_media_generated", "image_too_small", "image_too_large", "image_load_error",
    "file_download_error", "face_detection_error", "file_too_large", "greater_than", "greater_than_equal",
    "less_than", "less_than_equal", "multiple_of", "sequence_too_short", "sequence_too_long", "one_of",
    "feature_not_supported", "invalid_archive", "archive_file_count_below_minimum",
    "archive_file_count_exceeds_maximum", "unsupported_image_format", "unsupported_audio_format",
    "unsupported_video_format", "audio_duration_too_long", "audio_duration_too_short",
    "video_duration_too_long", "video_duration_too_short", "bad_request", "missing",
}
#: model and request error types (documentation/model-apis/request-errors) that a later attempt may not hit
RETRYABLE_TYPES = {
    "internal_server_error", "generation_timeout", "downstream_service_error", "downstream_service_unavailable",
    "request_timeout", "startup_timeout", "runner_scheduling_failure", "runner_connection_timeout",
    "runner_disconnected", "runner_connection_refused", "runner_connection_error", "runner_incomplete_response",
    "runner_server_error", "client_disconnected", "internal_error",
}
FATAL_TYPES = {"invalid_api_key"}
CANCELED_TYPES = {"client_cancelled"}
# Old FAQ: outputs kept "at least 7 days"; the lifecycle header below asks for exactly that, so the claim holds.
URL_LIFETIME = dt.timedelta(days=7)
LIFECYCLE_HEADER = "X-Fal-Object-Lifecycle-Preference"
#: fal_client's app namespaces: `workflows/{owner}/{app}/...`
APP_NAMESPACES = ("workflows", "comfy")
#: the variant of a text-to-video endpoint that serves each input-bearing category
VARIANTS = {"image_to_video": "image-to-video", "video_to_video": "reference-to-video"}
QUEUE_WAIT_BASE, QUEUE_WAIT_PER_POSITION, QUEUE_WAIT_CAP = 5.0, 5.0, 60.0
PLATFORM_URL = "https://api.fal.ai"
REQUESTS_BY_ENDPOINT = "/v1/models/requests/by-endpoint"
#: pages of the request listing `find_submitted` reads at most, and requests a page (fal's maximum)
LOOKUP_PAGES, LOOKUP_PAGE_SIZE = 10, 100
#: seconds after a window before an empty listing counts as "no request": fal's listing is of ended requests
#: (sorted by end time, filtered by outcome), so one sent in the window may stay unlisted while it is queued or
#: running. An hour outlasts the video jobs we send (an assumption: fal documents no bound).
LISTING_LAG = 3600.0


def queue_wait(position: int | None) -> float:
    """Seconds until the next status check for a request with `position` requests ahead of it."""
    ahead = max(0, int(position or 0))
    return min(QUEUE_WAIT_CAP, QUEUE_WAIT_BASE + QUEUE_WAIT_PER_POSITION * ahead)


def families(model_id: str) -> set[str]:
    """The family words of an endpoint id: `fal-ai/veo3.1/fast` → {"fal", "veo", "fast"}."""
    return {re.split(r"[-.\d]", segment, maxsplit=1)[0] for segment in model_id.lower().split("/")}


def kind_for(error_type: str) -> str | None:
    if error_type in FATAL_TYPES:
        return ProviderError.FATAL
    if error_type in TERMINAL_TYPES:
        return ProviderError.TERMINAL
    if error_type in RETRYABLE_TYPES:
        return ProviderError.RETRYABLE
    return None


def error_parts(body: object) -> tuple[str, str]:
    """(type, message) from fal's model errors (`detail: [{loc, msg, type}]`) or request errors
    (`{detail: "...", error_type}`)."""
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        return str(first.get("type") or ""), str(first.get("msg") or "")
    error_type = body.get("error_type") if isinstance(body, dict) else None
    return str(error_type or ""), "" if detail is None else str(detail)


class FalProvider(HttpProvider):
    name = "fal"
    default_base_url = "https://queue.fal.run"
    env_keys = ("FAL_KEY",)
    #: how a lost submit is found again, for the ledger's note
    lookup = "request listing per endpoint"

    def __init__(self, api_key: str, *, platform_base_url: str | None = None, listing_lag: float = LISTING_LAG,
                 **kw):
        super().__init__(**kw)
        self._api_key = api_key
        # the platform API (request listing) is another host; VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL points it at a fake
        self.platform_base_url = (platform_base_url or PLATFORM_URL).rstrip("/")
        self.listing_lag = listing_lag
        # job id → the URLs fal returned at submit; a job id alone still rebuilds them (see `_urls`)
        self._returned: dict[str, dict[str, str]] = {}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._api_key}"}

    @staticmethod
    def _body(response: httpx.Response) -> object:
        try:
            return response.json()
        except ValueError:
            return None

    def error_message(self, response: httpx.Response) -> str:
        body = self._body(response)
        if body is None:
            return super().error_message(response)
        error_type, message = error_parts(body)
        error_type = error_type or response.headers.get("x-fal-error-type", "")
        return f"{error_type}: {message}".strip(": ") or super().error_message(response)

    def error_kind(self, response: httpx.Response) -> str:
        error_type, _ = error_parts(self._body(response))
        kind = kind_for(error_type or response.headers.get("x-fal-error-type", ""))
        if kind is not None:
            return kind
        if response.status_code in (401, 402, 403):
            return ProviderError.FATAL     # bad key, or 403 "User is locked. Reason: Exhausted balance."
        retryable = response.headers.get("x-fal-retryable", "").lower()
        if retryable in ("true", "false"):
            return ProviderError.RETRYABLE if retryable == "true" else ProviderError.TERMINAL
        return classify_status(response.status_code)

    @staticmethod
    def endpoint_for(request: GenerationRequest) -> str:
        """The endpoint id: the route's text-to-video id switched to the variant the request's inputs need."""
        base = request.route_model_id.strip("/")
        variant = VARIANTS.get(request.category)
        if variant is None or base.rsplit("/", 1)[-1] in VARIANTS.values():
            return base
        if base.endswith("/text-to-video"):
            return base[: -len("text-to-video")] + variant
        return f"{base}/{variant}"

    @staticmethod
    def body(request: GenerationRequest) -> dict:
        """The model input for the request's category; file inputs go inline as data URIs (fal decodes them)."""
        family = families(request.route_model_id)
        if request.category == "audio_lip_sync":
            if request.image is None or request.audio is None:
                raise ProviderError("lip sync needs a portrait image and an audio track", kind=ProviderError.TERMINAL,
                                    provider="fal")
            return {"image_url": data_uri(request.image), "audio_url": data_uri(request.audio)}
        if request.category == "video_enhance":
            if request.video is None:
                raise ProviderError("upscaling needs an input video", kind=ProviderError.TERMINAL, provider="fal")
            return {"video_url": data_uri(request.video)}
        seconds = int(request.seconds)
        body: dict = {"prompt": request.prompt, "duration": f"{seconds}s" if "veo" in family else str(seconds),
                      "aspect_ratio": request.aspect_ratio, "resolution": request.resolution}
        if "hailuo" in family:
            body["resolution"] = {"720p": "768P", "1080p": "1080P"}.get(request.resolution, "768P")
            body["prompt_optimizer"] = False
        if "wan" in family:
            body["enable_prompt_expansion"] = False
            if request.options.get("shot_type") == "multi":
                body["multi_shots"] = True
        if request.image is not None:
            body["image_url"] = data_uri(request.image)
        if request.video is not None:
            body["video_urls"] = [data_uri(request.video)]
        if request.audio is not None:
            body["audio_url"] = data_uri(request.audio)
        return body

    def _job_id(self, endpoint: str, submitted: dict) -> str:
        """The response URL relative to the base (or absolute when fal answers on another host): the status and
        cancel URLs are that plus `/status` and `/cancel`, so a job id survives a process restart."""
        response_url = submitted.get("response_url")
        if not response_url:
            parts = endpoint.split("/")
            app = parts[:3] if parts[0] in APP_NAMESPACES else parts[:2]
            response_url = self.url(f"{'/'.join(app)}/requests/{submitted['request_id']}")
        prefix = self.base_url + "/"
        return response_url[len(prefix):] if response_url.startswith(prefix) else response_url

    def job_id_from(self, raw: str, route_model_id: str) -> str:
        """A request id as an operator copies it from fal's dashboard (the bare request id, or its queue URL) in
        the form `submit` returns, for `video-pipeline resolve --adopt`."""
        raw = raw.strip().rstrip("/").removesuffix("/status")
        if "/" not in raw:
            return self._job_id(route_model_id, {"request_id": raw})
        prefix = self.base_url + "/"
        return raw[len(prefix):] if raw.startswith(prefix) else raw

    def _urls(self, job_id: str) -> dict[str, str]:
        response_url = self.url(job_id)
        rebuilt = {"response_url": response_url, "status_url": f"{response_url}/status",
                   "cancel_url": f"{response_url}/cancel"}
        return {**rebuilt, **self._returned.get(job_id, {})}

    @staticmethod
    def event_key(job_id: str) -> str:
        """fal's webhooks name the request id: the last part of our job id."""
        return job_id.rstrip("/").rsplit("/", 1)[-1]

    async def submit(self, request: GenerationRequest) -> str:
        endpoint = self.endpoint_for(request)
        lifecycle = json.dumps({"expiration_duration_seconds": int(URL_LIFETIME.total_seconds())})
        hook = self.callback_url()
        response = await self.request("POST", f"/{endpoint}", json=self.body(request),
                                      headers={LIFECYCLE_HEADER: lifecycle},
                                      params={"fal_webhook": hook} if hook else None)
        submitted = response.json()
        job_id = self._job_id(endpoint, submitted)
        self._returned[job_id] = {k: submitted[k] for k in ("response_url", "status_url", "cancel_url")
                                  if submitted.get(k)}
        return job_id

    async def find_submitted(self, request: GenerationRequest, since: dt.datetime, until: dt.datetime,
                             exclude: frozenset[str] = frozenset()) -> str | None:
        """The job id of the request `request` sent to its endpoint between `since` and `until` (same input where
        listed), not in `exclude`; None only once the listing is conclusive (see LISTING_LAG). ProviderError else."""
        endpoint = self.endpoint_for(request)
        try:
            wanted = {k: v for k, v in self.body(request).items()
                      if not (isinstance(v, str) and v.startswith("data:"))}   # fal may list files by CDN URL
        except OSError as exc:
            raise ProviderError(f"find_submitted: cannot read the request's inputs ({exc})",
                                provider=self.name) from exc
        low = since.replace(microsecond=0)          # the listing may give whole seconds
        # no `end`: the range may apply to end times, and a request sent in the window can end after it
        params = {"endpoint_id": endpoint, "start": _iso(low), "expand": "payloads", "limit": LOOKUP_PAGE_SIZE}
        found: list[str] = []
        for _ in range(LOOKUP_PAGES):
            page = (await self.request("GET", f"{self.platform_base_url}{REQUESTS_BY_ENDPOINT}", params=params)).json()
            try:
                for item in page["items"]:
                    sent = _parse_iso(item["sent_at"])
                    job_id = self._job_id(endpoint, {"request_id": item["request_id"]})
                    if (low <= sent <= until and job_id not in exclude and item["request_id"] not in exclude
                            and _same_input(item.get("json_input"), wanted)):
                        found.append(job_id)
                more, cursor = page.get("has_more"), page.get("next_cursor")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ProviderError(f"find_submitted: unreadable request listing ({type(exc).__name__}: {exc})",
                                    provider=self.name) from exc
            if not more or not cursor:
                break
            params = {**params, "cursor": cursor}
        else:
            raise ProviderError(f"find_submitted: more than {LOOKUP_PAGES} pages of {endpoint} requests since "
                                f"{_iso(low)}; not read to the end", provider=self.name)
        if len(found) > 1:
            raise ProviderError(f"find_submitted: {len(found)} requests to {endpoint} with this input in the window "
                                f"({', '.join(found)}); ambiguous, left to an operator", provider=self.name)
        if found:
            return found[0]
        settled = until + dt.timedelta(seconds=self.listing_lag)
        if dt.datetime.now(dt.timezone.utc) < settled:
            raise ProviderError(f"find_submitted: no request to {endpoint} from the window is listed yet, but fal "
                                "lists a request only once it has ended; one may still be queued or running "
                                f"(conclusive after {_iso(settled)})", provider=self.name)
        return None

    async def poll(self, job_id: str) -> JobStatus:
        urls = self._urls(job_id)
        response = await self.request("GET", urls["status_url"], params={"logs": "1"}, job_id=job_id)
        payload = response.json()
        status = self.status_from(payload)
        if status.state == JobState.SUCCEEDED:
            try:
                result = await self.request("GET", payload.get("response_url") or urls["response_url"], job_id=job_id)
            except ProviderError as exc:
                if exc.kind == ProviderError.FATAL:
                    raise
                # a failed request answers its result GET with the model's error (422 policy, 5xx runner)
                return JobStatus(JobState.FAILED, error=str(exc), error_kind=exc.kind)
            status = self.status_from(payload, result.json())
        if status.state.terminal:
            self._returned.pop(job_id, None)
        return status

    @staticmethod
    def status_from(payload: dict, result: dict | None = None) -> JobStatus:
        """Map a status body (and, once COMPLETED, the result body) as the docs show them onto the common status."""
        name = payload.get("status", "")
        state = STATES.get(name, JobState.RUNNING)
        if state == JobState.QUEUED:
            return JobStatus(state, poll_after=queue_wait(payload.get("queue_position")))
        error, error_type = payload.get("error"), str(payload.get("error_type") or "")
        if state in (JobState.SUCCEEDED, JobState.FAILED) and (error or error_type or state == JobState.FAILED):
            message = f"{error_type}: {error or ''}".strip(": ") or name
            if error_type in CANCELED_TYPES:
                return JobStatus(JobState.CANCELED, error=message)
            return JobStatus(JobState.FAILED, error=message, error_kind=kind_for(error_type) or ProviderError.RETRYABLE)
        if state != JobState.SUCCEEDED or result is None:
            return JobStatus(state)
        url = video_url(result)
        if not url:
            return JobStatus(JobState.FAILED, error="COMPLETED, but the result names no video URL",
                             error_kind=ProviderError.RETRYABLE)
        return JobStatus(state, progress=1.0, output_url=url,
                         url_expires_at=dt.datetime.now(dt.timezone.utc) + URL_LIFETIME)

    async def cancel(self, job_id: str) -> bool:
        try:
            response = await self.request("PUT", self._urls(job_id)["cancel_url"], job_id=job_id)
        except ProviderError as exc:
            if exc.kind == ProviderError.FATAL:
                raise
            return False   # 400 ALREADY_COMPLETED: the request is being processed or done
        body = self._body(response)
        return not (isinstance(body, dict) and body.get("status") in ("ALREADY_COMPLETED", "NOT_FOUND"))


def _same_input(listed: object, wanted: dict) -> bool:
    """Whether a listed request's input agrees with ours; a request listed without its payload stays a candidate."""
    if not listed:
        return True
    return isinstance(listed, dict) and all(listed.get(k) == v for k, v in wanted.items())


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def video_url(result: dict) -> str | None:
    """The video file URL in a model's result: `video.url`, else the first of `videos[]`."""
    video = result.get("video")
    if isinstance(video, dict) and video.get("url"):
        return video["url"]
    videos = result.get("videos")
    if isinstance(videos, list) and videos and isinstance(videos[0], dict):
        return videos[0].get("url")
    return None

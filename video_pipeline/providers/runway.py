"""Runway API (gen4.5, Veo 3.1 via Runway, Gen-4 Aleph): async task API.

Submit `POST /v1/text_to_video`, `/v1/image_to_video` or `/v1/video_to_video` (camelCase body: model, promptText,
promptImage / videoUri as data URIs, ratio "1280:720", duration) → `{id}`; poll `GET /v1/tasks/{id}` →
`{id, createdAt, status, progress?, output[]?, failure?, failureCode?}` with status PENDING · THROTTLED · RUNNING ·
SUCCEEDED · FAILED · CANCELLED; cancel `DELETE /v1/tasks/{id}` (deletes the task once it has finished).
Auth: `Authorization: Bearer $RUNWAYML_API_SECRET` plus `X-Runway-Version: 2024-11-06`
(runwayml/sdk-python `_client.py`, `types/task_retrieve_response.py`; docs.dev.runwayml.com/api-details/errors and
/task-failures). Output URLs expire within 24-48 h; a fresh GET of the task re-issues them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from video_pipeline.errors import ProviderError
from video_pipeline.media.render import frame_size
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import HttpProvider, classify_status
from video_pipeline.providers.media_inputs import data_uri

API_VERSION = "2024-11-06"
ENDPOINTS = {"text_to_video": "/v1/text_to_video", "image_to_video": "/v1/image_to_video",
             "video_to_video": "/v1/video_to_video"}
STATES = {"PENDING": JobState.QUEUED, "THROTTLED": JobState.QUEUED, "RUNNING": JobState.RUNNING,
          "SUCCEEDED": JobState.SUCCEEDED, "FAILED": JobState.FAILED, "CANCELLED": JobState.CANCELED}
#: Runway's own resolution strings where they differ from width x height of our frame size (it has no 720x720)
RATIOS = {("720p", "1:1"): "960:960", ("1080p", "1:1"): "960:960"}
MAX_PROMPT_UTF16 = 1000
#: data URI ceilings from the SDK's field docs: images up to 5 MB, videos up to 16 MB
MAX_IMAGE_URI_BYTES = 5 * 1024 * 1024
MAX_VIDEO_URI_BYTES = 16 * 1024 * 1024
#: the docs say 24-48 h; plan for the short end
URL_LIFETIME = dt.timedelta(hours=24)
#: THROTTLED tasks wait for the account's other tasks to finish, so polling fast only burns requests
THROTTLED_POLL_SECONDS = 15.0


def failure_kind(code: str) -> str:
    """Classify a task's `failureCode` (dot-separated, most generic segment first)."""
    if code.startswith("SAFETY.") or code.startswith("INPUT_PREPROCESSING.SAFETY"):
        return ProviderError.TERMINAL          # moderation: "You should not retry these generations"
    if code.startswith("INTERNAL.BAD_OUTPUT") or code.startswith("ASSET."):
        return ProviderError.TERMINAL          # docs: retries "are not likely to succeed"; fall back instead
    return ProviderError.RETRYABLE             # INPUT_PREPROCESSING.INTERNAL, INTERNAL, THIRD_PARTY.*, unknown


class RunwayProvider(HttpProvider):
    name = "runway"
    default_base_url = "https://api.dev.runwayml.com"
    env_keys = ("RUNWAYML_API_SECRET",)

    def __init__(self, api_key: str, **kw):
        super().__init__(**kw)
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "X-Runway-Version": API_VERSION}

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return super().error_message(response)
        error = body.get("error") if isinstance(body, dict) else None
        if not error:
            return super().error_message(response)
        issues = body.get("issues")
        if isinstance(issues, list) and issues:
            details = "; ".join(f"{'.'.join(str(p) for p in i.get('path', []))}: {i.get('message', '')}"
                                for i in issues if isinstance(i, dict))
            return f"{error} ({details})" if details else str(error)
        return str(error)

    def error_kind(self, response: httpx.Response) -> str:
        # Runway answers an exhausted credit balance with a plain 400; no model fallback will fix that
        if response.status_code == 400 and "credits" in self.error_message(response).lower():
            return ProviderError.FATAL
        return classify_status(response.status_code)

    @staticmethod
    def ratio(request: GenerationRequest) -> str:
        if (request.resolution, request.aspect_ratio) in RATIOS:
            return RATIOS[(request.resolution, request.aspect_ratio)]
        width, height = frame_size(request.resolution, request.aspect_ratio)
        return f"{width}:{height}"

    def body(self, request: GenerationRequest) -> dict:
        """The camelCase create body for the request's category; ProviderError (terminal) if Runway would refuse it."""
        endpoint = ENDPOINTS.get(request.category)
        if endpoint is None:
            raise self._refuse(f"category {request.category} is not served by Runway "
                               f"(it serves {', '.join(ENDPOINTS)})")
        units = len(request.prompt.encode("utf-16-le")) // 2
        if units > MAX_PROMPT_UTF16:
            raise self._refuse(f"promptText is {units} UTF-16 code units; Runway accepts at most {MAX_PROMPT_UTF16} "
                               "(shorten the shot's prompt)")
        body: dict = {"model": request.route_model_id}
        if request.prompt:
            body["promptText"] = request.prompt
        if request.category == "image_to_video":
            if request.image is None:
                raise self._refuse("image_to_video needs an image (promptImage)")
            body["promptImage"] = self._inline(request.image, MAX_IMAGE_URI_BYTES, "promptImage")
        if request.category == "video_to_video":
            if request.video is None:
                raise self._refuse("video_to_video needs a video (videoUri)")
            body["videoUri"] = self._inline(request.video, MAX_VIDEO_URI_BYTES, "videoUri")
            if request.image is not None:
                body["references"] = [{"type": "image",
                                       "uri": self._inline(request.image, MAX_IMAGE_URI_BYTES, "references")}]
        body["ratio"] = self.ratio(request)
        if request.category != "video_to_video":
            body["duration"] = int(request.seconds)     # Aleph's output is as long as its input video
        if "seed" in request.options:
            body["seed"] = int(request.options["seed"])
        if "audio" in request.options:
            body["audio"] = bool(request.options["audio"])
        return body

    def _inline(self, path: Path, limit: int, field: str) -> str:
        try:
            uri = data_uri(path)
        except ValueError as exc:
            raise self._refuse(f"{field}: {exc}") from None
        if len(uri) > limit:
            raise self._refuse(f"{field}: {path.name} is {len(uri)} bytes as a data URI; Runway accepts at most "
                               f"{limit} (upload it and pass a URL instead)")
        return uri

    def _refuse(self, message: str) -> ProviderError:
        return ProviderError(message, kind=ProviderError.TERMINAL, provider=self.name)

    async def submit(self, request: GenerationRequest) -> str:
        body = self.body(request)
        response = await self.request("POST", ENDPOINTS[request.category], json=body)
        return response.json()["id"]

    async def poll(self, job_id: str) -> JobStatus:
        response = await self.request("GET", f"/v1/tasks/{job_id}", job_id=job_id)
        return self.status_from(response.json())

    async def refresh_output_url(self, job_id: str) -> JobStatus:
        """A fresh output URL for a finished task: Runway signs new URLs on every GET of the task."""
        return await self.poll(job_id)

    @staticmethod
    def status_from(body: dict) -> JobStatus:
        """Map a task body (as the SDK's TaskRetrieveResponse shows it) onto the common status."""
        status = body.get("status", "")
        state = STATES.get(status, JobState.RUNNING)
        if state == JobState.SUCCEEDED:
            output = body.get("output") or []
            if not output:
                return JobStatus(JobState.FAILED, error="task SUCCEEDED without an output URL",
                                 error_kind=ProviderError.RETRYABLE)
            return JobStatus(state, progress=1.0, output_url=output[0],
                             url_expires_at=dt.datetime.now(dt.timezone.utc) + URL_LIFETIME)
        if state == JobState.FAILED:
            code = body.get("failureCode") or ""
            error = f"{code}: {body.get('failure', '')}".strip(": ") or "task FAILED without a reason"
            return JobStatus(state, error=error, error_kind=failure_kind(code))
        if status == "THROTTLED":
            return JobStatus(state, poll_after=THROTTLED_POLL_SECONDS)
        if state == JobState.RUNNING:
            progress = body.get("progress")
            return JobStatus(state, progress=float(progress) if progress is not None else None)
        return JobStatus(state)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a task still waiting or running; False once it has finished (DELETE would then erase its output)."""
        try:
            if (await self.poll(job_id)).state.terminal:
                return False
            await self.request("DELETE", f"/v1/tasks/{job_id}", job_id=job_id)
        except ProviderError as exc:
            if exc.kind == ProviderError.FATAL:
                raise
            return False
        return True

"""MiniMax Hailuo, v1 video protocol (Hailuo-02 / 2.3).

Submit `POST /v1/video_generation` → `{task_id, base_resp}`; poll `GET /v1/query/video_generation?task_id=`
→ `{task_id, status: Preparing|Queueing|Processing|Success|Fail, file_id, base_resp}`; resolve the output with
`GET /v1/files/retrieve?file_id=` → `{file{download_url, ...}, base_resp}` (URL valid 9 h). Auth:
`Authorization: Bearer $MINIMAX_API_KEY`. MiniMax reports most errors as HTTP 200 with a non-zero
`base_resp.status_code` (1002 rate limit, 1004/2049 auth, 1008 balance, 1026/1027 sensitive, 2013 invalid params),
so every answer is checked. No cancel endpoint is documented.
Sources: MiniMax-AI/MiniMax-MCP (server.py, client.py), platform.minimax.io/docs/api-reference/errorcode.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from video_pipeline.errors import ProviderError, SubmitUncertain
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import SUBMITTING, BearerKeyProvider, RetryableHTTPError, classify_status
from video_pipeline.providers.media_inputs import data_uri

STATES = {"Preparing": JobState.QUEUED, "Queueing": JobState.QUEUED, "Processing": JobState.RUNNING,
          "Success": JobState.SUCCEEDED, "Fail": JobState.FAILED}
RETRYABLE_CODES = {1000, 1001, 1002, 1013, 1024, 1033}      # unknown, timeout, rate limit, internal errors
NOT_CREATED_CODES = {1002}                                   # a throttled submit created nothing: safe to resend
FATAL_CODES = {1004, 2049, 1008, 2038}                      # auth, invalid key, balance, real-name verification
TERMINAL_CODES = {1026, 1027, 2013}                         # sensitive input / output, invalid parameters
DURATIONS = (6, 10)
RESOLUTIONS = {"720p": "768P", "1080p": "1080P"}             # v1 has no 720P: 768P is its nearest tier
URL_LIFETIME = dt.timedelta(hours=9)


def code_kind(code: int, default: str) -> str:
    if code in FATAL_CODES:
        return ProviderError.FATAL
    if code in TERMINAL_CODES:
        return ProviderError.TERMINAL
    if code in RETRYABLE_CODES:
        return ProviderError.RETRYABLE
    return default


def base_resp(body: Any) -> tuple[int, str]:
    resp = body.get("base_resp") if isinstance(body, dict) else None
    if not isinstance(resp, dict):
        return 0, ""
    return int(resp.get("status_code") or 0), str(resp.get("status_msg") or "")


class BaseRespRetryable(RetryableHTTPError):
    """A retryable `base_resp` code on an HTTP 200 answer (e.g. 1002 rate limit)."""


class MiniMaxProvider(BearerKeyProvider):
    name = "minimax"
    default_base_url = "https://api.minimax.io"
    env_keys = ("MINIMAX_API_KEY",)

    def error_message(self, response: httpx.Response) -> str:
        try:
            code, message = base_resp(response.json())
        except ValueError:
            return super().error_message(response)
        return f"{code}: {message}" if code else super().error_message(response)

    def error_kind(self, response: httpx.Response) -> str:
        try:
            code, _ = base_resp(response.json())
        except ValueError:
            code = 0
        return code_kind(code, classify_status(response.status_code))

    async def call(self, method: str, path: str, *, job_id: str = "", accept_fail: bool = False, **kw) -> dict:
        """One API call whose `base_resp` is checked; retryable codes are retried like HTTP 429/5xx."""
        retrying = AsyncRetrying(stop=stop_after_attempt(self.max_attempts), wait=self._wait, reraise=True,
                                 retry=retry_if_exception_type(BaseRespRetryable))
        async for attempt in retrying:
            with attempt:
                body = (await self.request(method, path, job_id=job_id, **kw)).json()
                code, message = base_resp(body)
                # a failed task's own error code travels in base_resp: that is the task's outcome, not the call's
                if code and not (accept_fail and body.get("status") == "Fail"):
                    text = f"{method} {path}: MiniMax {code}: {message}"
                    kind = code_kind(code, ProviderError.TERMINAL)
                    if kind == ProviderError.RETRYABLE and SUBMITTING.get() and code not in NOT_CREATED_CODES:
                        # answered, but "unknown error"/"timeout"/"internal error" do not say nothing was created
                        now = dt.datetime.now(dt.timezone.utc)
                        raise SubmitUncertain(f"{text}; the provider may have created the job", sent_at=now,
                                              failed_at=now, fingerprint="", provider=self.name)
                    if kind == ProviderError.RETRYABLE:
                        raise BaseRespRetryable(text, provider=self.name, job_id=job_id)
                    raise ProviderError(text, kind=kind, provider=self.name, job_id=job_id)
                return body
        raise ProviderError(f"{method} {path}: no attempt was made", provider=self.name, job_id=job_id)

    @staticmethod
    def duration_for(seconds: float) -> int:
        """The shortest supported clip that covers `seconds` (the pipeline trims the surplus)."""
        return next((d for d in DURATIONS if d >= seconds), DURATIONS[-1])

    def body(self, request: GenerationRequest) -> dict:
        if request.video is not None:
            raise ProviderError("MiniMax v1 video generation takes no input video", kind=ProviderError.TERMINAL,
                                provider=self.name)
        # v1 takes no audio input (the catalog lists none for Hailuo), so a soundtrack is not sent
        body = {"model": request.route_model_id, "prompt": request.prompt,
                "duration": self.duration_for(request.seconds),
                "resolution": RESOLUTIONS.get(request.resolution, "768P"), "prompt_optimizer": False}
        if request.image is not None:
            body["first_frame_image"] = data_uri(request.image)
        if hook := self.callback_url(unsigned=True):
            body["callback_url"] = hook   # MiniMax first sends a challenge the receiver echoes
        return body

    async def submit(self, request: GenerationRequest) -> str:
        body = await self.call("POST", "/v1/video_generation", json=self.body(request))
        return body["task_id"]

    async def poll(self, job_id: str) -> JobStatus:
        task = await self.call("GET", "/v1/query/video_generation", params={"task_id": job_id}, job_id=job_id,
                               accept_fail=True)
        file = None
        if task.get("status") == "Success" and task.get("file_id"):
            file = await self.call("GET", "/v1/files/retrieve", params={"file_id": task["file_id"]}, job_id=job_id)
        return self.status_from(task, file)

    @staticmethod
    def status_from(task: dict, file: dict | None = None) -> JobStatus:
        """Map a query body (and, on Success, the files/retrieve body) onto the common status."""
        status = task.get("status", "")
        state = STATES.get(status, JobState.RUNNING)
        if state == JobState.SUCCEEDED:
            url = ((file or {}).get("file") or {}).get("download_url")
            if not url:
                error = f"MiniMax task succeeded but file {task.get('file_id')!r} has no download URL"
                return JobStatus(JobState.FAILED, error=error, error_kind=ProviderError.RETRYABLE)
            return JobStatus(state, progress=1.0, output_url=url,
                             url_expires_at=dt.datetime.now(dt.timezone.utc) + URL_LIFETIME)
        if state == JobState.FAILED:
            code, message = base_resp(task)
            detail = task.get("error_message") or message
            error = f"MiniMax {code}: {detail}" if code else f"MiniMax task failed: {detail or 'no reason given'}"
            return JobStatus(state, error=error, error_kind=code_kind(code, ProviderError.RETRYABLE))
        return JobStatus(state)

"""Alibaba Cloud DashScope (Wan 2.x video synthesis): async task API.

Submit `POST /api/v1/services/aigc/video-generation/video-synthesis` with `X-DashScope-Async: enable`,
poll `GET /api/v1/tasks/{task_id}`, cancel `POST /api/v1/tasks/{task_id}/cancel` (PENDING only).
Auth: `Authorization: Bearer $DASHSCOPE_API_KEY`. The legacy `input`/`parameters` body serves wan2.6 and older.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from ..errors import ProviderError
from ..media.render import frame_size
from .base import GenerationRequest, JobState, JobStatus
from .http import BearerKeyProvider, classify_status
from .media_inputs import audio_segment_uri, data_uri

STATES = {"PENDING": JobState.QUEUED, "SUSPENDED": JobState.QUEUED, "RUNNING": JobState.RUNNING,
          "SUCCEEDED": JobState.SUCCEEDED, "FAILED": JobState.FAILED, "UNKNOWN": JobState.FAILED,
          "CANCELED": JobState.CANCELED}
#: task failure codes that no retry on this model will fix
TERMINAL_CODES = {"DataInspectionFailed", "InvalidParameter", "IPInfringementSuspect", "InvalidFile"}
FATAL_CODES = {"InvalidApiKey", "Arrearage", "AccessDenied"}
URL_LIFETIME = dt.timedelta(hours=24)


class DashScopeProvider(BearerKeyProvider):
    name = "dashscope"
    default_base_url = "https://dashscope-intl.aliyuncs.com"
    env_keys = ("DASHSCOPE_API_KEY",)

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            return f"{body.get('code')}: {body.get('message')}"
        except ValueError:
            return super().error_message(response)

    def error_kind(self, response: httpx.Response) -> str:
        try:
            code = response.json().get("code", "")
        except ValueError:
            code = ""
        if code in FATAL_CODES:
            return ProviderError.FATAL
        if code in TERMINAL_CODES:
            return ProviderError.TERMINAL
        return classify_status(response.status_code)

    @staticmethod
    def model_for(request: GenerationRequest) -> str:
        base = request.route_model_id
        family = base.rsplit("-", 1)[0] if base.endswith(("-t2v", "-i2v", "-r2v")) else base
        if request.video is not None:
            return f"{family}-r2v"
        return f"{family}-i2v" if request.image is not None else f"{family}-t2v"

    def body(self, request: GenerationRequest) -> dict:
        width, height = frame_size(request.resolution, request.aspect_ratio)
        inputs: dict = {"prompt": request.prompt}
        if request.image is not None:
            inputs["img_url"] = data_uri(request.image)
        if request.video is not None:
            inputs["reference_video_urls"] = [data_uri(request.video)]
        if request.audio is not None:
            inputs["audio_url"] = audio_segment_uri(request.audio, request.audio_offset, request.seconds)
        parameters = {"size": f"{width}*{height}", "duration": int(request.seconds), "prompt_extend": False,
                      "watermark": False}
        if request.options.get("shot_type"):
            parameters["shot_type"] = request.options["shot_type"]
        return {"model": self.model_for(request), "input": inputs, "parameters": parameters}

    async def submit(self, request: GenerationRequest) -> str:
        body = await asyncio.to_thread(self.body, request)   # reads and cuts input files: off the event loop
        response = await self.request("POST", "/api/v1/services/aigc/video-generation/video-synthesis",
                                      json=body, headers={"X-DashScope-Async": "enable"})
        return response.json()["output"]["task_id"]

    async def poll(self, job_id: str) -> JobStatus:
        response = await self.request("GET", f"/api/v1/tasks/{job_id}", job_id=job_id)
        return self.status_from(response.json())

    @staticmethod
    def status_from(body: dict) -> JobStatus:
        """Map a task body (as the docs show it) onto the common status."""
        output = body.get("output", {})
        state = STATES.get(output.get("task_status", ""), JobState.RUNNING)
        if state == JobState.SUCCEEDED:
            end = output.get("end_time")
            submitted = output.get("submit_time")
            latency = None
            if end and submitted:
                latency = (_parse_time(end) - _parse_time(submitted)).total_seconds()
            return JobStatus(state, progress=1.0, output_url=output.get("video_url"), latency_seconds=latency,
                             url_expires_at=dt.datetime.now(dt.timezone.utc) + URL_LIFETIME)
        if state == JobState.FAILED:
            code = output.get("code", "")
            if output.get("task_status") == "UNKNOWN":
                return JobStatus(state, error="task expired or unknown (task ids live 24 h)", error_kind=ProviderError.RETRYABLE)
            kind = (ProviderError.TERMINAL if code in TERMINAL_CODES else
                    ProviderError.FATAL if code in FATAL_CODES else ProviderError.RETRYABLE)
            return JobStatus(state, error=f"{code}: {output.get('message', '')}".strip(": "), error_kind=kind)
        return JobStatus(state)

    async def cancel(self, job_id: str) -> bool:
        try:
            await self.request("POST", f"/api/v1/tasks/{job_id}/cancel", job_id=job_id)
        except ProviderError:
            return False   # only PENDING tasks can be cancelled
        return True


def _parse_time(value: str) -> dt.datetime:
    # DashScope writes "2025-01-08 16:43:54.123"
    return dt.datetime.fromisoformat(value.replace(" ", "T"))

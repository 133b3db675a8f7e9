"""Alibaba Cloud DashScope (Wan 2.x video synthesis): async task API.

Submit `POST /api/v1/services/aigc/video-generation/video-synthesis` with `X-DashScope-Async: enable`,
poll `GET /api/v1/tasks/{task_id}`, cancel `POST /api/v1/tasks/{task_id}/cancel` (PENDING only), batch query
`GET /api/v1/tasks?start_time&end_time&model_name&status&page_no&page_size` (times `YYYYMMDDhhmmss`, a range of at
most 24 h, `start_time` alone meaning the 24 h after it) → `{data[{task_id, gmt_create (epoch ms), model_name,
status, …}], total, total_page, page_no, page_size}`: no input shown.
Auth: `Authorization: Bearer $DASHSCOPE_API_KEY`. The legacy `input`/`parameters` body serves wan2.6 and older.
Sources: Model Studio "manage asynchronous tasks" (help.aliyun.com/zh/model-studio/manage-asynchronous-tasks);
dashscope/dashscope-sdk-python `dashscope/client/base_api.py` (`list`).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from video_pipeline.errors import ProviderError
from video_pipeline.media.render import frame_size
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import BearerKeyProvider, classify_status
from video_pipeline.providers.media_inputs import audio_segment_uri, data_uri

STATES = {"PENDING": JobState.QUEUED, "SUSPENDED": JobState.QUEUED, "RUNNING": JobState.RUNNING,
          "SUCCEEDED": JobState.SUCCEEDED, "FAILED": JobState.FAILED, "UNKNOWN": JobState.FAILED,
          "CANCELED": JobState.CANCELED}
#: task failure codes that no retry on this model will fix
TERMINAL_CODES = {"DataInspectionFailed", "InvalidParameter", "IPInfringementSuspect", "InvalidFile"}
FATAL_CODES = {"InvalidApiKey", "Arrearage", "AccessDenied"}
URL_LIFETIME = dt.timedelta(hours=24)
#: pages of the batch query `find_submitted` reads at most, and tasks a page
LOOKUP_PAGES, LOOKUP_PAGE_SIZE = 10, 100
#: the docs name no time zone for `start_time`: asked from `since` read as UTC, the 24 h the query covers hold the
#: window whether DashScope reads it as UTC or as UTC+8 (Beijing and Singapore) when the window is at most 16 h
QUERY_SPAN, ZONE_SLACK = dt.timedelta(hours=24), dt.timedelta(hours=8)


class DashScopeProvider(BearerKeyProvider):
    name = "dashscope"
    default_base_url = "https://dashscope-intl.aliyuncs.com"
    env_keys = ("DASHSCOPE_API_KEY",)
    #: how a lost submit is found again, for the ledger's note
    lookup = "task batch query"

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

    async def find_submitted(self, request: GenerationRequest, since: dt.datetime, until: dt.datetime,
                             exclude: frozenset[str] = frozenset()) -> str | None:
        """The id of the one task of `request`'s model created between `since` and `until`, not in `exclude`; None
        when there is none. ProviderError when there are several (the query shows no input) or it cannot be read."""
        model = self.model_for(request)
        if until - since > QUERY_SPAN - ZONE_SLACK:
            raise ProviderError(f"find_submitted: a window of {until - since} is wider than one task query covers",
                                provider=self.name)
        low, high = since.timestamp() * 1000, until.timestamp() * 1000
        start = since.astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
        found: list[str] = []
        for page_no in range(1, LOOKUP_PAGES + 1):
            params = {"start_time": start, "model_name": model, "page_no": page_no, "page_size": LOOKUP_PAGE_SIZE}
            page = (await self.request("GET", "/api/v1/tasks", params=params)).json()
            try:
                for task in page.get("data") or []:
                    if (low <= float(task["gmt_create"]) <= high and task.get("model_name", model) == model
                            and task["task_id"] not in exclude):
                        found.append(task["task_id"])
                pages = int(page.get("total_page") or 1)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ProviderError(f"find_submitted: unreadable task query ({type(exc).__name__}: {exc})",
                                    provider=self.name) from exc
            if page_no >= pages:
                break
        else:
            raise ProviderError(f"find_submitted: more than {LOOKUP_PAGES} pages of {model} tasks; not read to the "
                                "end", provider=self.name)
        if len(found) > 1:
            # the query shows no input, but a finished task's own record carries its prompt (`orig_prompt`)
            found = [task_id for task_id in found if await self._may_be(task_id, request.prompt)]
        if len(found) > 1:
            raise ProviderError(f"find_submitted: {len(found)} tasks of {model} created in the window "
                                f"({', '.join(found)}) and the query shows no input; ambiguous, left to an operator",
                                provider=self.name)
        return found[0] if found else None

    async def _may_be(self, task_id: str, prompt: str) -> bool:
        """False only when the task's record shows a different prompt than ours."""
        output = (await self.request("GET", f"/api/v1/tasks/{task_id}", job_id=task_id)).json().get("output") or {}
        shown = output.get("orig_prompt")
        return shown is None or shown == prompt

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

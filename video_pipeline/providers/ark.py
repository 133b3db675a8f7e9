"""BytePlus ModelArk (Volcengine Ark) content generation tasks, for Seedance 2.0.

Submit `POST /api/v3/contents/generations/tasks` `{model, content[], ratio, resolution, duration, ...}` → `{id}`;
poll `GET /api/v3/contents/generations/tasks/{id}` → `{id, model, status, content{video_url}, error{code, message},
created_at, updated_at, ...}` with status queued|running|succeeded|failed|cancelled (|expired); cancel with
`DELETE /api/v3/contents/generations/tasks/{id}` while queued (on a finished task DELETE removes its record);
list `GET /api/v3/contents/generations/tasks?page_num&page_size&filter.model&filter.status&filter.task_ids`
→ `{total, items[task]}` (the task shows no prompt).
Auth: `Authorization: Bearer $ARK_API_KEY`. Errors: `{"error": {"code", "message", "param", "type"}}`.
Content items: text; `image_url` with role first_frame | last_frame | reference_image; `audio_url` with role
reference_audio (Seedance 2.0; needs a visual reference, and cannot be mixed with first/last-frame mode).
Sources: volcengine/volcengine-python-sdk volcenginesdkarkruntime/resources/content_generation/tasks.py,
types/content_generation/*.py; output URLs are cleared 24 h after the task (third-party docs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import httpx

from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import BearerKeyProvider, classify_status
from video_pipeline.providers.media_inputs import audio_segment_uri, data_uri

TASKS = "/api/v3/contents/generations/tasks"
STATES = {"queued": JobState.QUEUED, "running": JobState.RUNNING, "succeeded": JobState.SUCCEEDED,
          "failed": JobState.FAILED, "expired": JobState.FAILED, "cancelled": JobState.CANCELED}
#: error codes by their family (the part before the first "."; e.g. "…SensitiveContentDetected.PolicyViolation")
FATAL_CODES = {"AuthenticationError", "AccountOverdueError", "AccessDenied", "QuotaExceeded"}
TERMINAL_CODES = {"InvalidParameter", "MissingParameter", "InvalidEndpointOrModel", "InvalidEndpoint", "ModelNotOpen"}
RETRYABLE_CODES = {"RateLimitExceeded", "ModelAccountRpmRateLimitExceeded", "ModelAccountTpmRateLimitExceeded",
                   "ServerOverloaded", "ModelLoadingError", "InternalServiceError"}
#: Ark model ids carry a release date; the catalog's short names map onto the current release
MODEL_IDS = {"seedance-2-0": "dreamina-seedance-2-0-260128",
             "seedance-2-0-fast": "dreamina-seedance-2-0-fast-260128",
             "seedance-2-0-mini": "dreamina-seedance-2-0-mini-260615"}
RATIOS = {"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"}
DURATION_RANGE = (4, 15)
URL_LIFETIME = dt.timedelta(hours=24)
#: pages of the task list `find_submitted` reads at most, and tasks a page
LOOKUP_PAGES, LOOKUP_PAGE_SIZE = 10, 100


def code_kind(code: str, default: str) -> str:
    family = (code or "").split(".", 1)[0]
    if family in FATAL_CODES:
        return ProviderError.FATAL
    if family in TERMINAL_CODES or family.endswith("SensitiveContentDetected"):
        return ProviderError.TERMINAL
    if family in RETRYABLE_CODES:
        return ProviderError.RETRYABLE
    return default


def _error(body: object) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


class ArkProvider(BearerKeyProvider):
    name = "ark"
    default_base_url = "https://ark.ap-southeast.bytepluses.com"
    env_keys = ("ARK_API_KEY",)
    #: how a lost submit is found again, for the ledger's note
    lookup = "task list"

    def error_message(self, response: httpx.Response) -> str:
        try:
            code, message = _error(response.json())
        except ValueError:
            code = message = ""
        return f"{code}: {message}" if code else super().error_message(response)

    def error_kind(self, response: httpx.Response) -> str:
        try:
            code, _ = _error(response.json())
        except ValueError:
            code = ""
        return code_kind(code, classify_status(response.status_code))

    @staticmethod
    def model_for(route_model_id: str) -> str:
        return MODEL_IDS.get(route_model_id, route_model_id)

    @staticmethod
    def duration_for(seconds: float) -> int:
        low, high = DURATION_RANGE
        return max(low, min(high, math.ceil(seconds)))

    def body(self, request: GenerationRequest) -> dict:
        """The task body; blocking (reads inputs, cuts the audio reference), so `submit` runs it in a thread."""
        refuse = None
        if request.video is not None:
            refuse = "Ark takes reference videos only as web URLs, not local files"
        elif request.audio is not None and request.image is None:
            refuse = "Seedance needs an image (or video) reference alongside an audio reference"
        if refuse:
            raise ProviderError(refuse, kind=ProviderError.TERMINAL, provider=self.name, job_id=request.job_key)
        duration = self.duration_for(request.seconds)
        content: list[dict] = [{"type": "text", "text": request.prompt}]
        if request.image is not None:
            # reference mode (audio) and first/last-frame mode cannot be mixed in one task
            role = "reference_image" if request.audio is not None else "first_frame"
            content.append({"type": "image_url", "image_url": {"url": data_uri(request.image)}, "role": role})
        if request.audio is not None:
            content.append({"type": "audio_url", "audio_url": {"url": self.audio_reference(request, duration)},
                            "role": "reference_audio"})
        body = {"model": self.model_for(request.route_model_id), "content": content,
                "ratio": request.aspect_ratio if request.aspect_ratio in RATIOS else "adaptive",
                "resolution": request.resolution, "duration": duration, "generate_audio": False, "watermark": False}
        if request.options.get("seed") is not None:
            body["seed"] = int(request.options["seed"])
        return body

    @staticmethod
    def audio_reference(request: GenerationRequest, seconds: float) -> str:
        """The segment's own stretch of the soundtrack (from `audio_offset`), as a WAV data URI."""
        return audio_segment_uri(request.audio, request.audio_offset, seconds)

    async def submit(self, request: GenerationRequest) -> str:
        body = await asyncio.to_thread(self.body, request)
        response = await self.request("POST", TASKS, json=body)
        return response.json()["id"]

    async def find_submitted(self, request: GenerationRequest, since: dt.datetime, until: dt.datetime,
                             exclude: frozenset[str] = frozenset()) -> str | None:
        """The id of the one task of `request`'s model created between `since` and `until` (and of its duration,
        ratio, resolution where shown), not in `exclude`; None when there is none. ProviderError when not one."""
        model = self.model_for(request.route_model_id)
        shown = {"duration": self.duration_for(request.seconds), "resolution": request.resolution}
        if request.aspect_ratio in RATIOS:
            shown["ratio"] = request.aspect_ratio      # "adaptive" comes back as the ratio the model chose
        low, high = math.floor(since.timestamp()), until.timestamp()    # created_at is whole seconds
        found: list[str] = []
        for page_num in range(1, LOOKUP_PAGES + 1):
            params = {"page_num": page_num, "page_size": LOOKUP_PAGE_SIZE, "filter.model": model}
            page = (await self.request("GET", TASKS, params=params)).json()
            try:
                items, created = page["items"], [int(t["created_at"]) for t in page["items"]]
                for task, at in zip(items, created):
                    if (low <= at <= high and task.get("model", model) == model and task["id"] not in exclude
                            and all(task.get(k) in (None, v) for k, v in shown.items())):
                        found.append(task["id"])
                total = int(page.get("total") or 0)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ProviderError(f"find_submitted: unreadable task list ({type(exc).__name__}: {exc})",
                                    provider=self.name) from exc
            # the list is read newest first; a page that is in that order and reaches past `since` ends the search
            newest_first = all(a >= b for a, b in zip(created, created[1:]))
            last = len(items) < LOOKUP_PAGE_SIZE or page_num * LOOKUP_PAGE_SIZE >= total
            if last or (created and newest_first and created[-1] < low):
                break
        else:
            raise ProviderError(f"find_submitted: more than {LOOKUP_PAGES} pages of {model} tasks; not read to the "
                                "end", provider=self.name)
        if len(found) > 1:
            raise ProviderError(f"find_submitted: {len(found)} tasks of {model} created in the window "
                                f"({', '.join(found)}) and the list shows no prompt; ambiguous, left to an operator",
                                provider=self.name)
        return found[0] if found else None

    async def poll(self, job_id: str) -> JobStatus:
        response = await self.request("GET", f"{TASKS}/{job_id}", job_id=job_id)
        return self.status_from(response.json())

    @staticmethod
    def status_from(task: dict) -> JobStatus:
        """Map a task object (as the SDK types and docs show it) onto the common status."""
        status = task.get("status", "")
        state = STATES.get(status, JobState.RUNNING)
        if state == JobState.SUCCEEDED:
            created, updated = task.get("created_at"), task.get("updated_at")
            latency = float(updated - created) if created is not None and updated is not None else None
            finished = (dt.datetime.fromtimestamp(updated, dt.timezone.utc) if updated is not None
                        else dt.datetime.now(dt.timezone.utc))
            return JobStatus(state, progress=1.0, output_url=(task.get("content") or {}).get("video_url"),
                             url_expires_at=finished + URL_LIFETIME, latency_seconds=latency)
        if state == JobState.FAILED:
            if status == "expired":
                return JobStatus(state, error="Ark task expired before it ran (execution_expires_after)",
                                 error_kind=ProviderError.RETRYABLE)
            code, message = _error(task)
            error = f"{code}: {message}" if code else f"Ark task failed: {message or 'no reason given'}"
            return JobStatus(state, error=error, error_kind=code_kind(code, ProviderError.RETRYABLE))
        return JobStatus(state)

    async def cancel(self, job_id: str) -> bool:
        # DELETE on a finished task deletes its record (and its output URL), so only a queued task is sent one
        state = (await self.poll(job_id)).state
        if state != JobState.QUEUED:
            return state == JobState.CANCELED
        try:
            await self.request("DELETE", f"{TASKS}/{job_id}", job_id=job_id)
        except ProviderError:
            return False   # it started running in the meantime
        return True

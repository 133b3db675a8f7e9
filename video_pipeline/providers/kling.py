"""Kling AI official API: text-to-video and image-to-video tasks.

Submit `POST /v1/videos/text2video` or `/v1/videos/image2video`, poll `GET /v1/videos/{family}/{task_id}`,
list `GET /v1/videos/{family}?pageNum=1&pageSize=30`; a task is also queried by the `external_task_id` it was
created with, in place of the task id (`GET /v1/videos/{family}/{external_task_id}`, "you can choose to query by
external_task_id or task_id"). Auth: `Authorization: Bearer <JWT>`, an HS256 token with `iss` = access key,
`exp` = now+1800, `nbf` = now-5, signed with the secret key. Envelope `{code, message, request_id, data{task_id,
task_status, task_status_msg, task_info, created_at, updated_at, task_result{videos[{id, url, duration}]}}}`;
statuses submitted · processing · succeed · failed; no cancel endpoint.
Source: Kling's API docs (general, text2video, image2video pages); media is deleted after 30 days.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections import Counter
from typing import Mapping

import httpx
import jwt

from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import HttpProvider, classify_status
from video_pipeline.providers.media_inputs import raw_base64

FAMILIES = ("text2video", "image2video")
STATES = {"submitted": JobState.QUEUED, "processing": JobState.RUNNING, "succeed": JobState.SUCCEEDED,
          "failed": JobState.FAILED}
#: envelope codes (Kling's error-code table): auth 1000-1004, account/balance 1100-1102, no access 1103, IP policy 1304
FATAL_CODES = {1000, 1001, 1002, 1003, 1004, 1100, 1101, 1102, 1103, 1304}
TERMINAL_CODES = {1200, 1201, 1202, 1203, 1300, 1301}
RETRYABLE_CODES = {1302, 1303, 5000, 5001, 5002}
#: failed tasks carry only `task_status_msg`; these words mark failures a retry on this model will not fix
TERMINAL_HINTS = ("risk control", "content security", "sensitive", "policy", "invalid", "parameter")
DURATIONS = ("5", "10")
MEDIA_LIFETIME = dt.timedelta(days=30)
#: external ids one job key may take: the key itself, then -2 … -10 after failed tasks (see `submit`)
EXTERNAL_IDS = 10
#: the envelope code of an unknown task
NOT_FOUND_CODE = 1203


class KlingProvider(HttpProvider):
    name = "kling"
    default_base_url = "https://api-singapore.klingai.com"
    env_keys = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")
    #: how a lost submit is found again, for the ledger's note
    lookup = "external_task_id"
    #: the lookup finds a job by our own key for the request: it can never take another request's job
    lookup_identifies = True
    token_lifetime = 1800
    #: mint a new token this long before the old one expires, so no request carries a token that lapses in flight
    token_margin = 300

    def __init__(self, access_key: str, secret_key: str, **kw):
        super().__init__(**kw)
        self._access_key = access_key
        self._secret_key = secret_key
        self._token: tuple[str, float] | None = None
        self._taken: Counter[str] = Counter()      # per job key: how many external ids already name a task

    @classmethod
    def from_keys(cls, keys: Mapping[str, str], **kw) -> "KlingProvider":
        return cls(keys["KLING_ACCESS_KEY"].strip(), keys["KLING_SECRET_KEY"].strip(), **kw)

    def token(self, now: float | None = None) -> str:
        """The current bearer JWT, minted again when it is within `token_margin` of expiring."""
        now = time.time() if now is None else now
        if self._token is None or self._token[1] - now < self.token_margin:
            exp = int(now) + self.token_lifetime
            claims = {"iss": self._access_key, "exp": exp, "nbf": int(now) - 5}
            self._token = (jwt.encode(claims, self._secret_key, algorithm="HS256",
                                      headers={"alg": "HS256", "typ": "JWT"}), exp)
        return self._token[0]

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    @staticmethod
    def _envelope(response: httpx.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def error_message(self, response: httpx.Response) -> str:
        body = self._envelope(response)
        if "code" not in body:
            return super().error_message(response)
        return f"code {body['code']}: {body.get('message', '')} (request_id={body.get('request_id', '')})"

    def error_kind(self, response: httpx.Response) -> str:
        return kind_for_code(self._envelope(response).get("code"), response.status_code)

    def _data(self, response: httpx.Response, method: str, path: str, job_id: str = ""):
        """`data` of a 200 envelope; a non-zero code inside a 200 is still an error."""
        body = self._envelope(response)
        code = body.get("code", 0)
        if code != 0:
            raise ProviderError(f"{method} {path}: code {code}: {body.get('message', '')}",
                                kind=kind_for_code(code, response.status_code), provider=self.name, job_id=job_id)
        return body.get("data")

    @staticmethod
    def family_for(request: GenerationRequest) -> str:
        return "image2video" if request.image is not None else "text2video"

    def body(self, request: GenerationRequest, external_task_id: str | None = None) -> dict:
        if request.video is not None or request.audio is not None:
            raise ProviderError("Kling text2video/image2video take only a prompt and a start image",
                                kind=ProviderError.TERMINAL, provider=self.name)
        duration = str(request.seconds)
        if duration not in DURATIONS:
            raise ProviderError(f"Kling clips are 5 or 10 s, not {request.seconds} s", kind=ProviderError.TERMINAL,
                                provider=self.name)
        # Kling's modes set the output size: std renders 720p, pro 1080p.
        mode = request.options.get("mode") or ("pro" if request.resolution == "1080p" else "std")
        body: dict = {"model_name": request.route_model_id, "prompt": request.prompt, "mode": mode,
                      "duration": duration, "external_task_id": external_task_id or request.job_key}
        if request.image is not None:
            body["image"] = raw_base64(request.image)
        else:
            body["aspect_ratio"] = request.aspect_ratio    # image2video takes its shape from the image
        if request.options.get("negative_prompt"):
            body["negative_prompt"] = request.options["negative_prompt"]
        if hook := self.callback_url(unsigned=True):
            body["callback_url"] = hook   # Kling signs nothing: the URL carries the receiver's token
        return body

    @staticmethod
    def event_key(job_id: str) -> str:
        """Kling's callbacks name the task id; our job id also says which family it belongs to."""
        return job_id.split(":", 1)[-1]

    async def submit(self, request: GenerationRequest) -> str:
        """Create the task; `external_task_id` is the job key, suffixed -2, -3 … once a task under it has failed.

        Kling keeps external ids unique, so a resend after a lost answer is refused rather than paid twice; the
        refused id is then looked up in the task list and that task adopted unless it failed."""
        family = self.family_for(request)
        path = f"/v1/videos/{family}"
        n = self._taken[request.job_key]
        for _ in range(EXTERNAL_IDS):
            n += 1
            external = external_id(request.job_key, n)
            try:
                response = await self.request("POST", path, json=self.body(request, external))
            except ProviderError as exc:
                if "external_task_id" not in str(exc) or (task := await self._find(family, external)) is None:
                    raise
                self._taken[request.job_key] = n
                if task.get("task_status") == "failed":
                    continue
                return f"{family}:{task['task_id']}"
            self._taken[request.job_key] = n
            return f"{family}:{self._data(response, 'POST', path)['task_id']}"
        raise ProviderError(f"every external_task_id tried for {request.job_key} is taken by a failed task",
                            kind=ProviderError.TERMINAL, provider=self.name)

    async def _find(self, family: str, external_task_id: str) -> dict | None:
        path = f"/v1/videos/{family}"
        response = await self.request("GET", path, params={"pageNum": 1, "pageSize": 30})
        for task in self._data(response, "GET", path) or []:
            if task.get("task_info", {}).get("external_task_id") == external_task_id:
                return task
        return None

    async def find_submitted(self, request: GenerationRequest, since: dt.datetime, until: dt.datetime,
                             exclude: frozenset[str] = frozenset()) -> str | None:
        """The job id of the task `request` created between `since` and `until` under its job key (or a suffixed
        form), not in `exclude`; None when Kling knows no such task. ProviderError when it cannot be told."""
        family = self.family_for(request)
        found = []
        for n in range(1, EXTERNAL_IDS + 1):
            task = await self._task_by_external(family, external_id(request.job_key, n))
            if task is None:
                break           # submit takes the suffixes in order: none after a free one
            try:
                job_id, created = f"{family}:{task['task_id']}", _from_ms(task["created_at"])
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                raise ProviderError(f"find_submitted: unreadable task ({type(exc).__name__}: {exc})",
                                    provider=self.name) from exc
            if job_id not in exclude and since <= created <= until:
                found.append(job_id)
        if len(found) > 1:
            raise ProviderError(f"find_submitted: {len(found)} tasks under job key {request.job_key} were created "
                                f"in the window ({', '.join(found)}); ambiguous, left to an operator",
                                provider=self.name)
        return found[0] if found else None

    async def _task_by_external(self, family: str, external: str) -> dict | None:
        """The task created with `external` as its external_task_id, or None when Kling has none."""
        path = f"/v1/videos/{family}/{urllib.parse.quote(external, safe='')}"
        try:
            data = self._data(await self.request("GET", path), "GET", path)
        except ProviderError as exc:
            unknown = f"code {NOT_FOUND_CODE}" in str(exc) or "HTTP 404" in str(exc)
            if exc.kind == ProviderError.TERMINAL and unknown:
                return None
            raise
        if not isinstance(data, dict) or (data.get("task_info") or {}).get("external_task_id") != external:
            return None         # the value was read as a task id, not as our external id
        return data

    async def poll(self, job_id: str) -> JobStatus:
        family, _, task_id = job_id.partition(":")
        if family not in FAMILIES or not task_id:
            raise ProviderError(f"not a Kling job id: {job_id!r}", kind=ProviderError.TERMINAL, provider=self.name)
        path = f"/v1/videos/{family}/{task_id}"
        response = await self.request("GET", path, job_id=job_id)
        return self.status_from({"data": self._data(response, "GET", path, job_id)})

    @staticmethod
    def status_from(envelope: dict) -> JobStatus:
        """Map a task query envelope (as the docs show it) onto the common status."""
        data = envelope.get("data") or {}
        status = data.get("task_status", "")
        state = STATES.get(status, JobState.RUNNING)
        if state == JobState.SUCCEEDED:
            videos = data.get("task_result", {}).get("videos", [])
            created, updated = data.get("created_at"), data.get("updated_at")
            latency = (updated - created) / 1000 if created and updated else None
            finished = (dt.datetime.fromtimestamp(updated / 1000, dt.timezone.utc) if updated
                        else dt.datetime.now(dt.timezone.utc))
            return JobStatus(state, progress=1.0, output_url=videos[0]["url"] if videos else None,
                             url_expires_at=finished + MEDIA_LIFETIME, latency_seconds=latency)
        if state == JobState.FAILED:
            message = data.get("task_status_msg") or "no reason given"
            terminal = any(hint in message.lower() for hint in TERMINAL_HINTS)
            return JobStatus(state, error=f"task failed: {message}",
                             error_kind=ProviderError.TERMINAL if terminal else ProviderError.RETRYABLE)
        return JobStatus(state)


def external_id(job_key: str, n: int) -> str:
    """The n-th external_task_id of a job key: the key, then `key-2`, `key-3` …"""
    return job_key if n == 1 else f"{job_key}-{n}"


def _from_ms(value) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(value) / 1000, dt.timezone.utc)


def kind_for_code(code, http_status: int) -> str:
    """Error kind from Kling's envelope code; the code wins over the status (balance errors come as 429)."""
    if code in FATAL_CODES:
        return ProviderError.FATAL
    if code in TERMINAL_CODES:
        return ProviderError.TERMINAL
    if code in RETRYABLE_CODES:
        return ProviderError.RETRYABLE
    return classify_status(http_status)

"""A fake BytePlus ModelArk: content generation tasks for Seedance, its auth check, statuses and error codes, and
the task list (`page_num`, `page_size` 1-500, `filter.model`, `filter.status`, repeatable `filter.task_ids`;
`{total, items}` newest first).

Optional fields sent as JSON `null` count as unset: the BytePlus and Volcengine SDKs send every keyword argument
the caller left out as `null` (`content_generation/tasks.py`)."""

from __future__ import annotations

import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import download_route, injected, json_body
from video_pipeline.providers.fakes.jobs import JobBook

TASKS = "/api/v3/contents/generations/tasks"
STATUS = {"queued": "queued", "running": "running", "succeeded": "succeeded", "failed": "failed",
          "canceled": "cancelled"}
FAILURES = {"fail-policy": ("OutputVideoSensitiveContentDetected.PolicyViolation",
                            "The request failed because the output video may contain sensitive information."),
            "fail-invalid": ("InvalidParameter",
                             "The parameter `content[1].image_url` specified in the request is not valid."),
            "fail-retryable": ("InternalServiceError", "The service encountered an unexpected internal error.")}
MODELS = {"dreamina-seedance-2-0-260128", "dreamina-seedance-2-0-fast-260128", "dreamina-seedance-2-0-mini-260615",
          "seedance-1-5-pro-251215", "seedance-1-0-pro-250428"}
RATIOS = {"16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive"}
ROLES = {"image_url": {"first_frame", "last_frame", "reference_image"}, "video_url": {"reference_video"},
         "audio_url": {"reference_audio"}}
ERROR_TYPES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests",
               500: "InternalServerError", 503: "ServiceUnavailable"}


def _error(status: int, message: str, code: str | None = None) -> dict:
    code = code or {429: "ModelAccountRpmRateLimitExceeded", 401: "AuthenticationError",
                    400: "InvalidParameter"}.get(status, "InternalServiceError")
    return {"error": {"code": code, "message": f"{message} Request id: {uuid.uuid4().hex}", "param": "",
                      "type": ERROR_TYPES.get(status, "InternalServerError")}}


def _reply(status: int, message: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(_error(status, message, code), status_code=status)


def given(body: object) -> dict:
    """The body's fields that were set: the SDKs send `null` for every optional field the caller left out."""
    return {k: v for k, v in body.items() if v is not None} if isinstance(body, dict) else {}


def problem_with(body: dict) -> tuple[int, str, str] | None:
    """Why Ark would refuse this task body (its set fields, `given`): (HTTP status, code, message), or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return 400, "MissingParameter", "The request failed because it is missing `model` parameter."
    if body.get("model") not in MODELS:
        return (404, "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {body.get('model')} does not exist or you do not have access to it.")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        return 400, "MissingParameter", "The request failed because it is missing `content` parameter."
    roles = []
    for i, item in enumerate(content):
        if not isinstance(item, dict):
            return 400, "InvalidParameter", f"The parameter `content[{i}]` specified in the request is not valid."
        item = given(item)
        kind = item.get("type")
        if kind == "text" and not isinstance(item.get("text"), str):
            return 400, "InvalidParameter", f"The parameter `content[{i}].text` specified in the request is not valid."
        if kind == "text":
            continue
        if kind not in ROLES or item.get("role", "first_frame" if kind == "image_url" else None) not in ROLES[kind]:
            return 400, "InvalidParameter", f"The parameter `content[{i}]` specified in the request is not valid."
        url = str((item.get(kind) or {}).get("url", ""))
        web = url.startswith(("http://", "https://"))
        if not web and not (kind != "video_url" and url.startswith("data:") and ";base64," in url):
            return 400, "InvalidParameter", f"The parameter `content[{i}].{kind}.url` specified is not valid."
        roles.append(item.get("role", "first_frame"))
    if "reference_audio" in roles and not any(r in roles for r in ("reference_image", "reference_video")):
        return 400, "InvalidParameter", "Audio references require at least one image or video reference."
    if {"first_frame", "last_frame"} & set(roles) and any(r.startswith("reference_") for r in roles):
        return 400, "InvalidParameter", "First/last frame content cannot be mixed with reference content."
    duration = body.get("duration", 5)
    if isinstance(duration, bool) or not isinstance(duration, int) or not (duration == -1 or 4 <= duration <= 15):
        return 400, "InvalidParameter", "The parameter `duration` specified in the request is not valid."
    if body.get("ratio", "adaptive") not in RATIOS:
        return 400, "InvalidParameter", "The parameter `ratio` specified in the request is not valid."
    if body.get("resolution", "720p") not in ("480p", "720p", "1080p"):
        return 400, "InvalidParameter", "The parameter `resolution` specified in the request is not valid."
    return None


def create_app(book: JobBook, api_key: str = "test-ark-key") -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {api_key}"

    def unauthorized() -> JSONResponse:
        return _reply(401, "The API key or AK/SK in the request is missing or invalid.", "AuthenticationError")

    def task_of(request: Request):
        task_id = request.path_params["task_id"]
        job = book.get(task_id.removeprefix("cgt-"))
        return None if job is None or job.meta.get("deleted") else job

    def not_found(request: Request) -> JSONResponse:
        return _reply(404, f"The specified task {request.path_params['task_id']} is not found.", "ResourceNotFound")

    async def submit(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if not authorized(request):
            return unauthorized()
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        if not isinstance(raw := await json_body(request), dict):
            return _reply(400, "The request body is not a JSON object.", "InvalidParameter")
        body = given(raw)
        if (problem := problem_with(body)) is not None:
            status, code, message = problem
            return _reply(status, message, code)
        content = [given(c) for c in body["content"]]
        prompt = next((c["text"] for c in content if c.get("type") == "text"), "")
        ratio = body.get("ratio", "adaptive")
        duration = body.get("duration", 5) if body.get("duration", 5) > 0 else 5
        job = book.create(raw, prompt, duration, "16:9" if ratio == "adaptive" else ratio, model=body["model"],
                          resolution=body.get("resolution", "720p"), ratio=ratio,
                          roles=[c.get("role") for c in content if c.get("type") != "text"])
        return JSONResponse({"id": f"cgt-{job.id}"})

    async def get(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        job = task_of(request)
        if job is None:
            return not_found(request)
        return JSONResponse(task_json(job, str(request.base_url)))

    def task_json(job, base_url: str) -> dict:
        phase = job.phase()
        updated = {"queued": job.created, "running": job.created + job.latency * 0.25}.get(
            phase, job.created + job.latency)
        task = {"id": f"cgt-{job.id}", "model": job.meta["model"], "status": STATUS[phase],
                "created_at": int(job.created), "updated_at": int(updated), "seed": 11,
                "resolution": job.meta["resolution"], "ratio": job.meta["ratio"], "duration": int(job.seconds),
                "framespersecond": 24, "generate_audio": False}
        if phase == "succeeded":
            task["content"] = {"video_url": f"{base_url}files/{job.id}.mp4?X-Tos-Expires="
                                            f"{int(book.expires_at(job))}"}
            task["usage"] = {"completion_tokens": int(job.seconds * 21600), "total_tokens": int(job.seconds * 21600)}
        elif phase == "failed":
            code, message = FAILURES[job.fault]
            task["error"] = {"code": code, "message": message}
        return task

    async def listing(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        query = request.query_params
        try:
            page_num, page_size = int(query.get("page_num", 1)), int(query.get("page_size", 10))
        except ValueError:
            page_num = page_size = 0
        if not (1 <= page_num <= 500 and 1 <= page_size <= 500):
            return _reply(400, "The parameter `page_num` or `page_size` specified in the request is not valid.",
                          "InvalidParameter")
        ids = {i.removeprefix("cgt-") for i in query.getlist("filter.task_ids")}
        tasks = [j for j in list(book.jobs.values()) if not j.meta.get("deleted")
                 and (not query.get("filter.model") or j.meta["model"] == query["filter.model"])
                 and (not query.get("filter.status") or STATUS[j.phase()] == query["filter.status"])
                 and (not ids or j.id in ids)]
        tasks.sort(key=lambda j: -j.created)
        shown = tasks[(page_num - 1) * page_size: page_num * page_size]
        base = str(request.base_url)
        return JSONResponse({"total": len(tasks), "items": [task_json(j, base) for j in shown]})

    async def delete(request: Request) -> Response:
        book.requests.append(("DELETE", request.url.path))
        if not authorized(request):
            return unauthorized()
        job = task_of(request)
        if job is None:
            return not_found(request)
        phase = job.phase()
        if phase == "running":
            return _reply(400, "The task is running and cannot be cancelled or deleted.", "InvalidParameter")
        if phase == "queued":
            job.canceled = True
        else:
            job.meta["deleted"] = True
        return JSONResponse({})

    return Starlette(routes=[
        Route(TASKS, submit, methods=["POST"]),
        Route(TASKS, listing, methods=["GET"]),
        Route(TASKS + "/{task_id}", get, methods=["GET"]),
        Route(TASKS + "/{task_id}", delete, methods=["DELETE"]),
        download_route(book),
    ])

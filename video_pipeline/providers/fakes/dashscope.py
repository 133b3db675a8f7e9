"""A fake DashScope: the async video-synthesis task API, its auth check, statuses and error codes."""

from __future__ import annotations

import datetime as dt
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import download_route, injected
from .jobs import JobBook

STATUS = {"queued": "PENDING", "running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED",
          "canceled": "CANCELED"}
FAILURES = {"fail-policy": ("DataInspectionFailed", "Output data may contain inappropriate content."),
            "fail-invalid": ("InvalidParameter", "The size is not supported by this model."),
            "fail-retryable": ("InternalError", "An internal error has occured, please try again later.")}


def _error(status: int, message: str) -> dict:
    code = {401: "InvalidApiKey", 429: "Throttling.RateQuota", 400: "InvalidParameter"}.get(status, "InternalError")
    return {"code": code, "message": message, "request_id": str(uuid.uuid4())}


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def create_app(book: JobBook, api_key: str = "test-dashscope-key") -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {api_key}"

    def unauthorized() -> JSONResponse:
        return JSONResponse(_error(401, "Invalid API-key provided."), status_code=401)

    async def submit(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if not authorized(request):
            return unauthorized()
        if request.headers.get("x-dashscope-async") != "enable":
            return JSONResponse(_error(403, "current user api does not support synchronous calls"), status_code=403)
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        body = await request.json()
        prompt = body.get("input", {}).get("prompt")
        if not prompt or "model" not in body:
            return JSONResponse(_error(400, "Field required: input.prompt"), status_code=400)
        w, h = (int(x) for x in body.get("parameters", {}).get("size", "1280*720").split("*"))
        ratio = "16:9" if w > h else ("9:16" if h > w else "1:1")
        job = book.create(body, prompt, body.get("parameters", {}).get("duration", 5), ratio, model=body["model"])
        return JSONResponse({"request_id": str(uuid.uuid4()), "output": {"task_id": job.id, "task_status": "PENDING"}})

    async def task(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        job = book.get(request.path_params["task_id"])
        if job is None:
            return JSONResponse({"request_id": str(uuid.uuid4()), "output": {"task_id": request.path_params["task_id"],
                                                                               "task_status": "UNKNOWN"}})
        phase = job.phase()
        output = {"task_id": job.id, "task_status": STATUS[phase], "submit_time": _stamp(job.created)}
        if phase in ("running", "succeeded", "failed"):
            output["scheduled_time"] = _stamp(job.created + job.latency * 0.25)
        if phase == "succeeded":
            output.update(end_time=_stamp(job.created + job.latency), orig_prompt=job.prompt,
                          video_url=f"{request.base_url}files/{job.id}.mp4?Expires={int(book.expires_at(job))}")
            return JSONResponse({"request_id": str(uuid.uuid4()), "output": output,
                                 "usage": {"video_duration": job.seconds, "video_count": 1}})
        if phase == "failed":
            code, message = FAILURES[job.fault]
            output.update(code=code, message=message, end_time=_stamp(job.created + job.latency))
        return JSONResponse({"request_id": str(uuid.uuid4()), "output": output})

    async def cancel(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if not authorized(request):
            return unauthorized()
        job = book.get(request.path_params["task_id"])
        if job is None or job.phase() != "queued":
            return JSONResponse({"code": "UnsupportedOperation", "message": "Failed to cancel the task, please "
                                 "confirm if the task status is PENDING", "request_id": str(uuid.uuid4())},
                                status_code=400)
        job.canceled = True
        return JSONResponse({"request_id": str(uuid.uuid4())})

    return Starlette(routes=[
        Route("/api/v1/services/aigc/video-generation/video-synthesis", submit, methods=["POST"]),
        Route("/api/v1/tasks/{task_id}", task, methods=["GET"]),
        Route("/api/v1/tasks/{task_id}/cancel", cancel, methods=["POST"]),
        download_route(book),
    ])

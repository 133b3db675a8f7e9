"""A fake DashScope: the async video-synthesis task API, its auth check, statuses and error codes, and the batch
task query (`GET /api/v1/tasks`: `start_time`/`end_time` as `YYYYMMDDhhmmss` read in UTC+8, at most 24 h apart,
`model_name`, `status`, `task_id`, `page_no`, `page_size`; newest first).

Only the video-synthesis models in `MODELS` exist; another is a 400 `InvalidParameter` "Model not exist." (DashScope's
answer to an unknown model); `input.prompt` must be a string, `parameters.duration` an integer."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import download_route, injected, json_body
from video_pipeline.providers.fakes.jobs import JobBook

STATUS = {"queued": "PENDING", "running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED",
          "canceled": "CANCELED"}
FAILURES = {"fail-policy": ("DataInspectionFailed", "Output data may contain inappropriate content."),
            "fail-invalid": ("InvalidParameter", "The size is not supported by this model."),
            "fail-retryable": ("InternalError", "An internal error has occured, please try again later.")}


#: video-synthesis models (Alibaba Cloud Model Studio's Wan text- and image-to-video references)
MODELS = {"wan2.6-t2v", "wan2.6-i2v", "wan2.6-i2v-flash", "wan2.6-r2v", "wan2.7-i2v", "wan2.7-r2v",
          "wan2.5-t2v-preview", "wan2.5-i2v-preview", "wan2.2-t2v-plus", "wan2.2-i2v-plus", "wan2.2-i2v-flash",
          "wan2.2-s2v", "wanx2.1-t2v-turbo", "wanx2.1-t2v-plus", "wanx2.1-i2v-turbo", "wanx2.1-i2v-plus"}


def _error(status: int, message: str) -> dict:
    code = {401: "InvalidApiKey", 429: "Throttling.RateQuota", 400: "InvalidParameter"}.get(status, "InternalError")
    return {"code": code, "message": message, "request_id": str(uuid.uuid4())}


#: the zone the fake reads query times in (the docs name none; Beijing and Singapore are both UTC+8)
QUERY_ZONE = dt.timezone(dt.timedelta(hours=8))
DAY = 86400.0


def _query_time(value: str) -> float:
    return dt.datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=QUERY_ZONE).timestamp()


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
        body = await json_body(request)
        if not isinstance(body, dict) or not body.get("model"):
            return JSONResponse(_error(400, "Field required: model"), status_code=400)
        if body["model"] not in MODELS:
            return JSONResponse(_error(400, "Model not exist."), status_code=400)
        inputs, params = body.get("input") or {}, body.get("parameters") or {}
        prompt = inputs.get("prompt") if isinstance(inputs, dict) else None
        if not isinstance(prompt, str) or not prompt:
            return JSONResponse(_error(400, "Field required: input.prompt"), status_code=400)
        duration = params.get("duration", 5) if isinstance(params, dict) else None
        if isinstance(duration, bool) or not isinstance(duration, int):
            return JSONResponse(_error(400, f"parameters.duration must be an integer, got {duration!r}"),
                                status_code=400)
        w, h = (int(x) for x in (params.get("size") or "1280*720").split("*"))
        ratio = "16:9" if w > h else ("9:16" if h > w else "1:1")
        job = book.create(body, prompt, duration, ratio, model=body["model"],
                          resolution=params.get("resolution") or f"{min(w, h)}P")
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

    async def tasks(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        query = request.query_params
        try:
            start = _query_time(query["start_time"]) if query.get("start_time") else None
            end = _query_time(query["end_time"]) if query.get("end_time") else None
            page_no, page_size = int(query.get("page_no", 1)), int(query.get("page_size", 10))
        except ValueError as exc:
            return JSONResponse(_error(400, f"Invalid time or page parameter: {exc}"), status_code=400)
        if start is None and end is None:
            end = time.time()
        start = end - DAY if start is None else start
        end = start + DAY if end is None else end
        if not 0 <= end - start <= DAY or page_no < 1 or page_size < 1:
            return JSONResponse(_error(400, "The time range must be at most 24 hours, end after start."),
                                status_code=400)
        chosen = sorted((j for j in list(book.jobs.values()) if start <= j.created <= end
                         and (not query.get("model_name") or j.meta["model"] == query["model_name"])
                         and (not query.get("status") or STATUS[j.phase()] == query["status"])
                         and (not query.get("task_id") or j.id == query["task_id"])), key=lambda j: -j.created)
        shown = chosen[(page_no - 1) * page_size: page_no * page_size]
        return JSONResponse({"request_id": str(uuid.uuid4()), "data": [listed(j) for j in shown],
                             "total": len(chosen), "total_page": max(1, -(-len(chosen) // page_size)),
                             "page_no": page_no, "page_size": page_size})

    def listed(job) -> dict:
        phase = job.phase()
        row = {"api_key_id": "1001", "caller_parent_id": "1000000", "caller_uid": "1000000",
               "gmt_create": int(job.created * 1000), "model_name": job.meta["model"], "region": "ap-southeast-1",
               "request_id": str(uuid.uuid5(uuid.NAMESPACE_URL, job.id)), "status": STATUS[phase], "task_id": job.id,
               "user_api_unique_key": f"apikey:v1:aigc:video-generation:video-synthesis:{job.meta['model']}"}
        if phase != "queued":
            row["start_time"] = int((job.created + job.latency * 0.25) * 1000)
        if phase in ("succeeded", "failed"):
            row["end_time"] = int((job.created + job.latency) * 1000)
        return row

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
        Route("/api/v1/tasks", tasks, methods=["GET"]),
        Route("/api/v1/tasks/", tasks, methods=["GET"]),
        Route("/api/v1/tasks/{task_id}", task, methods=["GET"]),
        Route("/api/v1/tasks/{task_id}/cancel", cancel, methods=["POST"]),
        download_route(book),
    ])

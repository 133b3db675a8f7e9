"""A fake MiniMax (v1 video protocol): create, query, files/retrieve, and errors as HTTP 200 + `base_resp`.

With `callback_url` in the body, the finished task is POSTed there as `{task_id, status, file_id, base_resp}`,
after the `{"challenge": ...}` handshake was echoed; nothing is signed (the URL carries the receiver's token)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import download_route, injected
from video_pipeline.providers.fakes.jobs import FakeJob, FaultPlan, JobBook
from video_pipeline.providers.fakes.webhooks import TokenSigner

FAILURES = {"fail-policy": (1027, "output new_sensitive"),
            "fail-invalid": (2013, "invalid params, the first frame image could not be decoded"),
            "fail-retryable": (1000, "unknown error")}
MODELS = {"MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast", "MiniMax-Hailuo-02", "T2V-01", "T2V-01-Director",
          "I2V-01", "I2V-01-Director", "I2V-01-live", "S2V-01"}
_file_ids = itertools.count(366_000_000_000_000)


def _base(code: int = 0, message: str = "success") -> dict:
    return {"status_code": code, "status_msg": message}


def _error(status: int, message: str) -> dict:
    code = {429: 1002, 401: 1004}.get(status, 1000)
    return {"base_resp": _base(code, message)}


def task_status(job: FakeJob) -> dict:
    """The query endpoint's answer for `job` now."""
    phase = job.phase()
    if phase == "queued":
        status = "Preparing" if job.phase(queue_fraction=0.1) == "queued" else "Queueing"
    else:
        status = {"running": "Processing", "succeeded": "Success", "failed": "Fail"}[phase]
    body = {"task_id": job.id, "status": status, "file_id": "", "base_resp": _base()}
    if status == "Success":
        width, height = (1920, 1080) if job.meta["resolution"] == "1080P" else (1366, 768)
        body.update(file_id=job.meta["file_id"], video_width=width, video_height=height)
    elif status == "Fail":
        body["base_resp"] = _base(*FAILURES[job.fault])
    return body


def callback_body(job: FakeJob) -> dict | None:
    """The status POST to `callback_url` once the task ended."""
    if job.phase() not in ("succeeded", "failed"):
        return None
    status = task_status(job)
    return {key: status[key] for key in ("task_id", "status", "file_id", "base_resp")}


def create_app(book: JobBook, api_key: str = "test-minimax-key") -> Starlette:
    def auth_error(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return JSONResponse({"base_resp": _base(1004, "login fail: Please carry the API secret key in the "
                                                    "'Authorization' field of the request header")})
        if header != f"Bearer {api_key}":
            return JSONResponse({"base_resp": _base(2049, "invalid api key")})
        return None

    async def fault(phase: str) -> Response | None:
        # MiniMax's own rate limit is an HTTP 200 carrying 1002 and no Retry-After; other faults are the gateway's
        kind = book.faults.take(phase)
        if kind is None:
            return None
        if kind == "429-no-retry-after":
            return JSONResponse({"base_resp": _base(1002, "rate limit")})
        return await injected(SimpleNamespace(faults=FaultPlan(**{phase: [kind]})), phase, _error)

    async def submit(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if (denied := auth_error(request)) is not None:
            return denied
        if (injected_fault := await fault("submit")) is not None:
            return injected_fault
        body = await request.json()
        problem = None
        if body.get("model") not in MODELS:
            problem = f"invalid params, model {body.get('model')!r} is not supported"
        elif not body.get("prompt") and not body.get("first_frame_image"):
            problem = "invalid params, prompt is required"
        elif body.get("duration", 6) not in (6, 10):
            problem = "invalid params, duration must be 6 or 10"
        elif body.get("resolution", "768P") not in ("512P", "768P", "1080P"):
            problem = "invalid params, resolution must be one of 512P, 768P, 1080P"
        elif body.get("resolution") == "1080P" and body.get("duration") == 10:
            problem = "invalid params, 1080P supports a duration of 6 seconds only"
        elif str(body.get("first_frame_image", "data:image/")).split(":")[0] not in ("data", "http", "https"):
            problem = "invalid params, first_frame_image must be a URL or a data URI"
        if problem:
            return JSONResponse({"task_id": "", "base_resp": _base(2013, problem)})
        job = book.create(body, body.get("prompt", ""), body.get("duration", 6), "16:9", model=body["model"],
                          file_id=str(next(_file_ids)), resolution=body.get("resolution", "768P"))
        if body.get("callback_url"):
            book.schedule_webhook(job, body["callback_url"], lambda: callback_body(job), TokenSigner(),
                                  challenge=True)
        return JSONResponse({"task_id": job.id, "base_resp": _base()})

    async def query(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := auth_error(request)) is not None:
            return denied
        if (injected_fault := await fault("poll")) is not None:
            return injected_fault
        job = book.get(request.query_params.get("task_id", ""))
        if job is None:
            return JSONResponse({"task_id": request.query_params.get("task_id", ""), "status": "",
                                 "base_resp": _base(2013, "invalid params, task not found")})
        return JSONResponse(task_status(job))

    async def retrieve(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := auth_error(request)) is not None:
            return denied
        if (injected_fault := await fault("result")) is not None:
            return injected_fault
        file_id = request.query_params.get("file_id", "")
        job = next((j for j in book.jobs.values() if j.meta.get("file_id") == file_id), None)
        if job is None or job.phase() != "succeeded":
            return JSONResponse({"base_resp": _base(2013, "invalid params, file not found")})
        url = f"{request.base_url}download/{job.id}.mp4?Expires={int(book.expires_at(job))}"
        return JSONResponse({"file": {"file_id": file_id, "bytes": len(book.mp4(job)),
                                      "created_at": int(job.created + job.latency), "filename": f"{job.id}.mp4",
                                      "purpose": "video_generation", "download_url": url},
                             "base_resp": _base()})

    return Starlette(routes=[
        Route("/v1/video_generation", submit, methods=["POST"]),
        Route("/v1/query/video_generation", query, methods=["GET"]),
        Route("/v1/files/retrieve", retrieve, methods=["GET"]),
        download_route(book, "/download/{job_id}.mp4"),
    ])

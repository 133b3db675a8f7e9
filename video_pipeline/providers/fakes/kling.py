"""A fake Kling API: JWT-checked text2video/image2video tasks, their envelope, statuses and error codes.

A task is queried by its task_id or by its external_task_id (`GET /v1/videos/{family}/{id}`), as Kling's docs say.
With `callback_url` in the body, the finished task is POSTed there in its envelope (`{code, message, request_id,
data: <task>}`); nothing is signed (the URL carries the receiver's token).

`model_name` must be one of `MODELS` (Kling's model list; unset means kling-v1): another is a 400 with code 1201,
Kling's parameter error."""

from __future__ import annotations

import base64
import binascii
import time
import uuid

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import download_route, injected
from video_pipeline.providers.fakes.jobs import JobBook
from video_pipeline.providers.fakes.webhooks import TokenSigner

STATUS = {"queued": "submitted", "running": "processing", "succeeded": "succeed", "failed": "failed"}
#: job faults → the `task_status_msg` of the failed task (Kling puts no code on a failed task)
FAILURES = {"fail-policy": "Failure to pass the risk control system",
            "fail-invalid": "Invalid parameter: the image resolution is below 300px",
            "fail-retryable": "Internal error during generation, please try again later"}
MODELS = {"kling-v1", "kling-v1-5", "kling-v1-6", "kling-v2-master", "kling-v2-1", "kling-v2-1-master",
          "kling-v2-5-turbo", "kling-v2-6", "kling-v3"}
CODES = {400: 1201, 401: 1002, 404: 1203, 429: 1302, 500: 5000, 503: 5001, 504: 5002}


def _envelope(code: int, message: str, data=None) -> dict:
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    if data is not None:
        body["data"] = data
    return body


def _error(status: int, message: str) -> dict:
    return _envelope(CODES.get(status, 5000), message)


def _ms(t: float) -> int:
    return int(t * 1000)


def create_app(book: JobBook, access_key: str = "test-kling-access-key-0123456789ab",
               secret_key: str = "test-kling-secret-key-0123456789ab") -> Starlette:
    tasks_by_external: dict[str, str] = {}

    def auth_failure(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return JSONResponse(_envelope(1001, "Authorization is empty"), status_code=401)
        token = header[7:].strip()
        try:
            if jwt.get_unverified_header(token).get("typ") != "JWT":
                raise jwt.InvalidTokenError("typ")
            claims = jwt.decode(token, secret_key, algorithms=["HS256"], options={"require": ["iss", "exp", "nbf"]})
        except jwt.ExpiredSignatureError:
            return JSONResponse(_envelope(1004, "Authorization has expired"), status_code=401)
        except jwt.ImmatureSignatureError:
            return JSONResponse(_envelope(1003, "Authorization is not yet valid"), status_code=401)
        except jwt.InvalidTokenError:
            return JSONResponse(_envelope(1002, "Authorization is invalid"), status_code=401)
        if claims["iss"] != access_key:
            return JSONResponse(_envelope(1000, "Authentication failed"), status_code=401)
        return None

    def invalid(message: str) -> JSONResponse:
        return JSONResponse(_envelope(1201, message), status_code=400)

    def task_json(job, base_url: str) -> dict:
        phase = job.phase()
        data = {"task_id": job.id, "task_status": STATUS[phase], "task_status_msg": "",
                "task_info": {"external_task_id": job.meta["external_task_id"]},
                "created_at": _ms(job.created), "updated_at": _ms(min(time.time(), job.created + job.latency))}
        if phase == "succeeded":
            data["updated_at"] = _ms(job.created + job.latency)
            data["final_unit_deduction"] = "1" if job.seconds <= 5 else "2"
            expires = int(book.expires_at(job))
            data["task_result"] = {"videos": [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, job.id)),
                                               "url": f"{base_url}files/{job.id}.mp4?x-expires={expires}",
                                               "duration": str(int(job.seconds))}]}
        elif phase == "failed":
            data["updated_at"] = _ms(job.created + job.latency)
            data["task_status_msg"] = FAILURES[job.fault]
        return data

    async def submit(request: Request) -> Response:
        family = request.url.path.rsplit("/", 1)[1]
        book.requests.append(("POST", request.url.path))
        if (denied := auth_failure(request)) is not None:
            return denied
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        body = await request.json()
        if body.get("model_name", "kling-v1") not in MODELS:
            return invalid(f"model_name is invalid: {body.get('model_name')!r} is not a supported model")
        prompt = body.get("prompt", "")
        if family == "text2video" and not prompt:
            return invalid("prompt is required")
        if body.get("duration", "5") not in ("5", "10"):
            return invalid(f"duration must be the string \"5\" or \"10\", got {body.get('duration')!r}")
        if body.get("mode", "std") not in ("std", "pro"):
            return invalid("mode must be std or pro")
        ratio = body.get("aspect_ratio", "16:9")
        if family == "image2video":
            image = body.get("image", "")
            if not image:
                return invalid("image is required")
            if image.startswith("data:"):
                return invalid("image: base64 must not carry a data: prefix")
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                return invalid("image: not valid base64")
        elif ratio not in ("16:9", "9:16", "1:1"):
            return invalid(f"aspect_ratio {ratio} is not supported")
        external = body.get("external_task_id") or ""
        if external and external in tasks_by_external:
            return invalid("external_task_id already exists")
        job = book.create(body, prompt or "image to video", int(body.get("duration", "5")), ratio,
                          family=family, model=body.get("model_name", "kling-v1"), mode=body.get("mode", "std"),
                          external_task_id=external, image=body.get("image"))
        if external:
            tasks_by_external[external] = job.id
        if body.get("callback_url"):
            base = str(request.base_url)
            book.schedule_webhook(job, body["callback_url"],
                                  lambda: _envelope(0, "SUCCEED", task_json(job, base)), TokenSigner())
        return JSONResponse(_envelope(0, "SUCCEED", {"task_id": job.id, "task_status": "submitted",
                                                     "task_info": {"external_task_id": external},
                                                     "created_at": _ms(job.created), "updated_at": _ms(job.created)}))

    async def task(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := auth_failure(request)) is not None:
            return denied
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        # Kling answers a task's query by its task_id or by the external_task_id it was created with
        key = request.path_params["task_id"]
        job = book.get(key) or book.get(tasks_by_external.get(key, ""))
        if job is None or job.meta["family"] != request.path_params["family"]:
            return JSONResponse(_envelope(1203, "task not found"), status_code=404)
        return JSONResponse(_envelope(0, "SUCCEED", task_json(job, str(request.base_url))))

    async def task_list(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := auth_failure(request)) is not None:
            return denied
        page = int(request.query_params.get("pageNum", 1))
        size = min(int(request.query_params.get("pageSize", 30)), 500)
        family = request.path_params["family"]
        newest = sorted((j for j in book.jobs.values() if j.meta["family"] == family), key=lambda j: -j.created)
        shown = newest[(page - 1) * size: page * size]
        return JSONResponse(_envelope(0, "SUCCEED", [task_json(j, str(request.base_url)) for j in shown]))

    return Starlette(routes=[
        Route("/v1/videos/text2video", submit, methods=["POST"]),
        Route("/v1/videos/image2video", submit, methods=["POST"]),
        Route("/v1/videos/{family:str}", task_list, methods=["GET"]),
        Route("/v1/videos/{family:str}/{task_id}", task, methods=["GET"]),
        download_route(book),
    ])

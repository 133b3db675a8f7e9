"""A fake fal.ai queue: submit under the full endpoint id, status/result/cancel under `{owner}/{app}/requests/{id}`
(the subpath dropped, as fal does), `Key` auth, queue positions, and fal's two error shapes.

With `?fal_webhook=<url>` on submit, the finished request is POSTed there as
`{request_id, gateway_request_id, status: "OK"|"ERROR", payload, error}`, Ed25519-signed with the book's
`webhook_key`, whose public half is served at GET /.well-known/jwks.json."""

from __future__ import annotations

import re
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import download_route, injected
from .jobs import FakeJob, JobBook

STATUS = {"queued": "IN_QUEUE", "running": "IN_PROGRESS", "succeeded": "COMPLETED", "failed": "COMPLETED",
          "canceled": "COMPLETED"}
#: job fault → (error type, message, result GET status, offending input field)
FAILURES = {
    "fail-policy": ("content_policy_violation", "The content could not be processed because it contained material "
                    "flagged by a content checker.", 422, "prompt"),
    "fail-invalid": ("one_of", "Input should be '4s', '6s' or '8s'", 422, "duration"),
    "fail-retryable": ("runner_server_error", "The runner encountered an internal server error.", 500, None),
}
UNAUTHORIZED = {"detail": "No user found for Key ID and Secret"}


def _error(status: int, message: str) -> dict:
    return {"detail": message}


def _seconds(duration: object) -> float:
    match = re.match(r"\s*(\d+(?:\.\d+)?)", str(duration or ""))
    return float(match.group(1)) if match else 4.0


def create_app(book: JobBook, api_key: str = "test-fal-key", status_errors: bool = True) -> Starlette:
    """`status_errors=False` reports failures only through the result GET (endpoints not yet migrated to
    the status-body `error`/`error_type` fields)."""
    seen = {"status_queries": [], "lifecycle": []}

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {api_key}"

    def urls(request: Request | str, job: FakeJob) -> dict:
        base = f"{request if isinstance(request, str) else request.base_url}{job.meta['app']}/requests/{job.id}"
        return {"request_id": job.id, "response_url": base, "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel"}

    def position(job: FakeJob) -> int:
        return sum(1 for other in list(book.jobs.values())
                   if other.created < job.created and other.phase() == "queued")

    def lookup(request: Request) -> FakeJob | None:
        job = book.get(request.path_params["request_id"])
        app = f"{request.path_params['owner']}/{request.path_params['app']}"
        return job if job is not None and job.meta["app"] == app else None

    def not_found() -> JSONResponse:
        return JSONResponse({"detail": "Request not found"}, status_code=404)

    async def submit(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if not authorized(request):
            return JSONResponse(UNAUTHORIZED, status_code=401)
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        body = await request.json()
        if not (body.get("prompt") or body.get("video_url") or (body.get("image_url") and body.get("audio_url"))):
            return JSONResponse({"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing",
                                             "url": "https://docs.fal.ai/errors#missing"}]}, status_code=422)
        seen["lifecycle"].append(request.headers.get("x-fal-object-lifecycle-preference"))
        endpoint = request.path_params["model_id"].strip("/")
        ratio = body.get("aspect_ratio", "16:9")
        job = book.create(body, body.get("prompt") or "talking head", _seconds(body.get("duration")),
                          ratio if re.fullmatch(r"\d+:\d+", str(ratio)) else "16:9",
                          model=endpoint, app="/".join(endpoint.split("/")[:2]))
        if hook := request.query_params.get("fal_webhook"):
            base = str(request.base_url)
            book.schedule_webhook(job, hook, lambda: webhook_body(base, job), book.fal_signer())
        return JSONResponse({**urls(request, job), "gateway_request_id": job.id, "queue_position": position(job)})

    async def status(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        seen["status_queries"].append(request.url.query)
        if not authorized(request):
            return JSONResponse(UNAUTHORIZED, status_code=401)
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        if (job := lookup(request)) is None:
            return not_found()
        phase = job.phase()
        body = {"status": STATUS[phase], **urls(request, job)}
        if phase == "queued":
            body["queue_position"] = position(job)
        logs = request.query_params.get("logs") == "1"
        if phase != "queued":
            body["logs"] = [{"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "level": "INFO", "source": "user",
                             "message": "generating"}] if logs else None
        if phase in ("succeeded", "failed"):
            body["metrics"] = {"inference_time": round(job.latency * 0.75, 3)}
        if phase == "failed" and status_errors:
            error_type, message, _, _ = FAILURES[job.fault]
            body.update(error=message, error_type=error_type)
        if phase == "canceled":
            body.update(error="Request was cancelled by the client", error_type="client_cancelled")
        return JSONResponse(body)

    async def result(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return JSONResponse(UNAUTHORIZED, status_code=401)
        if (fault := await injected(book, "result", _error)) is not None:
            return fault
        if (job := lookup(request)) is None:
            return not_found()
        phase = job.phase()
        if phase in ("queued", "running"):
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if phase == "canceled":
            return JSONResponse({"detail": "Request was cancelled", "error_type": "client_cancelled"},
                                status_code=499, headers={"X-Fal-Error-Type": "client_cancelled"})
        if phase == "failed":
            code, body, headers = failure(job)
            return JSONResponse(body, status_code=code, headers=headers)
        return JSONResponse(output(str(request.base_url), job))

    def failure(job: FakeJob) -> tuple[int, dict, dict]:
        """A failed request's result: (HTTP status, body, headers)."""
        error_type, message, code, field = FAILURES[job.fault]
        if field is None:
            return code, {"detail": message, "error_type": error_type}, {"X-Fal-Error-Type": error_type}
        return code, {"detail": [{"loc": ["body", field], "msg": message, "type": error_type,
                                  "url": f"https://docs.fal.ai/errors#{error_type}",
                                  "input": job.prompt if field == "prompt" else None}]}, {"X-Fal-Retryable": "false"}

    def output(base: str, job: FakeJob) -> dict:
        url = f"{base}files/{job.id}.mp4?expires={int(book.expires_at(job))}"
        return {"video": {"url": url, "content_type": "video/mp4", "file_name": "output.mp4",
                          "file_size": len(book.mp4(job))}}

    def webhook_body(base: str, job: FakeJob) -> dict | None:
        """What fal POSTs to `fal_webhook` when the request ends: the result as `payload`, or the error."""
        phase = job.phase()
        body = {"request_id": job.id, "gateway_request_id": job.id}
        if phase == "succeeded":
            return {**body, "status": "OK", "payload": output(base, job), "error": None}
        if phase == "failed":
            code, detail, _ = failure(job)
            return {**body, "status": "ERROR", "payload": detail, "error": f"Invalid status code: {code}"}
        return None

    async def jwks(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        return JSONResponse(book.jwks())

    async def cancel(request: Request) -> Response:
        book.requests.append(("PUT", request.url.path))
        if not authorized(request):
            return JSONResponse(UNAUTHORIZED, status_code=401)
        if (job := lookup(request)) is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        if job.phase() != "queued":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        job.canceled = True
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    app = Starlette(routes=[
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        download_route(book),
        Route("/{owner}/{app}/requests/{request_id}/status", status, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/cancel", cancel, methods=["PUT"]),
        Route("/{owner}/{app}/requests/{request_id}", result, methods=["GET"]),
        Route("/{model_id:path}", submit, methods=["POST"]),
    ])
    app.state.seen = seen
    return app

"""A fake fal.ai queue: submit under the full endpoint id, status/result/cancel under `{owner}/{app}/requests/{id}`
(the subpath dropped, as fal does), `Key` auth, queue positions, and fal's two error shapes.

With `?fal_webhook=<url>` on submit, the finished request is POSTed there as
`{request_id, gateway_request_id, status: "OK"|"ERROR", payload, error}`, Ed25519-signed with the book's
`webhook_key`, whose public half is served at GET /.well-known/jwks.json.

fal's platform API (another host in real life) is served here too, so both base URLs can point at one fake:
GET /v1/models/requests/by-endpoint lists the requests of an endpoint that have ended (the listing is sorted by
end time and its status filter knows only outcomes, so a queued or running request is not in it), newest end
first, `start`/`end` bounding the end time, with `expand=payloads` adding `json_input`/`json_output`.
`create_platform_app` serves that listing alone.

Only the endpoints in `ENDPOINTS` exist (the catalog's fal routes and their image-to-video siblings); a submit to
another is a 404 `{"detail": "Application '<app>' not found"}` (the shape is assumed: fal documents none). Status
calls include logs for `logs=1` and for `logs=true`, which fal-client sends (`with_logs=True`)."""

from __future__ import annotations

import base64
import datetime as dt
import re
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import download_route, injected, json_body
from video_pipeline.providers.fakes.jobs import FakeJob, JobBook

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
REQUESTS_BY_ENDPOINT = "/v1/models/requests/by-endpoint"
#: endpoint ids the fake serves: the catalog's fal routes, and each one's image-to-video and reference-to-video
#: variant (what the adapter switches to for inputs: `text-to-video` replaced, else appended)
_ROUTES = ("fal-ai/veo3.1", "fal-ai/veo3.1/fast", "fal-ai/kling-video/v3/pro/text-to-video",
           "fal-ai/minimax/hailuo-02/standard/text-to-video", "fal-ai/wan/v2.6/text-to-video",
           "bytedance/seedance-2.0/text-to-video", "fal-ai/bytedance/omnihuman", "fal-ai/topaz/upscale/video")
ENDPOINTS = set(_ROUTES) | {f"{route.removesuffix('/text-to-video')}/{variant}" for route in _ROUTES
                            for variant in ("image-to-video", "reference-to-video")}
#: `logs` values that ask for logs (fal documents `logs=1`; fal-client sends httpx's `true`)
TRUE_FLAGS = {"1", "true", "True"}
#: the listing's `status` filter → the HTTP statuses it selects
OUTCOMES = {"success": range(200, 300), "user_error": range(400, 500), "error": range(500, 600)}


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
        endpoint = request.path_params["model_id"].strip("/")
        if endpoint not in ENDPOINTS:
            return JSONResponse({"detail": f"Application '{endpoint.split('/')[1] if '/' in endpoint else endpoint}' "
                                           "not found"}, status_code=404)
        body = await json_body(request)
        if not isinstance(body, dict):
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary",
                                             "type": "dict_type"}]}, status_code=422)
        if not (body.get("prompt") or body.get("video_url") or (body.get("image_url") and body.get("audio_url"))):
            return JSONResponse({"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing",
                                             "url": "https://docs.fal.ai/errors#missing"}]}, status_code=422)
        seen["lifecycle"].append(request.headers.get("x-fal-object-lifecycle-preference"))
        ratio = body.get("aspect_ratio", "16:9")
        job = book.create(body, body.get("prompt") or "talking head", _seconds(body.get("duration")),
                          ratio if re.fullmatch(r"\d+:\d+", str(ratio)) else "16:9",
                          model=endpoint, app="/".join(endpoint.split("/")[:2]), input=body,
                          **({"resolution": body["resolution"]} if body.get("resolution") else {}))
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
        logs = request.query_params.get("logs") in TRUE_FLAGS
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
        job.meta["canceled_at"] = time.time()
        job.canceled = True
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    app = Starlette(routes=[
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        requests_route(book, api_key),
        download_route(book),
        Route("/{owner}/{app}/requests/{request_id}/status", status, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/cancel", cancel, methods=["PUT"]),
        Route("/{owner}/{app}/requests/{request_id}", result, methods=["GET"]),
        Route("/{model_id:path}", submit, methods=["POST"]),
    ])
    app.state.seen = seen
    return app


def failure(job: FakeJob) -> tuple[int, dict, dict]:
    """A failed request's result: (HTTP status, body, headers)."""
    error_type, message, code, field = FAILURES[job.fault]
    if field is None:
        return code, {"detail": message, "error_type": error_type}, {"X-Fal-Error-Type": error_type}
    return code, {"detail": [{"loc": ["body", field], "msg": message, "type": error_type,
                              "url": f"https://docs.fal.ai/errors#{error_type}",
                              "input": job.prompt if field == "prompt" else None}]}, {"X-Fal-Retryable": "false"}


def ended_result(base: str, job: FakeJob) -> tuple[int, object]:
    """An ended request's HTTP status and output, as the listing's `status_code` and `json_output` show them."""
    phase = job.phase()
    if phase == "canceled":
        return 499, {"detail": "Request was cancelled", "error_type": "client_cancelled"}
    if phase == "failed":
        code, body, _ = failure(job)
        return code, body
    return 200, {"video": {"url": f"{base}files/{job.id}.mp4", "content_type": "video/mp4",
                           "file_name": "output.mp4"}}


def create_platform_app(book: JobBook, api_key: str = "test-fal-key") -> Starlette:
    """fal's platform API on its own: the request listing by endpoint."""
    return Starlette(routes=[requests_route(book, api_key)])


def requests_route(book: JobBook, api_key: str) -> Route:
    """GET /v1/models/requests/by-endpoint over `book`: ended requests of the endpoint(s), newest end first."""

    async def listing(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if request.headers.get("authorization") != f"Key {api_key}":
            return JSONResponse(UNAUTHORIZED, status_code=401)
        query = request.query_params
        endpoints = {e.strip() for value in query.getlist("endpoint_id") for e in value.split(",") if e.strip()}
        try:
            limit = int(query.get("limit", 50))
            page = int(base64.b64decode(query["cursor"]).decode()) if query.get("cursor") else 1
            now = time.time()
            end = _instant(query["end"]) if query.get("end") else now
            start = _instant(query["start"]) if query.get("start") else end - 86400
        except ValueError as exc:
            return _invalid("query", str(exc))
        if not endpoints or len(endpoints) > 50:
            return _invalid("endpoint_id", "1 to 50 endpoint ids are required")
        if not 1 <= limit <= 100:
            return _invalid("limit", "Input should be less than or equal to 100")
        if query.get("status") and query["status"] not in OUTCOMES:
            return _invalid("status", "Input should be 'success', 'error' or 'user_error'")
        payloads = "payloads" in {e.strip() for value in query.getlist("expand") for e in value.split(",")}
        rows = []
        for job in list(book.jobs.values()):
            if job.meta.get("model") not in endpoints or job.phase() not in ("succeeded", "failed", "canceled"):
                continue
            if query.get("request_id") and query["request_id"] != job.id:
                continue
            ended = job.meta.get("canceled_at", job.created + job.latency)
            code, out = ended_result(str(request.base_url), job)
            if not start <= ended < end or (query.get("status") and code not in OUTCOMES[query["status"]]):
                continue
            started = None if job.canceled else job.created + job.latency * 0.25
            row = {"request_id": job.id, "endpoint_id": job.meta["model"], "sent_at": _stamp(job.created),
                   "started_at": _stamp(started) if started else None, "ended_at": _stamp(ended),
                   "status_code": code, "duration": round(ended - (started or job.created), 3)}
            if payloads:
                row.update(json_input=job.meta.get("input"), json_output=out)
            rows.append((ended, row))
        key = (lambda r: -r[1]["duration"]) if query.get("sort_by") == "duration" else (lambda r: -r[0])
        rows.sort(key=key)
        shown = rows[(page - 1) * limit: page * limit]
        more = page * limit < len(rows)
        return JSONResponse({"items": [row for _, row in shown], "has_more": more,
                             "next_cursor": base64.b64encode(str(page + 1).encode()).decode() if more else None})

    return Route(REQUESTS_BY_ENDPOINT, listing, methods=["GET"])


def _invalid(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["query", field], "msg": message, "type": "value_error"}]},
                        status_code=422)


def _instant(value: str) -> float:
    """ISO 8601 (`2025-01-01T00:00:00Z` or `2025-01-01`) as a timestamp; naive means UTC."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

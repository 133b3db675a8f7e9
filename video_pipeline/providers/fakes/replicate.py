"""A fake Replicate: the predictions API (model and version endpoints, and the list: newest first, 100 a page,
`created_after`/`created_before`, cursor in `next`), Bearer auth, problem-detail errors,
prediction statuses, cancel, 1-hour output URLs, and the `completed` webhook (the prediction, Standard Webhooks
signed with the book's `webhook_secret`) when a prediction was created with `webhook`.

Only the official models in `MODELS` exist: a prediction for another, or its model or version GET, is a 404
problem detail, as Replicate answers. Each model has one version, `version_of(model)`; `GET
/v1/models/{owner}/{name}/versions/{id}` (which replicate-python's `run("owner/name:version")` calls after creating
the prediction) answers it, and `POST /v1/predictions` takes it (or any other 64-hex id, read as a version of
`unknown/version`: the fake cannot tell which model an arbitrary version belongs to)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import urllib.parse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import download_route, injected
from video_pipeline.providers.fakes.jobs import FakeJob, JobBook

STATUS = {"queued": "starting", "running": "processing", "succeeded": "succeeded", "failed": "failed",
          "canceled": "canceled"}
FAILURES = {"fail-policy": "The input or output was flagged as sensitive. Please try again with different inputs. "
                           "(E005)",
            "fail-invalid": "ValueError: duration must be one of 4, 6, 8 at 1080p",
            "fail-retryable": "Prediction interrupted; please retry (code: PA)"}
#: official video models the fake serves (owner/name)
MODELS = {"google/veo-3.1", "google/veo-3.1-fast", "wan-video/wan-2.6-t2v", "wan-video/wan-2.6-i2v",
          "kwaivgi/kling-v3-video", "minimax/hailuo-02", "bytedance/omni-human", "bytedance/seedance-2.0",
          "topazlabs/video-upscale", "runwayml/gen4-aleph"}
#: predictions on one page of the list (Replicate's docs: "It will return 100 records per page")
PAGE_SIZE = 100
TITLES = {400: "Bad request", 401: "Unauthenticated", 404: "Not found", 422: "Input validation failed",
          429: "Too many requests", 500: "Internal server error", 503: "Service unavailable"}


def _error(status: int, message: str) -> dict:
    if status == 429:
        return {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}
    return {"title": TITLES.get(status, "Error"), "detail": message, "status": status}


def version_of(model: str) -> str:
    """The one version id the fake gives `model` (64 hex digits, like Replicate's)."""
    return hashlib.sha256(model.encode()).hexdigest()


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(value: str | None) -> float | None:
    """An ISO 8601 date-time (`2025-01-01T00:00:00Z`) as a timestamp; naive means UTC."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()


def create_app(book: JobBook, api_token: str = "test-replicate-token") -> Starlette:
    seen = {"prefer": []}

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {api_token}"

    def unauthorized() -> JSONResponse:
        return JSONResponse(_error(401, "You did not pass a valid authentication token"), status_code=401)

    def prediction(request: Request | str, job: FakeJob) -> dict:
        base = request if isinstance(request, str) else str(request.base_url)
        api = f"{base}v1/predictions/{job.id}"
        phase = job.phase()
        body = {"id": job.id, "model": job.meta["model"], "version": job.meta["version"], "input": job.meta["input"],
                "logs": "", "output": None, "data_removed": False, "error": None, "status": STATUS[phase],
                "created_at": _stamp(job.created), "started_at": None, "completed_at": None,
                "urls": {"get": api, "cancel": f"{api}/cancel", "stream": f"{base}stream/{job.id}",
                         "web": f"https://replicate.com/p/{job.id}"}}
        if phase != "queued":
            body["started_at"] = _stamp(job.created + job.latency * 0.25)
            body["logs"] = "Generating video...\n"
        done = job.created + job.latency
        if phase == "succeeded":
            body.update(completed_at=_stamp(done), metrics={"predict_time": job.latency * 0.75,
                                                            "total_time": job.latency},
                        output=f"{base}files/{job.id}.mp4?expires={int(book.expires_at(job))}")
        elif phase == "failed":
            body.update(completed_at=_stamp(done), error=FAILURES[job.fault])
        elif phase == "canceled":
            body["completed_at"] = _stamp(job.meta.get("canceled_at", done))
        return body

    async def create(request: Request, model: str, version: str) -> Response:
        seen["prefer"].append(request.headers.get("prefer"))
        if not authorized(request):
            return unauthorized()
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        body = await request.json()
        inputs = body.get("input")
        if not isinstance(inputs, dict) or not (inputs.get("prompt") or inputs.get("video")
                                                or (inputs.get("image") and inputs.get("audio"))):
            failure = _error(422, "- input: prompt is required")
            failure["invalid_fields"] = [{"type": "required", "field": "input.prompt",
                                          "description": "prompt is required"}]
            return JSONResponse(failure, status_code=422)
        ratio = inputs.get("aspect_ratio", "16:9")
        job = book.create(body, inputs.get("prompt") or "talking head", inputs.get("duration", 4),
                          ratio if ratio in ("16:9", "9:16", "1:1") else "16:9", model=model, version=version,
                          input=inputs)
        events = body.get("webhook_events_filter") or ["start", "output", "logs", "completed"]
        if body.get("webhook") and "completed" in events:
            base = str(request.base_url)
            book.schedule_webhook(job, body["webhook"], lambda: prediction(base, job), book.standard_signer())
        return JSONResponse(prediction(request, job), status_code=201)

    def not_found() -> JSONResponse:
        return JSONResponse(_error(404, "The requested resource could not be found."), status_code=404)

    async def create_for_model(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if not authorized(request):
            return unauthorized()
        if model not in MODELS:
            return not_found()
        return await create(request, model, version_of(model))

    def model_json(request: Request, model: str) -> dict:
        owner, name = model.split("/")
        return {"url": f"https://replicate.com/{model}", "owner": owner, "name": name, "description": "",
                "visibility": "public", "github_url": None, "paper_url": None, "license_url": None,
                "run_count": 0, "cover_image_url": None, "default_example": None,
                "latest_version": version_json(model)}

    def version_json(model: str) -> dict:
        return {"id": version_of(model), "created_at": "2026-01-01T00:00:00.000000Z", "cog_version": "0.16.8",
                "openapi_schema": {"components": {"schemas": {"Output": {"type": "string", "format": "uri"}}}}}

    async def get_model(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        return JSONResponse(model_json(request, model)) if model in MODELS else not_found()

    async def get_version(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if model not in MODELS or request.path_params["version_id"] != version_of(model):
            return not_found()
        return JSONResponse(version_json(model))

    async def create_for_version(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if not authorized(request):
            return unauthorized()
        body = await request.json()
        version = body.get("version")
        if not version:
            return JSONResponse(_error(422, "- version: version is required"), status_code=422)
        if not isinstance(version, str) or not re.fullmatch(r"[0-9a-f]{12,64}", version.rpartition(":")[2]):
            return JSONResponse(_error(422, "Invalid version or not permitted"), status_code=422)
        version = version.rpartition(":")[2]
        model = next((m for m in MODELS if version_of(m) == version), "unknown/version")
        return await create(request, model, version)

    async def get(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        job = book.get(request.path_params["prediction_id"])
        if job is None:
            return JSONResponse(_error(404, "The requested resource could not be found."), status_code=404)
        return JSONResponse(prediction(request, job))

    async def listing(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if not authorized(request):
            return unauthorized()
        query = request.query_params
        try:
            after = _instant(query.get("created_after"))
            before = _instant(query.get("created_before"))
            offset = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if query.get("cursor") else 0
        except ValueError as exc:
            return JSONResponse(_error(400, f"invalid query: {exc}"), status_code=400)
        newest = sorted((j for j in list(book.jobs.values())
                         if (after is None or j.created >= after) and (before is None or j.created < before)),
                        key=lambda j: -j.created)
        shown = newest[offset: offset + PAGE_SIZE]

        def page_url(start: int) -> str:
            kept = {k: v for k, v in query.items() if k != "cursor"}
            cursor = base64.urlsafe_b64encode(str(start).encode()).decode()
            return f"{request.base_url}v1/predictions?{urllib.parse.urlencode({**kept, 'cursor': cursor})}"

        return JSONResponse({
            "next": page_url(offset + PAGE_SIZE) if offset + PAGE_SIZE < len(newest) else None,
            "previous": page_url(max(0, offset - PAGE_SIZE)) if offset else None,
            "results": [{**prediction(request, job), "source": "api"} for job in shown]})

    async def cancel(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if not authorized(request):
            return unauthorized()
        job = book.get(request.path_params["prediction_id"])
        if job is None:
            return JSONResponse(_error(404, "The requested resource could not be found."), status_code=404)
        if job.phase() in ("queued", "running"):
            job.meta["canceled_at"] = dt.datetime.now(dt.timezone.utc).timestamp()
            job.canceled = True
        return JSONResponse(prediction(request, job))

    app = Starlette(routes=[
        Route("/v1/models/{owner}/{name}/predictions", create_for_model, methods=["POST"]),
        Route("/v1/models/{owner}/{name}", get_model, methods=["GET"]),
        Route("/v1/models/{owner}/{name}/versions/{version_id}", get_version, methods=["GET"]),
        Route("/v1/predictions", create_for_version, methods=["POST"]),
        Route("/v1/predictions", listing, methods=["GET"]),
        Route("/v1/predictions/{prediction_id}", get, methods=["GET"]),
        Route("/v1/predictions/{prediction_id}/cancel", cancel, methods=["POST"]),
        download_route(book),
    ])
    app.state.seen = seen
    return app

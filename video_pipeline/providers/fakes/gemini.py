"""A fake Gemini API for Veo: predictLongRunning operations, the key check, RAI filtering, keyed file downloads,
and the `video.generated` webhook to each `webhookConfig.uris` entry (Standard Webhooks signed with the book's
`webhook_secret`; body `{"type": "video.generated", "data": {"operation": <the operation as GET returns it>}}`,
the event's shape being unconfirmed)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import injected, json_body, serve_video
from video_pipeline.providers.fakes.jobs import JobBook

HTTP_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
               500: "INTERNAL", 503: "UNAVAILABLE"}
#: job faults → how a finished operation reports them (google.rpc.Code numbers in `error.code`)
FAILURES = {"fail-invalid": {"code": 3, "message": "The input image could not be processed: unsupported aspect ratio."},
            "fail-retryable": {"code": 13, "message": "Internal error encountered."}}
#: Veo models the Gemini API serves (ai.google.dev/gemini-api/docs/video); another id is a 404 NOT_FOUND
MODELS = {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-3.1-lite-generate-preview",
          "veo-3.0-generate-001", "veo-3.0-fast-generate-001", "veo-2.0-generate-001"}
RAI_REASON = ("Your current safety settings for person generation prevented one or more videos from being "
              "generated. You will not be charged for blocked videos. Support codes: 17301594")


def _error(status: int, message: str, reason: str | None = None) -> dict:
    error: dict = {"code": status, "message": message, "status": HTTP_STATUS.get(status, "INTERNAL")}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return {"error": error}


def operation_json(job, base_url: str) -> dict:
    """The operation as `GET /v1beta/models/{model}/operations/{id}` returns it now."""
    name = f"models/{job.meta['model']}/operations/{job.id}"
    phase = job.phase()
    if phase in ("queued", "running"):
        return {"name": name}      # proto3 JSON omits done=false
    if phase == "failed" and job.fault in FAILURES:
        return {"name": name, "done": True, "error": FAILURES[job.fault]}
    result_type = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
    if phase == "failed":        # fail-policy: the RAI filter removed every sample
        return {"name": name, "done": True, "response": {
            "@type": result_type,
            "generateVideoResponse": {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [RAI_REASON]}}}
    uri = f"{base_url}v1beta/files/{job.id}:download?alt=media"
    return {"name": name, "done": True, "response": {
        "@type": result_type, "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}}}


def create_app(book: JobBook, api_key: str = "test-gemini-key") -> Starlette:
    def auth_failure(request: Request) -> JSONResponse | None:
        key = request.headers.get("x-goog-api-key")
        if key is None:
            return JSONResponse(_error(403, "Method doesn't allow unregistered callers (callers without established "
                                            "identity). Please use API Key or other form of API consumer identity "
                                            "to call this API."), status_code=403)
        if key != api_key:
            # Google's own shape: a wrong key is a 400 INVALID_ARGUMENT carrying reason API_KEY_INVALID.
            return JSONResponse(_error(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"),
                                status_code=400)
        return None

    async def submit(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if (denied := auth_failure(request)) is not None:
            return denied
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        model = request.path_params["model"]
        if model not in MODELS:
            return JSONResponse(_error(404, f"models/{model} is not found for API version v1beta, or is not supported "
                                            "for predictLongRunning. Call ListModels to see the list of available "
                                            "models and their supported methods."), status_code=404)
        body = await json_body(request)
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
            return JSONResponse(_error(400, "* PredictLongRunningRequest.instances: instances is required"),
                                status_code=400)
        prompt = instances[0].get("prompt")
        params = body.get("parameters") or {}
        duration = params.get("durationSeconds", 8)
        if not prompt:
            return JSONResponse(_error(400, "* GenerateVideoRequest.prompt: prompt is required"), status_code=400)
        if not isinstance(duration, int) or duration not in (4, 6, 8):
            return JSONResponse(_error(400, f"The number value for `durationSeconds` is out of bound: {duration!r}. "
                                            "Please provide a value between 4 and 8, inclusive."), status_code=400)
        ratio = params.get("aspectRatio", "16:9")
        if ratio not in ("16:9", "9:16"):
            return JSONResponse(_error(400, f"Aspect ratio {ratio} is not supported."), status_code=400)
        image = instances[0].get("image")
        if image is not None and not {"bytesBase64Encoded", "mimeType"} <= set(image):
            return JSONResponse(_error(400, "image needs bytesBase64Encoded and mimeType"), status_code=400)
        job = book.create(body, prompt, duration, ratio, model=model, resolution=params.get("resolution", "720p"),
                          image=image is not None)
        base = str(request.base_url)
        for uri in (body.get("webhookConfig") or {}).get("uris") or []:
            book.schedule_webhook(job, uri, lambda: {"type": "video.generated",
                                                     "data": {"operation": operation_json(job, base)}},
                                  book.standard_signer())
        return JSONResponse({"name": f"models/{model}/operations/{job.id}"})

    async def operation(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := auth_failure(request)) is not None:
            return denied
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        model, op_id = request.path_params["model"], request.path_params["op_id"]
        job = book.get(op_id)
        if job is None or job.meta.get("model") != model:
            return JSONResponse(_error(404, f"Operation models/{model}/operations/{op_id} not found"), status_code=404)
        return JSONResponse(operation_json(job, str(request.base_url)))

    async def download(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := auth_failure(request)) is not None:
            return denied
        job = book.get(request.path_params["file_id"])
        if job is None or request.query_params.get("alt") != "media":
            return JSONResponse(_error(404, "File not found."), status_code=404)
        return serve_video(book, job, book.faults.take("download"))

    return Starlette(routes=[
        Route("/v1beta/models/{model}:predictLongRunning", submit, methods=["POST"]),
        # operations and files answer on v1 too: google-genai 3.x calls v1 by default
        *(Route(f"/{version}/models/{{model}}/operations/{{op_id}}", operation, methods=["GET"])
          for version in ("v1beta", "v1")),
        *(Route(f"/{version}/files/{{file_id}}:download", download, methods=["GET"]) for version in ("v1beta", "v1")),
    ])


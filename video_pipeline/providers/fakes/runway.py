"""A fake Runway API: the three create endpoints, tasks with THROTTLED/PENDING/RUNNING states, failure codes,
DELETE that cancels or deletes, and output URLs re-signed on every GET.

Tasks carry what runwayml's `types/task_retrieve_response.py` requires: `estimatedCost: {credits}` while
PENDING, THROTTLED or RUNNING, and `cost: {credits}` (an integer) once SUCCEEDED, FAILED or CANCELLED; without
them the SDK reads every task as pending. Credits: `CREDITS_PER_SECOND` × the clip's seconds (1 credit = $0.01;
third-party summaries of Runway's table, unconfirmed); a cancelled task and a failure other than moderation cost 0.
Models per endpoint are the SDK's own `model` literals (5.24) plus the ids the catalog routes to."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import injected, serve_video
from video_pipeline.providers.fakes.jobs import JobBook

API_VERSION = "2024-11-06"
STATUS = {"queued": "PENDING", "running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED",
          "canceled": "CANCELLED"}
FAILURES = {"fail-policy": ("SAFETY.INPUT.TEXT", "The prompt text did not pass content moderation."),
            "fail-invalid": ("ASSET.INVALID", "The input asset could not be processed."),
            "fail-retryable": ("INPUT_PREPROCESSING.INTERNAL", "There was a problem performing content moderation.")}
#: the SDK's video models on both text and image endpoints (runwayml 5.24 `text_to_video_create_params.py`)
_SHARED = {"gen4.5", "veo3.1", "veo3.1_fast", "veo3", "klingO3_4k", "hailuo3", "kling3.0_4k", "happyhorse_1_0",
           "kling2.5_turbo_pro", "kling3.0_pro", "kling3.0_standard", "klingO3_pro", "klingO3_standard", "seedance2",
           "seedance2_fast", "seedance2_mini", "gemini_omni_flash", "grok_imagine_1_5", "wan3",
           "gemini_omni_flash_1.1", "wan3_prime", "h3_max", "seedance2_5", "grok_imagine_1_5_lite", "kling_4"}
MODELS = {"/v1/text_to_video": _SHARED,
          "/v1/image_to_video": _SHARED | {"gen4_turbo"},
          # `aleph2` is the SDK's (5.24) name for Aleph; `gen4_aleph` is the id the catalog routes to
          "/v1/video_to_video": {"aleph2", "gen4_aleph", "klingO3_4k", "hailuo3", "klingO3_pro", "klingO3_standard",
                                 "seedance2", "seedance2_fast", "seedance2_mini", "gemini_omni_flash",
                                 "gemini_omni_flash_1.1", "seedance2_5", "kling_4"}}
#: credits per generated second (1 credit = $0.01); other models: DEFAULT_CREDITS_PER_SECOND
CREDITS_PER_SECOND = {"gen4.5": 12, "gen4_turbo": 5, "veo3": 40, "veo3.1": 40, "veo3.1_fast": 15,
                      "gen4_aleph": 15, "aleph2": 15}
DEFAULT_CREDITS_PER_SECOND = 10
RATIOS = {"1280:720", "720:1280", "1920:1080", "1080:1920", "960:960", "1104:832", "832:1104", "1584:672"}


def _error(status: int, message: str) -> dict:
    return {"error": message}


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reduce(ratio: str) -> str:
    w, h = (int(x) for x in ratio.split(":"))
    g = math.gcd(w, h)
    return f"{w // g}:{h // g}"


def create_app(book: JobBook, api_key: str = "test-runway-key", concurrency: int = 2,
               url_lifetime: float | None = None) -> Starlette:
    """`concurrency`: unfinished tasks beyond it report THROTTLED while queued. `url_lifetime`: seconds each
    signed output URL stays valid from the GET that issued it (default: the book's)."""
    lifetime = book.url_lifetime if url_lifetime is None else url_lifetime

    def unauthorized(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse(_error(401, "Invalid API key. Keys start with key_ and are passed as a Bearer "
                                            "token."), status_code=401)
        if request.headers.get("x-runway-version") != API_VERSION:
            return JSONResponse(_error(400, f"The X-Runway-Version header must be set to {API_VERSION}."),
                                status_code=400)
        return None

    def invalid(path: str, message: str) -> JSONResponse:
        return JSONResponse({"error": "Validation of body failed", "issues": [{"path": [path], "message": message}]},
                            status_code=400)

    async def create(request: Request) -> Response:
        path = request.url.path
        book.requests.append(("POST", path))
        if (denied := unauthorized(request)) is not None:
            return denied
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        body = await request.json()
        if body.get("model") not in MODELS[path]:
            return invalid("model", f"Invalid model {body.get('model')!r} for this endpoint")
        prompt = body.get("promptText", "")
        if len(prompt.encode("utf-16-le")) // 2 > 1000:
            return invalid("promptText", "String must contain at most 1000 character(s)")
        if path == "/v1/text_to_video" and not prompt:
            return invalid("promptText", "Required")        # optional for image and video inputs (the SDK's types)
        for endpoint, field, mime in (("/v1/image_to_video", "promptImage", "data:image/"),
                                      ("/v1/video_to_video", "videoUri", "data:video/")):
            if path == endpoint and not str(body.get(field, "")).startswith((mime, "https://")):
                return invalid(field, "Invalid data URI.")
        if path == "/v1/video_to_video" and body.get("ratio") is None:
            body["ratio"] = "1280:720"           # optional for video inputs: the output keeps the input's shape
        if body.get("ratio") not in RATIOS:
            return invalid("ratio", f"Invalid enum value {body.get('ratio')!r}")
        w, h = (int(x) for x in body["ratio"].split(":"))
        # Aleph takes no duration: its output is as long as the input video (Runway caps it at 10 s)
        seconds = body.get("duration") or (min(10.0, _video_seconds(body.get("videoUri", ""))) or 5)
        job = book.create(body, prompt or "image", seconds, _reduce(body["ratio"]),
                          model=body["model"], endpoint=path, resolution=f"{min(w, h)}p")
        return JSONResponse({"id": job.id})

    def throttled(job) -> bool:
        now = time.time()
        ahead = [j for j in list(book.jobs.values())
                 if j.created < job.created and j.phase(now) in ("queued", "running")]
        return len(ahead) >= concurrency

    def signed_url(request: Request, job_id: str) -> str:
        expires = f"{time.time() + lifetime:.3f}"     # sub-second, so short lifetimes in tests are exact
        token = hashlib.sha256(f"{job_id}:{expires}:{uuid.uuid4()}".encode()).hexdigest()[:32]
        return f"{request.base_url}files/{job_id}.mp4?_jwt={token}&Expires={expires}"

    async def task(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := unauthorized(request)) is not None:
            return denied
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        job = book.get(request.path_params["task_id"])
        if job is None:
            return JSONResponse(_error(404, "Task not found"), status_code=404)
        phase = job.phase()
        status = "THROTTLED" if phase == "queued" and throttled(job) else STATUS[phase]
        payload: dict = {"id": job.id, "createdAt": _iso(job.created), "status": status}
        credits = CREDITS_PER_SECOND.get(job.meta["model"], DEFAULT_CREDITS_PER_SECOND) * job.seconds
        if phase in ("queued", "running"):
            payload["estimatedCost"] = {"credits": float(credits)}
        else:
            charged = phase == "succeeded" or (phase == "failed" and job.fault == "fail-policy")
            payload["cost"] = {"credits": int(round(credits)) if charged else 0}
        if phase == "running":
            payload["progress"] = round(min(0.99, (time.time() - job.created) / job.latency), 3)
        elif phase == "succeeded":
            payload["output"] = [signed_url(request, job.id)]
        elif phase == "failed":
            payload["failureCode"], payload["failure"] = FAILURES[job.fault]
        return JSONResponse(payload)

    async def delete(request: Request) -> Response:
        book.requests.append(("DELETE", request.url.path))
        if (denied := unauthorized(request)) is not None:
            return denied
        job = book.get(request.path_params["task_id"])
        if job is None:
            return JSONResponse(_error(404, "Task not found"), status_code=404)
        if job.phase() in ("queued", "running"):
            job.canceled = True
        else:
            del book.jobs[job.id]          # a finished task is deleted, output and all
        return Response(status_code=204)

    async def download(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        job = book.get(request.path_params["job_id"])
        if job is None:
            return Response(status_code=404)
        fault = book.faults.take("download")
        if time.time() > float(request.query_params.get("Expires", 0)):
            fault = "expired"
        return serve_video(book, job, fault)

    return Starlette(routes=[
        *(Route(path, create, methods=["POST"]) for path in MODELS),
        Route("/v1/tasks/{task_id}", task, methods=["GET"]),
        Route("/v1/tasks/{task_id}", delete, methods=["DELETE"]),
        Route("/files/{job_id}.mp4", download, methods=["GET"]),
    ])


def _video_seconds(uri: str) -> float:
    """The length of a video sent as a data URI (0 when it cannot be read: a URL, or not a video)."""
    import base64
    import tempfile

    from video_pipeline.media.probe import probe

    if not uri.startswith("data:video/") or "," not in uri:
        return 0.0
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        try:
            handle.write(base64.b64decode(uri.split(",", 1)[1]))
            handle.flush()
            return float(probe(handle.name).duration)
        except Exception:   # noqa: BLE001 — a fake judges what it can; the real API would refuse it
            return 0.0

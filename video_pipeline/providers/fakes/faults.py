"""Request-level fault injection shared by every fake: 429 (with or without Retry-After), 5xx, slow answers,
and connections dropped mid-response."""

from __future__ import annotations

import asyncio
from typing import Callable

from starlette.responses import JSONResponse, Response

from .jobs import JobBook

ErrorBody = Callable[[int, str], dict]


class DroppedConnection(Response):
    """Sends headers and part of the body, then fails, so the server closes the connection mid-response."""

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
        raise ConnectionResetError("fake: connection dropped")


async def injected(book: JobBook, phase: str, error_body: ErrorBody, slow_seconds: float = 2.0) -> Response | None:
    """The fault response for this call, if the plan has one for `phase`; None to answer normally."""
    fault = book.faults.take(phase)
    if fault is None:
        return None
    if fault == "429":
        return JSONResponse(error_body(429, "rate limit exceeded"), status_code=429, headers={"Retry-After": "1"})
    if fault == "429-no-retry-after":
        return JSONResponse(error_body(429, "rate limit exceeded"), status_code=429)
    if fault in ("500", "503"):
        return JSONResponse(error_body(int(fault), "internal error"), status_code=int(fault))
    if fault == "reset":
        return DroppedConnection()
    if fault == "slow":
        await asyncio.sleep(slow_seconds)
        return None
    raise ValueError(f"unknown request fault {fault!r} for phase {phase}")


def serve_video(book: JobBook, job, fault: str | None) -> Response:
    """The MP4 download, or its injected fault: an expired URL (403/404-style) or a truncated body."""
    import time

    if fault == "expired" or time.time() > book.expires_at(job):
        return Response(b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                        status_code=403, media_type="application/xml")
    data = book.mp4(job)
    if fault == "truncated":
        return TruncatedBody(data)
    return Response(data, media_type="video/mp4")


class TruncatedBody(Response):
    """Announces the full length but sends only half, then closes."""

    def __init__(self, data: bytes):
        super().__init__()
        self.data = data

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"video/mp4"), (b"content-length", str(len(self.data)).encode())]})
        await send({"type": "http.response.body", "body": self.data[: len(self.data) // 2], "more_body": True})
        raise ConnectionResetError("fake: download truncated")


def download_route(book: JobBook, path: str = "/files/{job_id}.mp4"):
    """The fakes' shared result download: the job's real MP4, or its injected fault (expired, truncated)."""
    from starlette.routing import Route

    async def download(request) -> Response:
        book.requests.append(("GET", request.url.path))
        job = book.get(request.path_params["job_id"])
        if job is None:
            return Response(status_code=404)
        return serve_video(book, job, book.faults.take("download"))

    return Route(path, download, methods=["GET"])

"""Request-level fault injection shared by every fake: 429 (with or without Retry-After), 5xx, slow answers,
connections dropped mid-response, and answers lost after the job was created (`LOST_ANSWER_FAULTS`)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Callable

from starlette.responses import JSONResponse, Response

from video_pipeline.providers.fakes.jobs import JobBook

ErrorBody = Callable[[int, str], dict]

#: seconds a "slow" or "lost-slow" answer is held (the fault harness's client gives up after 1 s)
SLOW_SECONDS = 2.0
#: faults that let the handler do its work (create the job) and then lose its answer on the way back:
#: the connection dropped before any byte, the answer held past the client's timeout, a proxy's 502 instead
LOST_ANSWER_FAULTS = {"lost-reset", "lost-slow", "lost-502"}
#: what a proxy in front of the provider sends when the upstream answer did not reach it
BAD_GATEWAY_HTML = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")


class _Lost:
    """Per-request holder: the lost-answer fault `injected` took for this request, if any."""

    __slots__ = ("fault", "seconds")

    def __init__(self):
        self.fault: str | None = None
        self.seconds = SLOW_SECONDS


_LOST: contextvars.ContextVar[_Lost | None] = contextvars.ContextVar("fake_lost_answer", default=None)


class LoseAnswer:
    """ASGI middleware: when `injected` took a lost-* fault for a request, the response the app then produces is
    dropped (connection closed before any byte), held `seconds` before it goes out, or replaced by a proxy's 502."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lost = _Lost()
        token = _LOST.set(lost)      # the request's own holder: `injected` writes into it while the app runs
        swallowed = False

        async def lossy_send(message) -> None:
            nonlocal swallowed
            if swallowed:
                return
            if message["type"] != "http.response.start" or lost.fault is None:
                await send(message)
                return
            if lost.fault == "lost-slow":
                await asyncio.sleep(lost.seconds)
                await send(message)
                return
            swallowed = True     # the app's own answer never leaves
            if lost.fault == "lost-502":
                await send({"type": "http.response.start", "status": 502,
                            "headers": [(b"content-type", b"text/html"), (b"connection", b"close"),
                                        (b"content-length", str(len(BAD_GATEWAY_HTML)).encode())]})
                await send({"type": "http.response.body", "body": BAD_GATEWAY_HTML, "more_body": False})
                return
            _drop(receive)
            # no transport to close: cut the answer right after its status line, which loses it just the same
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
            raise ConnectionResetError("fake: connection dropped before the answer")

        try:
            await self.app(scope, receive, lossy_send)
        finally:
            _LOST.reset(token)


def _drop(receive) -> None:
    """Close the connection under the request at once, before any byte of the answer (uvicorn's `receive` is a
    method of the request cycle that holds the transport); raises ConnectionResetError once it is closed."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        raise ConnectionResetError("fake: connection dropped before the answer")


class DroppedConnection(Response):
    """Sends headers and part of the body, then fails, so the server closes the connection mid-response."""

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
        raise ConnectionResetError("fake: connection dropped")


async def injected(book: JobBook, phase: str, error_body: ErrorBody,
                   slow_seconds: float | None = None) -> Response | None:
    """The fault response for this call, if the plan has one for `phase`; None to answer normally (also for the
    lost-* faults: the handler goes on, and `LoseAnswer` loses whatever it answers)."""
    slow_seconds = SLOW_SECONDS if slow_seconds is None else slow_seconds
    fault = book.faults.take(phase)
    if fault is None:
        return None
    if fault in LOST_ANSWER_FAULTS:
        lost = _LOST.get()
        if lost is None:
            raise RuntimeError(f"fault {fault!r} needs the app wrapped in LoseAnswer (FakeServer wraps every app)")
        lost.fault, lost.seconds = fault, slow_seconds
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


async def json_body(request) -> object | None:
    """The request's JSON body, or None when it is not JSON (the fake then answers as its provider does)."""
    try:
        return await request.json()
    except ValueError:
        return None


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

"""How the webhook receiver is served: uvicorn with the h11 parser and every connection bounded.

uvicorn's default parser (httptools) has no header size limit, and uvicorn itself has no deadline for a request
to arrive: its keep-alive timer runs only between requests and restarts on every byte, so a sender trickling one
byte a second holds a connection for ever. Here:
- h11 refuses a request whose line and headers pass `header_bytes` (400, closed);
- `DeadlineProtocol` closes a connection whose request head has not arrived `head_seconds` after it opened (or
  after the previous answer), and one that is still sending a body the receiver refused without reading it;
- the app reads each body within `body_seconds` (408) and holds large bodies within a shared budget (503);
- `limit_concurrency` answers requests past `connections` with 503, kept below the open-file limit, which is
  raised to its hard ceiling first.
"""

from __future__ import annotations

import logging
import resource

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from video_pipeline.jobs.webhooks import ReceiverLimits

log = logging.getLogger("video_pipeline.jobs.webhooks")

#: file descriptors kept free beyond the connections (the ledger's database, logs, the JWKS fetch)
SPARE_FILES = 64


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a request-receipt deadline: while the connection waits on its client (for a
    request's head, or for the rest of a body already answered), the client has `head_seconds`, counted from the
    moment the wait began, not from its last byte."""

    head_seconds: float = ReceiverLimits.head_seconds

    def connection_made(self, transport) -> None:
        self._deadline = None
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None and self.cycle.body:
            # body bytes that came before the answer and were never read: nothing reads them now
            self.cycle.body = bytearray()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_on_client(self) -> bool:
        theirs = self.conn.their_state
        return theirs is h11.IDLE or (theirs is h11.SEND_BODY and self.conn.our_state in (h11.DONE, h11.MUST_CLOSE))

    def _watch(self) -> None:
        if not self._waiting_on_client():
            self._disarm()
        elif self._deadline is None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.head_seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._waiting_on_client() and not self.transport.is_closing():
            host = self.client[0] if self.client else "?"
            log.warning("closed a connection from %s: no whole request within %g s", host, self.head_seconds)
            self.transport.close()


def protocol_for(limits: ReceiverLimits) -> type[DeadlineProtocol]:
    return type("ReceiverProtocol", (DeadlineProtocol,), {"head_seconds": limits.head_seconds})


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard ceiling; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def server_config(app, host: str, port: int, limits: ReceiverLimits | None = None) -> uvicorn.Config:
    """The uvicorn configuration `video-pipeline webhooks serve` runs `app` with."""
    limits = limits or ReceiverLimits()
    files = raise_open_file_limit()
    return uvicorn.Config(
        app, host=host, port=port, http=protocol_for(limits), lifespan="off",
        h11_max_incomplete_event_size=limits.header_bytes, timeout_keep_alive=limits.keep_alive_seconds,
        limit_concurrency=max(1, min(limits.connections, files - SPARE_FILES)),
        # the unsigned providers' token rides in the query string: no access log line may show it
        access_log=False, log_level="warning", server_header=False)


def serve(app, host: str, port: int, limits: ReceiverLimits | None = None) -> None:
    """Serve the receiver until interrupted."""
    uvicorn.Server(server_config(app, host, port, limits)).run()

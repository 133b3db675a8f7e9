"""Run an ASGI app on 127.0.0.1 in a background thread (uvicorn), for tests and `video-pipeline fakes serve`; over
TLS when given a certificate (fakes.tls)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from video_pipeline.providers.fakes.faults import LoseAnswer
from video_pipeline.providers.fakes.tls import LocalCA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """`with FakeServer(app) as server: server.url` serves `app` until the block ends; `app` is wrapped in
    LoseAnswer, so the lost-* faults work on every fake. With `tls` (a `fakes.tls.LocalCA`) it serves https."""

    def __init__(self, app, port: int | None = None, tls: LocalCA | None = None):
        self.app = app
        self.port = port or free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        certificate = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)} if tls else {}
        config = uvicorn.Config(LoseAnswer(app), host="127.0.0.1", port=self.port, log_level="critical",
                                lifespan="off", access_log=False, **certificate)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"fake-{self.port}", daemon=True)

    def start(self) -> "FakeServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

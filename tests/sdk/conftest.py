"""The providers' own Python SDKs as clients of the fakes: each fake served on loopback (over TLS for an SDK that
speaks only https), the SDK pointed at it through its documented base-URL option, and what it got checked the way
a user would (a decodable file, the provider's error types). The SDKs are the `sdk-tests` extra in pyproject.toml."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.providers.conftest import _RENDERED
from tests.support.services import stop_soon
from video_pipeline.media.probe import decodes, probe
from video_pipeline.providers.fakes import FakeServer, JobBook
from video_pipeline.providers.fakes.tls import local_ca

#: seconds a fake job takes: long enough to be seen queued and running, short enough for the SDKs' polling
LATENCY = 0.3


@pytest.fixture
def book(tmp_path: Path) -> JobBook:
    book = JobBook(latency=LATENCY, work_dir=tmp_path / "fake-work")
    book._clips = _RENDERED          # clips rendered once per session (JobBook.mp4's cache)
    return book


@contextmanager
def serving(app, tls=None):
    """`app` on loopback (https with `tls`, a fakes.tls.LocalCA) for the block."""
    server = FakeServer(app, tls=tls).start()
    try:
        yield server
    finally:
        stop_soon(server)


@pytest.fixture(scope="session")
def ca(tmp_path_factory):
    """A throwaway CA and a certificate for 127.0.0.1, as `video-pipeline fakes serve --tls` makes them."""
    return local_ca(tmp_path_factory.mktemp("tls"))


def wait_until(condition, timeout: float = 20.0, interval: float = 0.05):
    """Poll `condition()` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(interval)


def assert_video(path: Path, seconds: float) -> None:
    """A real video: it decodes, and lasts `seconds`."""
    assert decodes(path)
    assert probe(path).duration == pytest.approx(seconds, abs=0.1)


def assert_audio(path: Path) -> float:
    """Real audio: an audio stream that lasts more than a moment; returns its duration."""
    info = probe(path)
    assert info.audio_codec is not None and info.duration > 0.3
    return info.duration


def run(coro):
    return asyncio.run(coro)

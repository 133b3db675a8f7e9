"""Helpers for adapter contract tests: a fake server per test, and a way to drive async adapters."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

import pytest

from tests.support.services import served
from video_pipeline.providers.base import GenerationRequest, JobState
from video_pipeline.providers.fakes import JobBook
from video_pipeline.providers.fakes.jobs import FakeJob


def run(coro):
    return asyncio.run(coro)


def request(job_key: str = "k1", *, model: str = "m", route_model_id: str = "m", seconds: int = 2,
            prompt: str = "A lighthouse at dusk: 100% \"real\" waves", **kw) -> GenerationRequest:
    return GenerationRequest(job_key=job_key, model=model, route_model_id=route_model_id, category="text_to_video",
                             prompt=prompt, seconds=seconds, resolution="720p", aspect_ratio="16:9", **kw)


async def poll_until_terminal(adapter, job_id: str, timeout: float = 20.0, interval: float = 0.05):
    """Poll until the job ends; returns (final status, every distinct state seen in order)."""
    seen: list[JobState] = []
    deadline = time.monotonic() + timeout
    while True:
        status = await adapter.poll(job_id)
        if not seen or seen[-1] != status.state:
            seen.append(status.state)
        if status.state.terminal or time.monotonic() > deadline:
            return status, seen
        await asyncio.sleep(interval)


async def until_ended(*jobs: FakeJob) -> None:
    """Until the fake's clock has passed each job's end (created + latency): a job without a fault has finished by
    then, a stuck one is still running, and a provider that lists jobs once they end lists them. The fakes' jobs
    run on that clock alone, so this is the condition itself, not a guess of how long a job takes."""
    await asyncio.sleep(max(0.0, max(j.created + j.latency for j in jobs) - time.time()) + 0.05)


@pytest.fixture
def latency() -> float:
    """Seconds a fake job takes (long enough to be seen queued, then running, at 50 ms polls); a test file
    overrides this fixture for other jobs."""
    return 0.3


#: MP4s the fakes rendered, shared by every test's book: a clip is the same bytes for the same text, length and
#: size, and rendering it again in each test only costs time
_RENDERED: dict = {}


@pytest.fixture
def book(tmp_path: Path, latency: float) -> JobBook:
    book = JobBook(latency=latency, work_dir=tmp_path / "fake-work")
    book._clips = _RENDERED       # the book's own render cache (JobBook.mp4), made session-wide
    return book


# A provider's test file defines its fake as the fixture `app`, and `adapter(server, **keys)` building its adapter
# against a server; `server` and `connect` below do the rest.

@pytest.fixture
def server(app):
    """The test file's fake (its `app` fixture) served on loopback for one test."""
    with served(app) as srv:
        yield srv


@pytest.fixture
def connect(request, server):
    """A factory of fresh adapters against `server`: the test file's `adapter(server, **keys)`, server bound."""
    return partial(request.module.adapter, server)

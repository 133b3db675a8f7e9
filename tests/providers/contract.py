"""The contract every provider adapter keeps, written once: each test file brings only its provider's specifics.

An adapter factory (`connect`, the fixture in conftest.py) is a callable returning a fresh adapter that talks to the
fake server; its keyword arguments (`key=...`) reach the test file's `adapter(server, **keys)`, so
`partial(connect, key="wrong")` makes adapters with a wrong key. Every helper opens an adapter, drives it, and always
closes it. Helpers named `assert_*` check the whole clause and return what they observed, for a provider's own checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.providers.conftest import poll_until_terminal, run, until_ended
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.storage.netguard import DownloadPolicy
from video_pipeline.providers.base import JobState, JobStatus
from video_pipeline.providers.fakes.openai_tts import spoken_seconds
from video_pipeline.storage.store import fetch

#: what a run in fake mode lets downloads reach: loopback only (the fakes)
FAKES_ONLY = DownloadPolicy(mode="fake")

#: request faults the fakes inject; every adapter must ride them out on submit
#: submit faults that surely created nothing (throttled): the HTTP layer sends the request again. A 5xx or a reset
#: after the request left may hide a created job: never resent (tests/providers/test_lost_answers.py)
#: a 429 carrying Retry-After: 1 is waited out for that second: those cases are marked slow
SLOW_429 = pytest.param("429", marks=pytest.mark.slow)
TRANSIENT_SUBMIT_FAULTS = [SLOW_429, "429-no-retry-after"]
#: the ones most adapters are checked against while polling
TRANSIENT_POLL_FAULTS = [SLOW_429, "500", "reset"]
#: a download fault and the text its error must carry
DOWNLOAD_FAULTS = [("expired", "403"), ("truncated", "truncated")]

Connect = Callable[..., Any]


def fast_retries(adapter):
    """The adapter with its retry backoff shrunk to 10 ms, so fault tests run quickly."""
    adapter.backoff_base = 0.01
    return adapter


def fake_and_adapter(create_app, provider_cls, key: str, key_arg: str = "api_key"):
    """A provider test file's harness in one line, `app, adapter = fake_and_adapter(create_app, Provider, KEY)`:
    the `app` fixture (the provider's fake, taking `key` as `key_arg`) that conftest's `server` serves, and
    `adapter(server, key=key)` building the adapter against a served fake with fast retries (conftest's `connect`
    binds the server; a test passes `key=` for a wrong key)."""

    @pytest.fixture
    def app(book):
        return create_app(book, **{key_arg: key})

    def adapter(server, key: str = key):
        return fast_retries(provider_cls(key, base_url=server.url))

    return app, adapter


@asynccontextmanager
async def opened(connect: Connect):
    adapter = connect()
    try:
        yield adapter
    finally:
        await adapter.aclose()


def using(connect: Connect, scenario: Callable[[Any], Awaitable[Any]]):
    """Run `await scenario(adapter)` on a fresh adapter, closing it afterwards; returns the scenario's result."""
    async def go():
        async with opened(connect) as adapter:
            return await scenario(adapter)

    return run(go())


@dataclass
class Outcome:
    """A job run to its end: the id the adapter handed out, its final status, every state seen in order."""

    job_id: str
    status: JobStatus
    seen: list[JobState]
    adapter: Any          # closed by now; its pure helpers (download_headers) still answer


async def finish(adapter, req, after_submit: Callable[[], None] | None = None) -> Outcome:
    job_id = await adapter.submit(req)
    if after_submit is not None:
        after_submit()
    status, seen = await poll_until_terminal(adapter, job_id)
    return Outcome(job_id, status, seen, adapter)


def submit_once(connect: Connect, req) -> str:
    """Submit `req` on a fresh adapter; returns the job id."""
    return using(connect, lambda a: a.submit(req))


def run_to_terminal(connect: Connect, req, after_submit: Callable[[], None] | None = None) -> Outcome:
    """Submit `req`, call `after_submit()` (to plan faults for polling), and poll until the job ends."""
    return using(connect, lambda a: finish(a, req, after_submit))


def synthesize_once(connect: Connect, req, dest: Path):
    """Speak `req` into `dest` on a fresh TTS adapter; returns the result."""
    return using(connect, lambda a: a.synthesize(req, dest))


def posts(book) -> list[str]:
    return [p for m, p in book.requests if m == "POST"]


def assert_happy_path(outcome: Outcome, book, dest: Path, *, seen: list[JobState], seconds: float,
                      headers: dict[str, str] | None = None):
    """The job went through exactly `seen`, was paid for once, and its output is a real mp4 `seconds` long.

    Returns the fake's record of the one job."""
    assert outcome.seen == seen
    assert outcome.status.state == JobState.SUCCEEDED
    fetch(outcome.status.output_url, dest, headers=headers, policy=FAKES_ONLY)
    assert probe(dest).duration == pytest.approx(seconds, abs=0.1)
    assert book.total_submissions == 1
    [job] = book.jobs.values()
    return job


def assert_transient_submit_fault_retried(connect: Connect, req, book, fault: str, *, submit_path: str,
                                          book_id: Callable[[str], str] = lambda job_id: job_id) -> str:
    """One transient fault on submit: the adapter retries once and exactly one job exists.

    `book_id` maps the adapter's job id to the fake's; returns the adapter's job id."""
    book.faults.add("submit", fault)
    job_id = submit_once(connect, req)
    assert book_id(job_id) in book.jobs
    assert book.total_submissions == 1
    assert posts(book) == [submit_path] * 2
    return job_id


def assert_transient_poll_fault_retried(connect: Connect, req, book, fault: str, *, phase: str = "poll") -> Outcome:
    """One transient fault while polling (`phase` poll or result): the job still ends in success, submitted once."""
    outcome = run_to_terminal(connect, req, after_submit=lambda: book.faults.add(phase, fault))
    assert outcome.status.state == JobState.SUCCEEDED and outcome.status.output_url
    assert book.faults.take(phase) is None          # the fault was served, not skipped
    assert book.total_submissions == 1
    return outcome


def assert_failed_job_is_classified(connect: Connect, req, book, fault: str, *, kind: str, says: str) -> Outcome:
    """A job the fake fails (`fault` fail-*) ends FAILED with the error kind `kind` and the provider's `says`."""
    book.faults.add("job", fault)
    outcome = run_to_terminal(connect, req)
    assert (outcome.status.state, outcome.status.error_kind) == (JobState.FAILED, kind)
    assert outcome.seen[-1] == JobState.FAILED
    assert says in outcome.status.error
    assert book.total_submissions == 1
    return outcome


def assert_stuck_job_runs_and_cancel_is_refused_without_a_call(connect: Connect, req, book) -> None:
    """For providers with no cancel call: a stuck job polls RUNNING, and cancel says no without a request."""
    book.faults.add("job", "stuck")

    async def scenario(a):
        job_id = await a.submit(req)
        await until_ended(*book.jobs.values())           # a job without the fault would have finished
        before = len(book.requests)
        return (await a.poll(job_id)).state, await a.cancel(job_id), len(book.requests) - before

    assert using(connect, scenario) == (JobState.RUNNING, False, 1)     # only the poll reached the server


@dataclass
class StuckAndPending:
    still: JobState           # the stuck job's state after a while
    refused: bool             # cancel's answer for the stuck (running) job
    accepted: bool            # cancel's answer for the pending (queued) job
    after: JobStatus          # the pending job's status after its cancel
    pending_id: str


def cancel_stuck_then_pending(connect: Connect, book, stuck_req, pending_req) -> StuckAndPending:
    """Submit a stuck job, let it start, try to cancel it; then submit another and cancel it while it is queued."""
    book.faults.add("job", "stuck")

    async def scenario(a):
        stuck = await a.submit(stuck_req)
        await until_ended(*book.jobs.values())           # a job without the fault would have finished
        still = (await a.poll(stuck)).state
        refused = await a.cancel(stuck)
        pending = await a.submit(pending_req)
        accepted = await a.cancel(pending)
        return StuckAndPending(still, refused, accepted, await a.poll(pending), pending)

    return using(connect, scenario)


def assert_wrong_key_is_fatal(attempt: Callable[[], Any], book, *, secrets: Iterable[str],
                              says: Iterable[str]) -> str:
    """`attempt()` with a wrong key fails FATAL, quoting the provider (`says`) but never the `secrets`.

    Nothing was paid for. Returns the error message."""
    with pytest.raises(ProviderError) as exc:
        attempt()
    message = str(exc.value)
    assert exc.value.kind == ProviderError.FATAL
    for text in says:
        assert text in message
    for secret in secrets:
        assert secret not in message            # the key never appears in errors
    assert book.total_submissions == 0
    return message


def assert_download_fault_raises(status: JobStatus, book, dest: Path, fault: str, match: str,
                                 headers: dict[str, str] | None = None) -> None:
    """A finished job's download that the fake breaks (`fault`) raises, quoting `match`, and leaves no clip."""
    book.faults.add("download", fault)
    with pytest.raises(Exception, match=match):
        fetch(status.output_url, dest, headers=headers, policy=FAKES_ONLY)


def assert_terminal_before_any_call(build: Callable[[], Any], match: str | None = None) -> None:
    """`build()` refuses its input as TERMINAL (optionally quoting `match`)."""
    with pytest.raises(ProviderError, match=match) as exc:
        build()
    assert exc.value.kind == ProviderError.TERMINAL


# ---- text to speech -------------------------------------------------------------------------------------------

def assert_transient_tts_fault_retried(connect: Connect, req, book, dest: Path, fault: str, *, path: str):
    """One transient fault: the speech is synthesized once, after one retry, and is as long as its text."""
    book.faults.add("submit", fault)
    result = synthesize_once(connect, req, dest)
    assert probe(result.path).duration == pytest.approx(spoken_seconds(req.text), abs=0.1)
    assert book.total_submissions == 1
    assert book.requests == [("POST", path)] * 2
    return result


def assert_unknown_voice_is_terminal(connect: Connect, req, dest: Path) -> str:
    """A voice the provider does not know is TERMINAL; returns the message."""
    with pytest.raises(ProviderError) as exc:
        synthesize_once(connect, req, dest)
    assert exc.value.kind == ProviderError.TERMINAL
    return str(exc.value)


def assert_video_job_protocol_refused(adapter, video_request) -> None:
    """A TTS adapter refuses submit/poll, pointing at synthesize."""
    for call in (adapter.submit(video_request), adapter.poll("job-1")):
        with pytest.raises(ProviderError, match="synthesize") as exc:
            run(call)
        assert exc.value.kind == ProviderError.TERMINAL

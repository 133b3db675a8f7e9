"""The one ffmpeg runner: finds a binary and runs ffmpeg-python graphs as argument lists, never through a shell.

Every input is opened with a protocol and a demuxer whitelist: media files only ever read local files, so a
crafted input (an HLS or concat playlist posing as a clip, pointing at http:// or at another file) is refused.

Runs may share a `Budget` (assembly does): inside `budgeted(budget)`, every ffmpeg run first waits until its
estimated peak memory and a process slot fit, so work run side by side (a video's picture beside its sound, the
videos of a campaign) never holds more than the budget by estimate.
"""

from __future__ import annotations

import contextvars
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import lru_cache

import ffmpeg as ffmpeg_python

from video_pipeline.errors import MediaError

#: demuxers a clip, a still, a soundtrack or a narration may be read with: none of them opens other resources
MEDIA_FORMATS = ("mov", "matroska", "mpegts", "avi", "wav", "mp3", "aac", "flac", "ogg", "image2", "png_pipe",
                 "jpeg_pipe", "webp_pipe")
#: an input named with `-f`: only that demuxer (the concat demuxer's own list, a lavfi source, an SRT file);
#: the concat demuxer's entries inherit the whitelists and must be media files
NAMED_FORMATS = {"concat": ("concat", *MEDIA_FORMATS), "lavfi": ("lavfi",), "srt": ("srt",)}
PROTOCOLS = "file"


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """ffmpeg on PATH when there is one, otherwise the static binary the imageio-ffmpeg wheel ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def guard_inputs(args: list[str]) -> list[str]:
    """`args` with `-protocol_whitelist file` and a `-format_whitelist` put before every `-i`.

    An input forced with `-f NAME` may use only that demuxer (NAME must be one we know); any other input only
    the media demuxers. A format ffmpeg cannot name in the whitelist is refused with MediaError.
    """
    guarded: list[str] = []
    forced: str | None = None
    i = 0
    while i < len(args):
        token = args[i]
        if token == "-f" and i + 1 < len(args):
            forced = args[i + 1]
        if token == "-i" and i + 1 < len(args):
            if forced is not None and forced not in NAMED_FORMATS:
                raise MediaError(f"ffmpeg input {args[i + 1]!r}: the {forced!r} demuxer is not allowed")
            formats = NAMED_FORMATS[forced] if forced else MEDIA_FORMATS
            guarded += ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", ",".join(formats), token, args[i + 1]]
            forced = None
            i += 2
            continue
        guarded.append(token)
        i += 1
    return guarded


#: what an ffmpeg run is assumed to hold at its peak when its caller gives no estimate (MB of RSS): a decode
#: with a filter, or a stream copy, at 720p
DEFAULT_RUN_MB = 100.0


class Budget:
    """Memory (MB of peak RSS, by the callers' estimates) and process slots that ffmpeg runs share.

    Runs start in the order they asked, each when its estimate fits in what the others hold and a slot is free
    (first come, first served: a run that has waited is never passed by one that asked later, so a long chain of
    runs is not starved by short ones). An estimate larger than the whole budget waits for the budget to be empty
    and then runs alone. Runs never hold one another, so there is no deadlock: every holder finishes on its own."""

    def __init__(self, memory_mb: float, processes: int):
        self.memory_mb, self.processes = float(memory_mb), max(1, int(processes))
        self._held, self._running = 0.0, 0
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, memory_mb: float) -> Iterator[None]:
        need = min(max(float(memory_mb), 0.0), self.memory_mb)
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                self._changed.wait_for(lambda: self._queue[0] is ticket and self._running < self.processes
                                       and self._held + need <= self.memory_mb + 1e-9)
            except BaseException:                # interrupted while waiting: the line must not stop behind it
                self._queue.remove(ticket)
                self._changed.notify_all()
                raise
            self._queue.popleft()
            self._held += need
            self._running += 1
            self._changed.notify_all()          # the next in line may fit beside this one
        try:
            yield
        finally:
            with self._changed:
                self._held -= need
                self._running -= 1
                self._changed.notify_all()


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("ffmpeg_budget", default=None)


@contextmanager
def budgeted(budget: Budget) -> Iterator[Budget]:
    """Every ffmpeg run in this context (and in the threads `side_by_side` starts from it) waits for `budget`."""
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def current_budget() -> Budget | None:
    return _BUDGET.get()


def side_by_side(jobs: list[Callable[[], object]], workers: int) -> list:
    """Run `jobs` on up to `workers` threads, each in a copy of the caller's context (so its ffmpeg runs share the
    caller's budget); returns their results in order, or raises the first job's error after all have stopped."""
    if workers <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, job) for job in jobs]
    return [f.result() for f in futures]


def run_graph(stream, *, what: str, timeout: float = 1800, memory_mb: float = DEFAULT_RUN_MB,
              started: Callable[[], object] | None = None, loglevel: str = "error") -> str:
    """Run an ffmpeg-python output stream; returns ffmpeg's stderr (at `loglevel`), or raises MediaError with its
    last lines on failure."""
    args = ffmpeg_python.compile(stream, cmd=ffmpeg_binary(), overwrite_output=True)
    return run_args([*args[:1], "-hide_banner", "-nostdin", "-loglevel", loglevel, *args[1:]], what=what,
                    timeout=timeout, memory_mb=memory_mb, started=started)


def run_args(args: list[str], *, what: str, timeout: float = 1800, memory_mb: float = DEFAULT_RUN_MB,
             started: Callable[[], object] | None = None) -> str:
    """Run ffmpeg (`args[0]` is the binary) with guarded inputs and no shell; returns its stderr. Inside
    `budgeted`, it first waits for `memory_mb` (its estimated peak) and a process slot of the budget; `started` is
    called once it has them, as ffmpeg starts.

    Raises MediaError with ffmpeg's last lines when it fails or outlives `timeout` seconds (the wait for the
    budget is not counted)."""
    command = [args[0], *guard_inputs(list(args[1:]))]
    budget = _BUDGET.get()
    try:
        with budget.hold(memory_mb) if budget is not None else nullcontext():
            if started is not None:
                started()
            proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                                  check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{what}: ffmpeg did not finish within {timeout:g}s") from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-5:]
        raise MediaError(f"{what}: ffmpeg exited with {proc.returncode}: " + " | ".join(tail))
    return stderr

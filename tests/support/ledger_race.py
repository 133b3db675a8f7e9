"""Many processes opening one ledger at the same instant (issue 21's race), for tests and benches. Kept light: a
spawned process imports this module, so it imports nothing heavy before the barrier."""

from __future__ import annotations

import multiprocessing
import queue


def _open(url: str, kind: str, barrier, results) -> None:
    from video_pipeline.jobs.ledger import JobLedger
    from video_pipeline.planning.observed import ObservationLog

    try:
        barrier.wait(timeout=120)
        (JobLedger if kind == "ledger" else ObservationLog)(url).dispose()
        results.put("ok")
    except BaseException as exc:   # reported to the caller, which names it
        results.put(f"{type(exc).__name__}: {exc}")


def open_at_once(url: str, processes: int = 10) -> list[str]:
    """Start `processes` fresh interpreters that open the ledger at `url` as soon as all are ready (half through
    JobLedger, half through ObservationLog, as a run's stages do). Returns each one's outcome ("ok" or its error),
    and a line for each process that did not exit 0."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    started = [context.Process(target=_open, args=(url, "ledger" if i % 2 else "observations", barrier, results))
               for i in range(processes)]
    for process in started:
        process.start()
    outcomes: list[str] = []
    while len(outcomes) < processes:       # every answer, or every process gone (one died before answering)
        try:
            outcomes.append(results.get(timeout=1))
        except queue.Empty:
            if not any(p.is_alive() for p in started):
                break
    for process in started:
        process.join(timeout=60)
    return outcomes + [f"process {p.pid} exited {p.exitcode}" for p in started if p.exitcode != 0]

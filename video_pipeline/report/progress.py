"""What `video-pipeline run` shows while a campaign runs: segments queued / running / done / failed and dollars
spent, read from the job ledger (the one place every provider job is written first) by a polling thread.

On a terminal: rich progress bars. Otherwise: one plain line each time the counts change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from video_pipeline.jobs.ledger import IN_FLIGHT, LedgerState, jobs

DONE = (LedgerState.SUCCEEDED.value, LedgerState.STORED.value)
#: uncertain: waits for `resolve`, not for the provider
FAILED = (LedgerState.FAILED.value, LedgerState.ABANDONED.value, LedgerState.UNCERTAIN.value)


@dataclass(frozen=True)
class Counts:
    total: int
    queued: int
    running: int
    done: int
    failed: int
    spent_usd: float
    est_usd: float
    would_cost: bool = False     # offline renders: nothing is spent, the figure is what it would cost

    @property
    def dollars(self) -> str:
        if self.would_cost:
            return f"would cost ${self.spent_usd:.2f} of ${self.est_usd:.2f} estimated"
        return f"${self.spent_usd:.2f} spent of ${self.est_usd:.2f} estimated"

    def line(self) -> str:
        return (f"segments: {self.done}/{self.total} done, {self.running} running, {self.queued} queued, "
                f"{self.failed} failed; {self.dollars}")


def read_engine(url: str) -> sa.Engine:
    """An engine that only reads. The ledger's own SQLite engine begins every transaction IMMEDIATE (it counts
    slots atomically), which would take the write lock on each poll; a plain read in WAL mode never blocks the
    engine's writes."""
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
    return sa.create_engine(url, pool_pre_ping=True)


def ledger_counts(engine: sa.Engine, campaign: str, planned: list[tuple[str, int, str]], est_usd: float,
                  offline: bool | None = None) -> Counts:
    """Counts for the planned segments ((video_id, segment_index, job_key)): the newest ledger row of each
    segment decides its state; a segment without a row in this campaign is done when its job key finished
    elsewhere (a reused job), else queued. Dollars are what this campaign's finished jobs cost."""
    with engine.connect() as conn:
        query = sa.select(jobs.c.id, jobs.c.video_id, jobs.c.segment_index, jobs.c.state, jobs.c.cost_usd,
                          jobs.c.created_at, jobs.c.provider).where(jobs.c.campaign == campaign).order_by(jobs.c.id)
        rows = list(conn.execute(query))
        newest = {(r.video_id, r.segment_index): r for r in rows}
        missing = [key for v, i, key in planned if (v, i) not in newest and key]
        reused = set(conn.execute(sa.select(jobs.c.job_key).where(
            jobs.c.job_key.in_(missing), jobs.c.state.in_(DONE))).scalars()) if missing else set()
    states = {"queued": 0, "running": 0, "done": 0, "failed": 0}
    keys = {(v, i): key for v, i, key in planned}
    for v, i in keys.keys() | newest.keys():
        row = newest.get((v, i))
        if row is None:
            states["done" if keys.get((v, i)) in reused else "queued"] += 1
        elif row.state in DONE:
            states["done"] += 1
        elif row.state in IN_FLIGHT:
            states["running"] += 1
        elif row.state in FAILED:
            states["failed"] += 1
        else:
            states["queued"] += 1
    spent = sum(r.cost_usd or 0 for r in rows if r.cost_usd is not None)
    if offline is None:   # the run's mode when the caller knows it (local: "would cost" from the first line)
        offline = bool(rows) and all(r.provider == "local" for r in rows)
    return Counts(total=len(keys.keys() | newest.keys()), spent_usd=round(spent, 4), est_usd=est_usd,
                  would_cost=offline, **states)


class LedgerWatch:
    """Polls the ledger for one campaign in a thread and hands each new `Counts` to `show`."""

    def __init__(self, ledger_url: str, campaign: str, planned: list[tuple[str, int, str]], est_usd: float,
                 show: Callable[[Counts], None], plan_table: Path | None = None, interval: float = 1.0,
                 offline: bool | None = None):
        self.ledger_url, self.campaign, self.planned, self.est_usd = ledger_url, campaign, planned, est_usd
        self.offline = offline
        self.show, self.plan_table, self.interval = show, plan_table, interval
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ledger-progress", daemon=True)
        self.last: Counts | None = None
        self.engine: sa.Engine | None = None

    def __enter__(self) -> "LedgerWatch":
        self.engine = read_engine(self.ledger_url)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.engine.dispose()

    def _refresh_plan(self) -> None:
        """The run's own plan (narration can lengthen a video) once routed_job_plans has written it."""
        table = self.plan_table
        if table is None or not table.exists() or table.stat().st_mtime < self.started:
            return
        try:
            frame = pd.read_parquet(table, columns=["video_id", "segment_index", "job_key", "est_cost_usd"])
        except (OSError, ValueError):   # being written right now: read it on the next poll
            return
        self.planned = [(r.video_id, int(r.segment_index), r.job_key) for r in frame.itertuples()]
        self.est_usd = round(float(frame["est_cost_usd"].sum()), 4)
        self.plan_table = None

    def poll(self) -> Counts:
        self._refresh_plan()
        return ledger_counts(self.engine, self.campaign, self.planned, self.est_usd, self.offline)

    def _loop(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                counts = self.poll()
            except sa.exc.SQLAlchemyError:   # the engine creates the tables; a first poll may race it
                counts = None
            if counts is not None and counts != self.last:
                self.last = counts
                self.show(counts)
            if stopping:
                return
            self._stop.wait(self.interval)


class PlainProgress:
    """One line per change, for logs and pipes."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def show(self, counts: Counts) -> None:
        self.write(counts.line())


class RichProgress:
    """Two bars on a terminal: segments (with queued / running / failed beside it) and dollars spent."""

    def __init__(self, console):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:<9}"), BarColumn(bar_width=40),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
                                 transient=False)
        self.segments = self.progress.add_task("segments", total=None, detail="waiting for the plan")
        self.dollars = self.progress.add_task("dollars", total=None, detail="")

    def __enter__(self) -> "RichProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def show(self, c: Counts) -> None:
        self.progress.update(self.segments, total=max(c.total, 1), completed=c.done + c.failed,
                             detail=f"{c.done}/{c.total} done  {c.running} running  {c.queued} queued  "
                                    f"[{'red' if c.failed else 'default'}]{c.failed} failed[/]")
        self.progress.update(self.dollars, total=max(c.est_usd, 0.01), completed=min(c.spent_usd, max(c.est_usd, 0.01)),
                             detail=c.dollars)

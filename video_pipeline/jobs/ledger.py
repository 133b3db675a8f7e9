"""The job ledger: the source of truth for provider jobs, so nothing is paid for twice.

One row per provider job (per attempt). The provider's job id is written the moment the provider returns it; a
rerun finds in-flight jobs and resumes polling them, and reuses a job key that already succeeded. SQLite file
by default, PostgreSQL by URL, the same code (SQLAlchemy Core). Webhook deliveries land in `job_events`.

Money: each submission reserves its estimated cost against the campaign's budget in the transaction that claims
the job key; a job whose submit outcome is unknown is `uncertain` (it counts as spent) until it is reconciled
with the provider or an operator decides. `cost_usd` is what the provider bills for the job (its own figure where
its answer carries one, else the catalog's billing rule); `estimated_usd` and `reserved_usd` are kept beside it.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import sqlalchemy as sa

from video_pipeline.db import aware, make_engine, metadata, migrate
from video_pipeline.errors import BudgetExceeded



class LedgerState(enum.StrEnum):
    """Where a provider job is. A row only moves forward (see MOVES); every move is one compare-and-set."""

    SUBMITTING = "submitting"   # a slot taken, the job-creating request being sent
    QUEUED = "queued"           # the provider returned its job id
    RUNNING = "running"
    UNCERTAIN = "uncertain"     # the request left and its answer was lost: the provider may have made the job
    SUCCEEDED = "succeeded"     # paid; its output URL known
    STORED = "stored"           # its clip kept (content-addressed); the URL is provenance
    FAILED = "failed"
    ABANDONED = "abandoned"     # never sent, not created, or let go by an operator
    LOST = "lost"               # a kept clip that is gone and cannot be fetched again


S = LedgerState
#: each state, and the states a row may be in to move to it (anything else is a move backwards: refused)
MOVES: dict[LedgerState, frozenset[LedgerState]] = {
    S.QUEUED: frozenset({S.SUBMITTING, S.UNCERTAIN}),       # submitted; an uncertain job found (adopted)
    S.RUNNING: frozenset({S.QUEUED, S.RUNNING}),
    S.UNCERTAIN: frozenset({S.SUBMITTING}),
    S.SUCCEEDED: frozenset({S.QUEUED, S.RUNNING, S.SUCCEEDED, S.STORED}),   # STORED: a fresh URL for a clip gone
    S.STORED: frozenset({S.SUCCEEDED, S.STORED}),
    S.FAILED: frozenset({S.SUBMITTING, S.QUEUED, S.RUNNING}),
    S.ABANDONED: frozenset({S.SUBMITTING, S.UNCERTAIN}),
    S.LOST: frozenset({S.SUCCEEDED, S.STORED}),
}
IN_FLIGHT = (S.SUBMITTING.value, S.QUEUED.value, S.RUNNING.value)
_WAITING = (S.QUEUED.value, S.RUNNING.value)     # submitted, waiting on the provider
#: states whose job may be billed although its cost is not known yet: they hold their reservation
HOLDING = (*IN_FLIGHT, S.UNCERTAIN.value)
TAKEN = -1   # try_begin: another run holds this job key
#: a job in flight whose heartbeat is older than this holds no concurrency slot (nobody has polled it for that
#: long: its run died and no live run could take it over, e.g. its provider is configured nowhere now)
LEASE = dt.timedelta(minutes=10)
#: a live run beats every job it holds in flight every few seconds; one not beaten for this long belongs to a run
#: that died, and any live run that can reach its provider takes it over (polls it to its end, keeps its clip)
RUN_LEASE = dt.timedelta(seconds=20)
#: a `submitting` row's lease: the run that sends the request renews it every few seconds while it waits for the
#: answer, so a slow answer is never mistaken for a dead run; a row older than this belongs to a run that died
SUBMIT_LEASE = dt.timedelta(seconds=30)
#: operator decisions `video-pipeline resolve` takes for an uncertain job
DECISIONS = ("adopt", "resubmit", "abandon")

jobs = sa.Table(
    "provider_jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_key", sa.String(64), nullable=False, index=True),
    sa.Column("campaign", sa.String(64), nullable=False, index=True),
    sa.Column("video_id", sa.String(64), nullable=False),
    sa.Column("segment_index", sa.Integer, nullable=False),
    sa.Column("model", sa.String(64), nullable=False, index=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("provider_job_id", sa.String(512), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("error_kind", sa.String(16), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("latency_seconds", sa.Float, nullable=True),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("output_url", sa.Text, nullable=True),
    sa.Column("url_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("stored_uri", sa.Text, nullable=True),
    sa.Column("stored_sha256", sa.String(64), nullable=True),
    # money and uncertainty (added in December 2026; migration 0001 adds them to older ledgers)
    sa.Column("estimated_usd", sa.Float, nullable=True),
    sa.Column("reserved_usd", sa.Float, nullable=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),       # the job-creating request left
    sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("uncertain_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("fingerprint", sa.String(64), nullable=True),                # sha256 of the request as sent
    sa.Column("resolution", sa.Text, nullable=True),                       # how an uncertain job was settled
    sa.UniqueConstraint("provider", "provider_job_id", name="uq_provider_job"),
)

budgets = sa.Table(
    "campaign_budgets", metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("budget_usd", sa.Float, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

events = sa.Table(
    "job_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("delivery_id", sa.String(256), nullable=False),
    sa.Column("provider_job_id", sa.String(512), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("provider", "delivery_id", name="uq_delivery"),   # a replayed delivery is refused
)
#: a delivery's JSON is kept beside its event up to this many characters; a bigger one is stored as its event alone
#: (provider, job, delivery id, state, time) with an empty payload, never cut into JSON that does not parse
EVENT_BODY_LIMIT = 64 * 1024


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class JobRow:
    id: int
    job_key: str
    campaign: str
    video_id: str
    segment_index: int
    model: str
    provider: str
    provider_job_id: str | None
    state: LedgerState
    attempt: int
    error_kind: str | None
    last_error: str | None
    created_at: dt.datetime
    submitted_at: dt.datetime | None
    heartbeat_at: dt.datetime
    finished_at: dt.datetime | None
    latency_seconds: float | None
    cost_usd: float | None
    output_url: str | None
    url_expires_at: dt.datetime | None
    stored_uri: str | None
    stored_sha256: str | None
    estimated_usd: float | None = None
    reserved_usd: float | None = None
    sent_at: dt.datetime | None = None
    uncertain_since: dt.datetime | None = None
    uncertain_until: dt.datetime | None = None
    fingerprint: str | None = None
    resolution: str | None = None

    @property
    def committed_usd(self) -> float:
        """What this job counts against its campaign's budget: its bill when known, else its reservation while it
        may still be billed (in flight, uncertain, or released by an operator who accepted a possible charge)."""
        if self.cost_usd is not None:
            return self.cost_usd
        if self.state in HOLDING or (self.resolution or "").startswith("operator"):
            return self.reserved_usd or 0.0
        return 0.0

    @classmethod
    def of(cls, row) -> "JobRow":
        d = dict(row._mapping)
        for k in ("created_at", "submitted_at", "heartbeat_at", "finished_at", "url_expires_at", "sent_at",
                  "uncertain_since", "uncertain_until"):
            d[k] = aware(d[k])
        d["state"] = LedgerState(d["state"])
        return cls(**d)

    @property
    def kept_remotely(self) -> bool:
        """Stored in a remote clip store (s3://): the store, not this machine's disk, has the clip."""
        return bool(self.stored_uri) and urlparse(self.stored_uri).scheme not in ("", "file")

    def stored_file(self) -> Path | None:
        """The stored clip's path when it is a local file that still exists."""
        if not self.stored_uri or urlparse(self.stored_uri).scheme != "file":
            return None
        path = Path(unquote(urlparse(self.stored_uri).path))
        return path if path.is_file() else None


class JobLedger:
    """Reads and writes provider jobs. Every state change is written here before anything else acts on it."""

    def __init__(self, url: str, submit_lease: dt.timedelta | None = None):
        self.url = url
        self.submit_lease = submit_lease or SUBMIT_LEASE
        self.engine = make_engine(url)
        try:
            migrate(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def dispose(self) -> None:
        self.engine.dispose()

    # --- reads -------------------------------------------------------------------------------

    def rows(self, job_key: str) -> list[JobRow]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(jobs).where(jobs.c.job_key == job_key).order_by(jobs.c.id.desc()))
            return [JobRow.of(r) for r in result]

    def row(self, row_id: int) -> JobRow | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(jobs).where(jobs.c.id == row_id)).first()
        return JobRow.of(found) if found is not None else None

    def reusable(self, job_key: str, margin: dt.timedelta = dt.timedelta(minutes=5)) -> JobRow | None:
        """A finished job for this key that can be reused: stored (and still there), or succeeded with a live URL."""
        for row in self.rows(job_key):
            if row.state == S.STORED and (row.stored_file() is not None or row.kept_remotely):
                return row
            if row.state in (S.SUCCEEDED, S.STORED) and row.output_url and (
                    row.url_expires_at is None or row.url_expires_at > now() + margin):
                return row
        return None

    def paid_unkept(self, job_key: str) -> JobRow | None:
        """A paid-for job whose clip is not kept: never stored (its URL may have expired), or stored in a file that
        is gone. Ask its provider for a fresh URL before anything is paid again."""
        for row in self.rows(job_key):
            if row.state == S.SUCCEEDED and row.provider_job_id:
                return row
            if row.state == S.STORED and row.provider_job_id and row.stored_file() is None and not row.kept_remotely:
                return row
        return None

    def in_flight(self, job_key: str) -> JobRow | None:
        """A submitted job for this key still waiting on its provider: resume polling it, never resubmit."""
        for row in self.rows(job_key):
            if row.state in (S.QUEUED, S.RUNNING) and row.provider_job_id:
                return row
        return None

    def campaign_rows(self, campaign: str) -> list[JobRow]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(jobs).where(jobs.c.campaign == campaign).order_by(jobs.c.id))
            return [JobRow.of(r) for r in result]

    def unstored_expiring(self, within: dt.timedelta) -> list[JobRow]:
        """Succeeded jobs not yet stored whose output URL expires within `within` (or has no known expiry)."""
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(jobs).where(jobs.c.state == S.SUCCEEDED.value)
                                  .order_by(jobs.c.url_expires_at))
            rows = [JobRow.of(r) for r in result]
        return [r for r in rows if r.url_expires_at is None or r.url_expires_at <= now() + within]

    def seconds_since_submitted(self, row_id: int) -> float:
        with self.engine.connect() as conn:
            submitted = aware(conn.execute(sa.select(jobs.c.submitted_at).where(jobs.c.id == row_id)).scalar_one_or_none())
        return max(0.0, (now() - submitted).total_seconds()) if submitted else 0.0

    @staticmethod
    def _count_in_flight(conn, model: str) -> int:
        fresh = now() - LEASE
        return conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
            jobs.c.model == model, jobs.c.state.in_(IN_FLIGHT), jobs.c.heartbeat_at >= fresh)).scalar_one()

    # --- writes ------------------------------------------------------------------------------

    def set_budget(self, campaign: str, budget_usd: float | None) -> None:
        """The campaign's budget as its current spec says (every run of the campaign reserves against it)."""
        with self.engine.begin() as conn:
            updated = conn.execute(budgets.update().where(budgets.c.campaign == campaign)
                                   .values(budget_usd=budget_usd, updated_at=now())).rowcount
            if not updated:
                try:
                    with conn.begin_nested():
                        conn.execute(budgets.insert().values(campaign=campaign, budget_usd=budget_usd,
                                                             updated_at=now()))
                except sa.exc.IntegrityError:   # another process inserted it first: theirs is the same spec's
                    pass

    def budget(self, campaign: str) -> float | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(budgets.c.budget_usd).where(budgets.c.campaign == campaign)).scalar()

    @staticmethod
    def _committed(conn, campaign: str) -> tuple[float, float]:
        """(spent, reserved) for a campaign: bills known, and reservations of jobs that may still be billed."""
        # the same rule as JobRow.committed_usd, summed in the database (one pass over the campaign's rows)
        held = sa.and_(jobs.c.cost_usd.is_(None),
                       sa.or_(jobs.c.state.in_(HOLDING), jobs.c.resolution.like("operator%")))
        spent, reserved = conn.execute(sa.select(
            sa.func.coalesce(sa.func.sum(jobs.c.cost_usd), 0.0),
            sa.func.coalesce(sa.func.sum(sa.case((held, sa.func.coalesce(jobs.c.reserved_usd, 0.0)), else_=0.0)), 0.0),
        ).where(jobs.c.campaign == campaign)).one()
        return round(float(spent), 4), round(float(reserved), 4)

    def try_begin(self, *, job_key: str, campaign: str, video_id: str, segment_index: int, model: str,
                  provider: str, attempt: int, limit: int, reserve_usd: float = 0.0,
                  budget_usd: float | None = None) -> int | None:
        """Take one of `limit` slots for `model` across every run sharing this ledger: insert a `submitting`
        row and return its id; None when the model's account concurrency is in use; TAKEN when another run has
        this job key in flight, uncertain or done (checked in the same transaction, so two runs never both submit
        it). The row reserves `reserve_usd` against `budget_usd` in that transaction: BudgetExceeded when spent +
        reserved + this reservation would pass it."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                for lock in sorted({f"model:{model}", f"key:{job_key}", f"campaign:{campaign}"}):
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(lock.encode())})
            t = now()
            busy = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
                jobs.c.job_key == job_key,
                sa.or_(sa.and_(jobs.c.state == S.SUBMITTING.value, jobs.c.heartbeat_at >= t - self.submit_lease),
                       sa.and_(jobs.c.state.in_((S.QUEUED.value, S.RUNNING.value)), jobs.c.heartbeat_at >= t - LEASE),
                       jobs.c.state.in_((S.SUCCEEDED.value, S.STORED.value, S.UNCERTAIN.value))))).scalar_one()
            if busy:
                return TAKEN
            if self._count_in_flight(conn, model) >= limit:
                return None
            if budget_usd is not None:
                spent, reserved = self._committed(conn, campaign)
                if spent + reserved + reserve_usd > budget_usd + 1e-9:
                    raise BudgetExceeded(
                        f"campaign {campaign}: budget_usd is ${budget_usd:.2f}; ${spent:.2f} is spent and "
                        f"${reserved:.2f} reserved by jobs in flight or uncertain, so {video_id} segment "
                        f"{segment_index} on {model} (est. ${reserve_usd:.2f}) would pass it. Nothing was sent for "
                        "it; raise budget_usd in the campaign file to go on.")
            return conn.execute(jobs.insert().values(
                job_key=job_key, campaign=campaign, video_id=video_id, segment_index=segment_index, model=model,
                provider=provider, state=S.SUBMITTING.value, attempt=attempt, created_at=t, heartbeat_at=t,
                estimated_usd=round(reserve_usd, 4), reserved_usd=round(reserve_usd, 4),
            )).inserted_primary_key[0]

    def sending(self, row_id: int) -> None:
        """The job-creating request is about to leave: from here on, a lost answer makes the job uncertain."""
        self._update(row_id, sent_at=now())

    def renew_submit(self, row_id: int) -> None:
        """Renew a `submitting` row's lease while its run still waits for the provider's answer."""
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == row_id, jobs.c.state == S.SUBMITTING.value)
                         .values(heartbeat_at=now()))

    def submitted(self, row_id: int, provider_job_id: str) -> bool:
        """Written the moment the provider returns its job id, before anything else happens."""
        return self._move(row_id, S.QUEUED, provider_job_id=provider_job_id, submitted_at=now())

    def heartbeat(self, row_id: int, state: str) -> bool:
        """A poll saw the job still queued or running: the row's time moves on, and its state only forward (a
        run polling a job another run shares never takes back that run's "succeeded")."""
        to = LedgerState(state)
        if to not in (S.QUEUED, S.RUNNING):
            raise ValueError(f"heartbeat({row_id}): {state!r} is not a state a job waits in")
        with self.engine.begin() as conn:
            if to == S.RUNNING and self._move(row_id, S.RUNNING, conn=conn):
                return True
            # still queued (or the row already says running): the time moves, the state does not
            return bool(conn.execute(jobs.update().where(jobs.c.id == row_id, jobs.c.state.in_(IN_FLIGHT))
                                     .values(heartbeat_at=now())).rowcount)

    def succeeded(self, row_id: int, *, output_url: str, url_expires_at: dt.datetime | None,
                  latency_seconds: float | None, cost_usd: float) -> bool:
        """The job finished: its bill and output URL. A row another run already stored stays stored."""
        return self._move(row_id, S.SUCCEEDED, allowed=MOVES[S.SUCCEEDED] - {S.STORED, S.SUCCEEDED},
                          output_url=output_url, url_expires_at=url_expires_at, latency_seconds=latency_seconds,
                          cost_usd=cost_usd, finished_at=now(), last_error=None, error_kind=None)

    def failed(self, row_id: int, *, error: str, kind: str, cost_usd: float | None = None) -> bool:
        """A job that ended without a clip; `cost_usd` is what the provider bills for it (None: not submitted)."""
        return self._move(row_id, S.FAILED, last_error=error[:2000], error_kind=kind, finished_at=now(),
                          **({"cost_usd": cost_usd} if cost_usd is not None else {}))

    def beat(self, row_ids: list[int]) -> None:
        """The run holding these jobs in flight is alive: their time moves on (never their state)."""
        if row_ids:
            with self.engine.begin() as conn:
                conn.execute(jobs.update().where(jobs.c.id.in_(row_ids), jobs.c.state.in_(_WAITING))
                             .values(heartbeat_at=now()))

    def orphans(self, providers: frozenset[str], stale: dt.timedelta = RUN_LEASE) -> list[JobRow]:
        """Submitted jobs still in flight whose run stopped beating them (it died): any campaign, these providers."""
        with self.engine.connect() as conn:
            return [JobRow.of(r) for r in conn.execute(sa.select(jobs).where(
                jobs.c.state.in_(_WAITING), jobs.c.provider_job_id.is_not(None), jobs.c.provider.in_(providers),
                jobs.c.heartbeat_at < now() - stale).order_by(jobs.c.id))]

    def take_over(self, row_id: int, stale: dt.timedelta = RUN_LEASE) -> bool:
        """Claim a dead run's job in flight (compare-and-set on its lapsed heartbeat): one live run wins."""
        with self.engine.begin() as conn:
            return bool(conn.execute(jobs.update().where(
                jobs.c.id == row_id, jobs.c.state.in_(_WAITING), jobs.c.heartbeat_at < now() - stale)
                .values(heartbeat_at=now())).rowcount)

    def submitting_elsewhere(self, job_key: str) -> bool:
        """True while a live run is submitting this job key (its lease is renewed while it waits for the answer)."""
        fresh = now() - self.submit_lease
        return any(r.state == S.SUBMITTING and r.heartbeat_at >= fresh for r in self.rows(job_key))

    def settle_orphaned_submits(self, job_key: str) -> int:
        """`submitting` rows whose run died (lease lapsed): never sent → abandoned (nothing can have been created);
        sent → uncertain (the provider may have created the job), over the window from sending to the lapse."""
        t = now()
        with self.engine.begin() as conn:
            stale = (jobs.c.job_key == job_key, jobs.c.state == S.SUBMITTING.value,
                     jobs.c.heartbeat_at < t - self.submit_lease)
            n = 0
            for row in conn.execute(sa.select(jobs.c.id, jobs.c.sent_at, jobs.c.heartbeat_at).where(*stale)).all():
                if row.sent_at is None:   # nothing can have been created
                    n += self._move(row.id, S.ABANDONED, allowed=frozenset({S.SUBMITTING}), conn=conn,
                                    last_error="the run ended before it sent the request", finished_at=t,
                                    cost_usd=0.0)
                    continue
                n += self._move(row.id, S.UNCERTAIN, conn=conn, uncertain_since=aware(row.sent_at),
                                uncertain_until=aware(row.heartbeat_at) + self.submit_lease, error_kind="uncertain",
                                last_error="the run ended after it sent the request and before the provider answered")
        return n

    def uncertain(self, row_id: int, *, since: dt.datetime, until: dt.datetime, fingerprint: str,
                  error: str) -> None:
        """The request left and its answer was lost: the provider may have created (and will bill) the job."""
        self._move(row_id, S.UNCERTAIN, uncertain_since=since, uncertain_until=until,
                   fingerprint=fingerprint or None, error_kind="uncertain", last_error=error[:2000])

    def uncertain_rows(self, job_key: str | None = None, campaign: str | None = None) -> list[JobRow]:
        query = sa.select(jobs).where(jobs.c.state == S.UNCERTAIN.value).order_by(jobs.c.id)
        if job_key is not None:
            query = query.where(jobs.c.job_key == job_key)
        if campaign is not None:
            query = query.where(jobs.c.campaign == campaign)
        with self.engine.connect() as conn:
            return [JobRow.of(r) for r in conn.execute(query)]

    def adopt(self, row_id: int, provider_job_id: str, how: str) -> bool:
        """An uncertain job found at its provider (or named by an operator): poll it from now on, pay once.
        Compare-and-set: False when the row is no longer uncertain (another run settled it first)."""
        return self._move(row_id, S.QUEUED, allowed=frozenset({S.UNCERTAIN}), provider_job_id=provider_job_id,
                          submitted_at=now(), resolution=f"{how} at {now():%Y-%m-%d %H:%M:%S}Z", error_kind=None,
                          last_error=None)

    def release(self, row_id: int, how: str, possibly_charged: bool) -> bool:
        """An uncertain job settled as not created (the provider's listing shows none) or, by an operator's
        decision, let go; `possibly_charged` keeps its reservation counted as spent. Compare-and-set."""
        values = dict(resolution=f"{how} at {now():%Y-%m-%d %H:%M:%S}Z", finished_at=now())
        if not possibly_charged:
            values["cost_usd"] = 0.0
        return self._move(row_id, S.ABANDONED, allowed=frozenset({S.UNCERTAIN}), **values)

    def reconsider(self, row_id: int, how: str) -> bool:
        """An operator takes back an abandon: the segment may be generated again (the possible charge stays)."""
        with self.engine.begin() as conn:
            return bool(conn.execute(jobs.update().where(
                jobs.c.id == row_id, jobs.c.state == S.ABANDONED.value, jobs.c.resolution.like("operator: abandon%"))
                .values(resolution=f"{how} at {now():%Y-%m-%d %H:%M:%S}Z")).rowcount)

    def abandoned_by_operator(self, job_key: str) -> JobRow | None:
        """The newest row of a key an operator gave up (`resolve --abandon`): runs do not generate it again."""
        for row in self.rows(job_key):
            if (row.resolution or "").startswith("operator: abandon"):
                return row
            if row.state in (S.SUCCEEDED, S.STORED, S.QUEUED, S.RUNNING) or \
                    (row.resolution or "").startswith("operator: resubmit"):
                return None
        return None

    def lost_clip(self, row_id: int, why: str) -> None:
        """A stored clip that is gone and cannot be fetched again: the row stops counting as done."""
        self._move(row_id, S.LOST, last_error=why[:2000])

    def url_unusable(self, job_key: str, why: str) -> None:
        """A download from the job's output URL failed (refused host, expired, cut short): the next run asks the
        provider again instead of reusing the URL."""
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.job_key == job_key, jobs.c.state == S.SUCCEEDED.value)
                         .values(url_expires_at=now(), last_error=why[:2000]))

    def stored(self, job_key: str, *, uri: str, sha256: str) -> None:
        """Mark the job key's succeeded row as stored: the clip is kept, the provider URL is provenance."""
        with self.engine.begin() as conn:
            row_id = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.job_key == job_key, jobs.c.state.in_((S.SUCCEEDED.value, S.STORED.value)))
                .order_by(jobs.c.id.desc())
            ).scalars().first()
            if row_id is not None:
                self._move(row_id, S.STORED, conn=conn, stored_uri=uri, stored_sha256=sha256, last_error=None)

    def refreshed_url(self, row_id: int, output_url: str, url_expires_at: dt.datetime | None) -> bool:
        """A fresh URL for a paid clip that is not kept (never stored, or its stored file is gone)."""
        return self._move(row_id, S.SUCCEEDED, output_url=output_url, url_expires_at=url_expires_at)

    def competing_submits(self, row: JobRow) -> int:
        """Other requests for the same provider and model still waiting for their answer (any run, any campaign)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
                jobs.c.provider == row.provider, jobs.c.model == row.model, jobs.c.id != row.id,
                jobs.c.state == S.SUBMITTING.value, jobs.c.heartbeat_at >= now() - self.submit_lease)).scalar_one()

    def uncertain_siblings(self, row: JobRow, skew: dt.timedelta) -> int:
        """Other unsettled uncertain requests for the same provider and model whose windows overlap this one's (any
        run, any campaign): where a lookup cannot see a job's input, the job it finds may be one of theirs."""
        since = (row.uncertain_since or row.sent_at or row.created_at) - skew
        until = (row.uncertain_until or row.heartbeat_at) + skew
        with self.engine.connect() as conn:
            others = conn.execute(sa.select(jobs).where(
                jobs.c.provider == row.provider, jobs.c.model == row.model, jobs.c.id != row.id,
                jobs.c.state == S.UNCERTAIN.value)).all()
        return sum(1 for other in map(JobRow.of, others)
                   if (other.uncertain_since or other.created_at) <= until
                   and (other.uncertain_until or other.heartbeat_at) >= since)

    def known_job_ids(self, provider: str) -> frozenset[str]:
        """Every provider job id this ledger already holds for `provider` (a lookup must not adopt one twice)."""
        with self.engine.connect() as conn:
            return frozenset(conn.execute(sa.select(jobs.c.provider_job_id).where(
                jobs.c.provider == provider, jobs.c.provider_job_id.is_not(None))).scalars())

    def _update(self, row_id: int, **values) -> None:
        """A change of the row's facts that moves no state."""
        assert "state" not in values, "states move through _move"
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == row_id).values(heartbeat_at=now(), **values))

    def _move(self, row_id: int, to: LedgerState, allowed: frozenset[LedgerState] | None = None, conn=None,
              **values) -> bool:
        """The one way a row changes state: a compare-and-set from the states MOVES allows (or `allowed`, a
        narrower set). False, and nothing written, when the row is elsewhere (another run moved it first)."""
        allowed = MOVES[to] if allowed is None else allowed
        update = (jobs.update().where(jobs.c.id == row_id, jobs.c.state.in_([s.value for s in allowed]))
                  .values(state=to.value, **{"heartbeat_at": now(), **values}))
        if conn is not None:
            return bool(conn.execute(update).rowcount)
        with self.engine.begin() as own:
            return bool(own.execute(update).rowcount)

    # --- webhook events ----------------------------------------------------------------------

    def record_event(self, *, provider: str, delivery_id: str, provider_job_id: str, state: str,
                     payload: dict | None = None, body: str | None = None) -> bool:
        """Store a verified delivery; False when this delivery id was seen before (a replay). Its JSON (`body` as
        received, else `payload`) is kept whole when it fits EVENT_BODY_LIMIT characters, else not at all."""
        text = body if body is not None else json.dumps(payload) if payload is not None else ""
        try:
            with self.engine.begin() as conn:
                conn.execute(events.insert().values(provider=provider, delivery_id=delivery_id,
                                                    provider_job_id=provider_job_id, state=state,
                                                    payload=text if len(text) <= EVENT_BODY_LIMIT else "",
                                                    received_at=now()))
        except sa.exc.IntegrityError:
            return False
        return True

    def last_event_id(self) -> int:
        """The newest delivery's id (0 when there is none): where a reader of new deliveries starts."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one()

    def events_after(self, event_id: int, limit: int = 1000) -> list[tuple[int, str, str, str]]:
        """Deliveries stored after `event_id`, oldest first: (id, provider, provider job id, state)."""
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(
                sa.select(events.c.id, events.c.provider, events.c.provider_job_id, events.c.state)
                .where(events.c.id > event_id).order_by(events.c.id).limit(limit))]

    def latest_event(self, provider: str, provider_job_id: str) -> tuple[str, dict] | None:
        """The newest delivery for a job: its state and its JSON ({} when the body was not kept)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(events.c.state, events.c.payload).where(
                events.c.provider == provider, events.c.provider_job_id == provider_job_id)
                .order_by(events.c.id.desc()).limit(1)).first()
        return (row.state, _event_body(row.payload)) if row else None

    def waiting_job(self, provider: str, event_key: str, key_of=None) -> str | None:
        """The provider job id of a job in flight whose deliveries name `event_key` (`key_of(job id)` gives the
        name a provider's deliveries use, the job id itself by default); None when no job waits for it."""
        key_of = key_of or (lambda job_id: job_id)
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(jobs.c.provider_job_id).where(
                jobs.c.provider == provider, jobs.c.state.in_(IN_FLIGHT),
                jobs.c.provider_job_id.endswith(event_key, autoescape=True)).limit(100)).scalars().all()
        return next((job_id for job_id in found if key_of(job_id) == event_key), None)


def _event_body(text: str) -> dict:
    """A stored delivery's JSON object; {} when it was not kept (or was cut short by an older release)."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

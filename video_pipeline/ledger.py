"""The job ledger: the source of truth for provider jobs, so nothing is paid for twice.

One row per provider job (per attempt). The provider's job id is written the moment the provider returns it; a
rerun finds in-flight jobs and resumes polling them, and reuses a job key that already succeeded. SQLite file
by default, PostgreSQL by URL, the same code (SQLAlchemy Core). Webhook deliveries land in `job_events`.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import sqlalchemy as sa

from .db import aware, make_engine, metadata

IN_FLIGHT = ("submitting", "queued", "running")
TAKEN = -1   # try_begin: another run holds this job key
#: a job in flight whose heartbeat is older than this holds no concurrency slot (its run died)
LEASE = dt.timedelta(minutes=10)
#: no provider takes longer than this to answer a submit: an older `submitting` row's run died mid-request
SUBMIT_TIMEOUT = dt.timedelta(minutes=2)

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
    sa.UniqueConstraint("provider", "provider_job_id", name="uq_provider_job"),
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
    state: str
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

    @classmethod
    def of(cls, row) -> "JobRow":
        d = dict(row._mapping)
        for k in ("created_at", "submitted_at", "heartbeat_at", "finished_at", "url_expires_at"):
            d[k] = aware(d[k])
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

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # --- reads -------------------------------------------------------------------------------

    def rows(self, job_key: str) -> list[JobRow]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(jobs).where(jobs.c.job_key == job_key).order_by(jobs.c.id.desc()))
            return [JobRow.of(r) for r in result]

    def reusable(self, job_key: str, margin: dt.timedelta = dt.timedelta(minutes=5)) -> JobRow | None:
        """A finished job for this key that can be reused: stored (and still there), or succeeded with a live URL."""
        for row in self.rows(job_key):
            if row.state == "stored" and (row.stored_file() is not None or row.kept_remotely):
                return row
            if row.state in ("succeeded", "stored") and row.output_url and (
                    row.url_expires_at is None or row.url_expires_at > now() + margin):
                return row
        return None

    def succeeded_unstored(self, job_key: str) -> JobRow | None:
        """A paid-for job whose output was never stored (its URL may have expired): refresh it, never repay."""
        for row in self.rows(job_key):
            if row.state == "succeeded" and row.provider_job_id:
                return row
        return None

    def in_flight(self, job_key: str) -> JobRow | None:
        """A submitted job for this key still waiting on its provider: resume polling it, never resubmit."""
        for row in self.rows(job_key):
            if row.state in ("queued", "running") and row.provider_job_id:
                return row
        return None

    def campaign_rows(self, campaign: str) -> list[JobRow]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(jobs).where(jobs.c.campaign == campaign).order_by(jobs.c.id))
            return [JobRow.of(r) for r in result]

    def unstored_expiring(self, within: dt.timedelta) -> list[JobRow]:
        """Succeeded jobs not yet stored whose output URL expires within `within` (or has no known expiry)."""
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(jobs).where(jobs.c.state == "succeeded").order_by(jobs.c.url_expires_at))
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

    def try_begin(self, *, job_key: str, campaign: str, video_id: str, segment_index: int, model: str,
                  provider: str, attempt: int, limit: int) -> int | None:
        """Take one of `limit` slots for `model` across every run sharing this ledger: insert a `submitting`
        row and return its id; None when the model's account concurrency is in use; TAKEN when another run has
        this job key in flight or done (checked in the same transaction, so two runs never both submit it)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(model.encode())})
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(job_key.encode())})
            busy = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
                jobs.c.job_key == job_key,
                sa.or_(sa.and_(jobs.c.state.in_(IN_FLIGHT), jobs.c.heartbeat_at >= now() - LEASE),
                       jobs.c.state.in_(("succeeded", "stored"))))).scalar_one()
            if busy:
                return TAKEN
            if self._count_in_flight(conn, model) >= limit:
                return None
            t = now()
            return conn.execute(jobs.insert().values(
                job_key=job_key, campaign=campaign, video_id=video_id, segment_index=segment_index, model=model,
                provider=provider, state="submitting", attempt=attempt, created_at=t, heartbeat_at=t,
            )).inserted_primary_key[0]

    def submitted(self, row_id: int, provider_job_id: str) -> None:
        """Written the moment the provider returns its job id, before anything else happens."""
        self._update(row_id, provider_job_id=provider_job_id, state="queued", submitted_at=now())

    def heartbeat(self, row_id: int, state: str) -> None:
        self._update(row_id, state=state)

    def succeeded(self, row_id: int, *, output_url: str, url_expires_at: dt.datetime | None,
                  latency_seconds: float, cost_usd: float) -> None:
        self._update(row_id, state="succeeded", output_url=output_url, url_expires_at=url_expires_at,
                     latency_seconds=latency_seconds, cost_usd=cost_usd, finished_at=now(), last_error=None,
                     error_kind=None)

    def failed(self, row_id: int, *, error: str, kind: str, state: str = "failed") -> None:
        self._update(row_id, state=state, last_error=error[:2000], error_kind=kind, finished_at=now())

    def submitting_elsewhere(self, job_key: str) -> bool:
        """True while another run is submitting this job key (its row is younger than SUBMIT_TIMEOUT)."""
        fresh = now() - SUBMIT_TIMEOUT
        return any(r.state == "submitting" and r.heartbeat_at >= fresh for r in self.rows(job_key))

    def abandon_unsubmitted(self, job_key: str) -> int:
        """`submitting` rows older than SUBMIT_TIMEOUT (the run died mid-request) are marked abandoned."""
        with self.engine.begin() as conn:
            return conn.execute(jobs.update().where(
                jobs.c.job_key == job_key, jobs.c.state == "submitting", jobs.c.heartbeat_at < now() - SUBMIT_TIMEOUT)
                .values(state="abandoned", last_error="run ended before the provider answered",
                        finished_at=now())).rowcount

    def stored(self, job_key: str, *, uri: str, sha256: str) -> None:
        """Mark the job key's succeeded row as stored: the clip is kept, the provider URL is provenance."""
        with self.engine.begin() as conn:
            row_id = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.job_key == job_key, jobs.c.state.in_(("succeeded", "stored"))).order_by(jobs.c.id.desc())
            ).scalars().first()
            if row_id is not None:
                conn.execute(jobs.update().where(jobs.c.id == row_id).values(
                    state="stored", stored_uri=uri, stored_sha256=sha256, heartbeat_at=now()))

    def refreshed_url(self, row_id: int, output_url: str, url_expires_at: dt.datetime | None) -> None:
        self._update(row_id, output_url=output_url, url_expires_at=url_expires_at)

    def _update(self, row_id: int, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == row_id).values(heartbeat_at=now(), **values))

    # --- webhook events ----------------------------------------------------------------------

    def record_event(self, *, provider: str, delivery_id: str, provider_job_id: str, state: str,
                     payload: dict) -> bool:
        """Store a verified delivery; False when this delivery id was seen before (a replay)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(events.insert().values(provider=provider, delivery_id=delivery_id,
                                                    provider_job_id=provider_job_id, state=state,
                                                    payload=json.dumps(payload)[:100_000], received_at=now()))
        except sa.exc.IntegrityError:
            return False
        return True

    def latest_event(self, provider: str, provider_job_id: str) -> tuple[str, dict] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(events.c.state, events.c.payload).where(
                events.c.provider == provider, events.c.provider_job_id == provider_job_id)
                .order_by(events.c.id.desc()).limit(1)).first()
        return (row.state, json.loads(row.payload)) if row else None

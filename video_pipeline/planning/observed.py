"""What the pipeline has observed of each model: latency and failures of finished provider jobs.

The engine records one row per finished attempt; the router blends these with the catalog's priors.
SQLite file by default, any SQLAlchemy URL (PostgreSQL) by configuration.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

import sqlalchemy as sa

from video_pipeline.planning.catalog import Latency, ModelSpec
from video_pipeline.db import aware, make_engine, metadata, migrate

observations = sa.Table(
    "model_observations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False, index=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("latency_seconds", sa.Float, nullable=True),   # provider seconds (local waits are scaled back)
    sa.Column("succeeded", sa.Boolean, nullable=False),
    sa.Column("error_kind", sa.String(16), nullable=True),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

#: samples needed before observed p95 replaces the prior for interactive viability
MIN_SAMPLES_FOR_P95 = 20
#: weight of the catalog prior, in samples, when blending
PRIOR_WEIGHT = 10
COOLDOWN_WINDOW = dt.timedelta(minutes=15)
COOLDOWN_FAILURES = 3        # this many failures among the last COOLDOWN_LOOKBACK attempts in the window
COOLDOWN_LOOKBACK = 5


@dataclass(frozen=True)
class ModelObservation:
    model: str
    samples: int                 # succeeded jobs with a latency
    p50_seconds: float | None
    p95_seconds: float | None
    attempts: int
    failure_rate: float
    cooling_down: bool

    def latency(self, spec: ModelSpec) -> Latency:
        """The catalog prior blended with what was observed (weighted by sample count)."""
        if not self.samples or self.p50_seconds is None:
            return spec.latency
        w = self.samples / (self.samples + PRIOR_WEIGHT)
        p50 = (1 - w) * spec.latency.p50_seconds + w * self.p50_seconds
        p95 = (1 - w) * spec.latency.p95_seconds + w * (self.p95_seconds or self.p50_seconds)
        if self.samples >= MIN_SAMPLES_FOR_P95:
            p95 = self.p95_seconds or p95
        return Latency(p50_seconds=round(p50, 3), p95_seconds=round(max(p95, p50), 3))


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class ObservationLog:
    """Appends job observations and summarises them per model."""

    def __init__(self, url_or_engine: "str | sa.Engine"):
        self._owns_engine = isinstance(url_or_engine, str)
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        migrate(self.engine)

    def record(self, model: str, provider: str, latency_seconds: float | None, succeeded: bool,
               error_kind: str | None = None, at: dt.datetime | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(observations.insert().values(
                model=model, provider=provider, latency_seconds=latency_seconds, succeeded=succeeded,
                error_kind=error_kind, observed_at=at or dt.datetime.now(dt.timezone.utc)))

    def summary(self, now: dt.datetime | None = None, window: int = 500) -> dict[str, ModelObservation]:
        """Per model: p50/p95 of the last `window` successes, failure rate, and whether it is cooling down."""
        now = now or dt.datetime.now(dt.timezone.utc)
        out: dict[str, ModelObservation] = {}
        with self.engine.connect() as conn:
            models = [r[0] for r in conn.execute(sa.select(observations.c.model).distinct())]
            for model in models:
                rows = conn.execute(
                    sa.select(observations.c.latency_seconds, observations.c.succeeded, observations.c.observed_at)
                    .where(observations.c.model == model).order_by(observations.c.id.desc()).limit(window)
                ).all()
                latencies = sorted(r.latency_seconds for r in rows if r.succeeded and r.latency_seconds is not None)
                recent = [r for r in rows[:COOLDOWN_LOOKBACK] if aware(r.observed_at) >= now - COOLDOWN_WINDOW]
                failures = sum(1 for r in rows if not r.succeeded)
                out[model] = ModelObservation(
                    model=model, samples=len(latencies),
                    p50_seconds=statistics.median(latencies) if latencies else None,
                    p95_seconds=_percentile(latencies, 95) if latencies else None,
                    attempts=len(rows), failure_rate=round(failures / len(rows), 4) if rows else 0.0,
                    cooling_down=sum(1 for r in recent if not r.succeeded) >= COOLDOWN_FAILURES,
                )
        return out

    def dispose(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

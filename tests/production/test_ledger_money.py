"""The ledger's money promises on PostgreSQL, as production runs it: budgets reserved under concurrent writers,
uncertain jobs settled once, and a ledger made by the previous release brought up to the new columns."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
import sqlalchemy as sa

from tests.production.conftest import pg_url
from tests.test_money import race_for_a_budget
from video_pipeline.errors import BudgetExceeded
from video_pipeline.jobs.ledger import JobLedger

pytestmark = pytest.mark.production


def _ledger(pg_database) -> JobLedger:
    return JobLedger(pg_url(pg_database))


def test_concurrent_submits_on_postgresql_never_reserve_past_the_budget(pg_database):
    outcomes, reserved = race_for_a_budget(pg_url(pg_database), f"race-{uuid.uuid4().hex[:8]}")
    assert len(outcomes) == 10 and sum(isinstance(o, BudgetExceeded) for o in outcomes) == 7
    assert reserved == pytest.approx(1.80)


def test_an_uncertain_job_is_adopted_once_when_two_runs_settle_it_at_the_same_time(pg_database):
    key = f"k-{uuid.uuid4().hex}"
    ledger = _ledger(pg_database)
    try:
        row_id = ledger.try_begin(job_key=key, campaign="settle", video_id="v", segment_index=0, model="kling-3-0",
                                  provider="kling", attempt=1, limit=10, reserve_usd=0.42)
        ledger.sending(row_id)
        now = dt.datetime.now(dt.timezone.utc)
        ledger.uncertain(row_id, since=now, until=now, fingerprint="0" * 64, error="no answer")
    finally:
        ledger.dispose()
    wins: list[bool] = []
    barrier = threading.Barrier(2)

    def settle(how: str) -> None:
        other = _ledger(pg_database)
        try:
            barrier.wait()
            wins.append(other.adopt(row_id, f"text2video:{key}", how))
        finally:
            other.dispose()

    threads = [threading.Thread(target=settle, args=(f"run {i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(wins) == [False, True]                     # compare-and-set: one run adopts, the other sees it


def test_a_ledger_made_by_the_previous_release_gains_the_money_columns(pg_database):
    """The previous release's provider_jobs table (no cost reservations, no uncertainty columns) is brought up to
    this schema when a process opens it, keeping its rows."""
    schema = f"old_{uuid.uuid4().hex[:8]}"
    url = pg_url(pg_database)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        conn.execute(sa.text(
            f"CREATE TABLE {schema}.provider_jobs (id SERIAL PRIMARY KEY, job_key VARCHAR(64) NOT NULL, "
            "campaign VARCHAR(64) NOT NULL, video_id VARCHAR(64) NOT NULL, segment_index INTEGER NOT NULL, "
            "model VARCHAR(64) NOT NULL, provider VARCHAR(64) NOT NULL, provider_job_id VARCHAR(512), "
            "state VARCHAR(16) NOT NULL, attempt INTEGER NOT NULL, error_kind VARCHAR(16), last_error TEXT, "
            "created_at TIMESTAMPTZ NOT NULL, submitted_at TIMESTAMPTZ, heartbeat_at TIMESTAMPTZ NOT NULL, "
            "finished_at TIMESTAMPTZ, latency_seconds FLOAT, cost_usd FLOAT, output_url TEXT, "
            "url_expires_at TIMESTAMPTZ, stored_uri TEXT, stored_sha256 VARCHAR(64))"))
        conn.execute(sa.text(
            f"INSERT INTO {schema}.provider_jobs (job_key, campaign, video_id, segment_index, model, provider, "
            "provider_job_id, state, attempt, created_at, heartbeat_at, cost_usd) VALUES ('k', 'old', 'v', 0, "
            "'veo-3-1-fast', 'gemini', 'op-1', 'stored', 1, now(), now(), 0.8)"))
    engine.dispose()
    ledger = JobLedger(url + f"?options=-csearch_path%3D{schema}")
    try:
        [row] = ledger.campaign_rows("old")
        assert (row.state, row.cost_usd, row.reserved_usd, row.sent_at) == ("stored", 0.8, None, None)
        assert row.committed_usd == 0.8
    finally:
        ledger.dispose()
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()

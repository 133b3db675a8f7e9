"""Past one machine: a run's steps execute on a separate `celery worker` process (dagster-celery's worker app)
listening on Redis, and the run's events in PostgreSQL name that worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from assets.jobs import STAGES
from tests.conftest import assert_video, write
from tests.production.conftest import pg_rows, redis_url
from video_pipeline.config import PROJECT_ROOT, Settings
from video_pipeline.flow.intake import accept

pytestmark = [pytest.mark.production, pytest.mark.slow]

CAMPAIGN = """version: 1
campaign: night-market
budget_usd: 5
defaults: {quality_tier: social, aspect_ratio: "16:9", resolution: 720p}
videos:
  - id: stalls
    target_seconds: 4
    shots:
      - prompt: "Lanterns sway above the night market stalls"
"""


@pytest.fixture
def celery_worker(production_env):
    # two databases of the session's private Redis, emptied first: no task an earlier test left reaches this worker
    broker, backend = redis_url(14), redis_url(15)
    for url in (broker, backend):
        redis.Redis.from_url(url).flushdb()
    name = f"vp-test-{uuid.uuid4().hex[:8]}"
    env = {**production_env, "VIDEO_PIPELINE_CELERY_BROKER": broker, "VIDEO_PIPELINE_CELERY_BACKEND": backend,
           "PYTHONPATH": str(PROJECT_ROOT)}
    bin_dir = Path(sys.executable).parent
    proc = subprocess.Popen(
        [str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-n", name,
         "-y", str(PROJECT_ROOT / "deploy" / "production" / "celery.yaml"), "--", "--concurrency=1"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from celery import Celery

        app = Celery(broker=broker, backend=backend)
        deadline = time.monotonic() + 60
        while not (app.control.ping(timeout=1) or []):
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the celery worker did not answer a ping within 60 s"
        yield name, env, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)   # the worker's own process group: dagster-celery and its celery child
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_campaigns_steps_execute_on_a_celery_worker_process(celery_worker, data_dir, pg_database):
    name, env, _ = celery_worker
    spec = write(data_dir / "night-market.yaml", CAMPAIGN)
    settings = Settings.from_env()
    accepted = accept(spec, settings, move=False)
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:   # the production instance: PostgreSQL
        instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])

    run = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "definitions", "-j", "campaign_job",
         "--tags", '{"dagster/partition": "night-market"}'],
        cwd=PROJECT_ROOT, env={**env, "VIDEO_PIPELINE_EXECUTOR": "celery"}, capture_output=True, text=True,
        timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    runs = pg_rows(pg_database, "SELECT run_id, status FROM runs ORDER BY create_timestamp DESC LIMIT 1")
    assert runs[0]["status"] == "SUCCESS"
    handed = pg_rows(pg_database, "SELECT step_key, event FROM event_logs WHERE run_id = :r AND "
                                  "event LIKE '%in celery worker%'", r=runs[0]["run_id"])
    # every asset step (and the steps of checks that run apart, as content_credentials_valid does) was executed by
    # the worker started above (its node name is in the engine event)
    assert set(STAGES) <= {r["step_key"] for r in handed}
    assert all(f"{name}@" in r["event"] for r in handed)
    outputs = pg_rows(pg_database, "SELECT stored_uri FROM provider_jobs WHERE campaign = 'night-market'")
    assert len(outputs) == 1 and outputs[0]["stored_uri"].startswith("s3://")
    assert_video(data_dir / "outputs" / "night-market" / "stalls.mp4", 4)


def test_video_pipeline_run_with_the_celery_executor_puts_every_step_on_the_worker(celery_worker, data_dir,
                                                                                  pg_database):
    """`video-pipeline run` executes the job on the executor the settings name, as the UI does: not in its own
    process. Each step's engine event names the worker started above; the CLI still prints its --json."""
    name, env, _ = celery_worker
    # its own campaign and prompt: the session's ledger (PostgreSQL) holds the other test's job
    spec = write(data_dir / "night-stalls.yaml", CAMPAIGN.replace("night-market", "night-stalls")
                 .replace("Lanterns sway", "Paper lanterns sway"))
    run = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--json"],
                         cwd=PROJECT_ROOT, env={**env, "VIDEO_PIPELINE_EXECUTOR": "celery"}, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    payload = json.loads(run.stdout)
    assert payload["status"] == "succeeded" and [o["video_id"] for o in payload["outputs"]] == ["stalls"]
    handed = pg_rows(pg_database, "SELECT step_key, event FROM event_logs WHERE run_id = :r AND "
                                  "event LIKE '%in celery worker%'", r=payload["run_id"])
    assert set(STAGES) <= {r["step_key"] for r in handed}
    assert all(f"{name}@" in r["event"] for r in handed)
    assert_video(data_dir / "outputs" / "night-stalls" / "stalls.mp4", 4)

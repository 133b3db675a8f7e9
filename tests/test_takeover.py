"""A run killed with its jobs in flight: a live run takes them over within seconds, not a 10-minute lease.

The killed run had every Kling slot (its limit, 4) in flight. Another campaign on Kling started after the kill
gets all its jobs submitted within a minute: it polls the dead run's jobs to their end (they are real, and paid),
keeps their clips and frees each slot as the provider says it ended. The dead campaign's rerun then pays nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from tests.conftest import write
from tests.support.services import wait_until
from video_pipeline.config import Settings
from video_pipeline.jobs.ledger import JobLedger, jobs

pytestmark = pytest.mark.slow

LIMIT = 4   # kling-3-0's concurrency in the catalog


def _campaign(name: str) -> str:
    shots = "\n".join(f"      - prompt: {name} shot {i}, a lighthouse keeper at work\n        model: kling-3-0"
                      for i in range(LIMIT))
    return f"campaign: {name}\nvideos:\n  - id: film\n    target_seconds: {5 * LIMIT}\n    shots:\n{shots}\n"


def _rows(settings: Settings, campaign: str) -> list:
    engine = sa.create_engine(settings.ledger_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(jobs).where(jobs.c.campaign == campaign)).all()
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def test_a_killed_runs_jobs_are_taken_over_and_their_slots_freed_within_a_minute(data_dir, monkeypatch):
    # Kling's 180 s median scaled to ~14 s; each step in the run's own process, so a kill stops its engine
    monkeypatch.setenv("VIDEO_PIPELINE_TIME_SCALE", "0.08")
    monkeypatch.setenv("VIDEO_PIPELINE_EXECUTOR", "in_process")
    settings = Settings.from_env()
    JobLedger(settings.ledger_url).dispose()
    victim_spec = write(data_dir / "victim.yaml", _campaign("victim"))
    other_spec = write(data_dir / "other.yaml", _campaign("other"))

    def run(spec):
        return subprocess.Popen([sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(), text=True)

    victim = run(victim_spec)
    wait_until(lambda: len(rows := _rows(settings, "victim")) == LIMIT and all(
        r.state in ("queued", "running") and r.provider_job_id for r in rows), 180, "the victim's jobs in flight")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    killed_at = time.monotonic()

    other = run(other_spec)
    wait_until(lambda: sum(bool(r.provider_job_id) for r in _rows(settings, "other")) == LIMIT, 120,
               "the other campaign's jobs submitted")
    submitted_after = time.monotonic() - killed_at
    assert submitted_after <= 60, f"the other campaign waited {submitted_after:.0f}s for the dead run's slots"

    # the dead run's clips are kept by the run that took its jobs over, before anyone reruns it
    wait_until(lambda: all(r.state == "stored" for r in _rows(settings, "victim")), 120, "the victim's clips kept")
    ledger = JobLedger(settings.ledger_url)
    try:
        kept = [ledger.row(r.id) for r in _rows(settings, "victim")]
    finally:
        ledger.dispose()
    assert all(row.stored_file() is not None for row in kept)
    out, err = other.communicate(timeout=300)
    assert other.returncode == 0, err[-2000:]

    rerun = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run", str(victim_spec), "--json"],
                           capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    payload = json.loads(rerun.stdout)
    assert payload["outputs"][0]["state"] == "assembled"
    submissions = (settings.work_dir / "local-provider" / "submissions.jsonl").read_text().splitlines()
    assert len(submissions) == 2 * LIMIT          # every job paid once: the rerun reused the kept clips

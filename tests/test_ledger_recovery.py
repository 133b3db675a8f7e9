"""The ledger keeps every promise to the person paying: no job paid twice, nothing lost, limits held across runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import assert_video, write
from tests.support.pipeline import GENERATION, run_campaign_job
from tests.test_engine import scripted_run
from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.planning.planner import plan_campaign
from video_pipeline.jobs.engine import JobEngine, run_segments
from video_pipeline.jobs.ledger import JobLedger, jobs
from video_pipeline.providers.base import ProviderRegistry
from video_pipeline.providers.local import LocalProvider

pytestmark = pytest.mark.slow

RUN_DATE = dt.date(2026, 11, 24)

FOUR = """
campaign: kill-test
defaults: {quality_tier: social}
videos:
  - id: four
    target_seconds: 16
    shots:
      - prompt: "Dawn over the dunes"
      - prompt: "Wind lifts the sand"
      - prompt: "A caravan crosses"
      - prompt: "Night falls on the camp"
"""


def _submissions(settings) -> list[dict]:
    path = settings.work_dir / "local-provider" / "submissions.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _ledger_states(settings) -> list[str]:
    engine = sa.create_engine(settings.ledger_url)
    try:
        with engine.connect() as conn:
            return [r.state for r in conn.execute(sa.select(jobs.c.state))]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def test_rerun_after_sigkill_resumes_polling_without_resubmitting(settings, data_dir, monkeypatch):
    monkeypatch.setenv("VIDEO_PIPELINE_TIME_SCALE", "0.15")   # veo-3-1-fast jobs take ~1-6 s: time to kill
    spec = write(data_dir / "kill.yaml", FOUR)
    cmd = [sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--json"]
    victim = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = _ledger_states(settings)
        if len(states) == 4 and all(s in ("queued", "running") for s in states):
            break
        assert victim.poll() is None, victim.stderr.read().decode()
        time.sleep(0.05)
    else:
        pytest.fail("jobs never got in flight")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert len(_submissions(settings)) == 4

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    payload = json.loads(rerun.stdout)
    subs = _submissions(settings)
    keys = [s["job_key"] for s in subs]
    assert len(keys) == 4 and len(set(keys)) == 4          # exactly one submission per job key
    assert_video(payload["outputs"][0]["output_path"], 16)
    generated = pd.read_parquet(settings.tables_dir / "generated_segments" / "kill-test.parquet")
    assert generated["resumed"].all()


def test_identical_request_in_another_campaign_is_a_cache_hit(instance, settings):
    first, one = scripted_run(instance, settings, write(settings.data_dir / "a.yaml", FOUR))
    second, two = scripted_run(instance, settings,
                               write(settings.data_dir / "b.yaml", FOUR.replace("kill-test", "other-campaign")))
    out2, clips = second.output_for_node("generated_segments"), second.output_for_node("stored_clips")
    assert len(one.submitted) == 4 and two.submitted == []
    assert out2["reused"].all() and out2["cost_usd"].sum() == 0
    assert list(clips["state"]) == ["stored"] * 4
    assert list(clips["sha256"]) == list(first.output_for_node("stored_clips")["sha256"])


def test_rematerializing_after_segment_failures_generates_only_the_failed_segments(instance, settings):
    every_model = load_catalog(settings.catalog_file).models
    # segment prompts 2 and 4 fail on every model (content policy): two of four lost the first time
    doomed = {m: [("terminal", "content policy")] * 2 for m in every_model}
    spec = write(settings.data_dir / "a.yaml", FOUR)
    first, _ = scripted_run(instance, settings, spec, doomed)
    out = first.output_for_node("generated_segments")
    # ScriptedProvider dooms by order of submission: the first two submissions of each model fail
    failed = out[out["state"] == "failed"]
    assert 1 <= len(failed) < 4
    videos = first.output_for_node("assembled_outputs")
    assert videos.iloc[0]["state"] == "failed" and "missing" in videos.iloc[0]["error"]

    second, script = scripted_run(instance, settings, spec)
    assert len(script.submitted) == len(failed)             # only the lost segments are generated again
    assert second.output_for_node("generated_segments")["state"].eq("succeeded").all()
    assert_video(second.output_for_node("assembled_outputs").iloc[0]["output_path"], 16)


def _segments(settings, catalog, name: str, text: str):
    """The planner's segments for a campaign (the engine's input in the tests of the engine alone)."""
    campaign = load_campaign(write(settings.data_dir / f"{name}.yaml", text), settings.data_dir)
    return plan_campaign(campaign, catalog, settings.data_dir, on=RUN_DATE).segments


class Account:
    """One provider account seen by several runs: how many of its jobs are in flight at once."""

    def __init__(self):
        self.live: set[str] = set()
        self.peak = 0
        self.lock = threading.Lock()


class CountingProvider(LocalProvider):
    """A local provider that reports its jobs (submit → terminal poll) to a shared account."""

    def __init__(self, account: Account, *a, **kw):
        super().__init__(*a, **kw)
        self.account = account

    async def submit(self, request):
        job_id = await super().submit(request)
        with self.account.lock:
            self.account.live.add(job_id)
            self.account.peak = max(self.account.peak, len(self.account.live))
        return job_id

    async def poll(self, job_id):
        status = await super().poll(job_id)
        if status.state.terminal:
            with self.account.lock:
                self.account.live.discard(job_id)
        return status


def test_account_concurrency_holds_across_concurrent_runs(settings):
    catalog = load_catalog(settings.catalog_file)
    plans = []
    for name in ("run-a", "run-b"):
        shots = "\n".join(f'      - {{prompt: "Clip {i} of {name}", model: wan-2-6}}' for i in range(5))
        plans.append(_segments(settings, catalog, name, f"campaign: {name}\nvideos:\n  - id: v\n    shots:\n{shots}\n"))
    account = Account()
    results = []

    def run(segments):
        provider = CountingProvider(account, catalog, settings.work_dir, time_scale=0.004, preset="ultrafast")
        registry = ProviderRegistry(catalog, {}, local=provider)
        ledger = JobLedger(settings.ledger_url)
        engine = JobEngine(catalog, registry, settings.data_dir, settings.work_dir, ledger=ledger)
        try:
            results.append(run_segments(engine, segments))
        finally:
            ledger.dispose()

    # two runs, each with its own event loop, sharing one ledger: wan-2-6's account allows 2 jobs at once
    threads = [threading.Thread(target=run, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert [len(r) for r in results] == [5, 5]
    assert all(o.state == "succeeded" for r in results for o in r)
    assert catalog.get("wan-2-6").concurrency == 2
    assert account.peak == 2


def test_concurrent_runs_of_the_same_request_share_one_job(settings):
    catalog = load_catalog(settings.catalog_file)
    same = 'videos:\n  - id: v\n    shots: [{prompt: "The same clip", model: wan-2-6}]\n'
    plans = [_segments(settings, catalog, name, f"campaign: {name}\n{same}") for name in ("twin-a", "twin-b")]
    results = []

    def run(segments):
        registry = ProviderRegistry(catalog, {}, local=LocalProvider(catalog, settings.work_dir, time_scale=0.01,
                                                                     preset="ultrafast"))
        ledger = JobLedger(settings.ledger_url)
        try:
            results.append(run_segments(JobEngine(catalog, registry, settings.data_dir, settings.work_dir,
                                                  ledger=ledger), segments))
        finally:
            ledger.dispose()

    threads = [threading.Thread(target=run, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r[0].state == "succeeded" for r in results)
    assert len(_submissions(settings)) == 1


def test_expired_url_of_a_paid_job_is_refreshed_not_paid_again(instance, settings, data_dir):
    spec = write(data_dir / "one.yaml", FOUR.replace("kill-test", "refresh"))
    frame = run_campaign_job(instance, settings, spec, through=GENERATION).output_for_node("routed_job_plans")
    # paid, but never stored: that run stopped after generation
    ledger = JobLedger(settings.ledger_url)
    try:
        with ledger.engine.begin() as conn:                  # every URL has expired since
            conn.execute(jobs.update().values(url_expires_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
        assert ledger.reusable(frame["job_key"][0]) is None
    finally:
        ledger.dispose()
    rerun = run_campaign_job(instance, settings, spec)
    out = rerun.output_for_node("generated_segments")
    assert out["reused"].all() and out["cost_usd"].sum() == 0
    assert len(_submissions(settings)) == 4                 # nothing submitted a second time
    assert list(rerun.output_for_node("stored_clips")["state"]) == ["stored"] * 4


def test_expiring_outputs_sensor_reruns_the_campaign_to_store_them(instance, settings, data_dir):
    from dagster import build_sensor_context

    from assets.sensors import expiring_outputs_sensor
    from resources import PipelineConfig

    spec = write(data_dir / "one.yaml", FOUR.replace("kill-test", "expiring"))
    run_campaign_job(instance, settings, spec, through=GENERATION)      # paid, not stored yet
    ledger = JobLedger(settings.ledger_url)
    try:
        with ledger.engine.begin() as conn:
            conn.execute(jobs.update().values(url_expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)))
    finally:
        ledger.dispose()
    result = expiring_outputs_sensor(build_sensor_context(instance=instance, resources={"pipeline": PipelineConfig()}))
    assert [r.partition_key for r in result.run_requests] == ["expiring"]

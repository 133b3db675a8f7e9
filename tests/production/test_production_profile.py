"""The production profile end to end, switched on by configuration alone: the same `video-pipeline run` leaves
its run and events in PostgreSQL, its clips and finished video in the S3 bucket, its jobs in the ledger tables."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance

from tests.conftest import assert_video, write
from tests.production.conftest import AWS_ENV, pg_rows
from video_pipeline.tables import TABLES

pytestmark = [pytest.mark.production, pytest.mark.slow]

AWS_SECRET = AWS_ENV["AWS_SECRET_ACCESS_KEY"]

CAMPAIGN = """version: 1
campaign: harbour-spot
budget_usd: 5
defaults: {quality_tier: social, aspect_ratio: "16:9", resolution: 720p}
videos:
  - id: harbour
    target_seconds: 8
    shots:
      - prompt: "Fishing boats leave the harbour at dawn (harbour-spot)"
      - prompt: "Gulls circle over the nets (harbour-spot)"
"""


def object_sha256(s3, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def test_a_campaign_in_the_production_profile_leaves_runs_in_postgres_clips_in_s3_and_jobs_in_the_ledger(
        production_env, data_dir, pg_database, s3_client, bucket, tmp_path):
    spec = write(data_dir / "harbour-spot.yaml", CAMPAIGN)
    proc = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--json"],
                          capture_output=True, text=True, env=production_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    payload = json.loads(proc.stdout)
    assert payload["status"] == "succeeded", payload

    # Dagster's run and its events are in PostgreSQL (the instance DAGSTER_HOME's dagster.yaml points at)
    runs = pg_rows(pg_database, "SELECT status FROM runs WHERE run_id = :r", r=payload["run_id"])
    assert runs == [{"status": "SUCCESS"}]
    steps = pg_rows(pg_database, "SELECT DISTINCT step_key FROM event_logs WHERE run_id = :r AND "
                                 "dagster_event_type = 'STEP_SUCCESS'", r=payload["run_id"])
    assert {r["step_key"] for r in steps} >= {"generated_segments", "stored_clips", "assembled_outputs"}
    leaked = pg_rows(pg_database, "SELECT count(*) AS n FROM event_logs WHERE event LIKE :s", s=f"%{AWS_SECRET}%")
    assert leaked == [{"n": 0}]

    # the ledger's jobs are on the same database, each stored under its S3 URI
    jobs = pg_rows(pg_database, "SELECT state, stored_uri, stored_sha256 FROM provider_jobs WHERE campaign = 'harbour-spot'")
    assert len(jobs) == 2 and all(j["state"] == "stored" for j in jobs)

    # the bucket holds each clip under its content hash (checked by reading it back) and the finished outputs
    listed = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    clip_keys = {k for k in listed if k.startswith("studio/clips/sha256/")}
    assert clip_keys == {f"studio/clips/sha256/{j['stored_sha256'][:2]}/{j['stored_sha256']}.mp4" for j in jobs}
    assert {j["stored_uri"] for j in jobs} == {f"s3://{bucket}/{k}" for k in clip_keys}
    for key in clip_keys:
        assert object_sha256(s3_client, bucket, key) == Path(key).stem
    assert "studio/outputs/harbour-spot/harbour.mp4" in listed
    # the stage tables and the campaign snapshot live beside them in the bucket, not on this machine's disk
    assert {f"studio/tables/{name}/harbour-spot.parquet" for name in TABLES} <= listed
    assert "studio/tables/campaign/harbour-spot.json" in listed
    assert not (data_dir / "tables").exists()
    plans = pq.read_table(io.BytesIO(s3_client.get_object(
        Bucket=bucket, Key="studio/tables/routed_job_plans/harbour-spot.parquet")["Body"].read()))
    assert plans.schema.equals(TABLES["routed_job_plans"].schema) and plans.num_rows == 2
    assert "studio/outputs/harbour-spot/harbour.poster.png" in listed
    local = Path(payload["outputs"][0]["output_path"])
    assert object_sha256(s3_client, bucket, "studio/outputs/harbour-spot/harbour.mp4") == \
        hashlib.sha256(local.read_bytes()).hexdigest()
    fetched = tmp_path / "from-bucket.mp4"
    s3_client.download_file(bucket, "studio/outputs/harbour-spot/harbour.mp4", str(fetched))
    assert_video(fetched, 8)

    # the materialization links the finished video by a presigned URL that a plain HTTP client can fetch
    with DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(AssetKey("assembled_outputs"))
    link = event.asset_materialization.metadata["link/harbour"].value
    assert "X-Amz-Signature=" in link and AWS_SECRET not in link
    response = httpx.get(link, timeout=30)
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == \
        hashlib.sha256(local.read_bytes()).hexdigest()


def test_a_rerun_on_a_machine_without_the_clips_takes_them_from_the_bucket_and_pays_nothing(
        production_env, data_dir, pg_database):
    # its own campaign and prompts: the session's database is shared, and another test's jobs are in another bucket
    spec = write(data_dir / "harbour-rerun.yaml", CAMPAIGN.replace("harbour-spot", "harbour-rerun"))
    command = [sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--json"]
    first = subprocess.run(command, capture_output=True, text=True, env=production_env, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    # another machine: no provider output files, no clip cache, no finished video; only the bucket and the ledger
    for gone in ("work", "clip-cache", "outputs"):
        shutil.rmtree(data_dir / gone)

    second = subprocess.run(command, capture_output=True, text=True, env=production_env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:] + second.stdout[-2000:]
    assert json.loads(second.stdout)["status"] == "succeeded"
    jobs = pg_rows(pg_database, "SELECT count(*) AS n FROM provider_jobs WHERE campaign = 'harbour-rerun'")
    assert jobs == [{"n": 2}]   # no job submitted again
    assert len(list((data_dir / "clip-cache").rglob("*.mp4"))) == 2   # fetched back from the bucket
    assert_video(data_dir / "outputs" / "harbour-rerun" / "harbour.mp4", 8)


def test_run_submit_puts_the_run_in_the_run_queue_with_its_provider_tags(production_env, data_dir, pg_database):
    """With production's QueuedRunCoordinator, `run --submit` leaves the run QUEUED in PostgreSQL for the daemon,
    tagged so the queue's per-provider limits hold it; nothing ran and nothing was spent."""
    spec = write(data_dir / "harbour-queue.yaml", CAMPAIGN.replace("harbour-spot", "harbour-queue"))
    proc = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run", str(spec), "--submit", "--json"],
                          capture_output=True, text=True, env=production_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    payload = json.loads(proc.stdout)
    assert payload["status"] == "submitted" and payload["run_status"] == "queued", payload
    assert pg_rows(pg_database, "SELECT status FROM runs WHERE run_id = :r", r=payload["run_id"]) == [
        {"status": "QUEUED"}]
    tags = {r["key"]: r["value"] for r in pg_rows(pg_database, "SELECT key, value FROM run_tags WHERE run_id = :r",
                                                  r=payload["run_id"])}
    assert tags["dagster/partition"] == "harbour-queue" and tags["provider/gemini"] == "true"
    assert pg_rows(pg_database, "SELECT count(*) AS n FROM provider_jobs WHERE campaign = 'harbour-queue'") == [
        {"n": 0}]

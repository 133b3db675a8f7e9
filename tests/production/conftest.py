"""The production profile's real parts on loopback: a fresh PostgreSQL database per session, moto's S3 server,
Redis for Celery. Each is started if it is not running; nothing depends on what an earlier session left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

from video_pipeline.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from production_stack import answers, fresh_database, free_port  # noqa: E402  (the benches start the same stack)

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def wait_for(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not answers(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} does not answer on 127.0.0.1:{port}")
        time.sleep(0.2)


def ensure_redis() -> None:
    if not answers(6379):
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                        "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
                        "--logfile", "/var/log/redis/ci.log"], check=True)
        wait_for(6379, 15, "Redis")


def pg_url(db: str) -> str:
    return f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


@pytest.fixture(scope="session")
def pg_database():
    """A uniquely named database, dropped (connections and all) when the session ends."""
    with fresh_database("vp_test") as name:
        yield name


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server as its own process on a loopback port: a real HTTP S3 endpoint."""
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(port, 20, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


AWS_ENV = {"AWS_ACCESS_KEY_ID": "test-key-id", "AWS_SECRET_ACCESS_KEY": "test-secret-never-logged", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_client(s3_endpoint, monkeypatch):
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client) -> str:
    name = f"vp-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def production_env(data_dir, tmp_path, pg_database, s3_endpoint, bucket, monkeypatch) -> dict[str, str]:
    """The production profile as an operator sets it: DAGSTER_HOME holding the committed dagster.yaml, the
    PostgreSQL variables, the ledger on the same database, clips in the bucket. Returned as a full environment."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": PG["host"], "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_USER": PG["user"], "DAGSTER_PG_PASSWORD": "unused-trust-auth", "DAGSTER_PG_DB": pg_database,
        "VIDEO_PIPELINE_PROFILE": "production", "VIDEO_PIPELINE_LEDGER_URL": pg_url(pg_database),
        "VIDEO_PIPELINE_S3_BUCKET": bucket, "VIDEO_PIPELINE_S3_ENDPOINT_URL": s3_endpoint,
        "VIDEO_PIPELINE_S3_PREFIX": "studio", **AWS_ENV,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


def pg_rows(db: str, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(pg_url(db))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()

"""The production profile's real parts on loopback: a fresh PostgreSQL database per session, moto's S3 server,
Redis for Celery, each a private instance of the test process on a free port (never the machine's own services);
nothing depends on what an earlier session left.
The services themselves come from tests/support/services.py, which the benches use too."""

from __future__ import annotations

import os

import pytest

from tests.support.services import (  # noqa: F401  (pg_rows, pg_url, redis_url: imported by the tests here)
    AWS_ENV,
    fresh_database,
    moto_s3,
    new_bucket,
    pg_rows,
    pg_url,
    production_environment,
    production_home,
    redis_url,
    s3_client as make_s3_client,
)


@pytest.fixture(scope="session")
def pg_database():
    """A uniquely named database, dropped (connections and all) when the session ends."""
    with fresh_database("vp_test") as name:
        yield name


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server as its own process on a loopback port: a real HTTP S3 endpoint."""
    with moto_s3() as url:
        yield url


@pytest.fixture
def s3_client(s3_endpoint, monkeypatch):
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    return make_s3_client(s3_endpoint)


@pytest.fixture
def bucket(s3_client) -> str:
    return new_bucket(s3_client)


@pytest.fixture
def production_env(data_dir, tmp_path, pg_database, s3_endpoint, bucket, monkeypatch) -> dict[str, str]:
    """The production profile as an operator sets it: DAGSTER_HOME holding the committed dagster.yaml, the
    PostgreSQL variables, the ledger on the same database, clips in the bucket. Returned as a full environment."""
    home = production_home(tmp_path / "dagster_home")
    env = {**production_environment(home, pg_database, s3_endpoint, bucket), "VIDEO_PIPELINE_S3_PREFIX": "studio"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}

"""The production profile on this machine for the benches: a fresh PostgreSQL database, moto's S3 server, the fake
provider fleet, dagster-webserver + dagster-daemon on the committed deploy/production/dagster.yaml.

Used by bench/load_bench.py and bench/capacity_sim.py; everything started here is stopped by its process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench-key-id", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1"}
BIN = Path(sys.executable).parent
#: the production pools and their limits on this 2-core machine (ffmpeg steps about one per core)
POOL_LIMITS = {"media": 2, "provider_jobs": 20}


def free_port(count: int = 1) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count < 65000 and all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def ensure_postgres() -> None:
    if not answers(5432):
        version = sorted(os.listdir("/etc/postgresql"))[0]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True)
        for _ in range(150):
            if answers(5432):
                return
            time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not start")


@contextmanager
def fresh_database(prefix: str = "vp_bench"):
    ensure_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT):
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def wait_until(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not come up within {seconds:.0f}s")


class ProductionStack:
    """Everything the production profile needs, on loopback, for one bench run."""

    def __init__(self, work: Path, db: str, s3_url: str, bucket: str, fakes_port: int, extra_env: dict[str, str]):
        self.work, self.db, self.s3_url, self.bucket = work, db, s3_url, bucket
        self.home = work / "dagster_home"
        self.data_dir = work / "data"
        self.env = {
            **os.environ, **AWS_ENV, **extra_env,
            "DAGSTER_HOME": str(self.home), "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432",
            "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "unused-trust-auth", "DAGSTER_PG_DB": db,
            "VIDEO_PIPELINE_PROFILE": "production",
            "VIDEO_PIPELINE_LEDGER_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
            "VIDEO_PIPELINE_S3_BUCKET": bucket, "VIDEO_PIPELINE_S3_ENDPOINT_URL": s3_url,
            "VIDEO_PIPELINE_DATA_DIR": str(self.data_dir), "VIDEO_PIPELINE_MODE": "fake",
            "VIDEO_PIPELINE_FAKES_PORT": str(fakes_port), "PYTHONPATH": str(ROOT),
        }
        self.webserver_url = ""

    def activate(self) -> None:
        """This process's environment becomes the stack's (the bench's own Dagster instance and settings)."""
        os.environ.update({k: v for k, v in self.env.items()})

    def pg(self) -> sa.Engine:
        return sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.db}")

    def s3(self):
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1",
                            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])

    def submit(self, partition: str, tags: dict[str, str]) -> str:
        """Launch campaign_job for a partition through the webserver (queued: the daemon starts it)."""
        from dagster_graphql import DagsterGraphQLClient

        host, port = self.webserver_url.removeprefix("http://").split(":")
        client = DagsterGraphQLClient(host, port_number=int(port), timeout=120)
        return client.submit_job_execution("campaign_job", tags={"dagster/partition": partition, **tags})


@contextmanager
def production_stack(extra_env: dict[str, str] | None = None, fleet_latency: float = 1.0,
                     fleet_latency_p95: float | None = None, catalog: Path | None = None,
                     keep: bool = False):
    """Start everything; yields (stack, fleet). The fleet's books count submissions and jobs in flight."""
    from video_pipeline.providers.fakes.fleet import FAKE_CREDENTIALS, start_fleet

    work = Path(tempfile.mkdtemp(prefix="vp-prod-bench-"))
    with ExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, work, True)   # runs last: after every process is stopped
        db = stack.enter_context(fresh_database())
        s3_port = free_port()
        stack.enter_context(process([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                                    work / "moto.log", dict(os.environ)))
        wait_until(lambda: answers(s3_port), 30, "moto_server")
        fakes_port = free_port(len(FAKE_CREDENTIALS))
        fleet = start_fleet(latency=fleet_latency, latency_p95=fleet_latency_p95, base_port=fakes_port,
                            work_dir=work / "fakes")
        stack.callback(fleet.stop)
        prod = ProductionStack(work, db, f"http://127.0.0.1:{s3_port}", f"vp-bench-{uuid.uuid4().hex[:8]}",
                               fakes_port, extra_env or {})
        prod.s3().create_bucket(Bucket=prod.bucket)
        prod.home.mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / "production" / "dagster.yaml", prod.home / "dagster.yaml")
        prod.data_dir.mkdir(parents=True)
        # deployment step (docs/deployment.md): set the pools' limits once, before runs race to create them
        for pool, limit in POOL_LIMITS.items():
            subprocess.run([str(BIN / "dagster"), "instance", "concurrency", "set", pool, str(limit)], env=prod.env,
                           check=True, capture_output=True)
        shutil.copy(catalog or ROOT / "data" / "catalog.yaml", prod.data_dir / "catalog.yaml")
        shutil.copytree(ROOT / "data" / "samples", prod.data_dir / "samples")
        web_port = free_port()
        stack.enter_context(process([str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                                     "-p", str(web_port)], work / "webserver.log", prod.env))
        prod.webserver_url = f"http://127.0.0.1:{web_port}"
        daemon = stack.enter_context(process([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                                             work / "daemon.log", prod.env))
        wait_until(lambda: httpx.get(f"{prod.webserver_url}/server_info", timeout=2).status_code == 200, 600,
                   "dagster-webserver")
        prod.daemon = daemon
        yield prod, fleet


def fake_model_limits(fleet, catalog_path: Path | None = None) -> dict[tuple[str, str], tuple[str, int]]:
    """(provider, provider's model id) → (catalog model, its account concurrency), for the fleet's counters."""
    from video_pipeline.catalog import load_catalog

    catalog = load_catalog(catalog_path or ROOT / "data" / "catalog.yaml")
    return {(route.provider, route.model_id): (name, spec.concurrency)
            for name, spec in catalog.models.items() for route in spec.routes}


def max_in_flight(fleet, limits) -> list[dict]:
    """Per provider model the fakes saw: the most jobs in flight at once, against the model's account limit."""
    rows = []
    for provider, book in fleet.books.items():
        for model_id, peak in sorted(book.max_in_flight.items()):
            name, limit = limits.get((provider, model_id), (None, None))
            if name is None:   # endpoints that extend the route's id (fal's image-to-video paths)
                match = [(k, v) for k, v in limits.items() if k[0] == provider and model_id.startswith(k[1])]
                name, limit = match[0][1] if match else (model_id, None)
            rows.append({"provider": provider, "model_id": model_id, "model": name, "max_in_flight": peak,
                         "limit": limit, "submissions": sum(1 for j in book.jobs.values()
                                                            if j.meta.get("model") == model_id)})
    return rows

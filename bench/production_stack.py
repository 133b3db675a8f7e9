"""The production profile on this machine for the benches: a fresh PostgreSQL database, moto's S3 server, the fake
provider fleet, dagster-webserver + dagster-daemon on the committed deploy/production/dagster.yaml.

Used by bench/load_bench.py and bench/capacity_sim.py; everything started here is stopped by its process id.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from tests.support.services import (  # noqa: E402  (the production tests start the same services)
    BIN,
    fleet_on_free_ports,
    free_port,
    fresh_database,
    moto_s3,
    pg_url,
    process,
    production_environment,
    production_home,
    s3_client,
    wait_until,
)
from video_pipeline.config import child_environment, export_environment  # noqa: E402

#: the production pools and their limits on this 2-core machine (ffmpeg steps about one per core)
POOL_LIMITS = {"media": 2, "provider_jobs": 20}


class ProductionStack:
    """Everything the production profile needs, on loopback, for one bench run."""

    def __init__(self, work: Path, db: str, s3_url: str, bucket: str, fakes_port: int, extra_env: dict[str, str]):
        self.work, self.db, self.s3_url, self.bucket = work, db, s3_url, bucket
        self.home = work / "dagster_home"
        self.data_dir = work / "data"
        self.env = child_environment({
            **extra_env, **production_environment(self.home, db, s3_url, bucket),
            "VIDEO_PIPELINE_DATA_DIR": str(self.data_dir), "VIDEO_PIPELINE_MODE": "fake",
            "VIDEO_PIPELINE_FAKES_PORT": str(fakes_port), "PYTHONPATH": str(ROOT),
        })
        self.webserver_url = ""

    def activate(self) -> None:
        """This process's environment becomes the stack's (the bench's own Dagster instance and settings)."""
        export_environment(self.env)

    def pg(self) -> sa.Engine:
        return sa.create_engine(pg_url(self.db))

    def s3(self):
        return s3_client(self.s3_url)

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
    work = Path(tempfile.mkdtemp(prefix="vp-prod-bench-"))
    with ExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, work, True)   # runs last: after every process is stopped
        db = stack.enter_context(fresh_database("vp_bench"))
        s3_url = stack.enter_context(moto_s3(work / "moto.log"))
        fleet, fakes_port = fleet_on_free_ports(latency=fleet_latency, latency_p95=fleet_latency_p95,
                                                work_dir=work / "fakes")
        stack.callback(fleet.stop)
        prod = ProductionStack(work, db, s3_url, f"vp-bench-{uuid.uuid4().hex[:8]}", fakes_port, extra_env or {})
        prod.s3().create_bucket(Bucket=prod.bucket)
        production_home(prod.home)
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
                   "dagster-webserver coming up", interval=0.3, ignore=(httpx.HTTPError, OSError))
        prod.daemon = daemon
        yield prod, fleet


def fake_model_limits(fleet, catalog_path: Path | None = None) -> dict[tuple[str, str], tuple[str, int]]:
    """(provider, provider's model id) → (catalog model, its account concurrency), for the fleet's counters."""
    from video_pipeline.planning.catalog import load_catalog

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

"""The one place tests and benches get their loopback services from: free ports, waits on conditions, PostgreSQL
(a fresh database each), moto's S3 server, Redis, the production profile's environment, and the fake provider fleet.
PostgreSQL and Redis are private instances of the test process (a temporary directory, a free port), never the
machine's services: the tests pass on a machine where none runs, and a machine whose services run is left alone.

Tests import it as `tests.support.services`; a bench (run as `python bench/x.py` from the project root) puts the
project root on `sys.path` first, as bench/production_stack.py does. Everything started here is stopped by its own
process id or object, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"

T = TypeVar("T")


# --- ports and waits ---------------------------------------------------------------------------------------------

def free_port(count: int = 1) -> int:
    """The first of `count` consecutive loopback ports that are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            base = probe.getsockname()[1]
        if base + count < 65000 and all(_free(base + i) for i in range(1, count)):
            return base
    raise RuntimeError(f"no run of {count} free loopback ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def answers(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], T], seconds: float, what: str, interval: float = 0.05,
               ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Call `check` until it returns something truthy (returned), for at most `seconds`; exceptions of the kinds in
    `ignore` count as "not yet". Raises TimeoutError naming `what` when the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value:
                return value
        except ignore:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:g}s")
        time.sleep(interval)


async def until(check: Callable[[], T], seconds: float, what: str, interval: float = 0.02) -> T:
    """`wait_until` for a coroutine: the event loop keeps running between checks."""
    import asyncio

    deadline = time.monotonic() + seconds
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:g}s")
        await asyncio.sleep(interval)
    return value


@contextmanager
def process(args: list[str], log: Path | None = None, env: dict[str, str] | None = None,
            cwd: Path = ROOT) -> Iterator[subprocess.Popen]:
    """A process in its own session for the block (output to `log`, or nowhere); stopped by its group's id."""
    out = log.open("w") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not None:
            out.close()
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


def executable(name: str) -> str:
    """A console script of this environment (beside its python), else the one on PATH."""
    return shutil.which(name, path=str(BIN)) or shutil.which(name) or name


# --- PostgreSQL ----------------------------------------------------------------------------------------------------

#: where the private PostgreSQL listens; `ensure_postgres()` fills in its port (a free one, never the system's 5432)
PG = {"host": LOOPBACK, "port": 0, "user": "postgres"}
#: what to install when a server program is missing (./scripts/test installs both as root with apt-get)
INSTALL_HINT = {"postgres": "the PostgreSQL server: sudo apt-get install postgresql (Debian/Ubuntu; "
                            "./scripts/test does it when run as root)",
                "redis-server": "Redis: sudo apt-get install redis-server (Debian/Ubuntu; "
                                "./scripts/test does it when run as root)"}
_private: dict[str, "_Private"] = {}


class MissingService(RuntimeError):
    """A server program the tests start is not installed; the message says what to install."""


def pg_url(db: str) -> str:
    return f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


def _postgres_bindir() -> Path:
    """The directory of `initdb`, `postgres` and `pg_ctl`: pg_config's, else Debian's newest
    /usr/lib/postgresql/<version>/bin, else the PATH's."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(found.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted((d for d in debian.iterdir() if d.name.isdigit()), key=lambda d: int(d.name), reverse=True)
        candidates += [d / "bin" for d in versions]
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "postgres", "pg_ctl")):
            return bindir
    raise MissingService(f"the production tests need {INSTALL_HINT['postgres']}")


class _Private:
    """A server of this test process, in a temporary directory on a free loopback port: started on first use,
    stopped (by its own process id) and removed when the process exits."""

    def __init__(self, kind: str):
        import atexit
        import tempfile

        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix=f"vp-{kind}-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # PostgreSQL: fast shutdown (SIGINT: clients disconnected); Redis: SIGTERM, nothing to save
            self.proc.send_signal(signal.SIGINT if self.kind == "postgres" else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _as_owner(path: Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, its files and processes belong to the `postgres` user the
    Debian package makes (else `nobody`); as anyone else, to that user."""
    if os.geteuid() != 0:
        return []
    import pwd

    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        os.chmod(path, 0o700)
        for folder, _, files in os.walk(path):
            os.chown(folder, user.pw_uid, user.pw_gid)
            for file in files:
                os.chown(Path(folder, file), user.pw_uid, user.pw_gid)
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]
    raise MissingService("running as root, PostgreSQL needs an unprivileged user to run as (postgres or nobody)")


def ensure_postgres() -> None:
    """A private PostgreSQL for this test process (trust authentication for `postgres` on loopback only, no fsync:
    test data), made once with initdb in a temporary directory and listening on a free port; `PG` says where."""
    if "postgres" in _private:
        return
    bindir = _postgres_bindir()
    server = _Private("postgres")
    data, sockets = server.dir / "data", server.dir / "sockets"
    sockets.mkdir()
    as_owner = _as_owner(server.dir)
    initdb = subprocess.run([*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", PG["user"], "-A", "trust",
                             "-E", "UTF8", "--no-sync"], capture_output=True, text=True)
    if initdb.returncode:
        server.stop()
        raise RuntimeError(f"initdb failed: {initdb.stdout[-2000:]}{initdb.stderr[-2000:]}")
    server.proc = subprocess.Popen(
        [*as_owner, str(bindir / "postgres"), "-D", str(data), "-p", str(server.port), "-c", "listen_addresses=" + LOOPBACK,
         "-c", f"unix_socket_directories={sockets}", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "max_connections=300"],
        stdout=(server.dir / "postgres.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _private["postgres"] = server
    PG["port"] = server.port
    wait_until(lambda: _pg_ready() or server.proc.poll() is not None, 60, "PostgreSQL starting", interval=0.1)
    if server.proc.poll() is not None:
        log = (server.dir / "postgres.log").read_text(errors="replace")[-2000:]
        del _private["postgres"]
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {log}")


def _pg_ready() -> bool:
    import psycopg2

    try:
        psycopg2.connect(host=PG["host"], port=PG["port"], user=PG["user"], dbname="postgres",
                         connect_timeout=2).close()
        return True
    except psycopg2.OperationalError:
        return False


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A uniquely named database for the block, dropped (connections and all) at its end."""
    import sqlalchemy as sa

    ensure_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def pg_rows(db: str, sql: str, **params) -> list[dict]:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url(db))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


# --- S3 (moto's server) ----------------------------------------------------------------------------------------------

#: test credentials for moto (it accepts any); the secret is what the production tests check is never logged
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test-key-id", "AWS_SECRET_ACCESS_KEY": "test-secret-never-logged",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def moto_s3(log: Path | None = None) -> Iterator[str]:
    """moto's S3 server as its own process on a free loopback port (a real HTTP S3 API); yields its URL."""
    port = free_port()
    with process([executable("moto_server"), "-H", LOOPBACK, "-p", str(port)], log):   # inherits this environment
        wait_until(lambda: answers(port), 30, "moto_server answering", interval=0.1)
        yield f"http://{LOOPBACK}:{port}"


def s3_client(endpoint: str, **kwargs):
    """A boto3 S3 client of `endpoint` with the test credentials (kwargs: e.g. a botocore `config`)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=AWS_ENV["AWS_REGION"],
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"], **kwargs)


def new_bucket(client, prefix: str = "vp") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return name


# --- Redis ---------------------------------------------------------------------------------------------------------

def ensure_redis() -> None:
    """A private redis-server for this test process on a free loopback port (nothing kept on disk); `redis_url`
    says where."""
    if "redis" in _private:
        return
    program = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/bin")
    if program is None:
        raise MissingService(f"the Celery tests need {INSTALL_HINT['redis-server']}")
    server = _Private("redis")
    server.proc = subprocess.Popen(
        [program, "--bind", LOOPBACK, "--port", str(server.port), "--save", "", "--appendonly", "no",
         "--dir", str(server.dir), "--daemonize", "no", "--protected-mode", "no"],
        stdout=(server.dir / "redis.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _private["redis"] = server
    wait_until(lambda: answers(server.port) or server.proc.poll() is not None, 30, "Redis starting", interval=0.05)
    if server.proc.poll() is not None:
        log = (server.dir / "redis.log").read_text(errors="replace")[-2000:]
        del _private["redis"]
        server.stop()
        raise RuntimeError(f"redis-server did not start: {log}")


def redis_url(db: int) -> str:
    """The URL of database `db` on this process's private Redis (started if need be)."""
    ensure_redis()
    return f"redis://{LOOPBACK}:{_private['redis'].port}/{db}"


# --- the production profile ----------------------------------------------------------------------------------------

def production_home(home: Path) -> Path:
    """A DAGSTER_HOME holding the committed deploy/production/dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
    return home


def production_environment(home: Path, db: str, s3_endpoint: str, bucket: str) -> dict[str, str]:
    """The production profile's variables as an operator sets them: Dagster and the ledger on database `db` (of the
    private PostgreSQL), clips in `bucket` behind `s3_endpoint`, the test AWS credentials."""
    ensure_postgres()
    return {
        "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": PG["host"], "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_USER": PG["user"], "DAGSTER_PG_PASSWORD": "unused-trust-auth", "DAGSTER_PG_DB": db,
        "VIDEO_PIPELINE_PROFILE": "production", "VIDEO_PIPELINE_LEDGER_URL": pg_url(db),
        "VIDEO_PIPELINE_S3_BUCKET": bucket, "VIDEO_PIPELINE_S3_ENDPOINT_URL": s3_endpoint, **AWS_ENV,
    }


# --- fake servers --------------------------------------------------------------------------------------------------

_stopping: list = []


def stop_soon(*servers) -> None:
    """Tell fake servers (`FakeServer`) to stop, without waiting: uvicorn notices on its next 0.1 s tick and its
    thread ends on its own, so a test's teardown does not pay that tick (a fresh server takes a fresh port).
    `join_stopping()`, run when the test session ends, waits until every one has stopped."""
    for server in servers:
        server._server.should_exit = True     # what FakeServer.stop() sets before it joins the thread
        _stopping.append(server)


def join_stopping(timeout: float = 10.0) -> None:
    while _stopping:
        _stopping.pop()._thread.join(timeout)


@contextmanager
def served(app) -> Iterator:
    """`app` served on loopback by a `FakeServer` for the block, then stopped with `stop_soon`."""
    from video_pipeline.providers.fakes import FakeServer

    server = FakeServer(app).start()
    try:
        yield server
    finally:
        stop_soon(server)


# --- the fake provider fleet ---------------------------------------------------------------------------------------

@contextmanager
def fake_fleet(**kwargs) -> Iterator:
    """`start_fleet(**kwargs)` for the block; its servers then stopped with `stop_soon` (deliveries not yet sent
    cancelled), so a test does not wait out each server's shutdown tick."""
    from video_pipeline.providers.fakes.fleet import start_fleet

    fleet = start_fleet(**kwargs)
    try:
        yield fleet
    finally:
        for book in fleet.books.values():
            book.stop_webhooks()
        stop_soon(*fleet.servers.values())


def fleet_on_free_ports(**kwargs):
    """`start_fleet(**kwargs)` on a run of free consecutive ports, as `video-pipeline fakes serve` lays them out
    (so `fixed_environment(base)` and VIDEO_PIPELINE_FAKES_PORT reach it); returns (fleet, base port)."""
    from video_pipeline.providers.fakes.fleet import FAKE_CREDENTIALS, start_fleet

    base = free_port(len(FAKE_CREDENTIALS))
    return start_fleet(base_port=base, **kwargs), base

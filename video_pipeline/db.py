"""The database behind the ledger and observations: one metadata, one engine factory (SQLite or PostgreSQL), and
its schema's migrations (Alembic, in `migrations/` beside this module), run once under a lock by whoever opens it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from video_pipeline.errors import PipelineError

metadata = sa.MetaData()

#: the Alembic environment: env.py and versions/, shipped inside the package
MIGRATIONS = Path(__file__).with_name("migrations")
#: the ledger's own version table: production keeps the ledger in Dagster's PostgreSQL database, whose storage
#: has its own `alembic_version` table
VERSION_TABLE = "ledger_alembic_version"
#: PostgreSQL advisory lock held (for one transaction) by the process that migrates; any fixed 64-bit number
MIGRATION_LOCK = 0x76706C6564676572   # b"vpledger": fits a signed 64-bit key


def make_engine(url: str) -> sa.Engine:
    """An engine for `url`; SQLite gets WAL, a long busy timeout and BEGIN IMMEDIATE (atomic slot counting)."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, future=True, pool_pre_ping=True)
    engine = sa.create_engine(url, future=True, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes even for timezone-aware columns: read them as UTC."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class LedgerSchemaError(PipelineError, RuntimeError):
    """The ledger database's schema cannot be used by this release (it was upgraded by a newer one)."""


def shown(url: str | sa.URL) -> str:
    """A database URL as it may be printed: never its password."""
    return sa.make_url(url).render_as_string(hide_password=True)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the shipped environment; with `connection`, migrations run on it (in its
    transaction) instead of on a connection env.py opens."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision this release knows."""
    return _script().get_current_head()


def revision(conn: sa.Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


@contextmanager
def migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that only one process at a time holds: SQLite's BEGIN IMMEDIATE (make_engine begins every
    transaction so) takes the database's write lock; on PostgreSQL a transaction-level advisory lock. Both are
    released at commit, when the migrated schema becomes visible to the processes that waited."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        yield conn


def migrate(engine: sa.Engine) -> None:
    """Bring the database to the newest revision. A database already there costs one read; otherwise one process
    migrates under `migration_lock` and the others, waiting on it, then find it done. A database at a revision
    this release does not know (a newer release upgraded it) raises LedgerSchemaError and is left as it is."""
    with engine.connect() as conn:
        if _known(conn, engine) == head():
            return
    with migration_lock(engine) as conn:
        if _known(conn, engine) != head():
            command.upgrade(alembic_config(conn), "head")


def _known(conn: sa.Connection, engine: sa.Engine) -> str | None:
    """The database's revision, checked to be one this release knows."""
    try:
        current = revision(conn)
    except CommandError:   # several rows in the version table
        current = "?"
    if current is None or current in {script.revision for script in _script().walk_revisions()}:
        return current
    rows = conn.execute(sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))).scalars().all()
    raise LedgerSchemaError(
        f"ledger database {shown(engine.url)}: its schema is at revision {', '.join(rows)} ({VERSION_TABLE}), "
        f"which this release of video-pipeline does not know (its newest is {head()}). A newer release has upgraded "
        "it: run that release (or a newer one) against this ledger, or set VIDEO_PIPELINE_LEDGER_URL to another "
        "database. Nothing was changed.")

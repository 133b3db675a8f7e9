"""Alembic's environment for the ledger's schema: `video_pipeline.db.migrate` runs it whenever a process opens the
ledger, and so does the `alembic` command run from the project root (its configuration is pyproject.toml's
`[tool.alembic]`).

`migrate` hands over a connection inside its locked transaction. The `alembic` command opens the database named by
`-x url=...` (else the settings' ledger URL, `VIDEO_PIPELINE_LEDGER_URL`) under the same lock, and compares it
with the tables the code declares (`alembic check`, `alembic revision --autogenerate`). Only the ledger's tables
are compared: in production the database is shared with Dagster's storage.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from video_pipeline.db import VERSION_TABLE, make_engine, metadata, migration_lock

config = context.config


def declared() -> sa.MetaData:
    """The tables as the code declares them: importing the modules that declare them fills `metadata`."""
    import video_pipeline.jobs.ledger  # noqa: F401
    import video_pipeline.planning.observed  # noqa: F401

    return metadata


def ours(name: str | None, type_: str, parent_names) -> bool:
    return type_ != "table" or name in metadata.tables


def configure(**kwargs) -> None:
    context.configure(version_table=VERSION_TABLE, include_name=ours, render_as_batch=True, compare_type=True,
                      **kwargs)
    with context.begin_transaction():
        context.run_migrations()


def ledger_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from video_pipeline.config import Settings

    return Settings.from_env().ledger_url


connection = config.attributes.get("connection")
if connection is not None:                       # video_pipeline.db.migrate: its connection, its lock
    configure(connection=connection, target_metadata=config.attributes.get("target_metadata"))
elif context.is_offline_mode():                  # alembic upgrade --sql: the DDL as text
    configure(url=ledger_url(), target_metadata=declared(), literal_binds=True)
else:
    engine = make_engine(ledger_url())
    try:
        with migration_lock(engine) as connection:
            configure(connection=connection, target_metadata=declared())
    finally:
        engine.dispose()

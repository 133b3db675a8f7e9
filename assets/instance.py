"""The Dagster instance of a `DAGSTER_HOME`, prepared once, under a lock, so any number of processes may start at once.

Dagster's SQLite storages create their tables and stamp their schema version the first time a process opens them.
Two processes doing that at the same moment on a fresh home both stamp: one writes the newest revision, the other
(seeing the tables already made) an older one, and from then on every process on that home fails with alembic's
"more than one head present". Here the first process to take the home's lock creates the storages; the others wait
a moment and open what it made. A home already broken that way is repaired (the stray older stamp removed: the
tables are the newest schema, made by `create_all`), or refused with what to do.

`python -m assets.instance` prepares the home of the current settings (`./scripts/ui` does it before `dagster dev`,
whose webserver and daemon otherwise open a fresh home at the same time).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from dagster import DagsterInstance

from video_pipeline.config import PROJECT_ROOT, Settings, SettingsError

LOCK_FILE = ".video-pipeline-instance.lock"
#: the SQLite databases Dagster's default storages keep in a home, each stamped with the schema's revision
SQLITE_STORAGES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME, defaulting to <project>/.dagster (the same one the README's `dagster dev` uses), with the
    project's dagster.yaml written the first time (a home that has one keeps it)."""
    home = settings.dagster_home or (PROJECT_ROOT / ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        try:
            with open(config, "x", encoding="utf-8") as out:   # one writer, even when ten start at once
                out.write(default_instance_config(home))
        except FileExistsError:
            pass
    return home


def default_instance_config(home: Path) -> str:
    """A new home's dagster.yaml: no telemetry; each step's stdout and stderr kept under the home for the UI (as
    Dagster's default), mirrored to the step's own output only when that is a terminal (resources/compute_logs.py)."""
    return ("telemetry:\n  enabled: false\n"
            "compute_logs:\n  module: resources.compute_logs\n  class: StepLogs\n"
            f"  config:\n    base_dir: {json.dumps(str(home / 'storage'))}\n")


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    with open(home / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _schema_head() -> str:
    """The newest revision of Dagster's SQLite storage schema (one migration history serves all three)."""
    from alembic.script import ScriptDirectory
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    return ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).get_current_head()


def repair_stamps(home: Path) -> list[str]:
    """Remove the stray older stamps a concurrent first start left in the home's SQLite storages; returns the
    databases repaired. A database stamped twice without the newest revision among them is refused."""
    repaired = []
    for name in SQLITE_STORAGES:
        path = home / name
        if not path.is_file():
            continue
        with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
            try:
                stamps = [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]
            except sqlite3.OperationalError:   # no version table: Dagster stamps it itself
                continue
            if len(stamps) <= 1:
                continue
            head = _schema_head()
            if head not in stamps:
                raise SettingsError(
                    f"{path}: Dagster's schema is stamped {len(stamps)} times ({', '.join(sorted(stamps))}), none "
                    f"of them the current {head}: stop every process using DAGSTER_HOME={home}, then move its "
                    "history/ and schedules/ folders away (run history only; campaigns, clips, outputs and the job "
                    "ledger are kept elsewhere) and start again")
            with db:
                db.execute("DELETE FROM alembic_version WHERE version_num != ?", (head,))
            repaired.append(str(path))
    return repaired


def prepared_instance(settings: Settings) -> DagsterInstance:
    """The settings' Dagster instance, its storages created (or repaired) by one process at a time."""
    home = ensure_dagster_home(settings)
    with _home_lock(home):
        repair_stamps(home)
        instance = DagsterInstance.from_config(str(home))   # creates and stamps each storage that is new
    return instance


if __name__ == "__main__":
    prepared_instance(Settings.from_env()).dispose()

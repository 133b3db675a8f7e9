"""What the forkserver of a run's step processes imports before it forks each one (`resources.execution.PRELOAD`).

Dagster's beta and preview warnings are the project's to track, not lines on the stderr of the person running a
campaign: the forkserver inherits that stderr, and each step process inherits the forkserver's filters. Then what
every step process would otherwise import for itself (about 0.7 s of a step's start before this): the code the
steps run (`definitions.preload`), and the Dagster instance's storages, opened once here and closed again before
any step is forked (each step opens its own).

Two things Dagster's SQLite storages would otherwise redo in every step process are done once here, by replacing
one module-level name in a private Dagster module each (checked first; a Dagster built differently is left alone,
and only this forkserver and its children are touched): alembic's map of the schema scripts, and one SQLAlchemy
engine per database file (BENCHMARKS.md, "A process per step")."""

import importlib
import threading
import warnings

from dagster import BetaWarning, PreviewWarning

warnings.simplefilter("ignore", BetaWarning)
warnings.simplefilter("ignore", PreviewWarning)

import definitions  # noqa: E402  (after the filters: importing the assets warns)

definitions.preload()


def _read_the_schema_scripts_once() -> None:
    """Dagster checks a SQLite storage's schema revision the first time a process opens it, and for each check
    builds alembic's map of its migration scripts again (about 90 files loaded and executed: a step opens three
    or four storages, about 0.15 s of every step's CPU). The installed scripts do not change while a run lasts,
    so the forkserver builds each map once and every step forked from it reuses it. A Dagster that checks
    differently is left alone (the name is looked up, never assumed)."""
    try:
        import dagster._core.storage.sql as storage_sql
        from alembic.script import ScriptDirectory
    except ImportError:
        return
    if getattr(storage_sql, "ScriptDirectory", None) is not ScriptDirectory:
        return
    built: dict[str, ScriptDirectory] = {}

    class ScriptsReadOnce(ScriptDirectory):
        @classmethod
        def from_config(cls, config) -> ScriptDirectory:
            where = config.get_main_option("script_location")
            if where not in built:
                built[where] = ScriptDirectory.from_config(config)
            return built[where]

    storage_sql.ScriptDirectory = ScriptsReadOnce


def _one_engine_per_database() -> None:
    """Dagster's SQLite storages make a new SQLAlchemy engine for every connection they open (`NullPool`, then
    `dispose`): about 60 engines a step, each setting up its dialect again on its first connection. An engine with
    `NullPool` holds no connection between uses and may be used again after `dispose`, so the storages' modules get
    one engine per database file and options, shared by the forkserver's warm-up and every step forked from it.
    A storage module without that name is left alone."""
    from sqlalchemy import create_engine as make
    from sqlalchemy.pool import NullPool

    engines: dict[tuple, object] = {}
    made = threading.Lock()

    def shared_engine(url, **options):
        if options.get("poolclass") is not NullPool:
            return make(url, **options)
        key = (str(url), repr(sorted(options.items(), key=lambda item: item[0])))
        with made:
            if key not in engines:
                engines[key] = make(url, **options)
            return engines[key]

    for name in ("dagster._core.storage.event_log.sqlite.sqlite_event_log",
                 "dagster._core.storage.runs.sqlite.sqlite_run_storage",
                 "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "create_engine", None) is make:
            module.create_engine = shared_engine


def _open_the_instance_once() -> None:
    from assets.instance import prepared_instance
    from video_pipeline.config import Settings

    try:
        with prepared_instance(Settings.from_env()) as instance:
            # what every step asks first (its inputs' latest records), asked once here: the engines those reads
            # open have their dialects set up, and every forked step inherits them so
            from dagster import AssetKey

            instance.get_asset_records([AssetKey("campaign")])
            instance.get_run_records(limit=1)
    except Exception:   # only a head start: a step that needs the storages imports them itself
        pass
    try:   # the catalog most steps load (cached by its path and modification time)
        from video_pipeline.planning.catalog import load_catalog

        load_catalog(Settings.from_env().catalog_file)
    except Exception:   # a catalog at fault is reported by the step that loads it
        pass


_read_the_schema_scripts_once()
_one_engine_per_database()
_open_the_instance_once()

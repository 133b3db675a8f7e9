"""The ledger's schema is versioned by Alembic (video_pipeline/migrations), on SQLite and on PostgreSQL: a new
ledger gets exactly the tables the code declares, a ledger made by an earlier release is upgraded with its rows,
ten processes opening a new ledger at once all succeed, and a ledger upgraded by a newer release is refused with
what to do. What is checked is what an operator would check: the database's own catalog, its rows, `alembic
check`, and `video-pipeline spend`."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.ledger_race import open_at_once
from tests.support.services import fresh_database, pg_url
from video_pipeline.cli.main import main
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.db import MIGRATIONS, VERSION_TABLE, LedgerSchemaError, head, make_engine, metadata
from video_pipeline.errors import PipelineError
from video_pipeline.jobs.ledger import JobLedger
from video_pipeline.planning.observed import ObservationLog
from video_pipeline.report.progress import ledger_counts, read_engine

LEDGERS = Path(__file__).with_name("ledgers")
DIALECTS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.production)]
ALEMBIC = [sys.executable, "-c", "from alembic.config import main; main()"]


@pytest.fixture(params=DIALECTS)
def new_url(request, tmp_path) -> Iterator[Callable[[], str]]:
    """Makes URLs of new, empty databases of the test's dialect (PostgreSQL: each its own database, dropped after)."""
    made = iter(range(100))
    with ExitStack() as stack:
        if request.param == "sqlite":
            yield lambda: f"sqlite:///{tmp_path / f'ledger-{next(made)}.sqlite'}"
        else:
            yield lambda: pg_url(stack.enter_context(fresh_database("vp_migrations")))


def opened(url: str) -> None:
    """What every process that uses the ledger does first."""
    JobLedger(url).dispose()
    ObservationLog(url).dispose()


def catalog(url: str, sql_text: bool = True) -> dict:
    """The schema as the database reports it: tables, columns (type, nullability, default), keys, unique
    constraints, indexes, checks; on SQLite also each table's and index's CREATE statement."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found: dict = {}
        for name in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
            found[name] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                            for c in inspector.get_columns(name)],
                "primary key": inspector.get_pk_constraint(name)["constrained_columns"],
                "unique": sorted((u["name"], *u["column_names"]) for u in inspector.get_unique_constraints(name)),
                "indexes": sorted((i["name"], bool(i["unique"]), *i["column_names"])
                                  for i in inspector.get_indexes(name)),
                "foreign keys": inspector.get_foreign_keys(name),
                "checks": inspector.get_check_constraints(name),
            }
        if sql_text and engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                found["sqlite_master"] = sorted(tuple(r) for r in conn.execute(sa.text(
                    "SELECT type, name, sql FROM sqlite_master WHERE tbl_name != :v"), {"v": VERSION_TABLE}))
        return found
    finally:
        engine.dispose()


def versions(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> None:
    """Run a script of statements (`;` at line ends, `--` comments) in one transaction."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
            for statement in filter(None, (s.strip() for s in body.split(";\n"))):
                conn.exec_driver_sql(statement.rstrip(";"))
    finally:
        engine.dispose()


def rows(url: str) -> dict[str, list[dict]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY 1"))]
                    for name in sorted(set(sa.inspect(conn).get_table_names()) - {VERSION_TABLE})}
    finally:
        engine.dispose()


# --- a new ledger ----------------------------------------------------------------------------------------------------

def test_a_new_ledger_gets_exactly_the_schema_create_all_made(new_url):
    """Revision 1 is the schema the code declares: the same tables, columns, types, keys, constraints and indexes
    (on SQLite, the same CREATE statements) as `metadata.create_all`, which the previous releases ran."""
    made_by_create_all = new_url()
    engine = make_engine(made_by_create_all)
    metadata.create_all(engine)
    engine.dispose()
    migrated = new_url()
    opened(migrated)
    assert catalog(migrated) == catalog(made_by_create_all)
    assert set(catalog(migrated)) >= {"provider_jobs", "campaign_budgets", "job_events", "model_observations"}
    assert versions(migrated) == [head()]


def test_alembic_check_finds_no_difference_between_the_models_and_head(new_url):
    """`alembic check` as a developer runs it from the project root (pyproject.toml's [tool.alembic]): nothing to
    generate against a ledger at head, even with Dagster's own tables (and its `alembic_version`) in the same
    database, as in production; a ledger that differs from the models (an index dropped by hand) is reported."""
    url = new_url()
    execute(url, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);\n"
                 "INSERT INTO alembic_version VALUES ('16e3655b4d9b');\n"       # Dagster's storage, same database
                 "CREATE TABLE runs (id INTEGER PRIMARY KEY, run_id VARCHAR(255));\n")
    opened(url)
    check = subprocess.run([*ALEMBIC, "-x", f"url={url}", "check"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
    execute(url, "DROP INDEX ix_provider_jobs_state;\n")
    check = subprocess.run([*ALEMBIC, "-x", f"url={url}", "check"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode != 0 and "New upgrade operations detected" in check.stdout + check.stderr
    assert "ix_provider_jobs_state" in check.stdout + check.stderr
    assert versions(url) == [head()] and rows(url)["alembic_version"] == [{"version_num": "16e3655b4d9b"}]


# --- a ledger made by an earlier release -----------------------------------------------------------------------------

SPEND = {   # what `video-pipeline spend` says of each fixture's campaign
    "previous_main": {"actual_usd": 0.8, "reserved_usd": 0.0, "uncertain_jobs": 1, "uncertain_usd": 0.42,
                      "budget_usd": 5.0, "jobs": 2},
    "before_money": {"actual_usd": 0.8, "reserved_usd": 0.0, "uncertain_jobs": 0, "uncertain_usd": 0.0,
                     "budget_usd": None, "jobs": 1},
}


@pytest.mark.parametrize("release", ["previous_main", "before_money"])
def test_a_ledger_made_by_an_earlier_release_is_upgraded_with_its_rows(release, new_url, data_dir, monkeypatch,
                                                                       capsys):
    """tests/ledgers/ holds ledgers as the last release before migrations made them (create_all, captured as SQL)
    and as the releases before the money columns did. Opened by this release: at head, the schema of a new ledger,
    every row as it was, and `video-pipeline spend` reads them."""
    url = new_url()
    dialect = sa.make_url(url).get_backend_name()
    execute(url, (LEDGERS / f"{release}.{dialect}.sql").read_text(encoding="utf-8"))
    before = rows(url)
    opened(url)
    assert versions(url) == [head()]
    reference = new_url()
    opened(reference)
    assert catalog(url, sql_text=False) == catalog(reference, sql_text=False)   # statements differ in whitespace
    after = rows(url)
    for table, kept in before.items():
        assert [{k: r[k] for k in kept[0]} for r in after[table]] == kept, table

    monkeypatch.setenv("VIDEO_PIPELINE_LEDGER_URL", url)
    capsys.readouterr()
    assert main(["spend", "before-migrations", "--json"]) == 0
    [spend] = json.loads(capsys.readouterr().out)["campaigns"]
    assert {k: spend[k] for k in SPEND[release]} == SPEND[release]
    ledger = JobLedger(url)
    try:
        assert ledger.reusable("k-stored").provider_job_id == "operations/op-1"    # kept in the bucket: reused
    finally:
        ledger.dispose()


# --- ten processes at once -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ten_processes_opening_a_new_ledger_at_once_all_succeed(new_url):
    """Issue 21: ten runs starting on a new ledger (JobLedger and ObservationLog both open it) used to race in
    create_all. Now one migrates under the lock and the others find it done: all succeed, one version row."""
    url = new_url()
    assert open_at_once(url, 10) == ["ok"] * 10
    assert versions(url) == [head()]
    assert set(catalog(url)) >= {"provider_jobs", "campaign_budgets", "job_events", "model_observations"}


# --- a ledger upgraded by a newer release ----------------------------------------------------------------------------

def test_a_ledger_upgraded_by_a_newer_release_is_refused_with_what_to_do(new_url, data_dir, monkeypatch, capsys):
    """A revision this release does not know: a PipelineError naming the database (never its password), the
    revision and what to do; the ledger is left as it was. `video-pipeline spend` prints it as its one error."""
    url = new_url()
    opened(url)
    execute(url, f"UPDATE {VERSION_TABLE} SET version_num = 'f00dfeed0002';\n")
    shown = sa.make_url(url).set(password="never-printed") if url.startswith("postgresql") else sa.make_url(url)
    with_password = shown.render_as_string(hide_password=False)
    schema = catalog(url)
    with pytest.raises(LedgerSchemaError) as refused:
        JobLedger(with_password)
    message = str(refused.value)
    assert isinstance(refused.value, PipelineError)
    assert shown.database in message and "f00dfeed0002" in message and head() in message
    assert "newer release" in message and "VIDEO_PIPELINE_LEDGER_URL" in message
    assert "never-printed" not in message
    with pytest.raises(LedgerSchemaError):
        ObservationLog(with_password)
    assert versions(url) == ["f00dfeed0002"] and catalog(url) == schema

    monkeypatch.setenv("VIDEO_PIPELINE_LEDGER_URL", with_password)
    capsys.readouterr()
    assert main(["spend", "--json"]) == 1
    out = capsys.readouterr().out
    error = json.loads(out)["error"]["message"]
    assert "f00dfeed0002" in error and shown.database in error and "never-printed" not in out


# --- readers that must not write -------------------------------------------------------------------------------------

def test_the_progress_reader_never_migrates(tmp_path):
    """`run`'s progress thread reads with its own read-only engine: on a ledger nobody opened yet it finds no
    tables (and makes none), then reads what the engine wrote once the ledger is opened."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    reader = read_engine(url)
    try:
        with pytest.raises(sa.exc.OperationalError, match="no such table"):
            ledger_counts(reader, "c", [("v", 0, "k")], 1.0)
        assert sa.inspect(reader).get_table_names() == []
        JobLedger(url).dispose()
        assert ledger_counts(reader, "c", [("v", 0, "k")], 1.0).queued == 1
    finally:
        reader.dispose()


# --- shipped with the package ----------------------------------------------------------------------------------------

def test_the_migrations_ship_in_the_wheel_and_alembic_finds_them():
    """Every file of video_pipeline/migrations is package data (an installed wheel migrates its ledger), and the
    `alembic` command's configuration points at the same directory."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = project["tool"]["setuptools"]["package-data"]["video_pipeline"]
    shipped = [p.relative_to(MIGRATIONS.parent).as_posix() for p in MIGRATIONS.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert "migrations/env.py" in shipped and any(p.startswith("migrations/versions/") for p in shipped)
    assert [p for p in shipped if not any(fnmatch.fnmatch(p, g) for g in globs)] == []
    assert project["tool"]["alembic"]["script_location"] == "%(here)s/video_pipeline/migrations"
    assert any(d.startswith("alembic>=") for d in project["project"]["dependencies"])

"""Many runs at once: processes started in the same second on a fresh DAGSTER_HOME all succeed, and a home an
earlier release broke that way is repaired."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write
from video_pipeline.config import PROJECT_ROOT, Settings

pytestmark = pytest.mark.slow

PROCESSES = 10
#: each process waits for this moment, so all ten open the home in the same instant
START = "import sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "


def _stamps(home: Path) -> dict[str, list[str]]:
    found = {}
    for name in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        with sqlite3.connect(home / name) as db:
            found[name] = [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]
    return found


def _at_once(args: list[list[str]], env: dict[str, str], timeout: float) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(a, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for a in args]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _environment(data_dir: Path, home: Path) -> dict[str, str]:
    """What a user's shell would hold: the test's settings, nothing else of this process."""
    settings = Settings.from_env()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home.parent), "DAGSTER_HOME": str(home),
           "VIDEO_PIPELINE_DATA_DIR": str(data_dir), "VIDEO_PIPELINE_MODE": "local",
           "VIDEO_PIPELINE_TIME_SCALE": str(settings.time_scale), "VIDEO_PIPELINE_X264_PRESET": "ultrafast",
           # each run's steps in its own process: ten runs of nine step processes each would not fit two cores
           "VIDEO_PIPELINE_EXECUTOR": "in_process"}
    return env


def test_ten_processes_opening_a_fresh_home_at_once_all_succeed_and_stamp_it_once(data_dir, tmp_path):
    home = tmp_path / "fresh-home"
    env = _environment(data_dir, home)
    code = START + ("from assets.instance import prepared_instance; from video_pipeline.config import Settings; "
                    "i = prepared_instance(Settings.from_env()); print(len(i.get_runs(limit=1)))")
    at = f"{time.time() + 3:.3f}"
    results = _at_once([[sys.executable, "-c", code, at]] * PROCESSES, env, timeout=120)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr[-500:] for r in results if r.returncode]
    assert all(stamps == [stamps[0]] and len(stamps) == 1 for stamps in _stamps(home).values()), _stamps(home)


def _stamped(data_dir: Path, home: Path, stamps: dict[str, list[str]]) -> Settings:
    """A prepared home whose storages are then stamped as `stamps` says (database → its version rows)."""
    from assets.instance import prepared_instance

    settings = Settings.from_env(_environment(data_dir, home))
    prepared_instance(settings).dispose()
    for name, versions in stamps.items():
        with sqlite3.connect(home / name) as db:
            db.execute("DELETE FROM alembic_version")
            db.executemany("INSERT INTO alembic_version (version_num) VALUES (?)", [(v,) for v in versions])
    return settings


def test_a_home_stamped_twice_by_an_earlier_race_is_repaired(data_dir, tmp_path):
    """What the race left behind before this release: the newest revision and an older one in one table."""
    from assets.instance import _schema_head, prepared_instance

    home = tmp_path / "broken-home"
    both = [_schema_head(), "5771160a95ad"]
    settings = _stamped(data_dir, home, {"history/runs.db": both, "schedules/schedules.db": both})
    instance = prepared_instance(settings)
    try:
        assert instance.get_runs(limit=1) == []     # Dagster reads it again ("more than one head" before)
    finally:
        instance.dispose()
    assert all(len(stamps) == 1 for stamps in _stamps(home).values()), _stamps(home)


def test_a_home_stamped_twice_without_the_current_revision_is_refused_with_what_to_do(data_dir, tmp_path):
    from assets.instance import prepared_instance
    from video_pipeline.errors import PipelineError

    settings = _stamped(data_dir, tmp_path / "odd-home", {"history/runs.db": ["aaaa", "bbbb"]})
    with pytest.raises(PipelineError, match=r"runs\.db: .*stamped 2 times.*move its history/ and schedules/"):
        prepared_instance(settings)


def test_ten_campaign_runs_started_at_once_on_a_fresh_home_all_finish_and_so_does_the_next(data_dir, tmp_path):
    home = tmp_path / "busy-home"
    env = _environment(data_dir, home)
    specs = [write(data_dir / f"burst{i}.yaml", f"""
campaign: burst-{i}
videos:
  - id: one
    target_seconds: 5
    shots:
      - prompt: a paper boat on a puddle, take {i}
""") for i in range(PROCESSES + 1)]
    run = START + "from video_pipeline.cli.main import main; sys.argv = ['video-pipeline'] + sys.argv[2:]; sys.exit(main())"
    at = f"{time.time() + 5:.3f}"
    results = _at_once([[sys.executable, "-c", run, at, "run", str(spec), "--json"] for spec in specs[:-1]], env,
                       timeout=600)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr[-800:] for r in results if r.returncode]
    assert {json.loads(r.stdout)["status"] for r in results} == {"succeeded"}
    after = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run", str(specs[-1]), "--json"],
                           cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stderr[-800:]
    assert all(len(stamps) == 1 for stamps in _stamps(home).values()), _stamps(home)

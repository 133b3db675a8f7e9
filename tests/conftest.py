"""Shared fixtures: every test gets its own data directory (a copy of data/) and Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.services import join_stopping
from video_pipeline.config import PROJECT_ROOT, Settings
from video_pipeline.media.probe import probe

def pytest_sessionfinish(session, exitstatus):
    """Fake servers stopped without waiting (tests.support.services.stop_soon) have all stopped by the end."""
    join_stopping()


FAST_ENV = {
    "VIDEO_PIPELINE_TIME_SCALE": "0.002",
    "VIDEO_PIPELINE_X264_PRESET": "ultrafast",
    "VIDEO_PIPELINE_MODE": "local",
    # a run's steps in its own process: a process per step costs a few CPU seconds per run (BENCHMARKS.md, issue
    # 20), which the many runs of the suite would pay on a shared machine; the executors have their own tests
    # (tests/test_cli.py runs with the default multiprocess executor, tests/production with Celery)
    "VIDEO_PIPELINE_EXECUTOR": "in_process",
}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data directory with the catalog and samples, pointed to by VIDEO_PIPELINE_DATA_DIR."""
    target = tmp_path / "project" / "data"
    target.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "data" / "catalog.yaml", target / "catalog.yaml")
    shutil.copytree(PROJECT_ROOT / "data" / "samples", target / "samples")
    (target / "inbox").mkdir()
    monkeypatch.setenv("VIDEO_PIPELINE_DATA_DIR", str(target))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    return target


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings.from_env()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_video(path: str | Path, seconds: float, width: int = 1280, height: int = 720) -> None:
    """What a person checks with a probe: the file decodes as H.264 at the size and length asked for."""
    info = probe(path)
    assert info.video_codec == "h264"
    assert (info.width, info.height) == (width, height)
    assert abs(info.duration - seconds) <= 0.5, f"{path} lasts {info.duration:.3f}s, expected {seconds}s"


@pytest.fixture
def instance():
    """An ephemeral Dagster instance (runs and events in memory)."""
    from tests.support.pipeline import ephemeral_instance

    with ephemeral_instance() as inst:
        yield inst


def __getattr__(name: str):
    """`run_campaign_job` and `materialized` live in tests/support/pipeline.py, the one job runner of tests and
    benches; imported from here too, Dagster is loaded only by the tests that use them."""
    if name in ("run_campaign_job", "materialized"):
        from tests.support import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)

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
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as inst:
        yield inst


def run_campaign_job(instance, settings: Settings, spec: Path, raise_on_error: bool = True, **resources):
    """What the inbox sensor and `video-pipeline run` do: accept the file, add its partition, and materialize every
    asset of the campaign through Dagster (`resources` swaps some, e.g. providers). The one path tests use to make
    a finished video; they read what it made from the run (`result.output_for_node(asset)`)."""
    from dagster import materialize

    from definitions import ASSETS, build_resources
    from video_pipeline.flow.intake import accept

    accepted = accept(spec, settings, move=False)
    if not instance.has_dynamic_partition("campaigns", accepted.campaign_id):
        instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
    return materialize(ASSETS, partition_key=accepted.campaign_id, instance=instance,
                       resources=build_resources(**resources), raise_on_error=raise_on_error)


def materialized(result, asset: str) -> dict:
    """The metadata of an asset's materialization in a run, as plain values."""
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}

"""The project answers to Dagster's `dg` CLI ([tool.dg] in pyproject.toml) as it does to workspace.yaml: `dg check
defs` loads the definitions, `dg list defs` lists them, `dg launch` materializes a sample campaign's partition, and
`./scripts/ui` serves the UI and daemon through `dg dev` (tests/test_ui.py starts it that way)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assets.jobs import STAGES
from tests.conftest import assert_video
from video_pipeline.config import PROJECT_ROOT, Settings
from video_pipeline.flow.intake import accept

pytestmark = pytest.mark.slow

DG = str(Path(sys.executable).parent / "dg")


def _dg(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([DG, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_dg_check_defs_passes_and_dg_list_defs_lists_the_pipeline(data_dir):
    env = {**os.environ}
    checked = _dg("check", "defs", env=env)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = _dg("list", "defs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} == set(STAGES)
    assert [j["name"] for j in found["jobs"]] == ["campaign_job"]
    assert {s["name"] for s in found["sensors"]} == {"campaign_inbox_sensor", "expiring_outputs_sensor"}


def test_dg_launch_materializes_a_sample_campaigns_partition(data_dir):
    settings = Settings.from_env()
    accepted = accept(data_dir / "samples" / "product-stills.json", settings, move=False)
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:          # the partition a run or the inbox sensor would have added
        instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
    env = {**os.environ, "VIDEO_PIPELINE_EXECUTOR": "in_process"}
    launched = _dg("launch", "--assets", "*", "--partition", accepted.campaign_id, env=env, timeout=600)
    assert launched.returncode == 0, launched.stdout[-4000:] + launched.stderr[-4000:]
    outputs = data_dir / "outputs" / accepted.campaign_id
    assert_video(outputs / "bottle-orbit.mp4", 8, width=720, height=720)
    assert (outputs / "report.html").is_file()
    with DagsterInstance.get() as instance:
        for stage in STAGES:
            assert instance.get_latest_materialization_event(_key(stage)) is not None, stage


def _key(name: str):
    from dagster import AssetKey

    return AssetKey(name)

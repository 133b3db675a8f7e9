"""Live mode is configuration only: the sample campaign runs against every provider's fake over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import assert_video
from tests.support.pipeline import quick_catalog
from video_pipeline.config import child_environment
from video_pipeline.providers.fakes.fleet import start_fleet

pytestmark = pytest.mark.slow


def test_sample_campaign_in_live_mode_against_the_fakes_makes_the_same_mp4s(data_dir, tmp_path, monkeypatch):
    with start_fleet(latency=0.4, work_dir=tmp_path / "fakes") as fleet:
        # live mode polls on the catalog's profiles in real seconds: a catalog that says the fakes take ~1 s
        env = child_environment({**fleet.environment(), "VIDEO_PIPELINE_CATALOG": str(quick_catalog(tmp_path))})
        proc = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run",
                               str(data_dir / "samples" / "launch-teaser.yaml"), "--json"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        payload = json.loads(proc.stdout)
        for out in payload["outputs"]:
            assert_video(out["output_path"], out["target_seconds"])
        # the teaser went to Veo through the Gemini API, the product still to Kling: real HTTP, counted
        assert fleet.books["gemini"].total_submissions == 2
        assert fleet.books["kling"].total_submissions == 1
        assert fleet.duplicate_submissions() == 0
        # a second run pays for nothing: every job key is reused from the ledger
        again = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run",
                                str(data_dir / "samples" / "launch-teaser.yaml"), "--json"],
                               capture_output=True, text=True, env=env, timeout=300)
        assert again.returncode == 0, again.stderr
        assert fleet.books["gemini"].total_submissions == 2 and fleet.books["kling"].total_submissions == 1


def test_live_mode_without_keys_fails_before_any_spend_naming_the_variables(data_dir, monkeypatch):
    for var in ("GEMINI_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY", "MINIMAX_API_KEY", "ARK_API_KEY",
                "DASHSCOPE_API_KEY", "FAL_KEY", "REPLICATE_API_TOKEN", "RUNWAYML_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VIDEO_PIPELINE_MODE", "live")
    # only MiniMax is configured, and Hailuo makes no square video: nothing can serve this 1:1 campaign
    monkeypatch.setenv("MINIMAX_API_KEY", "only-hailuo")
    proc = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "run",
                           str(data_dir / "samples" / "product-stills.json")],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    message = proc.stderr + proc.stdout
    assert proc.returncode == 3                             # the run stops at planning, before any job
    assert "no configured provider" in message and "ARK_API_KEY" in message and "FAL_KEY" in message
    assert "only-hailuo" not in message
    assert not (data_dir / "clips").exists()
    dry_run = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "plan",
                              str(data_dir / "samples" / "product-stills.json")],
                             capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert dry_run.returncode == 1 and "ARK_API_KEY" in dry_run.stderr

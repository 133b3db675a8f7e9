"""The `video-pipeline` command as a user runs it: exit codes, messages, the --json shapes, a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import assert_video, write
from video_pipeline.planner import PLAN_COLUMNS


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "video_pipeline.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=cwd, timeout=300)


def test_validate_accepts_the_samples(data_dir):
    for sample in ("launch-teaser.yaml", "product-stills.json", "social-ideas.csv", "quick-clips.jsonl", "long-form.yaml"):
        proc = cli("validate", str(data_dir / "samples" / sample))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("ok: ")


def test_validate_rejects_a_bad_file_naming_line_and_field_and_leaves_it_untouched(data_dir):
    bad = write(data_dir / "bad.yaml", "campaign: Bad_Id\nvideos:\n  - id: v\n    shots:\n      - prompt: hi\n        transform: style\n")
    before = bad.read_bytes()
    proc = cli("validate", str(bad))
    assert proc.returncode == 1
    assert ":1: campaign:" in proc.stderr and "Bad_Id" in proc.stderr
    assert ":6: videos[0].shots[0]" in proc.stderr or ":5: videos[0].shots[0]" in proc.stderr
    assert bad.read_bytes() == before
    proc = cli("validate", str(bad), "--json")
    payload = json.loads(proc.stdout)
    assert payload["ok"] is False and payload["version"] == 1
    assert {p["field"] for p in payload["error"]["problems"]} >= {"campaign"}
    assert all(p["line"] for p in payload["error"]["problems"])


def test_plan_json_has_the_documented_shape_and_spends_nothing(data_dir):
    proc = cli("plan", str(data_dir / "samples" / "launch-teaser.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert set(payload) == {"version", "ok", "campaign", "budget_usd", "est_cost_usd", "est_wall_seconds", "warnings",
                            "segments"}
    assert [list(s) for s in payload["segments"]] == [PLAN_COLUMNS] * 3
    assert payload["est_cost_usd"] == round(sum(s["est_cost_usd"] for s in payload["segments"]), 4)
    assert not (data_dir / "clips").exists() and not (data_dir / "campaigns").exists()


def test_plan_prints_a_readable_table(data_dir):
    proc = cli("plan", str(data_dir / "samples" / "launch-teaser.yaml"))
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["video", "#", "model"]
    assert "veo-3-1-fast" in proc.stdout and "Nothing was spent." in proc.stdout


def test_run_materializes_through_dagster_and_prints_the_finished_videos(data_dir):
    proc = cli("run", str(data_dir / "samples" / "social-ideas.csv"), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["ok"] and payload["status"] == "succeeded" and payload["campaign"] == "social-ideas"
    assert [o["video_id"] for o in payload["outputs"]] == ["morning", "ocean", "neon"]
    for out in payload["outputs"]:
        assert_video(out["output_path"], out["target_seconds"])
    # the run is recorded in the Dagster instance the UI reads
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(payload["run_id"])
        assert run.tags["dagster/partition"] == "social-ideas"
        assert "social-ideas" in instance.get_dynamic_partitions("campaigns")


def test_run_of_an_invalid_file_exits_1_before_touching_dagster(data_dir):
    bad = write(data_dir / "x.json", '{"campaign": "x", "videos": []}')
    proc = cli("run", str(bad))
    assert proc.returncode == 1
    assert "videos" in proc.stderr and "at least 1" in proc.stderr
    assert not any((data_dir.parent.parent / "dagster_home").glob("storage/*"))


def test_bad_environment_variable_is_named(data_dir, monkeypatch):
    monkeypatch.setenv("VIDEO_PIPELINE_MODE", "turbo")
    proc = cli("plan", str(data_dir / "samples" / "launch-teaser.yaml"))
    assert proc.returncode == 1 and "VIDEO_PIPELINE_MODE" in proc.stderr and "local" in proc.stderr

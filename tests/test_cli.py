"""The `video-pipeline` command as a user runs it: exit codes, messages, the --json shapes, a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_video, write
from video_pipeline.config import child_environment
from video_pipeline.planning.planner import PLAN_COLUMNS


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "video_pipeline.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=cwd, timeout=300)


@pytest.mark.slow
def test_validate_accepts_the_samples(data_dir):
    for sample in ("launch-teaser.yaml", "product-stills.json", "social-ideas.csv", "quick-clips.jsonl", "long-form.yaml"):
        proc = cli("validate", str(data_dir / "samples" / sample))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("ok: ")


@pytest.mark.slow
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


@pytest.mark.slow
def test_plan_json_has_the_documented_shape_and_spends_nothing(data_dir):
    proc = cli("plan", str(data_dir / "samples" / "launch-teaser.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert set(payload) == {"version", "ok", "campaign", "budget_usd", "est_cost_usd", "est_wall_seconds", "warnings",
                            "segments"}
    assert [list(s) for s in payload["segments"]] == [PLAN_COLUMNS] * 3
    assert payload["est_cost_usd"] == round(sum(s["est_cost_usd"] for s in payload["segments"]), 4)
    assert not (data_dir / "clips").exists() and not (data_dir / "campaigns").exists()


@pytest.mark.slow
def test_plan_prints_a_readable_table(data_dir):
    proc = cli("plan", str(data_dir / "samples" / "launch-teaser.yaml"))
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["video", "#", "model"]
    assert "veo-3-1-fast" in proc.stdout and "Nothing was spent." in proc.stdout


@pytest.fixture
def multiprocess(monkeypatch):
    """The default executor (the suite's runs are in process): each step forked from the run's forkserver."""
    monkeypatch.setenv("VIDEO_PIPELINE_EXECUTOR", "multiprocess")


@pytest.mark.slow
def test_run_materializes_through_dagster_and_prints_the_finished_videos(data_dir, multiprocess):
    home = data_dir.parent.parent / "dagster_home"
    (home / "dagster.yaml").unlink()                  # a new home: the run writes the project's dagster.yaml
    proc = cli("run", str(data_dir / "samples" / "social-ideas.csv"), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["ok"] and payload["status"] == "succeeded" and payload["campaign"] == "social-ideas"
    assert [o["video_id"] for o in payload["outputs"]] == ["morning", "ocean", "neon"]
    for out in payload["outputs"]:
        assert_video(out["output_path"], out["target_seconds"])
    assert payload["report_path"] == str(data_dir / "outputs" / "social-ideas" / "report.html")
    assert "<video" in open(payload["report_path"]).read()
    # the run is recorded in the Dagster instance the UI reads
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(payload["run_id"])
        assert run.tags["dagster/partition"] == "social-ideas"
        assert "social-ideas" in instance.get_dynamic_partitions("campaigns")
        # on the executor the settings name: each of the 9 steps (8 stages, the credentials check) in its own process
        started = [e.dagster_event.event_specific_data.metadata["pid"].value
                   for e in instance.all_logs(payload["run_id"]) if e.dagster_event
                   and e.dagster_event.event_type_value == "STEP_WORKER_STARTED"]
        # each step's stdout and stderr kept for the UI (not mirrored: the steps' output is a log file here)
        logs = instance.compute_log_manager
        captured = [logs.build_log_key_for_run(payload["run_id"], e.dagster_event.event_specific_data.file_key)
                    for e in instance.all_logs(payload["run_id"])
                    if e.dagster_event and e.dagster_event.event_type_value == "LOGS_CAPTURED"]
        assert type(logs).__name__ == "StepLogs" and len(captured) == 9
        assert all(logs.is_capture_complete(key) and logs.get_log_data(key).stdout is not None for key in captured)
    assert len(started) == len(set(started)) == 9


@pytest.mark.slow
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


def on_terminal(*args: str, columns: int = 120) -> tuple[int, str]:
    """Run the CLI with stdout on a pseudo-terminal, as a person at a shell sees it; returns (exit code, text)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.Popen([sys.executable, "-m", "video_pipeline.cli", *args], stdin=slave, stdout=slave,
                            stderr=subprocess.DEVNULL, env={**env, "TERM": "xterm-256color"}, close_fds=True)
    os.close(slave)
    out = b""
    try:
        while True:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:   # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=300)
    finally:
        os.close(master)
    return code, out.decode("utf-8", "replace")


def plain(text: str) -> str:
    """Terminal output without its escape codes, one line per carriage return or newline."""
    import re

    return "\n".join(line.rstrip() for line in re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)))


@pytest.mark.slow
def test_run_on_a_terminal_shows_bars_for_segments_and_dollars(data_dir, multiprocess):
    code, raw = on_terminal("run", str(data_dir / "samples" / "quick-clips.jsonl"))
    text = plain(raw)
    assert code == 0, text
    assert "\x1b[" in raw   # drawn by rich, not printed as lines
    bars = [line for line in text.splitlines() if line.startswith(("segments ", "dollars "))]
    assert any("━" in line for line in bars)
    assert any("2/2 done  0 running  0 queued  0 failed" in line for line in bars), bars[-4:]
    # offline renders spend nothing: the dollars are what the clips would cost at the providers
    assert any("would cost $1.30 of $1.30 estimated" in line for line in bars), bars[-4:]
    assert not any(" spent" in line for line in bars)
    assert "segments: " not in text   # the plain lines are for pipes only
    assert f"report: {data_dir / 'outputs' / 'quick-clips' / 'report.html'}" in text


def _ledger_with_one_job_each_way(data_dir):
    """A campaign in the ledger as a run leaves it mid-way: one segment stored, one at the provider, one failed."""
    from video_pipeline.config import child_environment, Settings
    from video_pipeline.jobs.ledger import JobLedger

    ledger = JobLedger(Settings.from_env().ledger_url)
    try:
        common = {"campaign": "mid-run", "provider": "kling", "attempt": 1, "limit": 5}
        done = ledger.try_begin(job_key="a" * 32, video_id="intro", segment_index=0, model="kling-3-0", **common)
        ledger.submitted(done, "kling-job-1")
        ledger.succeeded(done, output_url="https://example.invalid/1.mp4", url_expires_at=None, latency_seconds=170.0,
                         cost_usd=0.84)
        ledger.stored("a" * 32, uri="file:///clips/a.mp4", sha256="0" * 64)
        flying = ledger.try_begin(job_key="b" * 32, video_id="intro", segment_index=1, model="kling-3-0", **common)
        ledger.submitted(flying, "kling-job-2")
        ledger.heartbeat(flying, "running")
        failed = ledger.try_begin(job_key="c" * 32, video_id="outro", segment_index=0, model="kling-3-0", **common)
        ledger.submitted(failed, "kling-job-3")
        ledger.failed(failed, error="kling: task failed: content policy", kind="terminal")
    finally:
        ledger.dispose()


@pytest.mark.slow
def test_status_shows_in_flight_done_failed_and_cost_as_lines_or_tables(data_dir):
    _ledger_with_one_job_each_way(data_dir)
    proc = cli("status", "mid-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "mid-run: 3 segment(s): 1 in flight, 1 done, 1 failed [failed 1, running 1, stored 1], $0.84 spent"
    assert "  in flight: intro[1] kling-3-0 on kling (running)" in lines
    assert "  failed: outro[0] kling-3-0: kling: task failed: content policy" in lines

    code, raw = on_terminal("status", "mid-run")
    text = plain(raw)
    assert code == 0 and "\x1b[" in raw
    row = next(line for line in text.splitlines() if "mid-run" in line and "│" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == ["mid-run", "3", "1", "1", "1", "3", "$0.84"]
    assert "In flight" in text and "kling-job-2" in text and "Failed" in text and "content policy" in text

    payload = json.loads(cli("status", "mid-run", "--json").stdout)   # the documented shape (fields only added)
    assert set(payload["campaigns"][0]) == {"campaign", "segments", "jobs", "states", "in_flight", "failed", "cost_usd",
                                            "uncertain", "would_cost", "spent"}
    assert payload["campaigns"][0]["cost_usd"] == 0.84 and payload["campaigns"][0]["would_cost"] is False
    assert payload["campaigns"][0]["states"] == {"stored": 1, "running": 1, "failed": 1}


@pytest.mark.slow
def test_a_failed_run_prints_the_failing_steps_own_error_in_one_line_and_exits_3(data_dir, monkeypatch,
                                                                                  multiprocess):
    """Not Dagster's "Error occurred while executing op", nor a traceback: the cause, named by its step."""
    spec = write(data_dir / "nofakes.yaml", "campaign: nofakes\nvideos:\n  - id: v\n    target_seconds: 5\n"
                                            "    shots:\n      - prompt: a kite over a beach\n")
    monkeypatch.setenv("VIDEO_PIPELINE_MODE", "fake")
    monkeypatch.setenv("VIDEO_PIPELINE_FAKES_PORT", "1")        # nothing answers there
    proc = cli("run", str(spec))
    assert proc.returncode == 3, proc.stderr
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith("error: generated_segments: VIDEO_PIPELINE_MODE=fake but no fake servers answer")
    assert "Error occurred while executing" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    payload = json.loads(cli("run", str(spec), "--json").stdout)
    assert payload["ok"] is False and payload["errors"] == [error.removeprefix("error: ")]
    assert "Exit codes: 0 success" in cli("--help").stdout


@pytest.mark.slow
def test_run_submit_queues_the_run_and_the_daemon_runs_it(data_dir, tmp_path):
    """`run --submit` returns once the run is in the instance's queue (Dagster's default coordinator queues, as the
    UI's Launch button does), tagged like the sensor's runs; the daemon then starts it and it materializes every
    stage in its own process."""
    import signal
    import time

    from dagster import DagsterInstance, DagsterRunStatus

    from video_pipeline.config import PROJECT_ROOT

    proc = cli("run", str(data_dir / "samples" / "quick-clips.jsonl"), "--submit", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["ok"] and payload["status"] == "submitted" and payload["run_status"] == "queued", payload
    assert payload["campaign"] == "quick-clips" and payload["outputs"] == [] and payload["report_path"] is None
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(payload["run_id"])
    # the run queue's per-provider and per-tier limits apply to it
    assert run.status == DagsterRunStatus.QUEUED
    assert run.tags["dagster/partition"] == "quick-clips" and run.tags["campaign/tier"] == "standard"
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                              cwd=PROJECT_ROOT, env=child_environment(), stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "daemon.log", "w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 280
        with DagsterInstance.get() as instance:
            while run.status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                assert time.monotonic() < deadline, (run.status, (tmp_path / "daemon.log").read_text()[-2000:])
                time.sleep(1)
                run = instance.get_run_by_id(payload["run_id"])
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(30)
    assert run.status == DagsterRunStatus.SUCCESS
    for video, seconds in (("sparkle", 8), ("restyle", 4)):
        assert_video(data_dir / "outputs" / "quick-clips" / f"{video}.mp4", seconds)

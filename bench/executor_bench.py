"""What running a step in its own process costs (issue 20): the demo campaign through `video-pipeline run` on each
executor, side by side, and the import of the definitions every step process needs.

    .venv/bin/python bench/executor_bench.py [--repeat 3]

Each repeat runs, in alternation, `python -c "import dagster"` and `python -c "import definitions"` five times, then
the demo (`data/samples/launch-teaser.yaml`, local mode, the tests' fast settings) three ways, each in a fresh data
directory and Dagster home (its dagster.yaml the one a run writes for a new home): in process
(`VIDEO_PIPELINE_EXECUTOR=in_process`), multiprocess with each step forked from a preloaded forkserver (the
default now) and multiprocess with Dagster's default start (`spawn`: a new Python per step, as before). Per-step overhead is read from each multiprocess run's event log: from the executor's
"Launching subprocess" to the step's own STEP_START. The load average is printed beside every figure: this machine
is shared, so compare figures of one run only.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAST = {"VIDEO_PIPELINE_TIME_SCALE": "0.002", "VIDEO_PIPELINE_X264_PRESET": "ultrafast", "VIDEO_PIPELINE_MODE": "local"}
#: the CLI with Dagster's default start method (spawn) instead of the forkserver: what every step paid before
SPAWN = ("import sys, resources.execution as e; e.FORKSERVER = {'spawn': {}}; "
         "e.start_step_processes = lambda settings: None; "
         "from video_pipeline.cli.main import main; sys.argv = ['video-pipeline'] + sys.argv[1:]; sys.exit(main())")
CLI = "import sys; from video_pipeline.cli.main import main; sys.argv = ['video-pipeline'] + sys.argv[1:]; sys.exit(main())"
WAYS = {"in_process": ("in_process", CLI), "forkserver": ("multiprocess", CLI), "spawn": ("multiprocess", SPAWN)}


def load() -> float:
    return os.getloadavg()[0]


def clean_env() -> dict[str, str]:
    """Each child's environment: this one's without the caller's VIDEO_PIPELINE_* (the bench sets its own)."""
    from video_pipeline.config import child_environment

    return {k: v for k, v in child_environment().items() if not k.startswith("VIDEO_PIPELINE_") and k != "FORCE_COLOR"}


def become_subreaper() -> None:
    """Orphaned descendants (the forkserver outlives the CLI by a moment) are handed to this process, so their CPU
    seconds are counted too (Linux's PR_SET_CHILD_SUBREAPER)."""
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)


def reap() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def children_cpu() -> float:
    """CPU seconds of every finished child process and its descendants (ffmpeg, step processes, the forkserver):
    what a run costs this machine, whatever else is running on it."""
    reap()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_seconds(module: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-W", "ignore", "-c", f"import {module}"], cwd=ROOT, check=True,
                   env=clean_env())
    return time.monotonic() - started


def demo(way: str) -> dict:
    executor, code = WAYS[way]
    root = Path(tempfile.mkdtemp(prefix="vp-exec-bench-"))
    try:
        data, home = root / "data", root / "home"
        data.mkdir()
        home.mkdir()
        shutil.copy(ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
        shutil.copytree(ROOT / "data" / "samples", data / "samples")
        env = {**clean_env(), **FAST, "VIDEO_PIPELINE_DATA_DIR": str(data), "DAGSTER_HOME": str(home),
               "VIDEO_PIPELINE_EXECUTOR": executor}
        before, cpu = load(), children_cpu()
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", code, "run", str(data / "samples" / "launch-teaser.yaml"),
                               "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        payload = json.loads(proc.stdout)
        assert payload["status"] == "succeeded", proc.stderr[-2000:]
        return {"way": way, "wall": wall, "cpu": children_cpu() - cpu, "load": (before + load()) / 2,
                "steps": step_overheads(home)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def step_overheads(home: Path) -> list[float]:
    """Seconds from the executor launching each step's process to the step starting in it (multiprocess only)."""
    [db] = [p for p in (home / "history" / "runs").glob("*.db") if p.name != "index.db"]
    launched, started = {}, {}
    with sqlite3.connect(db) as conn:
        for (event,) in conn.execute("SELECT event FROM event_logs ORDER BY id"):
            record = json.loads(event)
            kind = (record.get("dagster_event") or {}).get("event_type_value")
            step = record.get("step_key")
            if kind == "STEP_WORKER_STARTING":
                launched[step] = record["timestamp"]
            elif kind == "STEP_START" and step in launched:
                started[step] = record["timestamp"]
    return [started[s] - launched[s] for s in started]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    become_subreaper()
    imports: dict[str, list[float]] = {"dagster": [], "definitions": []}
    runs: list[dict] = []
    for _ in range(args.repeat):
        for _ in range(5):
            for module in imports:
                imports[module].append(import_seconds(module))
        for way in WAYS:
            runs.append(demo(way))
            print(f"{way:>11}: {runs[-1]['wall']:.2f} s, CPU {runs[-1]['cpu']:.1f} s (load {runs[-1]['load']:.1f})",
                  flush=True)
    print(f"\nimport (median of {len(imports['dagster'])}): dagster {statistics.median(imports['dagster']):.2f} s, "
          f"definitions {statistics.median(imports['definitions']):.2f} s")
    walls = {way: statistics.median(r["wall"] for r in runs if r["way"] == way) for way in WAYS}
    cpus = {way: statistics.median(r["cpu"] for r in runs if r["way"] == way) for way in WAYS}
    loads = statistics.mean(r["load"] for r in runs)
    print(f"demo wall (median of {args.repeat}, load average {loads:.1f}):")
    for way in WAYS:
        steps = [s for r in runs if r["way"] == way for s in r["steps"]]
        overhead = f", step launch → start median {statistics.median(steps):.2f} s" if steps else ""
        print(f"  {way:>11}: {walls[way]:.2f} s = {walls[way] / walls['in_process']:.2f}x in process, CPU "
              f"{cpus[way]:.1f} s = {cpus[way] / cpus['in_process']:.2f}x{overhead}")


if __name__ == "__main__":
    main()

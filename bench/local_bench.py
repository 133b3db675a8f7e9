"""Many one-shot videos in local mode (issue 20): the run's seconds per video against the work it cannot avoid.

    .venv/bin/python bench/local_bench.py                          # 200 videos at VIDEO_PIPELINE_TIME_SCALE 0 and 0.02
    .venv/bin/python bench/local_bench.py --videos 40 --time-scale 0

For each time scale, a campaign of N one-shot 4 s videos (a CSV, as a user writes one) goes through
`video-pipeline run` in local mode: the local provider renders every clip with ffmpeg, then the videos are
assembled, checked, signed and reported. The run executes in process (VIDEO_PIPELINE_EXECUTOR=in_process) so the
bench can count the local provider's polls per job in the run's own process; every other setting is the
default (the x264 preset, the render slots: one per core).

The floor, measured in the same bench run on the same machine, one at a time: the CPU seconds (the process and
its ffmpeg children) of rendering one of the campaign's clips through the local provider, and of assembling one
of its videos from the run's stored clips through `stages.assembled_outputs` (join, sound, subtitles, review,
stills, Content Credentials), each the mean of --samples (10). With C cores, the run cannot take less than
N x (render + assembly) / C: the ratio printed is the run's wall over that. Targets: at most 1.1x, and at most 12
polls per job at both time scales.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: the run, in a child process: the CLI with the local provider's polls counted per job (written to argv[1])
COUNTED_RUN = """
import collections, json, sys
from video_pipeline.providers.local import LocalProvider
polls = collections.Counter()
answer = LocalProvider.poll
async def poll(self, job_id):
    polls[job_id] += 1
    return await answer(self, job_id)
LocalProvider.poll = poll
from video_pipeline.cli.main import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump(polls, out)
sys.exit(code)
"""


def cpu_now() -> float:
    """CPU seconds of this process and its finished children (the ffmpeg runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def campaign_csv(path: Path, videos: int) -> Path:
    lines = ["id,prompt,target_seconds"]
    lines += [f'v{i:04d},"A paper lantern drifts over a night river, take {i}",4' for i in range(videos)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(videos: int, time_scale: float, root: Path) -> dict:
    from video_pipeline.config import child_environment

    data, home = root / "data", root / "home"
    data.mkdir(parents=True)
    shutil.copy(ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
    campaign = campaign_csv(data / "lanterns.csv", videos)
    env = {k: v for k, v in child_environment().items() if not k.startswith("VIDEO_PIPELINE_")}
    env.update({"VIDEO_PIPELINE_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "VIDEO_PIPELINE_MODE": "local",
                "VIDEO_PIPELINE_TIME_SCALE": str(time_scale), "VIDEO_PIPELINE_EXECUTOR": "in_process"})
    counts = root / "polls.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", COUNTED_RUN, str(counts), "run", str(campaign), "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"the run failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    payload = json.loads(proc.stdout)
    polls = json.loads(counts.read_text())
    assembled = sum(1 for o in payload["outputs"] if o["state"] == "assembled")
    return {"wall": wall, "assembled": assembled, "jobs": len(polls), "polls": sum(polls.values()),
            "max_polls": max(polls.values(), default=0), "data": data, "campaign": payload["campaign"],
            "steps": step_seconds(home, payload["run_id"])}


def step_seconds(home: Path, run_id: str) -> dict[str, float]:
    """Each step's seconds from its STEP_START to its STEP_SUCCESS, from the run's event log."""
    import sqlite3

    began, took = {}, {}
    with sqlite3.connect(home / "history" / "runs" / f"{run_id}.db") as db:
        for (event,) in db.execute("SELECT event FROM event_logs ORDER BY id"):
            record = json.loads(event)
            kind = (record.get("dagster_event") or {}).get("event_type_value")
            if kind == "STEP_START":
                began[record["step_key"]] = record["timestamp"]
            elif kind == "STEP_SUCCESS" and record["step_key"] in began:
                took[record["step_key"]] = round(record["timestamp"] - began[record["step_key"]], 1)
    return took


def render_floor(data: Path, samples: int) -> float:
    """Mean CPU seconds of one clip rendered through the local provider alone (time scale 0: no simulated wait)."""
    from video_pipeline.planning.catalog import load_catalog
    from video_pipeline.providers.base import GenerationRequest, JobState
    from video_pipeline.providers.local import LocalProvider

    catalog = load_catalog(data / "catalog.yaml")
    spent = []
    with tempfile.TemporaryDirectory(prefix="render-floor-") as work:
        local = LocalProvider(catalog, Path(work), time_scale=0.0)

        async def one(i: int) -> float:
            before = cpu_now()
            job = await local.submit(GenerationRequest(
                job_key=f"floor-{i}", model="veo-3-1-fast", route_model_id="veo-3.1-fast-generate-preview",
                category="text_to_video", prompt=f"A paper lantern drifts over a night river, take {i}", seconds=4,
                resolution="720p", aspect_ratio="16:9", label=f"v{i:04d} 1/1"))
            while (status := await local.poll(job)).state not in (JobState.SUCCEEDED, JobState.FAILED):
                await asyncio.sleep(0.01)
            if status.state is not JobState.SUCCEEDED:
                raise SystemExit(f"a floor render failed: {status.error}")
            return cpu_now() - before

        async def all_of_them() -> None:
            for i in range(samples):
                spent.append(await one(i))
            await local.aclose()

        asyncio.run(all_of_them())
    return sum(spent) / len(spent)


def assembly_floor(data: Path, campaign_id: str, samples: int) -> float:
    """Mean CPU seconds of one of the run's videos assembled alone, from the run's own stored clips."""
    import pyarrow.parquet as pq

    from video_pipeline.config import Settings
    from video_pipeline.flow import stages
    from video_pipeline.spec.campaign import Campaign
    from video_pipeline.tables import STORED_CLIPS

    settings = Settings.from_env({}, data_dir=data, mode="local", time_scale=0.0)
    tables = data / "tables"
    clips = STORED_CLIPS.frame(pq.read_table(tables / "stored_clips" / f"{campaign_id}.parquet"))
    campaign = Campaign.from_snapshot(json.loads((tables / "campaign" / f"{campaign_id}.json").read_text()))
    spent = []
    for video in sorted(set(clips["video_id"]))[:samples]:   # rewrites that video's finished file, as the run did
        before = cpu_now()
        row = stages.assembled_outputs(clips[clips["video_id"] == video], settings, campaign).iloc[0]
        spent.append(cpu_now() - before)
        if row["state"] != "assembled":
            raise SystemExit(f"a floor assembly failed: {row['error']}")
    return sum(spent) / len(spent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--time-scale", type=float, nargs="+", default=[0.0, 0.02])
    parser.add_argument("--samples", type=int, default=10, help="renders and assemblies timed alone for the floor")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    failed = False
    for scale in args.time_scale:
        with tempfile.TemporaryDirectory(prefix="local-bench-") as tmp:
            result = run(args.videos, scale, Path(tmp))
            render = render_floor(result["data"], args.samples)
            assembly = assembly_floor(result["data"], result["campaign"], args.samples)
        floor = args.videos * (render + assembly) / cores
        per_job = result["polls"] / max(result["jobs"], 1)
        ratio = result["wall"] / floor
        print(f"time scale {scale:g}: {result['assembled']}/{args.videos} videos in {result['wall']:.1f} s = "
              f"{result['wall'] / args.videos:.3f} s per video; floor (render {render:.3f} s + assembly "
              f"{assembly:.3f} s CPU per video, over {cores} cores) {floor / args.videos:.3f} s per video: "
              f"{ratio:.2f}x (target <= 1.1x); polls {per_job:.2f} per job, at most {result['max_polls']} "
              f"(target <= 12); load average {os.getloadavg()[0]:.1f}")
        print("  steps (s): " + ", ".join(f"{k} {v}" for k, v in result["steps"].items())
              + f"; outside the steps: {result['wall'] - sum(result['steps'].values()):.1f}")
        failed |= result["assembled"] != args.videos or result["max_polls"] > 12
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Many campaigns at once, as users run them (issue 21, point 6): N `video-pipeline run` processes started together
in fake mode against one fleet of provider fakes, sharing one data directory, ledger and Dagster home.

    .venv/bin/python bench/scale_bench.py --campaigns 10 --videos 20      # 200 jobs
    .venv/bin/python bench/scale_bench.py --campaigns 10 --videos 200     # 2,000 jobs

Each campaign is a list of one-shot 4 s videos pinned to Veo 3.1 Fast (the Gemini API fake; account concurrency
from the catalog). Every fake job takes `--latency` seconds and the catalog's profile is scaled to match, so the
per-model bound on the generation span is ceil(jobs / concurrency) x latency. Reported: the span (first submit to
last job done, from the ledger) against that bound, jobs per second, polls per job (the fake's own count of status
requests), the most jobs in flight at the fake against the limit, the assembly tail (last job done to last run
exited, with the videos it assembled) and the peak memory of all the runs' processes together (sampled every
0.25 s from /proc). Exit status 1 when a run fails or the limit was exceeded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from procs import tree_rss  # noqa: E402
from tests.support.services import fleet_on_free_ports  # noqa: E402
from video_pipeline.config import child_environment  # noqa: E402
from video_pipeline.planning.catalog import load_catalog  # noqa: E402

MODEL = "veo-3-1-fast"


def campaign_csv(path: Path, index: int, videos: int) -> None:
    rows = ["id,prompt,target_seconds,model"]
    rows += [f'v{v:04d},"Campaign {index}, shot {v}: a paper lantern drifts over a night harbour",4,{MODEL}'
             for v in range(videos)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--videos", type=int, default=20, help="one-shot videos (jobs) per campaign")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds each fake job takes")
    args = parser.parse_args()

    catalog = load_catalog(ROOT / "data" / "catalog.yaml")
    spec = catalog.get(MODEL)
    scale = args.latency / spec.latency.p50_seconds
    work = Path(tempfile.mkdtemp(prefix="vp-scale-"))
    data = work / "data"
    data.mkdir()
    shutil.copy(ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    files = []
    for c in range(args.campaigns):
        path = work / f"scale-{c:02d}.csv"
        campaign_csv(path, c, args.videos)
        files.append(path)

    fleet, base = fleet_on_free_ports(latency=args.latency, work_dir=work / "fakes", providers=["gemini"])
    env = child_environment({
        "VIDEO_PIPELINE_MODE": "fake", "VIDEO_PIPELINE_FAKES_PORT": str(base), "VIDEO_PIPELINE_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home), "VIDEO_PIPELINE_TIME_SCALE": f"{scale:g}", "VIDEO_PIPELINE_EXECUTOR": "in_process",
        "VIDEO_PIPELINE_X264_PRESET": "ultrafast"})
    peak = {"total": 0.0}
    stop = threading.Event()
    procs: list[subprocess.Popen] = []

    def sample() -> None:
        while not stop.wait(0.25):
            peak["total"] = max(peak["total"], tree_rss([p.pid for p in procs]) / 2**20)

    started = time.time()
    try:
        procs += [subprocess.Popen([sys.executable, "-m", "video_pipeline.cli", "run", str(f), "--json"], cwd=ROOT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for f in files]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results = [p.communicate(timeout=7200) for p in procs]
        ended = time.time()
        stop.set()
        sampler.join()
        codes = [p.returncode for p in procs]
        book = fleet.books["gemini"]
        polls = sum(1 for method, path in book.requests if method == "GET" and "/operations/" in path)
        in_flight = max(book.max_in_flight.values() or [0])
    finally:
        stop.set()
        fleet.stop()

    with sqlite3.connect(data / "ledger.sqlite") as db:
        rows = db.execute("select submitted_at, finished_at from provider_jobs where model = ?", (MODEL,)).fetchall()
    stamp = [(dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)) for a, b in rows if a and b]
    first = min(a for a, _ in stamp)
    last = max(b for _, b in stamp)
    span = (last - first).total_seconds()
    jobs = len(stamp)
    bound = math.ceil(jobs / spec.concurrency) * args.latency
    outputs = sum(len(json.loads(out).get("outputs", [])) for out, _ in results if out.strip().startswith("{"))
    tail = ended - last.replace(tzinfo=dt.timezone.utc).timestamp()
    report = {
        "campaigns": args.campaigns, "jobs": jobs, "latency_s": args.latency, "concurrency": spec.concurrency,
        "exit_codes": sorted(set(codes)), "span_s": round(span, 1), "bound_s": bound,
        "span_over_bound": round(span / bound, 3), "jobs_per_s": round(jobs / span, 2),
        "polls_per_job": round(polls / max(jobs, 1), 2), "max_in_flight": in_flight,
        "videos_assembled": outputs, "assembly_tail_s": round(tail, 1), "wall_s": round(ended - started, 1),
        "peak_rss_all_runs_mib": round(peak["total"]), "load_average": os.getloadavg()[0],
    }
    print(json.dumps(report, indent=2))
    for (out, err), code in zip(results, codes):
        if code != 0:
            print(f"a run exited {code}: {(err or out)[-1500:]}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if set(codes) == {0} and in_flight <= spec.concurrency else 1


if __name__ == "__main__":
    sys.exit(main())

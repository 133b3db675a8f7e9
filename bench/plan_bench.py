"""Benchmark: validate, route and plan campaigns of 10 and 10,000 shots, side by side in one run.

Usage: .venv/bin/python bench/plan_bench.py [--shots 10000] [--repeat 3]
Prints the median seconds for each size and the marginal time of the large plan over the small one.
Target (issue 3): marginal time <= 2 s on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from video_pipeline.spec.campaign import load_campaign  # noqa: E402
from video_pipeline.planning.catalog import load_catalog  # noqa: E402
from video_pipeline.config import PROJECT_ROOT  # noqa: E402
from video_pipeline.planning.planner import plan_campaign  # noqa: E402

TIERS = ["social", "standard", "premium"]


def campaign_dict(shots: int) -> dict:
    """A mixed campaign: videos of 1-4 shots, some long-form, flags varied deterministically."""
    videos, i = [], 0
    while i < shots:
        n = min(1 + i % 4, shots - i)
        videos.append({
            "id": f"v{len(videos):05d}",
            "target_seconds": [None, 12, 30, 60][len(videos) % 4],
            "continuity": "chained" if len(videos) % 7 == 0 else "parallel",
            "shots": [{"prompt": f"Shot {i + k}: a product on a table, light sweeping across, take {k}",
                       "has_human_subjects": (i + k) % 3 == 0, "complexity": "high_physics" if (i + k) % 5 == 0 else "normal",
                       "requires_character_consistency": (i + k) % 11 == 0} for k in range(n)],
        })
        i += n
    return {"campaign": f"bench-{shots}", "style": "warm light, 35mm", "defaults": {"quality_tier": "premium"},
            "videos": videos}


def run_once(path: Path, data_dir: Path) -> tuple[float, int]:
    start = time.perf_counter()
    campaign = load_campaign(path, data_dir)
    plan = plan_campaign(campaign, load_catalog(PROJECT_ROOT / "data" / "catalog.yaml"), data_dir,
                         on=dt.date(2026, 11, 24), enforce_budget=False)
    return time.perf_counter() - start, len(plan.segments)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", choices=["yaml", "json"], default="yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        files = {}
        for n in (10, args.shots):
            path = data_dir / f"bench-{n}.{args.format}"
            body = campaign_dict(n)
            path.write_text(yaml.safe_dump(body, sort_keys=False) if args.format == "yaml" else json.dumps(body))
            files[n] = path
        results: dict[int, list[float]] = {10: [], args.shots: []}
        segments = {}
        for _ in range(args.repeat):   # interleaved, so both sizes see the same machine noise
            for n, path in files.items():
                seconds, segments[n] = run_once(path, data_dir)
                results[n].append(seconds)
    small, large = statistics.median(results[10]), statistics.median(results[args.shots])
    print(json.dumps({
        "format": args.format, "shots": args.shots, "segments": segments[args.shots],
        "median_seconds_10_shots": round(small, 4), f"median_seconds_{args.shots}_shots": round(large, 4),
        "marginal_seconds": round(large - small, 3), "target_marginal_seconds": 2.0,
        "runs": {str(k): [round(x, 4) for x in v] for k, v in results.items()},
    }, indent=2))


if __name__ == "__main__":
    main()

"""Estimated against billed cost (issue 13): every sample campaign, and one built to exercise fixed clip lengths,
retries and fallbacks, run through campaign_job (the Dagster job, through generation) in live mode against the
providers' fakes over real HTTP. The fakes bill each job by the provider's rule and keep an invoice; the ledger
records what it believes was billed. Per campaign: the plan's estimate, the ledger's actual, the invoice, and how
far the estimate is from the invoice.

Usage: .venv/bin/python bench/cost_bench.py [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.pipeline import (  # noqa: E402  (the tests' job runner and live settings against the fakes)
    GENERATION,
    TunedProviders,
    ephemeral_instance,
    live_settings,
    materialized,
    run_campaign_job,
)
from tests.support.services import wait_until  # noqa: E402
from video_pipeline.config import PROJECT_ROOT, Settings  # noqa: E402
from video_pipeline.jobs.ledger import JobLedger  # noqa: E402
from video_pipeline.providers.fakes.fleet import start_fleet  # noqa: E402
from video_pipeline.jobs.spend import campaign_spend  # noqa: E402

#: Kling bills 5 or 10 s clips, MiniMax 6 or 10 s: shots whose lengths fall between; one Veo job refused by
#: content policy (falls back to the next model), one Kling job failed by the provider (retried on Kling)
MIXED = """\
campaign: clip-lengths-and-fallbacks
defaults: {quality_tier: standard, subtitles: none}
videos:
  - id: kling-seven
    target_seconds: 7
    shots: [{prompt: "A lighthouse beam sweeps the fog", model: kling-3-0}]
  - id: kling-twelve
    target_seconds: 12
    shots: [{prompt: "A fox crosses a snowy field", model: kling-3-0},
            {prompt: "The fox stops and looks back", model: kling-3-0}]
  - id: hailuo-eight
    target_seconds: 8
    shots: [{prompt: "Waves roll onto black sand", model: hailuo-02}]
  - id: veo-pair
    target_seconds: 14
    shots: [{prompt: "A cyclist climbs a mountain pass", model: veo-3-1-fast},
            {prompt: "The cyclist reaches the summit at dawn", model: veo-3-1-fast}]
  - id: seedance-nine
    target_seconds: 9
    shots: [{prompt: "Paper lanterns rise over a river", model: seedance-2-0}]
  - id: wan-eleven
    target_seconds: 11
    shots: [{prompt: "A train winds through terraced hills", model: wan-2-6}]
  - id: veo-trio
    target_seconds: 18
    shots: [{prompt: "A chef plates a dessert", model: veo-3-1-fast},
            {prompt: "Steam rises from the plate", model: veo-3-1-fast},
            {prompt: "The guest takes a first bite", model: veo-3-1-fast}]
  - id: hailuo-pair
    target_seconds: 12
    shots: [{prompt: "Kites over a windy beach", model: hailuo-02},
            {prompt: "A kite string snaps", model: hailuo-02}]
"""
FAULTS = {"gemini": ["fail-policy"], "kling": ["fail-retryable"]}


def run_campaign(path: Path, settings: Settings, fleet, instance) -> dict:
    """campaign_job through generation (the campaign's own budget applies), against the fakes."""
    before = {name: {line["job_id"] for line in book.invoice()["lines"]} for name, book in fleet.books.items()}
    result = run_campaign_job(instance, settings, path, through=GENERATION,
                              providers=TunedProviders(latency_scale=settings.time_scale))
    plan, out = result.output_for_node("routed_job_plans"), result.output_for_node("generated_segments")
    generation = materialized(result, "generated_segments")
    # every job the fakes count has ended (a cancelled stuck job would still be pending)
    wait_until(lambda: fleet.invoice()["pending_usd"] == 0, 10, "every job on the fakes ended")
    billed = sum(line["amount_usd"] for name, book in fleet.books.items() for line in book.invoice()["lines"]
                 if line["job_id"] not in before[name])
    campaign = str(plan["campaign"].iloc[0])
    ledger = JobLedger(settings.ledger_url)
    try:
        spend = campaign_spend(ledger, campaign)
    finally:
        ledger.dispose()
    estimate = materialized(result, "routed_job_plans")["est_cost_usd"]
    return {"campaign": campaign, "segments": len(plan), "jobs": int(spend.total("jobs")),
            "fallbacks": generation["fallbacks_taken"], "failed": int((out["state"] != "succeeded").sum()),
            "estimated_usd": round(estimate, 4), "ledger_usd": spend.total("actual_usd"),
            "invoice_usd": round(billed, 4),
            "error_pct": round(100 * (billed - estimate) / estimate, 2) if estimate else 0.0,
            "ledger_vs_invoice_usd": round(spend.total("actual_usd") - billed, 4),
            "seconds": round(generation["wall_seconds"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vp-cost-bench-"))
    data = root / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "samples", data / "samples")
    shutil.copy(PROJECT_ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
    (data / "mixed.yaml").write_text(MIXED, encoding="utf-8")
    rows = []
    fleet = start_fleet(latency=0.3, work_dir=root / "fakes")
    try:
        # live mode against the fakes: every adapter's base URL and key are the fakes', nothing reads the environment
        settings = live_settings(fleet, Settings(data_dir=data, time_scale=0.01, x264_preset="ultrafast"))
        files = sorted(p for p in (data / "samples").iterdir() if p.is_file()) + [data / "mixed.yaml"]
        with ephemeral_instance() as instance:
            for path in files:
                if path.name == "mixed.yaml":
                    for provider, faults in FAULTS.items():
                        fleet.books[provider].faults.add("job", *faults)
                rows.append({"file": path.name, **run_campaign(path, settings, fleet, instance)})
    finally:
        fleet.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| file | segments | jobs | fallbacks | estimated | ledger | invoice | invoice vs estimate | ledger − invoice |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['file']} | {r['segments']} | {r['jobs']} | {r['fallbacks']} | ${r['estimated_usd']:.2f} | "
              f"${r['ledger_usd']:.2f} | ${r['invoice_usd']:.2f} | {r['error_pct']:+.1f}% | "
              f"${r['ledger_vs_invoice_usd']:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

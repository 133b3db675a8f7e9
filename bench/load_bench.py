"""Load test of the production profile: N campaign runs launched at once through the run queue on PostgreSQL.

    .venv/bin/python bench/load_bench.py            # 20 runs; figures for BENCHMARKS.md ("Production")

Starts a fresh PostgreSQL database, moto's S3 server, the fake provider fleet (latencies = the catalog's × the time
scale), dagster-webserver and dagster-daemon on deploy/production/dagster.yaml; submits every run through the
webserver (the QueuedRunCoordinator queues them, the daemon starts them within the queue's limits) and waits.
Checks: every run succeeded, no storage error in any run's events or the daemon's log, and no model ever had more
jobs in flight at its fake provider than its account concurrency. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from production_stack import fake_model_limits, max_in_flight, production_stack  # noqa: E402

CAMPAIGN = """version: 1
campaign: {cid}
budget_usd: 12
defaults: {{quality_tier: social, aspect_ratio: "16:9", resolution: 720p}}
videos:
  - id: teaser
    target_seconds: 12
    shots:
      - prompt: "Campaign {i}: a glass bottle of cold brew sweating on a cafe counter at sunrise"
      - prompt: "Campaign {i}: coffee pours over ice, slow motion"
  - id: product-still
    target_seconds: 5
    shots:
      - prompt: "Campaign {i}: the bottle turns slowly as light sweeps across its label"
        image: samples/media/bottle.png
"""
STORAGE_ERRORS = re.compile(r"database is locked|OperationalError|DatabaseError|could not serialize|deadlock detected|"
                            r"too many clients|psycopg2\.errors", re.IGNORECASE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=0.05,
                        help="VIDEO_PIPELINE_TIME_SCALE: fake jobs take the catalog's latency x this")
    parser.add_argument("--executor", default="in_process", choices=("in_process", "multiprocess"),
                        help="steps in the run worker's process (the default: imports once per run) or one per step")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()

    env = {"VIDEO_PIPELINE_TIME_SCALE": str(args.time_scale), "VIDEO_PIPELINE_X264_PRESET": "ultrafast",
           "VIDEO_PIPELINE_EXECUTOR": args.executor}
    # the campaigns use veo-3-1-fast (p50 20 s, p95 45 s) and kling-3-0; one fleet latency, Veo Fast's, scaled
    with production_stack(env, fleet_latency=20 * args.time_scale, fleet_latency_p95=45 * args.time_scale) as (stack, fleet):
        stack.activate()
        from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

        from video_pipeline.config import Settings
        from video_pipeline.flow.intake import accept
        from video_pipeline.flow.profiles import campaign_run_tags

        settings = Settings.from_env()
        campaigns = []
        for i in range(args.runs):
            cid = f"load-{i:02d}"
            path = stack.data_dir / f"{cid}.yaml"
            path.write_text(CAMPAIGN.format(cid=cid, i=i))
            accepted = accept(path, settings, move=False)
            campaigns.append((accepted.campaign_id, campaign_run_tags(accepted.spec_path, settings)))
        terminal = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("campaigns", [c for c, _ in campaigns])
            started = time.monotonic()
            run_ids = [stack.submit(cid, tags) for cid, tags in campaigns]
            submitted = time.monotonic() - started
            peak_running = 0
            while True:
                runs = instance.get_runs(RunsFilter(run_ids=run_ids))
                running = sum(1 for r in runs if r.status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED))
                peak_running = max(peak_running, running)
                if all(r.status in terminal for r in runs):
                    break
                if time.monotonic() - started > args.timeout:
                    print(f"timed out; statuses: {[r.status.value for r in runs]}", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            wall = time.monotonic() - started
            statuses = {r.run_id: r.status.value for r in runs}
            unsuccessful = {}
            for r in runs:
                if r.status != DagsterRunStatus.SUCCESS:
                    logs = instance.all_logs(r.run_id)
                    unsuccessful[r.run_id] = [
                        f"{e.step_key}: {e.dagster_event.step_failure_data.error.to_string()[-1500:]}"
                        for e in logs if e.is_dagster_event and e.dagster_event.is_step_failure
                        and e.dagster_event.step_failure_data.error] or [
                        f"{e.dagster_event_type}: {(e.message or '')[:300]}" for e in logs[-8:]]
            with stack.pg().connect() as conn:
                from sqlalchemy import text

                events = conn.execute(text("SELECT count(*) FROM event_logs WHERE run_id = ANY(:r)"),
                                      {"r": run_ids}).scalar_one()
                bad_events = conn.execute(text("SELECT count(*) FROM event_logs WHERE run_id = ANY(:r) AND "
                                               "event ~* :p"), {"r": run_ids, "p": STORAGE_ERRORS.pattern}).scalar_one()
                ledger = dict(conn.execute(text("SELECT state, count(*) FROM provider_jobs GROUP BY state")).all())
                failures = [str(row[0])[:1500] for row in conn.execute(text(
                    "SELECT event FROM event_logs WHERE run_id = ANY(:r) AND (dagster_event_type IN "
                    "('STEP_FAILURE', 'RUN_FAILURE') OR event ~* :p)"), {"r": run_ids, "p": STORAGE_ERRORS.pattern})]
        daemon_log = (stack.work / "daemon.log").read_text(errors="replace")
        daemon_errors = len(STORAGE_ERRORS.findall(daemon_log))
        for line in daemon_log.splitlines():
            if STORAGE_ERRORS.search(line):
                failures.append(f"daemon: {line[:500]}")
        objects = stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix="video-pipeline/outputs/", MaxKeys=1000)
        outputs = sum(1 for o in objects.get("Contents", []) if o["Key"].endswith(".mp4"))
        in_flight = max_in_flight(fleet, fake_model_limits(fleet))

    over = [r for r in in_flight if r["limit"] is not None and r["max_in_flight"] > r["limit"]]
    succeeded = sum(1 for s in statuses.values() if s == "SUCCESS")
    result = {
        "runs": args.runs, "succeeded": succeeded, "executor": args.executor, "time_scale": args.time_scale,
        "submit_seconds": round(submitted, 2), "wall_seconds": round(wall, 1),
        "runs_per_minute": round(args.runs / wall * 60, 2), "peak_runs_in_progress": peak_running,
        "event_log_rows": events, "storage_errors_in_events": bad_events, "storage_errors_in_daemon_log": daemon_errors,
        "ledger_jobs_by_state": ledger, "outputs_in_bucket": outputs,
        "duplicate_submissions": fleet.duplicate_submissions(), "max_in_flight": in_flight,
        "unsuccessful_runs": unsuccessful,
    }
    print(json.dumps(result, indent=2))
    for failure in failures[:10]:
        print("failure:", failure, file=sys.stderr)
    print("\n| model | provider | jobs | max in flight | account limit |\n|---|---|---|---|---|")
    for r in in_flight:
        print(f"| {r['model']} | {r['provider']} | {r['submissions']} | {r['max_in_flight']} | {r['limit']} |")
    ok = (succeeded == args.runs and not bad_events and not daemon_errors and not over
          and not result["duplicate_submissions"])
    print(f"\n{'OK' if ok else 'FAILED'}: {succeeded}/{args.runs} runs succeeded in {wall:.1f}s "
          f"({result['runs_per_minute']} runs/min); limits exceeded: {over or 'none'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Capacity simulation: 10,000 segments across 50 campaigns on the production profile, against the fake providers.

    .venv/bin/python bench/capacity_sim.py          # figures for BENCHMARKS.md ("Production") and docs/deployment.md

The same stack as bench/load_bench.py (fresh PostgreSQL database, moto's S3, the fake fleet, webserver + daemon on
deploy/production/dagster.yaml). 50 campaigns of 25 videos × 8 shots (200 segments each, all Veo 3.1 Fast) are
submitted at once through the run queue; each run materializes prompt_batches → narration_tracks →
routed_job_plans → generated_segments, so every segment is a real provider job over HTTP, written to the ledger
on PostgreSQL, in a Dagster run whose events go to the same database. Storing and assembling clips is CPU work
per segment, measured by bench/load_bench.py, and left out here so the database's share is what is measured.

Fake jobs take --latency seconds (Veo Fast's 20 s p50 × the time scale); the model's account concurrency is raised
to --concurrency in a copy of the catalog, because the simulation asks what the database sees at a given job
rate, and the provider's limit is what docs/deployment.md derives, not an input.

Measured from PostgreSQL's own counters over the run: rows written per table (pg_stat_user_tables), transactions
and sessions opened (pg_stat_database), connections open at once (pg_stat_activity, sampled), database size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from production_stack import ROOT, fake_model_limits, max_in_flight, production_stack  # noqa: E402

LEDGER_TABLES = ("provider_jobs", "job_events", "model_observations")
STAGES = ["prompt_batches", "narration_tracks", "routed_job_plans", "generated_segments"]


def campaign(cid: str, videos: int, shots: int) -> dict:
    return {"version": 1, "campaign": cid, "budget_usd": 10000,
            "defaults": {"quality_tier": "social", "aspect_ratio": "16:9", "resolution": "720p"},
            "videos": [{"id": f"v{v:02d}", "target_seconds": 6 * shots,
                        "shots": [{"prompt": f"{cid} video {v} shot {s}: rain on neon streets"} for s in range(shots)]}
                       for v in range(videos)]}


def table_writes(conn) -> dict[str, int]:
    from sqlalchemy import text

    rows = conn.execute(text("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")).all()
    return {name: int(n) for name, n in rows}


def database_counters(conn, db: str) -> dict[str, int]:
    from sqlalchemy import text

    row = conn.execute(text("SELECT xact_commit + xact_rollback, sessions, pg_database_size(datname) "
                            "FROM pg_stat_database WHERE datname = :d"), {"d": db}).one()
    return {"transactions": int(row[0]), "sessions": int(row[1]), "bytes": int(row[2])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=50)
    parser.add_argument("--videos", type=int, default=25)
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds each fake job takes (median)")
    parser.add_argument("--concurrency", type=int, default=120, help="Veo Fast's account concurrency in the sim")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    scale = args.latency / 20.0   # Veo 3.1 Fast's p50 is 20 s: the engine polls on its profile × this

    catalog = yaml.safe_load((ROOT / "data" / "catalog.yaml").read_text())
    catalog["models"]["veo-3-1-fast"]["concurrency"] = args.concurrency
    sim_catalog = Path(tempfile.mkdtemp(prefix="capacity-sim-")) / "catalog.yaml"
    sim_catalog.write_text(yaml.safe_dump(catalog, sort_keys=False))
    env = {"VIDEO_PIPELINE_TIME_SCALE": str(scale), "VIDEO_PIPELINE_EXECUTOR": "in_process"}
    try:
        with production_stack(env, fleet_latency=args.latency, fleet_latency_p95=args.latency * 45 / 20,
                              catalog=sim_catalog) as (stack, fleet):
            stack.activate()
            result = simulate(stack, fleet, args, sim_catalog)
    finally:
        shutil.rmtree(sim_catalog.parent, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0 if result["segments_succeeded"] == result["segments"] and result["runs_succeeded"] == args.campaigns else 1


def simulate(stack, fleet, args, sim_catalog: Path) -> dict:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from sqlalchemy import text

    from video_pipeline.config import Settings
    from video_pipeline.flow.intake import accept
    from video_pipeline.flow.profiles import campaign_run_tags

    settings = Settings.from_env()
    campaigns = []
    for i in range(args.campaigns):
        cid = f"cap-{i:02d}"
        path = stack.data_dir / f"{cid}.json"
        path.write_text(json.dumps(campaign(cid, args.videos, args.shots)))
        accepted = accept(path, settings, move=False)
        campaigns.append((accepted.campaign_id, campaign_run_tags(accepted.spec_path, settings)))
    engine = stack.pg()
    peak = {"connections": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    n = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                                     {"d": stack.db}).scalar_one()
                peak["connections"] = max(peak["connections"], int(n))
            except Exception as exc:   # a dropped connection must not end the sampling (it is reported)
                peak.setdefault("sample_errors", []).append(str(exc).splitlines()[0])
            time.sleep(0.5)

    terminal = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("campaigns", [c for c, _ in campaigns])
        time.sleep(2)   # let the statistics collector flush before the baseline
        with engine.connect() as conn:
            before_tables, before_db = table_writes(conn), database_counters(conn, stack.db)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        from dagster_graphql import DagsterGraphQLClient

        host, port = stack.webserver_url.removeprefix("http://").split(":")
        client = DagsterGraphQLClient(host, port_number=int(port), timeout=120)
        run_ids = [client.submit_job_execution("campaign_job", tags={"dagster/partition": cid, **tags},
                                               asset_selection=STAGES) for cid, tags in campaigns]
        while True:
            runs = instance.get_runs(RunsFilter(run_ids=run_ids))
            if all(r.status in terminal for r in runs):
                break
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"timed out: {[r.status.value for r in runs]}")
            time.sleep(1)
        wall = time.monotonic() - started
        stop.set()
        sampler.join()
        time.sleep(2)
        with engine.connect() as conn:
            after_tables, after_db = table_writes(conn), database_counters(conn, stack.db)
            jobs = dict(conn.execute(text("SELECT state, count(*) FROM provider_jobs GROUP BY state")).all())
            events = conn.execute(text("SELECT count(*) FROM event_logs WHERE run_id = ANY(:r)"),
                                  {"r": run_ids}).scalar_one()
            first_last = conn.execute(text("SELECT min(created_at), max(finished_at) FROM provider_jobs")).one()
    engine.dispose()
    writes = {t: after_tables.get(t, 0) - before_tables.get(t, 0) for t in after_tables}
    ledger_writes = sum(writes.get(t, 0) for t in LEDGER_TABLES)
    dagster_writes = sum(v for t, v in writes.items() if t not in LEDGER_TABLES)
    segments = args.campaigns * args.videos * args.shots
    jobs_window = (first_last[1] - first_last[0]).total_seconds()
    sessions = after_db["sessions"] - before_db["sessions"]
    in_flight = max_in_flight(fleet, fake_model_limits(fleet, sim_catalog))
    return {
        "campaigns": args.campaigns, "segments": segments, "latency_seconds": args.latency,
        "veo_fast_concurrency": args.concurrency,
        "runs_succeeded": sum(1 for r in runs if r.status == DagsterRunStatus.SUCCESS),
        "segments_succeeded": int(jobs.get("succeeded", 0)), "ledger_jobs_by_state": jobs,
        "wall_seconds": round(wall, 1), "provider_jobs_window_seconds": round(jobs_window, 1),
        "segments_per_second": round(segments / wall, 2),
        "ledger_row_writes": ledger_writes, "ledger_writes_per_second": round(ledger_writes / wall, 1),
        "ledger_writes_per_segment": round(ledger_writes / segments, 2),
        "event_log_rows": int(events), "event_log_writes_per_second": round(events / wall, 1),
        "dagster_row_writes": dagster_writes, "dagster_writes_per_second": round(dagster_writes / wall, 1),
        "writes_by_table": {t: v for t, v in sorted(writes.items(), key=lambda kv: -kv[1]) if v},
        "transactions": after_db["transactions"] - before_db["transactions"],
        "transactions_per_second": round((after_db["transactions"] - before_db["transactions"]) / wall, 1),
        "connections_opened": sessions, "connections_per_second": round(sessions / wall, 1),
        "peak_connections": peak["connections"], "sample_errors": peak.get("sample_errors", []),
        "db_bytes_growth": after_db["bytes"] - before_db["bytes"],
        "db_bytes_per_segment": round((after_db["bytes"] - before_db["bytes"]) / segments),
        "duplicate_submissions": fleet.duplicate_submissions(),
        "max_in_flight": in_flight,
    }


if __name__ == "__main__":
    sys.exit(main())

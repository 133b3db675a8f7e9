"""The `video-pipeline` command: validate, plan and run campaign files.

`validate` and `plan` need no orchestrator and spend nothing; `run` hands the campaign to the launcher
registered under the `video_pipeline.launchers` entry point (the Dagster one by default).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

from video_pipeline.config import VARIABLES, Settings, SettingsError
from video_pipeline.db import LedgerSchemaError
from video_pipeline.errors import CampaignError, PlanningError

EXIT_OK, EXIT_INVALID, EXIT_FAILED, EXIT_UNCERTAIN = 0, 1, 3, 4
EXIT_CODES = (f"Exit codes: {EXIT_OK} success; {EXIT_INVALID} invalid campaign file, planning failure or bad setting "
              f"(nothing ran); {EXIT_FAILED} the run failed (each failed step's own error is printed); "
              f"{EXIT_UNCERTAIN} the run ended with uncertain segments: a provider may have made (and billed) them, "
              "nothing was sent again, and `video-pipeline resolve` records an operator's decision.")


def validate_file(*args, **kwargs):
    """`flow.intake.validate_file`, imported when a command needs it: it brings PyAV, pandas and the planner,
    which `webhooks serve` (a long-running process that should stay small) never uses."""
    from video_pipeline.flow.intake import validate_file as validate

    return validate(*args, **kwargs)
JSON_SCHEMA_VERSION = 1


def _error_payload(exc: Exception) -> dict:
    problems = [{"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                for p in getattr(exc, "problems", [])]
    return {"version": JSON_SCHEMA_VERSION, "ok": False, "error": {"message": str(exc), "problems": problems}}


def _fail(args, exc: Exception, code: int = EXIT_INVALID) -> int:
    if args.json:
        print(json.dumps(_error_payload(exc), indent=2))
    else:
        print(f"error: {exc}", file=sys.stderr)
    return code


def _providers(settings: Settings):
    from video_pipeline.flow.stages import live_provider_names

    return live_provider_names(settings)


def _planning_error(exc: Exception, settings: Settings) -> Exception:
    from video_pipeline.planning.catalog import load_catalog
    from video_pipeline.flow.stages import missing_key_hint

    providers = _providers(settings)
    if providers is not None and "no configured provider" in str(exc):
        return PlanningError(f"{exc}\n{missing_key_hint(load_catalog(settings.catalog_file), providers)}")
    return exc


def cmd_validate(args, settings: Settings) -> int:
    try:
        campaign, plan = validate_file(Path(args.file), settings, display=args.file, providers=_providers(settings))
    except (CampaignError, PlanningError) as exc:
        return _fail(args, _planning_error(exc, settings))
    summary = {"version": JSON_SCHEMA_VERSION, "ok": True, "campaign": campaign.campaign,
               "videos": len(campaign.videos), "shots": sum(len(v.shots) for v in campaign.videos),
               "segments": len(plan.segments), "est_cost_usd": plan.total_cost_usd, "budget_usd": campaign.budget_usd,
               "schedule": campaign.schedule, "warnings": plan.warnings}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"ok: {args.file}: campaign {campaign.campaign}, {summary['videos']} video(s), {summary['shots']} shot(s), "
              f"{summary['segments']} segment(s), estimated ${plan.total_cost_usd:.2f}"
              + (f" of ${campaign.budget_usd:.2f}" if campaign.budget_usd else ""))
        for warning in plan.warnings:
            print(f"warning: {warning}")
    return EXIT_OK


def cmd_plan(args, settings: Settings) -> int:
    from video_pipeline.planning.catalog import load_catalog

    try:
        campaign, plan = validate_file(Path(args.file), settings, display=args.file, providers=_providers(settings))
    except (CampaignError, PlanningError) as exc:
        return _fail(args, _planning_error(exc, settings))
    catalog = load_catalog(settings.catalog_file)
    payload = {"version": JSON_SCHEMA_VERSION, "ok": True, "campaign": plan.campaign,
               "budget_usd": plan.budget_usd, "est_cost_usd": plan.total_cost_usd,
               "est_wall_seconds": plan.est_wall_seconds(catalog), "warnings": plan.warnings,
               "segments": [{k: v for k, v in s.row().items()} for s in plan.segments]}
    if args.json:
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    headers = ["video", "#", "model", "fallbacks", "seconds", "gen s", "est $", "p50 s", "reason"]
    rows = [[s.video_id, str(s.segment_index), s.model, ",".join(s.fallbacks) or "-", f"{s.seconds:g}",
             str(s.generate_seconds), f"{s.est_cost_usd:.2f}", f"{s.est_latency_seconds:g}", s.reason]
            for s in plan.segments]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if i < len(headers) - 1 else 0 for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    budget = f" (budget ${plan.budget_usd:.2f})" if plan.budget_usd else ""
    print(f"\n{len(plan.segments)} segment(s), estimated ${plan.total_cost_usd:.2f}{budget}, "
          f"about {plan.est_wall_seconds(catalog):.0f}s of provider time. Nothing was spent.")
    for warning in plan.warnings:
        print(f"warning: {warning}")
    return EXIT_OK


def cmd_run(args, settings: Settings) -> int:
    launchers = {ep.name: ep for ep in entry_points(group="video_pipeline.launchers")}
    if args.launcher not in launchers:
        return _fail(args, RuntimeError(f"no launcher {args.launcher!r} is installed (have: {', '.join(launchers) or 'none'}); "
                                        "install the project with `pip install -e .`"), EXIT_FAILED)
    run_campaign = launchers[args.launcher].load()
    echo = (lambda *_: None) if args.json else (lambda msg: print(msg, flush=True))
    try:
        if args.submit:
            result = run_campaign(Path(args.file), settings, echo=echo, submit=True)
        else:
            with _run_progress(args, settings):
                result = run_campaign(Path(args.file), settings, echo=echo)
    except (CampaignError, PlanningError) as exc:
        return _fail(args, exc)
    if args.submit:
        return _submitted(args, result)
    if args.json:
        print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": result["status"] == "succeeded", **result}, indent=2))
    else:
        for out in result["outputs"]:
            if out["state"] == "assembled":
                print(f"video {out['video_id']}: {_shown(out['output_path'])} ({out['duration_seconds']:.2f}s, "
                      f"{out['width']}x{out['height']} {out['video_codec']}, ${out['cost_usd']:.2f})")
            else:
                print(f"video {out['video_id']}: FAILED: {out['error']}")
        for err in result["errors"]:
            print(f"error: {err}", file=sys.stderr)
        for u in result.get("uncertain", []):
            print(f"uncertain: {u['video_id']}[{u['segment_index']}] on {u['model']} ({u['provider']}, sent "
                  f"{u['since']}–{u['until']}): the provider may have made (and billed) it; nothing was sent again. "
                  f"Decide with `video-pipeline resolve --job {u['job']} ...`")
        if result.get("report_path"):
            print(f"report: {_shown(result['report_path'])}")
        money = result["spend"]["words"] if result.get("spend") else f"${result['cost_usd']:.2f}"
        print(f"campaign {result['campaign']}: {result['status']} in {result['wall_seconds']:.1f}s, "
              f"{money} (Dagster run {result['run_id']})")
    if result["status"] == "succeeded":
        return EXIT_OK
    return EXIT_UNCERTAIN if result.get("uncertain") else EXIT_FAILED


def _shown(path: str) -> str:
    """A file the run wrote, named as the person typed theirs: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _submitted(args, result: dict) -> int:
    """A run handed to the run queue: its id (and the run's shape, with what it has not done yet empty)."""
    if args.json:
        print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": result["status"] == "submitted", **result}, indent=2))
    elif result["status"] == "submitted":
        print(f"campaign {result['campaign']}: Dagster run {result['run_id']} {result['run_status']}; follow it with "
              f"`video-pipeline status {result['campaign']}` or in the UI")
    for err in result["errors"]:
        print(f"error: {err}", file=sys.stderr)
    return EXIT_OK if result["status"] == "submitted" else EXIT_FAILED


def _interactive() -> bool:
    """stdout is a terminal (rich honours FORCE_COLOR and TTY_COMPATIBLE the same way)."""
    from rich.console import Console

    return Console().is_terminal


@contextlib.contextmanager
def _run_progress(args, settings: Settings):
    """Segments queued / running / done / failed and dollars spent while the run goes, read from the ledger:
    bars on a terminal, plain lines otherwise, nothing with --json. A file that does not plan shows nothing
    here: the launcher reports why."""
    if args.json:
        yield
        return
    from video_pipeline.report.progress import LedgerWatch, PlainProgress, RichProgress

    try:
        campaign, plan = validate_file(Path(args.file), settings, display=args.file)
    except (CampaignError, PlanningError, OSError):
        yield
        return
    planned = [(s.video_id, s.segment_index, s.job_key) for s in plan.segments]
    if _interactive():
        from rich.console import Console

        display = RichProgress(Console())
    else:
        display = PlainProgress(lambda line: print(line, flush=True))
    table = settings.tables_dir / "routed_job_plans" / f"{campaign.campaign}.parquet"
    with display, LedgerWatch(settings.ledger_url, campaign.campaign, planned, plan.total_cost_usd, display.show,
                              plan_table=table, offline=settings.mode == "local"):
        yield


def cmd_status(args, settings: Settings) -> int:
    """The ledger's view: per campaign, jobs in flight, done, failed, uncertain, and what was spent."""
    from video_pipeline.jobs.ledger import JobLedger
    from video_pipeline.jobs.spend import campaign_spend, spent_words

    ledger = JobLedger(settings.ledger_url)
    try:
        with ledger.engine.connect() as conn:
            from sqlalchemy import select

            from video_pipeline.jobs.ledger import jobs
            names = [args.campaign] if args.campaign else sorted(
                {r[0] for r in conn.execute(select(jobs.c.campaign).distinct())})
        report = []
        for name in names:
            rows = ledger.campaign_rows(name)
            latest: dict[tuple, object] = {}
            for row in rows:                       # the newest attempt of each segment decides its state
                latest[(row.video_id, row.segment_index)] = row
            states: dict[str, int] = {}
            for row in latest.values():
                states[row.state] = states.get(row.state, 0) + 1
            report.append({
                "campaign": name, "segments": len(latest), "jobs": len(rows), "states": states,
                "in_flight": [{"video_id": r.video_id, "segment_index": r.segment_index, "model": r.model,
                               "provider": r.provider, "state": r.state, "provider_job_id": r.provider_job_id}
                              for r in latest.values() if r.state in ("submitting", "queued", "running")],
                "failed": [{"video_id": r.video_id, "segment_index": r.segment_index, "model": r.model,
                            "error": r.last_error} for r in latest.values() if r.state in ("failed", "abandoned")],
                "uncertain": [{"job": r.id, "video_id": r.video_id, "segment_index": r.segment_index,
                               "model": r.model, "provider": r.provider} for r in latest.values()
                              if r.state == "uncertain"],
                # every job the campaign paid, whichever run sent it; offline renders: what they would cost
                "cost_usd": (spend := campaign_spend(ledger, name)).total("actual_usd"),
                "would_cost": spend.would_cost,
                "spent": spent_words(spend),
            })
    finally:
        ledger.dispose()
    if args.campaign and not report[0]["jobs"]:
        return _fail(args, ValueError(f"campaign {args.campaign!r} has no jobs in the ledger ({settings.ledger_url.split('://')[0]})"))
    if args.json:
        print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": True, "campaigns": report}, indent=2))
        return EXIT_OK
    if not report:
        print("no jobs in the ledger yet")
        return EXIT_OK
    if _interactive():
        _status_tables(report)
        return EXIT_OK
    for c in report:
        states = ", ".join(f"{k} {v}" for k, v in sorted(c["states"].items()))
        print(f"{c['campaign']}: {c['segments']} segment(s): {len(c['in_flight'])} in flight, {_done(c)} done, "
              f"{len(c['failed'])} failed [{states}], {c['spent']}")
        for r in c["in_flight"]:
            print(f"  in flight: {r['video_id']}[{r['segment_index']}] {r['model']} on {r['provider']} ({r['state']})")
        for r in c["failed"]:
            print(f"  failed: {r['video_id']}[{r['segment_index']}] {r['model']}: {r['error']}")
        for r in c["uncertain"]:
            print(f"  uncertain: {r['video_id']}[{r['segment_index']}] {r['model']} on {r['provider']} (ledger job "
                  f"{r['job']}): `video-pipeline resolve` decides it")
    return EXIT_OK


def _done(campaign: dict) -> int:
    return sum(n for state, n in campaign["states"].items() if state in ("succeeded", "stored"))


def _status_tables(report: list[dict]) -> None:
    """`status` on a terminal: one table of campaigns, then what is in flight and what failed."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title="Job ledger", title_justify="left")
    for name, justify in (("campaign", "left"), ("segments", "right"), ("in flight", "right"), ("done", "right"),
                          ("failed", "right"), ("jobs", "right"), ("cost so far", "right")):
        summary.add_column(name, justify=justify)
    for c in report:
        failed = len(c["failed"])
        summary.add_row(c["campaign"], str(c["segments"]), str(len(c["in_flight"])), str(_done(c)),
                        f"[red]{failed}[/]" if failed else "0", str(c["jobs"]),
                        ("would cost " if c["would_cost"] else "") + f"${c['cost_usd']:.2f}")
    console.print(summary)
    flying = [(c["campaign"], r) for c in report for r in c["in_flight"]]
    if flying:
        table = Table(title="In flight", title_justify="left")
        for name in ("campaign", "segment", "model", "provider", "state", "provider job"):
            table.add_column(name)
        for campaign, r in flying:
            table.add_row(campaign, f"{r['video_id']}[{r['segment_index']}]", r["model"], r["provider"], r["state"],
                          r["provider_job_id"] or "")
        console.print(table)
    failed = [(c["campaign"], r) for c in report for r in c["failed"]]
    if failed:
        table = Table(title="Failed", title_justify="left")
        for name in ("campaign", "segment", "model", "error"):
            table.add_column(name)
        for campaign, r in failed:
            table.add_row(campaign, f"{r['video_id']}[{r['segment_index']}]", r["model"], r["error"] or "")
        console.print(table)


def cmd_webhooks_serve(args, settings: Settings) -> int:
    import logging

    from video_pipeline.jobs.ledger import JobLedger
    from video_pipeline.jobs.webhook_server import serve
    from video_pipeline.jobs.webhooks import ReceiverConfig, create_receiver

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    receiver_log = logging.getLogger("video_pipeline.jobs.webhooks")
    receiver_log.addHandler(handler)
    receiver_log.setLevel(logging.INFO)
    config = ReceiverConfig.from_settings(settings)
    ledger = JobLedger(settings.ledger_url)
    print(f"webhook receiver on http://{args.host}:{args.port}/webhooks/{{replicate,gemini,fal,minimax,kling}}; "
          f"health at /healthz", flush=True)
    print(config.fal_keys.prime(), flush=True)
    try:
        serve(create_receiver(ledger, config), host=args.host, port=args.port, limits=config.limits)
    finally:
        ledger.dispose()
    return EXIT_OK


def cmd_fakes_serve(args, settings: Settings) -> int:
    import signal
    import threading

    from video_pipeline.providers.fakes.fleet import fixed_environment, start_fleet
    from video_pipeline.providers.fakes.tls import local_ca

    port = args.port or settings.fakes_port
    tls = local_ca(settings.work_dir / "fakes" / "tls") if args.tls else None
    fleet = start_fleet(latency=args.latency, latency_p95=args.latency_p95, base_port=port,
                        work_dir=settings.work_dir / "fakes", catalog_file=settings.catalog_file, tls=tls)
    environment = {"VIDEO_PIPELINE_MODE": "live", **fixed_environment(port)}
    if tls is None:
        print(f"fake providers are up on 127.0.0.1:{port}-{port + len(fleet.servers) - 1}; to use them:\n"
              f"  export VIDEO_PIPELINE_MODE=fake VIDEO_PIPELINE_FAKES_PORT={port}\nor point live mode at them:\n"
              + "\n".join(f"  export {k}={v}" for k, v in environment.items()), flush=True)
    else:
        environment = {k: v.replace("http://127.0.0.1:", "https://127.0.0.1:") for k, v in environment.items()}
        environment["SSL_CERT_FILE"] = str(tls.ca_file)      # what httpx-based clients (fal-client too) trust
        print(f"fake providers are up over https on 127.0.0.1:{port}-{port + len(fleet.servers) - 1}, their "
              f"certificate signed by a new local CA ({tls.ca_file}); point clients at them:\n"
              + "\n".join(f"  export {k}={v}" for k, v in environment.items())
              + f"\nfal-client: export FAL_KEY={environment['FAL_KEY']} FAL_RUN_HOST=127.0.0.1:"
                f"{fleet.servers['fal'].port} FAL_QUEUE_RUN_HOST=127.0.0.1:{fleet.servers['fal'].port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-pipeline", description="Turn campaign files of prompts into finished videos.",
        epilog=EXIT_CODES + " Environment: " + "; ".join(f"{k} (default {v[0]})" for k, v in VARIABLES.items()))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (("validate", cmd_validate, "check a campaign file; exit 1 with the problems if invalid"),
                             ("plan", cmd_plan, "dry run: route, time and price every segment; spends nothing"),
                             ("run", cmd_run, "register the campaign and materialize every stage of campaign_job (eight assets, "
                                      "campaign to campaign_report) through Dagster")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("file", help="campaign file (.yaml, .yml, .json, .csv, .jsonl)")
        p.add_argument("--json", action="store_true", help="print the documented JSON shape instead of text")
        if name == "run":
            p.add_argument("--launcher", default="dagster", help=argparse.SUPPRESS)
            p.add_argument("--submit", action="store_true",
                           help="hand the run to the Dagster instance's run queue (as the UI's Launch button does) and "
                                "print its id instead of waiting for it; production's daemon starts it within the "
                                "queue's limits")
        p.set_defaults(func=func)
    p = sub.add_parser("status", help="the ledger's view of a campaign: in flight, done, failed, cost so far")
    p.add_argument("campaign", nargs="?", help="campaign id (default: every campaign in the ledger)")
    p.add_argument("--json", action="store_true", help="print the documented JSON shape instead of text")
    p.set_defaults(func=cmd_status)
    from video_pipeline.cli.money import add_parsers
    from video_pipeline.cli.provenance import add_parsers as add_provenance

    add_parsers(sub)
    add_provenance(sub)
    hooks = sub.add_parser("webhooks", help="the webhook receiver").add_subparsers(dest="action", required=True)
    p = hooks.add_parser("serve", help="verify provider webhooks and write them to the ledger")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787)
    p.set_defaults(func=cmd_webhooks_serve, json=False)
    fakes = sub.add_parser("fakes", help="fake provider servers for demos").add_subparsers(dest="action", required=True)
    p = fakes.add_parser("serve", help="serve every provider's fake on loopback until interrupted")
    p.add_argument("--port", type=int, default=None, help="first port (default VIDEO_PIPELINE_FAKES_PORT or 8710)")
    p.add_argument("--latency", type=float, default=0.5, help="seconds each fake job takes (the median with --latency-p95)")
    p.add_argument("--latency-p95", type=float, default=None, help="vary job latencies: log-normal with this p95")
    p.add_argument("--tls", action="store_true",
                   help="serve https with a certificate from a new local CA (for SDKs that speak only https); "
                        "prints the CA file to trust (SSL_CERT_FILE)")
    p.set_defaults(func=cmd_fakes_serve, json=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(args, exc)
    try:
        return args.func(args, settings)
    except LedgerSchemaError as exc:   # the ledger was upgraded by a newer release: its one line, not a traceback
        return _fail(args, exc)


if __name__ == "__main__":
    sys.exit(main())

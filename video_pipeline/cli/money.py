"""`video-pipeline spend` and `video-pipeline resolve`: what campaigns cost, and an operator's word on jobs whose
submit outcome is unknown (uncertain). Both read and write only the job ledger (and, for `spend`, the invoices of
fake providers on loopback, where they answer)."""

from __future__ import annotations

import json
import sys
from urllib.parse import urlparse

from video_pipeline.config import Settings
from video_pipeline.jobs.ledger import JobLedger, JobRow, LedgerState
from video_pipeline.jobs.spend import CampaignSpend, campaign_spend, spent_words

JSON_SCHEMA_VERSION = 1
EXIT_OK, EXIT_INVALID = 0, 1


def _campaign_names(ledger: JobLedger, only: str | None) -> list[str]:
    import sqlalchemy as sa

    from video_pipeline.jobs.ledger import jobs

    if only:
        return [only]
    with ledger.engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(sa.select(jobs.c.campaign).distinct()))


def _invoice_sources(settings: Settings) -> dict[str, str]:
    """Fake providers on loopback whose invoice can be read: the fleet of `fakes serve` in fake mode, or the base
    URLs the adapters use (VIDEO_PIPELINE_<PROVIDER>_BASE_URL) where they point at loopback. Real providers: none
    (their invoices live in their consoles)."""
    from video_pipeline.providers.fakes.invoice import is_loopback
    from video_pipeline.providers.live import ADAPTERS

    if settings.mode == "fake":
        from video_pipeline.providers.fakes.fleet import fixed_environment

        fleet = fixed_environment(settings.fakes_port)
        urls = {name: fleet[f"VIDEO_PIPELINE_{name.upper()}_BASE_URL"] for name in ADAPTERS}
    else:
        urls = {name: settings.base_url(name, "") for name in ADAPTERS}
    return {name: url for name, url in urls.items() if url and is_loopback(urlparse(url).hostname or "")}


def _invoices(settings: Settings) -> dict[str, dict]:
    from video_pipeline.providers.fakes.invoice import fetch_invoice

    read = {}
    for name, url in _invoice_sources(settings).items():
        try:
            read[name] = fetch_invoice(url)
        except Exception as exc:   # a fake that is down: say so, compare the rest
            read[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return read


def _invoice_matches(spend: CampaignSpend, rows: list[JobRow], invoices: dict[str, dict]) -> dict | None:
    """The campaign's jobs on the invoices (by provider job id) and the difference from the ledger's bill."""
    if not invoices:
        return None
    billed = 0.0
    matched = 0
    for row in rows:
        invoice = invoices.get(row.provider) or {}
        for line in invoice.get("lines", []):
            if row.provider_job_id and str(line.get("job_id")) and str(line["job_id"]) in row.provider_job_id:
                billed += float(line.get("amount_usd") or 0.0)
                matched += 1
                break
    ledger_usd = round(sum(r.cost_usd or 0.0 for r in rows if r.provider in invoices and r.provider_job_id), 4)
    return {"providers": sorted(p for p in invoices if "error" not in invoices[p]),
            "unreadable": {p: i["error"] for p, i in invoices.items() if "error" in i},
            "invoice_usd": round(billed, 4), "ledger_usd": ledger_usd, "matched_jobs": matched,
            "difference_usd": round(ledger_usd - billed, 4)}


def cmd_spend(args, settings: Settings) -> int:
    """Per campaign, model and provider: estimated, reserved, actual and uncertain cost; the invoice difference."""
    ledger = JobLedger(settings.ledger_url)
    try:
        names = _campaign_names(ledger, args.campaign)
        invoices = _invoices(settings)
        report = []
        for name in names:
            spend = campaign_spend(ledger, name)
            entry = spend.as_dict()
            entry["invoice"] = _invoice_matches(spend, ledger.campaign_rows(name), invoices)
            report.append((spend, entry))
    finally:
        ledger.dispose()
    if args.campaign and not report[0][0].lines:
        print(f"error: campaign {args.campaign!r} has no jobs in the ledger", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": True, "campaigns": [e for _, e in report]}, indent=2))
        return EXIT_OK
    if not report:
        print("no jobs in the ledger yet")
    for spend, entry in report:
        budget = f" of a ${spend.budget_usd:.2f} budget" if spend.budget_usd else ""
        print(f"{spend.campaign}: {spent_words(spend)}{budget}; estimated ${entry['estimated_usd']:.2f}, "
              f"reserved now ${entry['reserved_usd']:.2f}, {entry['jobs']} job(s)")
        for line in spend.lines:
            verb = "would cost" if line.would_cost else "actual"
            print(f"  {line.model} on {line.provider}: {line.jobs} job(s), estimated ${line.estimated_usd:.2f}, "
                  f"{verb} ${line.actual_usd:.2f}, reserved ${line.reserved_usd:.2f}"
                  + (f", uncertain {line.uncertain_jobs} (${line.uncertain_usd:.2f})" if line.uncertain_jobs else ""))
        if entry["invoice"]:
            inv = entry["invoice"]
            print(f"  invoice ({', '.join(inv['providers']) or 'none readable'}): ${inv['invoice_usd']:.2f} for "
                  f"{inv['matched_jobs']} job(s); ledger ${inv['ledger_usd']:.2f}; difference "
                  f"${inv['difference_usd']:+.2f}")
            for provider, why in inv["unreadable"].items():
                print(f"  invoice of {provider} could not be read: {why}")
    return EXIT_OK


def _row_dict(row: JobRow) -> dict:
    return {"job": row.id, "campaign": row.campaign, "video_id": row.video_id, "segment_index": row.segment_index,
            "model": row.model, "provider": row.provider,
            "since": row.uncertain_since.isoformat() if row.uncertain_since else None,
            "until": row.uncertain_until.isoformat() if row.uncertain_until else None,
            "fingerprint": row.fingerprint, "reserved_usd": row.reserved_usd, "reason": row.last_error}


def cmd_resolve(args, settings: Settings) -> int:
    """List uncertain jobs, or record an operator's decision on one (--job) or on all of a campaign's."""
    decision = "adopt" if args.adopt else "resubmit" if args.resubmit else "abandon" if args.abandon else None
    ledger = JobLedger(settings.ledger_url)
    try:
        if decision is None:
            rows = ledger.uncertain_rows(campaign=args.campaign)
            if args.json:
                print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": True,
                                  "uncertain": [_row_dict(r) for r in rows]}, indent=2))
                return EXIT_OK
            if not rows:
                print("no uncertain jobs" + (f" in campaign {args.campaign}" if args.campaign else ""))
                return EXIT_OK
            for r in rows:
                print(f"job {r.id}: {r.campaign} {r.video_id}[{r.segment_index}] {r.model} on {r.provider}, sent "
                      f"{r.uncertain_since:%Y-%m-%d %H:%M:%S}–{r.uncertain_until:%H:%M:%S} UTC, "
                      f"${r.reserved_usd or 0:.2f} at stake: {r.last_error}")
            print("decide each with: video-pipeline resolve --job N --adopt PROVIDER_JOB_ID | --resubmit | --abandon")
            return EXIT_OK
        if args.job is None and not args.campaign:
            return _refuse(args, "name the job (--job N) or the campaign the decision applies to")
        if decision == "adopt" and args.job is None:
            return _refuse(args, "--adopt names one provider job: give --job N")
        done: list[int] = []
        rows = ([r for r in [ledger.row(args.job)] if r is not None] if args.job is not None
                else ledger.uncertain_rows(campaign=args.campaign))
        if decision == "resubmit" and args.job is not None and rows and rows[0].state == LedgerState.ABANDONED \
                and (rows[0].resolution or "").startswith("operator: abandon"):
            if ledger.reconsider(rows[0].id, "operator: resubmit (a second charge was accepted)"):
                done.append(rows[0].id)
            rows = []
        elif args.job is not None and (not rows or rows[0].state != "uncertain"):
            state = rows[0].state if rows else "no such job"
            return _refuse(args, f"ledger job {args.job} is not uncertain ({state}); `video-pipeline resolve` "
                                 "lists the uncertain ones")
        if args.job is None and not rows:
            return _refuse(args, f"campaign {args.campaign} has no uncertain jobs")
        for row in rows:
            if decision == "adopt":
                import sqlalchemy as sa

                job_id, problem = _checked_job_id(settings, row, args.adopt.strip())
                if problem:
                    return _refuse(args, problem)
                try:
                    ok = ledger.adopt(row.id, job_id, f"operator: adopt {job_id}")
                except sa.exc.IntegrityError:
                    return _refuse(args, f"{row.provider} job {args.adopt.strip()} is already in the ledger for "
                                         "another segment; check the id in the provider's console")
            elif decision == "resubmit":
                ok = ledger.release(row.id, "operator: resubmit (a second charge was accepted)",
                                    possibly_charged=True)
            else:
                ok = ledger.release(row.id, "operator: abandon", possibly_charged=True)
            if ok:
                done.append(row.id)
    finally:
        ledger.dispose()
    what = {"adopt": "will be polled as the segment's job by the next run",
            "resubmit": "will be generated again by the next run (its possible charge stays counted)",
            "abandon": "will not be generated again (its possible charge stays counted)"}[decision]
    if args.json:
        print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": True, "decision": decision, "jobs": done}, indent=2))
    else:
        print(f"{decision}: ledger job(s) {', '.join(map(str, done)) or 'none'} {what}")
    return EXIT_OK


def _checked_job_id(settings: Settings, row: JobRow, raw: str) -> tuple[str, str]:
    """(the job id in the adapter's form, a problem) — asked of the provider when its adapter is configured, so a
    mistyped id is refused rather than polled forever."""
    import asyncio

    from video_pipeline.planning.catalog import load_catalog
    from video_pipeline.errors import ProviderError
    from video_pipeline.flow.stages import build_registry

    if not raw:
        return raw, "--adopt needs the provider's job id"
    try:
        registry = build_registry(settings, load_catalog(settings.catalog_file))
        provider, route_model_id = registry.provider_named(row.provider, row.model)
    except Exception:   # not configured here (no key, local mode): recorded as given, checked by the next run
        return raw, ""
    job_id = provider.job_id_from(raw, route_model_id) if hasattr(provider, "job_id_from") else raw

    async def ask():
        try:
            return await provider.poll(job_id)
        finally:
            await registry.aclose()

    try:
        asyncio.run(ask())
    except ProviderError as exc:
        if exc.kind != ProviderError.RETRYABLE:
            return job_id, f"{row.provider} does not know job {raw} ({exc}); check the id in its console"
    return job_id, ""


def _refuse(args, message: str) -> int:
    if args.json:
        print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": False, "error": {"message": message, "problems": []}}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_INVALID


def add_parsers(sub) -> None:
    p = sub.add_parser("spend", help="what campaigns cost: estimated, reserved, actual, uncertain; invoice difference")
    p.add_argument("campaign", nargs="?", help="campaign id (default: every campaign in the ledger)")
    p.add_argument("--json", action="store_true", help="print the documented JSON shape instead of text")
    p.set_defaults(func=cmd_spend)
    p = sub.add_parser("resolve", help="list uncertain jobs (a submit whose answer was lost) or decide them")
    p.add_argument("campaign", nargs="?", help="only this campaign's uncertain jobs")
    p.add_argument("--job", type=int, default=None, help="the ledger job id the decision is for")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--adopt", metavar="PROVIDER_JOB_ID",
                       help="the job the provider did create (from its console): poll it, pay once")
    group.add_argument("--resubmit", action="store_true",
                       help="generate again, accepting a possible second charge (recorded as your decision)")
    group.add_argument("--abandon", action="store_true", help="give the segment up; it is not generated again")
    p.add_argument("--json", action="store_true", help="print the documented JSON shape instead of text")
    p.set_defaults(func=cmd_resolve)

"""The inbox sensor: a campaign file dropped into data/inbox/ becomes a partition and a run.

A tick never raises and no file stops the ones behind it: each is taken by `intake.take`, which accepts it or
sets it aside in rejected/ (a file that cannot even be moved is remembered in the cursor and skipped until it
changes). Each file costs a bounded time (the readers' budgets), and a tick stops taking new files after
TICK_SECONDS, leaving the rest to the next one.
"""


import datetime as dt
import json
import time

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from resources.pipeline import PipelineConfig

from .jobs import campaign_job
from .partitions import campaign_partitions

MAX_FILES_PER_TICK = 25
TICK_SECONDS = 30.0     # no new file is started after this long in one tick
MAX_REFUSED = 1000      # files the cursor remembers as refused where they lie (they could not be moved)


def _cursor(text: str | None) -> dict:
    try:
        cursor = json.loads(text) if text else {}
    except ValueError:
        cursor = {}
    cursor = cursor if isinstance(cursor, dict) else {}
    return {"accepted": int(cursor.get("accepted", 0)), "rejected": int(cursor.get("rejected", 0)),
            "refused": dict(cursor.get("refused", {}))}


def _signature(st) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


@sensor(job=campaign_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Validates each new file in data/inbox/: valid files are archived and run (or left for the "
                    "nightly batch); invalid ones move to data/rejected/ beside an error file.")
def campaign_inbox_sensor(context: SensorEvaluationContext, pipeline: PipelineConfig):
    from video_pipeline.flow.intake import inbox_files, take
    from video_pipeline.flow.profiles import campaign_run_tags

    settings = pipeline.settings()
    started = time.monotonic()
    found = inbox_files(settings, time.time())
    cursor = _cursor(context.cursor)
    present = {path.name: _signature(st) for path, st in found}
    # a file refused where it lies is skipped while it stays as it was; one that changed (or left) is forgotten
    cursor["refused"] = {name: sig for name, sig in cursor["refused"].items() if present.get(name) == sig}
    candidates = [(path, st) for path, st in found if cursor["refused"].get(path.name) != present[path.name]]
    if not candidates:
        return SkipReason(f"no settled files in {settings.inbox_dir.name}/")
    new_partitions: list[str] = []
    run_requests: list[RunRequest] = []
    for path, st in candidates[:MAX_FILES_PER_TICK]:
        if time.monotonic() - started > TICK_SECONDS:
            context.log.info("tick time spent; the remaining files are taken on the next tick")
            break
        taken = take(path, settings)
        if taken.stuck:
            cursor["refused"][path.name] = present[path.name]
            context.log.warning(f"refused {taken.name} where it lies (skipped until it changes):\n{taken.error}")
            continue
        if taken.accepted is None:
            cursor["rejected"] += 1
            context.log.warning(f"rejected {taken.name}: see rejected/{taken.note.name}\n{taken.error}")
            continue
        accepted = taken.accepted
        cursor["accepted"] += 1
        key = accepted.campaign_id
        if not context.instance.has_dynamic_partition(campaign_partitions.name, key) and key not in new_partitions:
            new_partitions.append(key)
        if accepted.schedule == "now":
            try:
                queue_tags = campaign_run_tags(accepted.spec_path, settings)   # the run queue's per-provider limits
            except Exception as exc:        # a referenced file changed since: the run itself reports it
                queue_tags = {}
                context.log.warning(f"{key}: no run-queue tags ({type(exc).__name__})")
            run_requests.append(RunRequest(
                partition_key=key, run_key=f"{key}-{accepted.sha256[:16]}",
                tags={"campaign/spec_sha256": accepted.sha256, "campaign/source": taken.name, **queue_tags},
            ))
        context.log.info(f"accepted {taken.name} as campaign {key} ({accepted.schedule})")
    if len(cursor["refused"]) > MAX_REFUSED:
        cursor["refused"] = dict(list(cursor["refused"].items())[-MAX_REFUSED:])
    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[campaign_partitions.build_add_request(new_partitions)] if new_partitions else [],
        cursor=json.dumps(cursor),
    )


EXPIRY_MARGIN = dt.timedelta(hours=2)


@sensor(job=campaign_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.RUNNING,
        description="Finds provider outputs that were paid for but not yet stored and whose URLs expire within "
                    "two hours, and reruns their campaign: the ledger reuses the finished jobs, so the rerun only "
                    "downloads and stores them (refreshing URLs where the provider can).")
def expiring_outputs_sensor(context: SensorEvaluationContext, pipeline: PipelineConfig):
    from video_pipeline.jobs.ledger import JobLedger

    ledger = JobLedger(pipeline.settings().ledger_url)
    try:
        rows = ledger.unstored_expiring(EXPIRY_MARGIN)
    finally:
        ledger.dispose()
    campaigns: dict[str, int] = {}
    for row in rows:
        campaigns[row.campaign] = max(campaigns.get(row.campaign, 0), row.id)
    known = set(context.instance.get_dynamic_partitions(campaign_partitions.name))
    requests = [RunRequest(partition_key=c, run_key=f"store-{c}-{newest}", tags={"campaign/reason": "outputs expiring"})
                for c, newest in sorted(campaigns.items()) if c in known]
    if not requests:
        return SkipReason("no unstored outputs near expiry")
    context.log.info(f"storing outputs before they expire: {', '.join(r.partition_key for r in requests)}")
    return SensorResult(run_requests=requests)

"""The inbox sensor: a campaign file dropped into data/inbox/ becomes a partition and a run."""


import datetime as dt
import json
import time

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from resources.pipeline import PipelineConfig
from video_pipeline.spec.campaign import SUFFIXES
from video_pipeline.flow.intake import INVALID, accept, reject
from video_pipeline.jobs.ledger import JobLedger
from video_pipeline.flow.profiles import campaign_run_tags

from .jobs import campaign_job
from .partitions import campaign_partitions

MAX_FILES_PER_TICK = 25
SETTLE_SECONDS = 2.0   # a file modified more recently may still be being written


@sensor(job=campaign_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Validates each new file in data/inbox/: valid files are archived and run (or left for the "
                    "nightly batch); invalid ones move to data/rejected/ beside an error file.")
def campaign_inbox_sensor(context: SensorEvaluationContext, pipeline: PipelineConfig):
    settings = pipeline.settings()
    inbox = settings.inbox_dir
    now = time.time()
    candidates = sorted(
        (p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")
         and now - p.stat().st_mtime >= SETTLE_SECONDS),
        key=lambda p: (p.stat().st_mtime, p.name),
    ) if inbox.is_dir() else []
    if not candidates:
        return SkipReason(f"no settled files in {inbox.name}/")
    cursor = json.loads(context.cursor) if context.cursor else {"accepted": 0, "rejected": 0}
    new_partitions: list[str] = []
    run_requests: list[RunRequest] = []
    for path in candidates[:MAX_FILES_PER_TICK]:
        if path.suffix.lower() not in SUFFIXES:
            note = reject(path, ValueError(f"{path.name}: not a campaign file; expected one of "
                                           + ", ".join(sorted(SUFFIXES))), settings)
            context.log.warning(f"rejected {path.name}: see {note.name}")
            cursor["rejected"] += 1
            continue
        try:
            accepted = accept(path, settings, move=True)
        except INVALID as exc:
            note = reject(path, exc, settings)
            context.log.warning(f"rejected {path.name}: see rejected/{note.name}\n{exc}")
            cursor["rejected"] += 1
            continue
        cursor["accepted"] += 1
        key = accepted.campaign_id
        if not context.instance.has_dynamic_partition(campaign_partitions.name, key) and key not in new_partitions:
            new_partitions.append(key)
        if accepted.schedule == "now":
            run_requests.append(RunRequest(
                partition_key=key, run_key=f"{key}-{accepted.sha256[:16]}",
                tags={"campaign/spec_sha256": accepted.sha256, "campaign/source": path.name,
                      **campaign_run_tags(accepted.spec_path, settings)},   # the run queue's per-provider limits
            ))
        context.log.info(f"accepted {path.name} as campaign {key} ({accepted.schedule})")
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

"""The nightly batch: campaigns that asked for `schedule: batch` run off-peak, once per spec version."""


from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from resources.pipeline import PipelineConfig

from .jobs import campaign_job
from .partitions import campaign_partitions


@schedule(job=campaign_job, cron_schedule="0 2 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING,
          description="At 02:00 UTC, run every batch campaign whose current spec has not yet run successfully.")
def nightly_batch_schedule(context: ScheduleEvaluationContext, pipeline: PipelineConfig):
    from video_pipeline.flow.intake import INVALID, active_spec, load_active
    from video_pipeline.flow.profiles import campaign_run_tags

    settings = pipeline.settings()
    requests = []
    for key in context.instance.get_dynamic_partitions(campaign_partitions.name):
        try:
            campaign = load_active(settings, key)
        except (*INVALID, FileNotFoundError) as exc:
            context.log.warning(f"campaign {key}: skipped: {exc}")
            continue
        if campaign.schedule != "batch":
            continue
        sha = campaign.source.sha256
        done = context.instance.get_runs_count(RunsFilter(
            job_name=campaign_job.name, statuses=[DagsterRunStatus.SUCCESS],
            tags={"dagster/partition": key, "campaign/spec_sha256": sha}))
        if done:
            continue
        requests.append(RunRequest(partition_key=key, run_key=f"batch-{key}-{sha[:16]}",
                                   tags={"campaign/spec_sha256": sha, "campaign/source": "nightly batch",
                                         **campaign_run_tags(active_spec(settings, key), settings)}))  # run-queue limits
    return requests or SkipReason("no batch campaign is waiting")

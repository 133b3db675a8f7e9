"""The one place that binds assets, resources, jobs, schedules and sensors (loaded by workspace.yaml)."""

from dagster import Definitions

from assets.assembly import assembled_outputs
from assets.campaign import campaign
from assets.generation import generated_segments, stored_clips
from assets.jobs import campaign_job
from assets.narration import narration_tracks
from assets.prompts import prompt_batches
from assets.report import campaign_report
from assets.routing import routed_job_plans
from assets.schedules import nightly_batch_schedule
from assets.sensors import campaign_inbox_sensor, expiring_outputs_sensor
from resources import ParquetTableIOManager, PipelineConfig
from resources.execution import executor_from_environment
from resources.providers import from_environment as providers_from_environment
from resources.providers import voices_from_environment
from resources.storage import clip_storage_from_environment


def build_resources(pipeline: PipelineConfig | None = None, **overrides) -> dict:
    """The resource set; tests pass a PipelineConfig pointing at a temp data dir, or swap providers."""
    pipeline = pipeline or PipelineConfig()
    resources = {
        "pipeline": pipeline,
        "providers": providers_from_environment(),
        "voices": voices_from_environment(),
        "clip_storage": clip_storage_from_environment(),   # VIDEO_PIPELINE_PROFILE: local files or S3
        "io_manager": ParquetTableIOManager(pipeline=pipeline),
    }
    resources.update(overrides)
    return resources


ASSETS = [campaign, prompt_batches, narration_tracks, routed_job_plans, generated_segments, stored_clips, assembled_outputs,
          campaign_report]

defs = Definitions(
    assets=ASSETS,
    jobs=[campaign_job],
    sensors=[campaign_inbox_sensor, expiring_outputs_sensor],
    schedules=[nightly_batch_schedule],
    resources=build_resources(),
    executor=executor_from_environment(),   # VIDEO_PIPELINE_EXECUTOR: multiprocess, in_process or celery
)

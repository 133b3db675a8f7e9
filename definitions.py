"""The one place that binds assets, resources, jobs, schedules and sensors (loaded by workspace.yaml).

Nothing happens at import: `defs` is loaded lazily by Dagster's tools, and the resource set (local or production
profile) and the executor are chosen there, once, from the settings."""

from dagster import Definitions, definitions

from assets.assembly import assembled_outputs, content_credentials_valid
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
from resources.execution import executor_for
from resources.providers import NarrationVoices, VideoProviders
from resources.io import S3TableIOManager
from resources.storage import S3ClipStorage, clip_storage_for

ASSETS = [campaign, prompt_batches, narration_tracks, routed_job_plans, generated_segments, stored_clips,
          assembled_outputs, campaign_report, content_credentials_valid]


def build_resources(pipeline: PipelineConfig | None = None, **overrides) -> dict:
    """The resource set for the settings' profile; tests pass a PipelineConfig or swap providers."""
    pipeline = pipeline or PipelineConfig()
    clip_storage = clip_storage_for(pipeline.settings())        # VIDEO_PIPELINE_PROFILE: local files or S3
    tables = (S3TableIOManager(pipeline=pipeline, s3=clip_storage.s3, bucket=clip_storage.bucket,
                               prefix=clip_storage.prefix)     # production: tables beside the clips, in the bucket
              if isinstance(clip_storage, S3ClipStorage) else ParquetTableIOManager(pipeline=pipeline))
    resources = {
        "pipeline": pipeline,
        "providers": VideoProviders(),
        "voices": NarrationVoices(),
        "clip_storage": clip_storage,
        "io_manager": tables,
    }
    resources.update(overrides)
    return resources


def build_definitions(pipeline: PipelineConfig | None = None, **overrides) -> Definitions:
    pipeline = pipeline or PipelineConfig()
    return Definitions(
        assets=ASSETS,
        jobs=[campaign_job],
        sensors=[campaign_inbox_sensor, expiring_outputs_sensor],
        schedules=[nightly_batch_schedule],
        resources=build_resources(pipeline, **overrides),
        executor=executor_for(pipeline.settings()),   # VIDEO_PIPELINE_EXECUTOR: multiprocess, in_process or celery
    )


@definitions
def defs() -> Definitions:
    return build_definitions()


__all__ = ["ASSETS", "build_definitions", "build_resources", "defs"]

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
from resources import PipelineConfig
from resources.execution import executor_for
from resources.providers import NarrationVoices, VideoProviders
from resources.storage import clip_storage_for

ASSETS = [campaign, prompt_batches, narration_tracks, routed_job_plans, generated_segments, stored_clips,
          assembled_outputs, campaign_report, content_credentials_valid]


def build_resources(pipeline: PipelineConfig | None = None, **overrides) -> dict:
    """The resource set for the settings' profile; tests pass a PipelineConfig or swap providers."""
    pipeline = pipeline or PipelineConfig()
    clip_storage = clip_storage_for(pipeline.settings())        # VIDEO_PIPELINE_PROFILE: local files or S3
    tables = clip_storage.tables(pipeline)                      # the tables beside the clips: files or the bucket
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


def campaign_job_definition():
    """`campaign_job` with the environment's resources and executor: what `video-pipeline run` executes, rebuilt
    from here in each process that runs one of its steps (the run's settings come with the run config)."""
    return build_definitions().resolve_job_def("campaign_job")


#: what the steps import when they run, beyond the definitions: the stages and what they call into
STEP_MODULES = ("video_pipeline.flow.stages", "video_pipeline.flow.intake", "video_pipeline.flow.provenance",
                "video_pipeline.jobs.spend", "video_pipeline.media.measure", "video_pipeline.media.mix",
                "video_pipeline.media.stills", "video_pipeline.media.credentials", "video_pipeline.report.page",
                "video_pipeline.providers.espeak", "video_pipeline.spec.media_limits", "resources.io",
                # and what those import only when called
                "pyarrow.parquet", "pyarrow.dataset", "pyarrow.pandas_compat", "c2pa", "cryptography.x509",
                "PIL.Image", "PIL.PngImagePlugin", "PIL.JpegImagePlugin", "imageio_ffmpeg")


def preload() -> None:
    """Import what the steps import when they run (the forkserver of step processes calls this once per run)."""
    import importlib

    for name in STEP_MODULES:
        importlib.import_module(name)


__all__ = ["ASSETS", "build_definitions", "build_resources", "campaign_job_definition", "defs"]

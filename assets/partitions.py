"""One dynamic partition per campaign: the inbox sensor and `video-pipeline run` add them."""

from dagster import AssetExecutionContext, DynamicPartitionsDefinition, Failure

from video_pipeline.spec.campaign import Campaign
from video_pipeline.config import Settings

campaign_partitions = DynamicPartitionsDefinition(name="campaigns")


def active_campaign(context: AssetExecutionContext, settings: Settings) -> Campaign:
    """The partition's current campaign spec; a spec that no longer loads fails the step with its own message."""
    from video_pipeline.flow.intake import INVALID, load_active

    try:
        return load_active(settings, context.partition_key)
    except (*INVALID, FileNotFoundError) as exc:
        raise Failure(description=str(exc)) from None

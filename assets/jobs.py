"""The whole chain for one campaign partition."""

from dagster import AssetSelection, define_asset_job

from .partitions import campaign_partitions

STAGES = ["prompt_batches", "routed_job_plans", "generated_segments", "stored_clips", "assembled_outputs"]

campaign_job = define_asset_job(
    "campaign_job",
    selection=AssetSelection.assets(*STAGES),
    partitions_def=campaign_partitions,
    description="Materialize every stage for one campaign: prompts → plans → segments → clips → videos.",
)

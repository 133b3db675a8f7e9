"""The whole chain for one campaign partition."""

from dagster import AssetSelection, define_asset_job

STAGES = ["campaign", "prompt_batches", "narration_tracks", "routed_job_plans", "generated_segments", "stored_clips",
          "assembled_outputs", "campaign_report"]

campaign_job = define_asset_job(
    "campaign_job",
    selection=AssetSelection.assets(*STAGES),
    description="Materialize every stage for one campaign: campaign → prompts → plans → segments → clips → videos → report.",
)

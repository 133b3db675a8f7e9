"""prompt_batches: the campaign's shots as a table, one row per requested shot."""

from dagster import AssetExecutionContext, MetadataValue, asset

from video_pipeline.spec.campaign import Campaign

from .metadata import OWNERS, DataFrame, Stopwatch, column_schema, markdown_table
from .partitions import campaign_partitions


@asset(partitions_def=campaign_partitions, metadata=column_schema("prompt_batches"),
       group_name="intake", kinds={"pandas", "parquet"}, owners=OWNERS,
       description="Why: the task category decides which models can make a shot, so it is decided once, here, "
                   "where a person can read it. One row per shot the campaign asks for, with its task category "
                   "(text, image or video to video, enhance, lip sync); the planner routes each shot as this table "
                   "says.")
def prompt_batches(context: AssetExecutionContext, campaign: Campaign) -> DataFrame:
    from video_pipeline.flow.stages import prompt_batches as build_prompt_batches

    watch = Stopwatch()
    frame = build_prompt_batches(campaign)
    context.log.info(f"{len(frame)} shot(s) in {len(campaign.videos)} video(s) from {campaign.source.file}")
    context.add_output_metadata({
        "dagster/row_count": len(frame),
        "videos": len(campaign.videos),
        "categories": MetadataValue.json(frame["category"].value_counts().to_dict()),
        "spec_file": MetadataValue.path(campaign.source.file),
        "spec_sha256": campaign.source.sha256,
        "schedule": campaign.schedule,
        "budget_usd": MetadataValue.float(campaign.budget_usd) if campaign.budget_usd else MetadataValue.text("none"),
        "wall_seconds": watch.seconds,
        "preview": markdown_table(frame, ["video_id", "shot_index", "category", "prompt"]),
    })
    return frame

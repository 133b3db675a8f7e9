"""routed_job_plans: long videos expanded into segments, each routed, priced and timed before any spend."""

from dagster import AssetExecutionContext, Failure, MetadataValue, asset

from resources.pipeline import PipelineConfig
from resources.providers import VideoProviders
from video_pipeline.spec.campaign import Campaign

from .metadata import OWNERS, DataFrame, Stopwatch, column_schema, markdown_table
from .partitions import campaign_partitions


@asset(partitions_def=campaign_partitions, metadata=column_schema("routed_job_plans"),
       group_name="planning", kinds={"pandas", "parquet"}, owners=OWNERS,
       description="Why: money is committed only after every segment has a model, a price and a reason a person "
                   "can read. One row per segment: model, fallback chain, route reason, seconds, estimated cost and "
                   "latency (the model's p50/p95). A campaign over its budget stops here, before anything is spent.")
def routed_job_plans(context: AssetExecutionContext, campaign: Campaign, prompt_batches: DataFrame,
                     narration_tracks: DataFrame, pipeline: PipelineConfig,
                     providers: VideoProviders) -> DataFrame:
    from video_pipeline.flow.intake import INVALID
    from video_pipeline.flow.stages import routed_job_plans as build_plans

    watch = Stopwatch()
    settings = pipeline.settings()
    catalog = pipeline.catalog()
    try:
        plan, frame = build_plans(campaign, catalog, settings, providers=providers.configured(settings),
                                  narration=narration_tracks, batches=prompt_batches)
    except INVALID as exc:
        raise Failure(description=str(exc)) from None
    for warning in plan.warnings:
        context.log.warning(warning)
    context.log.info(f"{len(frame)} segment(s), estimated ${plan.total_cost_usd:.2f}, "
                     f"~{plan.est_wall_seconds(catalog):.0f}s of provider time")
    context.add_output_metadata({
        "dagster/row_count": len(frame),
        "est_cost_usd": MetadataValue.float(plan.total_cost_usd),
        "budget_usd": MetadataValue.float(campaign.budget_usd) if campaign.budget_usd else MetadataValue.text("none"),
        "est_wall_seconds": MetadataValue.float(plan.est_wall_seconds(catalog)),
        "model_mix": MetadataValue.json(frame["model"].value_counts().to_dict()),
        "warnings": MetadataValue.text("\n".join(plan.warnings) or "none"),
        "wall_seconds": watch.seconds,
        "decisions": markdown_table(frame, ["video_id", "segment_index", "model", "seconds", "est_cost_usd",
                                            "est_latency_seconds", "fallbacks", "reason"]),
    })
    return frame

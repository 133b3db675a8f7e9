"""campaign_report: one HTML page per campaign that answers what a person asks first: where is my video, what did
it cost, how long did each job take against its model's profile, which clips failed and why."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from resources.pipeline import PipelineConfig
from resources.storage import ClipStorage
from video_pipeline.spec.campaign import Campaign

from .metadata import OWNERS, DataFrame, Stopwatch, markdown_table
from .partitions import campaign_partitions


@asset(partitions_def=campaign_partitions, group_name="reporting", kinds={"html"}, owners=OWNERS,
       description="Why: people would rather look than read logs. A self-contained HTML page per campaign (no "
                   "network, no script): each video's player, poster and contact sheet, the segment table (model, "
                   "route reason, latency against the model's profile, attempts, fallbacks, cost) and charts of "
                   "latency per model and cost by model and video against the budget.")
def campaign_report(context: AssetExecutionContext, campaign: Campaign, routed_job_plans: DataFrame,
                    generated_segments: DataFrame, assembled_outputs: DataFrame, pipeline: PipelineConfig,
                    clip_storage: ClipStorage) -> MaterializeResult:
    from video_pipeline.report.page import campaign_report as write_campaign_report

    watch = Stopwatch()
    settings = pipeline.settings()
    # a store that serves files by URL (presigned S3 links) says how to link them; local files link relatively
    link_for = getattr(clip_storage.store(settings), "link_for", None)
    path = write_campaign_report(settings, context.partition_key, routed_job_plans, generated_segments,
                                 assembled_outputs, pipeline.catalog(), campaign.budget_usd, link_for)
    context.log.info(f"report: {path}")
    return MaterializeResult(metadata={
        "report": MetadataValue.path(str(path)),
        "dagster/uri": MetadataValue.url(path.resolve().as_uri()),
        "videos": len(assembled_outputs),
        "assembled": int((assembled_outputs["state"] == "assembled").sum()),
        "cost_usd": MetadataValue.float(round(float(assembled_outputs["cost_usd"].sum()), 4)),
        "budget_usd": MetadataValue.float(campaign.budget_usd) if campaign.budget_usd else MetadataValue.text("none"),
        "wall_seconds": watch.seconds,
        "videos_table": markdown_table(assembled_outputs, ["video_id", "state", "duration_seconds", "cost_usd",
                                                           "models", "error"]),
    })

"""campaign: the partition's validated campaign, read from its installed spec once per run."""

from dagster import AssetExecutionContext, DataVersion, MetadataValue, Output, asset

from resources.pipeline import PipelineConfig
from video_pipeline.spec.campaign import Campaign

from .metadata import OWNERS, Stopwatch
from .partitions import active_campaign, campaign_partitions


@asset(partitions_def=campaign_partitions, group_name="intake", kinds={"python", "json"}, owners=OWNERS,
       description="Why: a run must use the campaign version it started with. The partition's spec (installed by "
                   "the inbox sensor or `video-pipeline run`) parsed, validated and its file references checked, "
                   "once; every later stage reads this snapshot, never the file, so editing or deleting the file "
                   "during a run changes nothing in it. Its data version is the spec's SHA-256.")
def campaign(context: AssetExecutionContext, pipeline: PipelineConfig) -> Output[Campaign]:
    from video_pipeline.flow.stages import clear_leftovers

    watch = Stopwatch()
    settings = pipeline.settings()
    spec = active_campaign(context, settings)
    if removed := clear_leftovers(settings, spec.campaign):     # a killed run's temporary files, never results
        context.log.info(f"removed {len(removed)} temporary file(s) left by killed runs: "
                         + ", ".join(sorted(p.name for p in removed)[:10]))
    source = spec.source
    shots = sum(len(v.shots) for v in spec.videos)
    context.log.info(f"campaign {spec.campaign}: {len(spec.videos)} video(s), {shots} shot(s) from {source.file}")
    return Output(spec, data_version=DataVersion(source.sha256), metadata={
        "spec_file": MetadataValue.path(source.file),
        "spec_sha256": source.sha256,
        "videos": len(spec.videos),
        "shots": shots,
        "schedule": spec.schedule,
        "quality_tier": spec.defaults.quality_tier,
        "budget_usd": MetadataValue.float(spec.budget_usd) if spec.budget_usd else MetadataValue.text("none"),
        "wall_seconds": watch.seconds,
    })

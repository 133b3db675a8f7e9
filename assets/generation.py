"""generated_segments and stored_clips: run every provider job, then keep each output before its URL expires."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from resources.pipeline import PipelineConfig
from resources.providers import VideoProviders
from resources.storage import ClipStorage
from video_pipeline.spec.campaign import Campaign
from video_pipeline.tables import values

from .metadata import OWNERS, DataFrame, Stopwatch, column_schema, latency_by_model, markdown_table, models_used
from .partitions import campaign_partitions


@asset(partitions_def=campaign_partitions, metadata=column_schema("generated_segments"),
       group_name="generation", kinds={"python", "parquet"}, owners=OWNERS,
       pool="provider_jobs",
       description="Why: this is where money is spent, so every job goes through the ledger first and is never paid "
                   "twice. Every segment's provider job, run concurrently with per-model limits, retries and "
                   "fallbacks; one row per segment with its model, attempts, latency and cost, failed ones with the "
                   "reason.")
def generated_segments(context: AssetExecutionContext, campaign: Campaign, routed_job_plans: DataFrame,
                       pipeline: PipelineConfig, providers: VideoProviders,
                       clip_storage: ClipStorage) -> DataFrame:
    from video_pipeline.flow.stages import generated_segments as run_generation
    from video_pipeline.flow.stages import job_ledger
    from video_pipeline.jobs.engine import CampaignAborted
    from video_pipeline.jobs.spend import campaign_spend, spent_words

    watch = Stopwatch()
    settings = pipeline.settings()
    catalog = pipeline.catalog()

    def on_change(outcome) -> None:
        if outcome.state in ("succeeded", "failed", "uncertain"):
            context.log.info(f"{outcome.video_id}[{outcome.segment_index}] {outcome.state} on {outcome.model} "
                             f"after {outcome.latency_seconds:.1f}s" + (f": {outcome.error}" if outcome.error else ""))

    try:
        # jobs a dead run left in flight are taken over meanwhile, their clips kept in this run's clip store
        frame = run_generation(routed_job_plans, catalog, settings, providers.registry(settings, catalog), on_change,
                               budget_usd=campaign.budget_usd, store=clip_storage.store(settings))
    except CampaignAborted as exc:
        raise Failure(description=f"campaign stopped: {exc}") from None
    ok = frame[frame["state"] == "succeeded"]
    failed = frame[frame["state"] == "failed"]
    uncertain = frame[frame["state"] == "uncertain"]
    ledger = job_ledger(settings)
    try:
        spend = campaign_spend(ledger, context.partition_key)
    finally:
        ledger.dispose()
    for row in uncertain.itertuples():
        context.log.warning(f"{row.video_id}[{row.segment_index}]: {row.error}")
    context.add_output_metadata({
        "dagster/row_count": len(frame),
        "succeeded": len(ok),
        "failed": len(failed),
        "uncertain": len(uncertain),
        "est_cost_usd": MetadataValue.float(round(float(routed_job_plans["est_cost_usd"].sum()), 4)),
        # the campaign's bill from the ledger, whichever run paid each job (a reuse adds nothing)
        "cost_usd": MetadataValue.float(spend.total("actual_usd")),
        "paid_this_run_usd": MetadataValue.float(round(float(frame.loc[frame["paid"], "cost_usd"].sum()), 4)),
        "reserved_usd": MetadataValue.float(spend.total("reserved_usd")),
        "uncertain_usd": MetadataValue.float(spend.total("uncertain_usd")),
        "spend": MetadataValue.text(spent_words(spend)),
        "wall_seconds": watch.seconds,
        "latency_by_model": latency_by_model(ok),
        "models": models_used(ok),
        "fallbacks_taken": int(sum(1 for taken in frame["fallbacks_taken"] if values(taken))),
        "reused": int(frame["reused"].sum()),
        "resumed": int(frame["resumed"].sum()),
        "attempts": int(frame["attempts"].sum()),
        "preview": markdown_table(frame, ["video_id", "segment_index", "state", "model", "attempts",
                                          "latency_seconds", "cost_usd", "error"]),
    })
    return frame


@asset(partitions_def=campaign_partitions, metadata=column_schema("stored_clips"),
       group_name="storage", kinds={"ffmpeg", "parquet"}, owners=OWNERS,
       pool="media",
       description="Why: providers' output URLs expire within hours to days; a paid clip must be kept before then. "
                   "Each output downloaded, verified (decodes, duration, checksum) and stored content-addressed "
                   "(files or S3); the provider URL is kept only as provenance.",
       check_specs=[AssetCheckSpec("all_segments_stored", asset="stored_clips",
                                   description="every planned segment has a verified clip in the store")])
def stored_clips(context: AssetExecutionContext, generated_segments: DataFrame, pipeline: PipelineConfig,
                 clip_storage: ClipStorage, providers: VideoProviders):
    from video_pipeline.flow.stages import job_ledger
    from video_pipeline.flow.stages import stored_clips as store_outputs

    watch = Stopwatch()
    settings = pipeline.settings()
    registry = providers.registry(settings, pipeline.catalog())
    ledger = job_ledger(settings)
    try:
        frame = store_outputs(generated_segments, clip_storage.store(settings), ledger, registry.download_headers,
                              registry.fetch_output)
    finally:
        ledger.dispose()
    stored = frame[frame["state"] == "stored"]
    missing = frame[frame["state"] != "stored"]
    yield Output(frame, metadata={
        "dagster/row_count": len(frame),
        "stored": len(stored),
        "missing": len(missing),
        "bytes": int(stored["size_bytes"].sum()) if len(stored) else 0,
        "store": MetadataValue.text(clip_storage.store(settings).location),
        "wall_seconds": watch.seconds,
        "preview": markdown_table(frame, ["video_id", "segment_index", "state", "duration_seconds", "sha256", "error"]),
    })
    yield AssetCheckResult(
        check_name="all_segments_stored", passed=missing.empty, severity=AssetCheckSeverity.WARN,
        metadata={"missing": len(missing),
                  "reasons": MetadataValue.text("\n".join(f"{r.video_id}[{r.segment_index}]: {r.error}"
                                                          for r in missing.itertuples()) or "none")},
    )

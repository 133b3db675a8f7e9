"""assembled_outputs: each video's segments joined into one MP4, checked against its target."""

import warnings

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    MetadataValue,
    Output,
    PreviewWarning,
    asset,
    asset_check,
)

from resources.pipeline import PipelineConfig
from resources.storage import ClipStorage
from video_pipeline.spec.campaign import Campaign
from video_pipeline.tables import values

from .metadata import OWNERS, DataFrame, Stopwatch, column_schema, markdown_table
from .partitions import campaign_partitions

DURATION_TOLERANCE_SECONDS = 0.5
TARGET_LUFS = -14.0
#: how far a finished video's integrated loudness may be from the target (the mix settles within 0.1 LU)
LOUDNESS_TOLERANCE_LU = 0.5


@asset(partitions_def=campaign_partitions, metadata=column_schema("assembled_outputs"),
       group_name="assembly", kinds={"ffmpeg", "parquet"}, owners=OWNERS,
       pool="media",
       description="Why: a campaign asks for finished videos, not clips. Each video's segments joined (cut or "
                   "crossfade) into one MP4 under outputs/<campaign>/ with narration, ducked music, -14 LUFS sound, "
                   "subtitles, a poster and a contact sheet, and signed Content Credentials (C2PA) naming the models "
                   "behind each segment; checks say whether each one meets its target.",
       check_specs=[
           AssetCheckSpec("every_video_assembled", asset="assembled_outputs",
                          description="every video of the campaign has a finished MP4"),
           AssetCheckSpec("durations_on_target", asset="assembled_outputs",
                          description=f"each video lasts its target within {DURATION_TOLERANCE_SECONDS}s"),
           AssetCheckSpec("loudness_on_target", asset="assembled_outputs",
                          description="each video with sound measures -14 LUFS integrated within 0.5 LU (ebur128)"),
           AssetCheckSpec("no_black_runs", asset="assembled_outputs",
                          description="no black stretch longer than 0.5 s (blackdetect)"),
           AssetCheckSpec("narration_audible", asset="assembled_outputs",
                          description="no second of silence while the narration should be speaking (silencedetect)"),
       ])
def assembled_outputs(context: AssetExecutionContext, campaign: Campaign, stored_clips: DataFrame,
                      narration_tracks: DataFrame, generated_segments: DataFrame,
                      routed_job_plans: DataFrame, pipeline: PipelineConfig, clip_storage: ClipStorage):
    from video_pipeline.flow.stages import assembled_outputs as assemble
    from video_pipeline.media.credentials import signing_notice

    watch = Stopwatch()
    settings = pipeline.settings()
    store = clip_storage.store(settings)
    if campaign.provenance.credentials and (notice := signing_notice(settings)):
        context.log.warning(notice)      # once per run: live mode signing with the development chain
    # another machine's clips are fetched from the store first; finished files are kept where the store keeps things
    frame = store.publish_outputs(assemble(store.localize(stored_clips), settings, campaign, narration_tracks,
                                           generated_segments, routed_job_plans))
    done = frame[frame["state"] == "assembled"]
    failed = frame[frame["state"] != "assembled"]
    for row in done.itertuples():
        context.log.info(f"{row.video_id}: {row.output_path} ({row.duration_seconds:.2f}s)")
    for row in failed.itertuples():
        context.log.error(f"{row.video_id}: not assembled: {row.error}")
    off = done[(done["duration_seconds"] - done["target_seconds"]).abs() > DURATION_TOLERANCE_SECONDS]
    out_dir = settings.outputs_dir / context.partition_key
    yield Output(frame, metadata={
        "dagster/row_count": len(frame),
        "dagster/uri": MetadataValue.url(out_dir.resolve().as_uri()),
        "assembled": len(done),
        "failed": len(failed),
        "cost_usd": MetadataValue.float(round(float(frame["cost_usd"].sum()), 4)),
        "output_dir": MetadataValue.path(str(out_dir)),
        "outputs": MetadataValue.json({r.video_id: r.output_path for r in done.itertuples()}),
        **{f"link/{r.video_id}": MetadataValue.url(r.output_link) for r in done.itertuples() if r.output_link},
        "seconds_of_video": MetadataValue.float(round(float(done["duration_seconds"].sum()), 3)),
        "loudness_lufs": MetadataValue.json({r.video_id: r.loudness_lufs for r in done.itertuples()}),
        "posters": MetadataValue.json({r.video_id: r.poster for r in done.itertuples()}),
        "join_scores": MetadataValue.json({r.video_id: values(r.join_scores) for r in done.itertuples()}),
        "credentials": MetadataValue.json({r.video_id: _credential_words(r.credentials) for r in done.itertuples()}),
        "wall_seconds": watch.seconds,
        "preview": markdown_table(frame, ["video_id", "state", "duration_seconds", "target_seconds", "models",
                                          "cost_usd", "output_path", "error"]),
    })
    yield AssetCheckResult(check_name="every_video_assembled", passed=failed.empty,
                           severity=AssetCheckSeverity.ERROR,
                           metadata={"failed": MetadataValue.text("\n".join(f"{r.video_id}: {r.error}"
                                                                            for r in failed.itertuples()) or "none")})
    off_loudness = {r.video_id: r.loudness_lufs for r in done.itertuples()
                    if r.loudness_lufs is not None and r.loudness_lufs == r.loudness_lufs
                    and abs(r.loudness_lufs - TARGET_LUFS) > LOUDNESS_TOLERANCE_LU}
    yield AssetCheckResult(check_name="loudness_on_target", passed=not off_loudness,
                           severity=AssetCheckSeverity.WARN, metadata={"off_target": MetadataValue.json(off_loudness)})
    black = {r.video_id: values(r.black_runs) for r in done.itertuples() if values(r.black_runs)}
    yield AssetCheckResult(check_name="no_black_runs", passed=not black, severity=AssetCheckSeverity.WARN,
                           metadata={"black_runs": MetadataValue.json(black)})
    quiet = {r.video_id: values(r.silent_in_narration) for r in done.itertuples() if values(r.silent_in_narration)}
    yield AssetCheckResult(check_name="narration_audible", passed=not quiet, severity=AssetCheckSeverity.ERROR,
                           metadata={"silent_stretches": MetadataValue.json(quiet)})
    yield AssetCheckResult(check_name="durations_on_target", passed=off.empty, severity=AssetCheckSeverity.ERROR,
                           metadata={"off_target": MetadataValue.json(
                               {r.video_id: {"seconds": r.duration_seconds, "target": r.target_seconds}
                                for r in off.itertuples()})})


def _credential_words(record) -> str:
    if not record or record.get("state") == "off":
        return "off (provenance: off)"
    who = f"{record.get('signer')}" + (" (untrusted development credentials)" if record.get("development") else "")
    return f"{record.get('state')}, {record.get('validation')}, by {who}"


# A partitioned asset check is one of Dagster's preview APIs, which the project tracks. Its warning would print on
# every import of the definitions (the UI's code server, each step process), where a user can do nothing about it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PreviewWarning)

    @asset_check(asset=assembled_outputs, partitions_def=campaign_partitions, blocking=False,
                 additional_ins={"stored_clips": AssetIn("stored_clips"),
                                 "generated_segments": AssetIn("generated_segments")},
                 description="each finished video's Content Credentials, read back from the file with c2pa's "
                             "Reader: the manifest validates (trusted, with the development CA or "
                             "VIDEO_PIPELINE_C2PA_TRUST_ANCHORS as trust anchor), its hard binding covers the whole "
                             "file, and its ingredients are the clips the ledger says made the video, each with its "
                             "model")
    def content_credentials_valid(assembled_outputs: DataFrame, stored_clips: DataFrame,
                                  generated_segments: DataFrame, pipeline: PipelineConfig) -> AssetCheckResult:
        from video_pipeline.flow.provenance import verify_outputs

        problems = verify_outputs(assembled_outputs, stored_clips, generated_segments, pipeline.settings())
        failing = {video: found for video, found in problems.items() if found}
        return AssetCheckResult(passed=not failing, severity=AssetCheckSeverity.ERROR, metadata={
            "checked": len(problems), "failing": len(failing),
            "problems": MetadataValue.json(failing),
        })

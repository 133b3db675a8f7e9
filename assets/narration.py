"""narration_tracks: each video's narration spoken once, so the planner can fit the picture to the voice."""

from dagster import AssetExecutionContext, Failure, MetadataValue, asset

from resources.pipeline import PipelineConfig
from resources.providers import NarrationVoices
from video_pipeline.spec.campaign import Campaign
from video_pipeline.errors import ProviderError

from .metadata import OWNERS, DataFrame, Stopwatch, column_schema, markdown_table
from .partitions import campaign_partitions


@asset(partitions_def=campaign_partitions, metadata=column_schema("narration_tracks"),
       group_name="narration", kinds={"python", "parquet"}, owners=OWNERS,
       description="Why: the voice sets the length, so it is spoken before the picture is planned. One track per "
                   "narrated video (espeak-ng offline; OpenAI or ElevenLabs live), kept content-addressed, with "
                   "sentence or word timings for subtitles; its length becomes the video's target when longer.")
def narration_tracks(context: AssetExecutionContext, campaign: Campaign, pipeline: PipelineConfig,
                     voices: NarrationVoices) -> DataFrame:
    from video_pipeline.flow.stages import narration_tracks as speak

    watch = Stopwatch()
    settings = pipeline.settings()
    try:
        frame = speak(campaign, pipeline.catalog(), settings, voices.voice(settings, pipeline.catalog()))
    except ProviderError as exc:
        raise Failure(description=str(exc)) from None
    context.add_output_metadata({
        "dagster/row_count": len(frame),
        "seconds_of_speech": MetadataValue.float(round(float(frame["duration_seconds"].sum()), 3)),
        "characters": int(frame["characters"].sum()),
        "cost_usd": MetadataValue.float(round(float(frame["cost_usd"].sum()), 4)),
        "wall_seconds": watch.seconds,
        "preview": markdown_table(frame, ["video_id", "provider", "voice", "duration_seconds", "audio_path"]),
    })
    return frame

"""The tables that pass between stages: each one's schema declared once, as Arrow types with a description per
column, and the same whatever stores it (local Parquet files or the bucket).

Lists are list columns and records are struct columns (a plan's fallback chain, a video's join scores), never text
to split or JSON to parse. `TableSchema.table(frame)` checks and converts a stage's DataFrame into an Arrow table of
exactly this schema (a missing or extra column is an error, not a silent change); `TableSchema.frame(table)` reads
one back with Python lists, dicts and None where Parquet has lists, maps, structs and nulls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import pandas as pd      # imported where a frame is made: the schemas alone do not need it
    import pyarrow as pa     # likewise: the declarations below name Arrow types without importing pyarrow, so
                             # loading the definitions (the UI, every step process) does not pay its 0.14 s


@dataclass(frozen=True)
class Kind:
    """An Arrow type, named as Arrow spells it and built when a table is written or read."""

    text: str
    make: Callable = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    def arrow(self) -> "pa.DataType":
        import pyarrow

        return self.make(pyarrow)


def _plain(text: str, factory: str) -> Kind:
    return Kind(text, lambda pa: getattr(pa, factory)())


def list_of(item: Kind) -> Kind:
    return Kind(f"list<item: {item}>", lambda pa: pa.list_(item.arrow()))


def map_of(key: Kind, value: Kind) -> Kind:
    return Kind(f"map<{key}, {value}>", lambda pa: pa.map_(key.arrow(), value.arrow()))


def struct_of(fields: list[tuple[str, Kind]]) -> Kind:
    return Kind("struct<" + ", ".join(f"{n}: {k}" for n, k in fields) + ">",
                lambda pa: pa.struct([(n, k.arrow()) for n, k in fields]))


STRING, INT, FLOAT, BOOL = _plain("string", "string"), _plain("int64", "int64"), _plain("double", "float64"), \
    _plain("bool", "bool_")
STRINGS = list_of(STRING)
#: model-specific request options (e.g. Wan's shot_type): names to values
OPTIONS = map_of(STRING, STRING)
#: a stretch of a video, in seconds from its start
SPANS = list_of(struct_of([("start_seconds", FLOAT), ("end_seconds", FLOAT)]))
#: spoken words or sentences with their times in the narration track
TIMINGS = list_of(struct_of([("text", STRING), ("start_seconds", FLOAT), ("end_seconds", FLOAT)]))
#: a discontinuity score per join: luma change across the join and one second before it
JOIN_SCORES = list_of(struct_of([("at_seconds", FLOAT), ("score", FLOAT), ("baseline", FLOAT)]))
#: a finished video's Content Credentials as read back after signing (C2PA)
CREDENTIALS = struct_of([
    ("state", STRING),            # signed, off (the campaign's `provenance: off`) or unsigned
    ("validation", STRING),       # Trusted, Valid or Invalid
    ("signer", STRING),           # the signing certificate's common name
    ("development", BOOL),        # signed with the untrusted development chain
    ("generator", STRING),        # the claim generator: video-pipeline and its version
    ("source_type", STRING),      # the IPTC digital source type of the video (the AI disclosure)
    ("ingredients", list_of(struct_of([("title", STRING), ("model", STRING), ("source_type", STRING)]))),
    ("label", STRING),            # the visible label drawn into the picture, when the campaign asks for one
])


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str
    nullable: bool = True

    @property
    def type(self) -> "pa.DataType":
        return self.kind.arrow()

    def field(self) -> "pa.Field":
        import pyarrow as pa

        return pa.field(self.name, self.type, nullable=self.nullable, metadata={"description": self.description})


def column(name: str, kind: Kind, description: str, nullable: bool = True) -> Column:
    return Column(name, kind, description, nullable)


@dataclass(frozen=True)
class TableSchema:
    name: str
    fields: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @cached_property
    def schema(self) -> "pa.Schema":
        import pyarrow as pa

        return pa.schema([f.field() for f in self.fields])

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, Arrow type, description) per column, for catalogs such as Dagster's column schema."""
        return [(f.name, str(f.kind), f.description) for f in self.fields]

    def rows(self, rows: list[dict]) -> pd.DataFrame:
        """A stage's rows as its DataFrame: exactly these columns, in order (absent values are None)."""
        import pandas as pd

        return pd.DataFrame([{name: row.get(name) for name in self.names} for row in rows], columns=self.names)

    def table(self, frame: pd.DataFrame) -> "pa.Table":
        """The frame as an Arrow table of this schema; ValueError naming the columns that do not fit."""
        missing = [n for n in self.names if n not in frame.columns]
        extra = [c for c in frame.columns if c not in self.names]
        if missing or extra:
            raise ValueError(f"{self.name}: columns do not match the declared schema (missing {missing}, "
                             f"unexpected {extra})")
        import pyarrow as pa

        arrays = []
        for f in self.schema:
            cells = list(frame[f.name])
            if pa.types.is_map(f.type):
                cells = [None if _missing(v) else {str(k): str(x) for k, x in dict(v).items()} for v in cells]
            elif pa.types.is_list(f.type):
                cells = [None if _missing(v) else list(v) for v in cells]
            else:
                cells = [None if _missing(v) else (v.item() if hasattr(v, "item") else v) for v in cells]
            try:
                arrays.append(pa.array(cells, type=f.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ValueError(f"{self.name}.{f.name}: a value does not fit {f.type}: {exc}") from None
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def frame(self, table: "pa.Table") -> pd.DataFrame:
        """An Arrow table of this schema as a DataFrame with plain Python values in nested columns."""
        import pandas as pd

        import pyarrow as pa

        frame = table.select(self.names).to_pandas()
        for f in self.schema:
            if pa.types.is_map(f.type):
                frame[f.name] = [None if v is None else dict(v) for v in table.column(f.name).to_pylist()]
            elif pa.types.is_nested(f.type):
                frame[f.name] = pd.Series(table.column(f.name).to_pylist(), dtype=object)
        return frame


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def cell(value):
    """A table cell as a plain value: None for a null (pandas reads a missing number as NaN)."""
    return None if _missing(value) else value


def values(value) -> list:
    """A list cell as a list ([] for a null)."""
    return [] if _missing(value) else list(value)


def records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict]:
    """The frame's rows as dicts of plain values (None for nulls)."""
    frame = frame if columns is None else frame[columns]
    return [{k: cell(v) for k, v in row.items()} for row in frame.to_dict("records")]


#: columns several tables share
_CAMPAIGN = column("campaign", STRING, "campaign id", False)
_VIDEO = column("video_id", STRING, "video id", False)
_SEGMENT = column("segment_index", INT, "position of the segment in its video", False)
_RESOLUTION = column("resolution", STRING, "720p or 1080p")
_ASPECT = column("aspect_ratio", STRING, "16:9, 9:16 or 1:1")
_TARGET = column("target_seconds", FLOAT, "the finished video's planned length")
_SECONDS = column("seconds", FLOAT, "seconds of this segment in the finished video")
_JOB_KEY = column("job_key", STRING, "the ledger's key for the job", False)
_LATENCY = column("latency_seconds", FLOAT, "submit to finished")

PROMPT_BATCHES = TableSchema("prompt_batches", (
    _CAMPAIGN,
    column("video_id", STRING, "video id within the campaign", False),
    column("shot_index", INT, "position of the shot in its video", False),
    column("prompt", STRING, "the shot's prompt as written", False),
    column("category", STRING, "task category: text_to_video, image_to_video, video_to_video, video_enhance, "
                               "audio_lip_sync", False),
    column("quality_tier", STRING, "social, standard or premium"),
    column("use_case", STRING, "the campaign's use case"),
    _RESOLUTION,
    _ASPECT,
    column("target_seconds", FLOAT, "the video's target length, when set"),
    column("continuity", STRING, "parallel or chained"),
    column("transition", STRING, "cut or crossfade"),
    column("image", STRING, "input image under the data directory"),
    column("video", STRING, "input video under the data directory"),
    column("transform", STRING, "style or upscale, for an input video"),
    column("audio", STRING, "the video's driving audio"),
    column("pinned_model", STRING, "the model the shot pins"),
    column("schedule", STRING, "now or batch"),
    column("spec_sha256", STRING, "SHA-256 of the campaign file this run read"),
))

NARRATION_TRACKS = TableSchema("narration_tracks", (
    _CAMPAIGN,
    _VIDEO,
    column("provider", STRING, "TTS provider: espeak, openai or elevenlabs"),
    column("voice", STRING, "voice id"),
    column("audio_path", STRING, "the spoken track (content-addressed under narration/)"),
    column("duration_seconds", FLOAT, "length of the track"),
    column("timings", TIMINGS, "sentences or words with their start and end in the track"),
    column("characters", INT, "characters billed"),
    column("cost_usd", FLOAT, "price of the speech"),
    column("sha256", STRING, "content key of the track"),
))

ROUTED_JOB_PLANS = TableSchema("routed_job_plans", (
    _CAMPAIGN,
    _VIDEO,
    _SEGMENT,
    column("segment_count", INT, "segments in the video", False),
    column("shot_index", INT, "the shot this segment renders", False),
    column("category", STRING, "task category"),
    column("model", STRING, "the routed model", False),
    column("fallbacks", STRINGS, "models tried next, in order, when the model fails terminally"),
    column("reason", STRING, "why this model: the router's words"),
    column("prompt", STRING, "the prompt sent (style-anchored)"),
    _SECONDS,
    column("generate_seconds", INT, "seconds requested from (and billed by) the model"),
    column("start_seconds", FLOAT, "where the segment starts in the video"),
    _TARGET,
    _RESOLUTION,
    _ASPECT,
    column("image", STRING, "input image"),
    column("video", STRING, "input video"),
    column("audio", STRING, "driving audio"),
    column("audio_offset_seconds", FLOAT, "where in the driving audio this segment starts"),
    column("continuity", STRING, "parallel or chained"),
    column("transition", STRING, "cut or crossfade"),
    column("chained_from", STRING, "job key of the segment whose last frame seeds this one"),
    column("options", OPTIONS, "model-specific request options"),
    column("est_cost_usd", FLOAT, "estimated cost: catalog price x generated seconds"),
    column("est_latency_seconds", FLOAT, "the model's p50 latency (observed when known)"),
    column("p95_latency_seconds", FLOAT, "the model's p95 latency"),
    column("job_key", STRING, "hash of model, prompt, parameters and input files: the ledger's key", False),
))

GENERATED_SEGMENTS = TableSchema("generated_segments", (
    _CAMPAIGN,
    _VIDEO,
    _SEGMENT,
    _JOB_KEY,
    column("state", STRING, "succeeded, failed or uncertain", False),
    column("model", STRING, "the model that made (or last tried) the segment"),
    column("planned_model", STRING, "the model the plan routed to"),
    column("provider", STRING, "the provider that ran the job"),
    column("provider_job_id", STRING, "the provider's job id"),
    column("attempts", INT, "provider jobs tried for this segment"),
    column("fallbacks_taken", STRINGS, "each fallback taken: 'from -> to: why'"),
    _LATENCY,
    column("cost_usd", FLOAT, "what the job cost (the provider's bill when it says)"),
    column("output_url", STRING, "the provider's temporary output URL"),
    column("url_expires_at", STRING, "when that URL expires (ISO 8601)"),
    column("error", STRING, "why the segment failed or is uncertain"),
    column("reused", BOOL, "an earlier identical job was reused: nothing paid this run"),
    column("resumed", BOOL, "a job in flight from an earlier run was picked up"),
    _SECONDS,
    column("generate_seconds", INT, "seconds requested from the model"),
    _TARGET,
    _RESOLUTION,
    _ASPECT,
    column("est_cost_usd", FLOAT, "the plan's estimate"),
    column("paid", BOOL, "money went to a provider for this segment in this run"),
    column("settled", STRING, "how an uncertain submit was settled"),
))

STORED_CLIPS = TableSchema("stored_clips", (
    _CAMPAIGN,
    _VIDEO,
    _SEGMENT,
    _JOB_KEY,
    column("model", STRING, "the model that made the clip"),
    column("clip_uri", STRING, "the kept clip: file:// or s3:// by content hash"),
    column("clip_path", STRING, "the clip's local path (the cache, with S3)"),
    column("sha256", STRING, "SHA-256 of the clip"),
    column("size_bytes", INT, "size of the clip"),
    column("duration_seconds", FLOAT, "probed length"),
    _SECONDS,
    column("width", INT, "probed width"),
    column("height", INT, "probed height"),
    column("source_url", STRING, "where it was downloaded from (provenance only)"),
    column("state", STRING, "stored or failed", False),
    column("error", STRING, "why it was not stored"),
    column("cost_usd", FLOAT, "what the job cost"),
    _LATENCY,
    _TARGET,
    _RESOLUTION,
    _ASPECT,
    column("reused", BOOL, "an earlier identical job's clip"),
))

ASSEMBLED_OUTPUTS = TableSchema("assembled_outputs", (
    _CAMPAIGN,
    _VIDEO,
    column("state", STRING, "assembled or failed", False),
    column("output_uri", STRING, "the finished video: file:// or s3://"),
    column("output_link", STRING, "a presigned https link to it (S3 store only)"),
    column("output_path", STRING, "the finished video's local path"),
    column("duration_seconds", FLOAT, "probed length"),
    column("target_seconds", FLOAT, "planned length"),
    column("width", INT, "probed width"),
    column("height", INT, "probed height"),
    column("video_codec", STRING, "probed codec"),
    column("segments", INT, "segments joined"),
    column("models", STRINGS, "models that made its segments"),
    column("cost_usd", FLOAT, "segments plus narration"),
    column("error", STRING, "why it was not assembled"),
    column("loudness_lufs", FLOAT, "integrated loudness (ebur128)"),
    column("subtitles_srt", STRING, "SubRip subtitles"),
    column("subtitles_vtt", STRING, "WebVTT subtitles"),
    column("poster", STRING, "poster frame (PNG)"),
    column("contact_sheet", STRING, "contact sheet (PNG)"),
    column("narration_seconds", FLOAT, "length of the narration placed"),
    column("black_runs", SPANS, "black stretches longer than 0.5 s (blackdetect)"),
    column("silent_in_narration", SPANS, "silences of a second or more while the narration speaks"),
    column("join_scores", JOIN_SCORES, "discontinuity per join against its baseline"),
    column("credentials", CREDENTIALS, "Content Credentials (C2PA): state, validation, signer, generator, AI "
                                       "disclosure, ingredients with their models, visible label"),
    column("credentials_sidecar", STRING, "<video>.c2pa.json: the manifest's facts beside the video"),
))

#: asset name → its table's schema
TABLES: dict[str, TableSchema] = {t.name: t for t in (PROMPT_BATCHES, NARRATION_TRACKS, ROUTED_JOB_PLANS,
                                                      GENERATED_SEGMENTS, STORED_CLIPS, ASSEMBLED_OUTPUTS)}

"""Campaign files, version 1: YAML or JSON campaigns, CSV or JSONL prompt lists.

`load_campaign(path, data_dir)` returns a validated `Campaign` or raises `CampaignError` listing every
problem with its file, line and field. See docs/campaign-format.md for the format.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from video_pipeline.errors import CampaignError, Problem

CAMPAIGN_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
VIDEO_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".csv": "csv", ".jsonl": "jsonl"}
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TARGET_SECONDS = 1800.0
SNAPSHOT_VERSION = 1

SEXAGESIMAL_RATIOS = {16 * 60 + 9: "16:9", 9 * 60 + 16: "9:16", 60 + 1: "1:1"}
QualityTier = Literal["social", "standard", "premium"]
UseCase = Literal["general", "product_showcase", "music_video", "narrative", "talking_head"]
AspectRatio = Literal["16:9", "9:16", "1:1"]
Resolution = Literal["720p", "1080p"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Defaults(_Strict):
    quality_tier: QualityTier = "standard"
    use_case: UseCase = "general"
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    max_wait_seconds: int | None = Field(default=None, gt=0, le=86400)
    native_audio: Literal["keep", "replace"] = "keep"
    subtitles: Literal["soft", "burned", "none"] = "soft"
    voice: str | None = Field(default=None, max_length=64)

    @field_validator("aspect_ratio", mode="before")
    @classmethod
    def _unquoted_ratio(cls, value):
        # YAML 1.1 reads an unquoted 16:9 as the base-60 number 969 (9:16 → 556, 1:1 → 61).
        return SEXAGESIMAL_RATIOS.get(value, value) if isinstance(value, int) and not isinstance(value, bool) else value


class Shot(_Strict):
    prompt: str = Field(min_length=1, max_length=2500)
    image: str | None = None
    video: str | None = None
    transform: Literal["style", "upscale"] | None = None
    has_human_subjects: bool = False
    complexity: Literal["normal", "high_physics"] = "normal"
    requires_character_consistency: bool = False
    model: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _inputs_make_sense(self) -> "Shot":
        if self.image and self.video:
            raise ValueError("a shot takes either `image` (image-to-video) or `video` (video-to-video), not both")
        if self.video and not self.transform:
            raise ValueError("a shot with `video` needs `transform: style` (video-to-video) or `transform: upscale` (enhance)")
        if self.transform and not self.video:
            raise ValueError("`transform` applies to an input `video`; add `video: <path under data/>` or remove `transform`")
        return self


class Video(_Strict):
    id: str = Field(pattern=VIDEO_ID)
    target_seconds: float | None = Field(default=None, gt=0, le=MAX_TARGET_SECONDS, allow_inf_nan=False)
    continuity: Literal["parallel", "chained"] = "parallel"
    transition: Literal["cut", "crossfade"] = "cut"
    transition_seconds: float = Field(default=0.5, ge=0.1, le=2.0, allow_inf_nan=False)
    trim_join_frames: int = Field(default=0, ge=0, le=12)
    narration: str | None = Field(default=None, max_length=20000)
    music: str | None = None
    audio: str | None = None
    shots: list[Shot] = Field(min_length=1, max_length=500)


class Campaign(_Strict):
    version: Literal[1] = 1
    campaign: str = Field(pattern=CAMPAIGN_ID)
    budget_usd: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    budget_policy: Literal["refuse", "fit"] = "refuse"
    schedule: Literal["now", "batch"] = "now"
    style: str | None = Field(default=None, max_length=1000)
    defaults: Defaults = Defaults()
    videos: list[Video] = Field(min_length=1, max_length=10000)

    _source: "CampaignSource | None" = PrivateAttr(default=None)

    @property
    def source(self) -> "CampaignSource":
        return self._source or CampaignSource(file="<memory>", sha256="", lines={})

    def where(self, *field: str | int) -> tuple[str, int | None]:
        """The file and line of a field path such as ("videos", 0, "shots", 1, "model")."""
        return self.source.file, self.source.line_of(tuple(field))

    def snapshot(self) -> dict:
        """The validated campaign as JSON-ready data, with where it came from (file, hash, field lines), so a
        run keeps using the version it started with whatever happens to the file, and its errors still name
        file and line."""
        source = self.source
        lines = source.lines
        if isinstance(lines, _LazyLines) and lines.pending is not None:
            line_data: dict = {"json_text": lines.pending}       # a JSON file's lines are still only needed on error
        else:
            line_data = {"lines": [[list(path), line] for path, line in dict(lines).items()]}
        return {"snapshot": SNAPSHOT_VERSION, "file": source.file, "sha256": source.sha256,
                "spec": self.model_dump(mode="json"), **line_data}

    @classmethod
    def from_snapshot(cls, data: dict) -> "Campaign":
        """The campaign `snapshot()` saved (no file is read, nothing is parsed again)."""
        if data.get("snapshot") != SNAPSHOT_VERSION:
            raise ValueError(f"campaign snapshot version {data.get('snapshot')!r}; expected {SNAPSHOT_VERSION} "
                             "(rematerialize the `campaign` asset)")
        campaign = cls.model_validate(data["spec"])
        lines = (_LazyLines(data["json_text"]) if "json_text" in data
                 else {tuple(path): line for path, line in data["lines"]})
        campaign._source = CampaignSource(file=data["file"], sha256=data["sha256"], lines=lines)
        return campaign


class CampaignSource(BaseModel):
    """Where a campaign came from: the file, its content hash and a field-path → line map."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    file: str
    sha256: str
    lines: Any

    def line_of(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def field_name(path: tuple) -> str:
    """Render ("videos", 0, "shots", 1, "prompt") as videos[0].shots[1].prompt."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- reading files -----------------------------------------------------------------------------


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader (libyaml's when available) that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(node: yaml.Node | None, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def _decode(raw: bytes, display: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CampaignError([Problem(display, "", "file is UTF-16; save it as UTF-8", 1)])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CampaignError([Problem(display, "", f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8", line)]) from None


def _json_lines(text: str) -> dict[tuple, int]:
    """Field-path → line for a JSON document (JSON is YAML), computed only when an error needs it."""
    try:
        return _line_map(yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError:
        return {}


def _read_mapping_file(text: str, kind: str, display: str) -> tuple[Any, dict[tuple, int] | None]:
    """Parse a YAML or JSON campaign; returns the data and, for YAML, the line map (JSON's is made lazily)."""
    if kind == "json":
        try:
            # NaN and Infinity parse as floats here and are refused by the model, which can name their field.
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            raise CampaignError([Problem(display, "", f"invalid JSON: {exc.msg} at column {exc.colno}", exc.lineno)]) from None
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()   # one parse gives both the data and the line of every field
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise CampaignError(
            [Problem(display, "", f"invalid YAML: {problem}", mark.line + 1 if mark else None)]
        ) from None
    finally:
        loader.dispose()
    return data, _line_map(node)


class _LazyLines(dict):
    """A JSON document's line map, built on first use (only errors need it)."""

    def __init__(self, text: str):
        super().__init__()
        self._text: str | None = text

    @property
    def pending(self) -> str | None:
        """The document's text while its map has not been built."""
        return self._text

    def _load(self) -> None:
        if self._text is not None:
            self.update(_json_lines(self._text))
            self._text = None

    def __contains__(self, key) -> bool:
        self._load()
        return super().__contains__(key)

    def __getitem__(self, key):
        self._load()
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._load()
        return super().get(key, default)


_ROW_SHOT_FIELDS = ("prompt", "image", "video", "transform", "has_human_subjects", "complexity",
                    "requires_character_consistency", "model")
_ROW_VIDEO_FIELDS = ("id", "target_seconds", "continuity", "transition", "transition_seconds", "trim_join_frames",
                     "narration", "music", "audio")


def _rows_to_campaign(rows: list[tuple[int, dict]], campaign_id: str, display: str) -> tuple[dict, dict[tuple, int]]:
    """A prompt list: each row is a one-shot video; the file stem is the campaign id."""
    videos: list[dict] = []
    lines: dict[tuple, int] = {(): 1, ("campaign",): 1}
    problems: list[Problem] = []
    width = max(3, len(str(len(rows))))
    for index, (line, row) in enumerate(rows):
        unknown = sorted(k for k in row if k not in _ROW_SHOT_FIELDS + _ROW_VIDEO_FIELDS)
        if unknown:
            problems.append(Problem(display, ", ".join(unknown), "unknown column(s); expected some of "
                                    + ", ".join(_ROW_VIDEO_FIELDS + _ROW_SHOT_FIELDS), line))
            continue
        video = {k: v for k, v in row.items() if k in _ROW_VIDEO_FIELDS}
        video.setdefault("id", f"video-{index + 1:0{width}d}")
        video["shots"] = [{k: v for k, v in row.items() if k in _ROW_SHOT_FIELDS}]
        videos.append(video)
        for key in list(video) + ["shots"]:
            lines[("videos", len(videos) - 1, key)] = line
        lines[("videos", len(videos) - 1)] = line
        for key in video["shots"][0]:
            lines[("videos", len(videos) - 1, "shots", 0, key)] = line
    if problems:
        raise CampaignError(problems)
    return {"campaign": campaign_id, "videos": videos}, lines


def _read_csv(text: str, display: str) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, dict]] = []
    start = 1
    try:
        if not reader.fieldnames:
            raise CampaignError([Problem(display, "", "empty CSV; expected a header row with at least `prompt`", 1)])
        header = [h.strip() for h in reader.fieldnames]
        if len(set(header)) != len(header):
            raise CampaignError([Problem(display, "", "a column name appears twice in the header", 1)])
        unknown = sorted(h for h in header if h not in _ROW_SHOT_FIELDS + _ROW_VIDEO_FIELDS)
        if unknown:
            raise CampaignError([Problem(display, ", ".join(unknown), "unknown column(s); expected some of "
                                         + ", ".join(_ROW_VIDEO_FIELDS + _ROW_SHOT_FIELDS), 1)])
        reader.fieldnames = header
        start = reader.line_num + 1
        for raw in reader:
            if None in raw:
                raise CampaignError([Problem(display, "", f"row has more cells than the header's {len(header)}", reader.line_num)])
            row = {k: v.strip() for k, v in raw.items() if v is not None and v.strip() != ""}
            if row:
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):   # a quote opened on the row's first line is never closed
            raise CampaignError([Problem(display, "", "invalid CSV: a quoted cell is never closed; expected a "
                                         "closing \" (write a quote inside a cell as \"\")", start)]) from None
        raise CampaignError([Problem(display, "", f"invalid CSV: {exc}", reader.line_num)]) from None
    return rows


def _read_jsonl(text: str, display: str) -> list[tuple[int, dict]]:
    rows: list[tuple[int, dict]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CampaignError([Problem(display, "", f"invalid JSON on this line: {exc.msg} at column {exc.colno}; "
                                         "expected one JSON object per line", number)]) from None
        if not isinstance(row, dict):
            raise CampaignError([Problem(display, "", "each line must be a JSON object like {\"prompt\": \"...\"}", number)])
        rows.append((number, row))
    return rows


def _show(value: Any) -> str:
    """A value as the user wrote it (JSON spells non-finite numbers NaN and Infinity)."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _pydantic_problems(exc: ValidationError, display: str, lines: dict[tuple, int]) -> list[Problem]:
    source = CampaignSource(file=display, sha256="", lines=lines)
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling against docs/campaign-format.md"
        elif err["type"] == "literal_error":
            msg = f"got {_show(err.get('input'))}; " + msg.replace("Input should be", "expected")
        elif err["type"] == "string_pattern_mismatch":
            msg = f"got {_show(err.get('input'))}; expected lowercase letters, digits and '-' matching {err['ctx']['pattern']}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        else:
            msg = f"got {_show(err.get('input'))}; {msg[0].lower()}{msg[1:]}" if "input" in err and not isinstance(err.get("input"), (dict, list)) else msg
        problems.append(Problem(display, field_name(loc), msg, source.line_of(loc)))
    return problems


def parse_campaign(raw: bytes, filename: str, display: str | None = None) -> Campaign:
    """Parse and validate campaign bytes. `filename` picks the format (and, for lists, the campaign id)."""
    display = display or filename
    suffix = Path(filename).suffix.lower()
    kind = SUFFIXES.get(suffix)
    if kind is None:
        raise CampaignError([Problem(display, "", f"unsupported file type {suffix or '(none)'!r}; expected one of "
                                     + ", ".join(sorted(SUFFIXES)))])
    if len(raw) > MAX_FILE_BYTES:
        raise CampaignError([Problem(display, "", f"file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}")])
    text = _decode(raw, display)
    if not text.strip():
        raise CampaignError([Problem(display, "", "file is empty; expected a campaign (see docs/campaign-format.md)", 1)])
    if kind in ("csv", "jsonl"):
        stem = Path(filename).stem
        if not re.match(CAMPAIGN_ID, stem):
            raise CampaignError([Problem(display, "campaign", f"the file name {stem!r} is the campaign id and must match "
                                         f"{CAMPAIGN_ID} (lowercase letters, digits, '-')")])
        rows = _read_csv(text, display) if kind == "csv" else _read_jsonl(text, display)
        if not rows:
            raise CampaignError([Problem(display, "", "no rows; expected one row per video with at least a `prompt`", 1)])
        data, lines = _rows_to_campaign(rows, stem, display)
    else:
        data, lines = _read_mapping_file(text, kind, display)
        if lines is None:
            lines = _LazyLines(text)
        if not isinstance(data, dict):
            raise CampaignError([Problem(display, "", f"the top level must be a mapping with `campaign` and `videos`, "
                                         f"got {type(data).__name__}", 1)])
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignError(_pydantic_problems(exc, display, lines)) from None
    campaign._source = CampaignSource(file=display, sha256=hashlib.sha256(raw).hexdigest(), lines=lines)
    first: dict[str, int] = {}
    duplicates = []
    for i, video in enumerate(campaign.videos):
        if video.id in first:
            file, line = campaign.where("videos", i, "id")
            duplicates.append(Problem(file, f"videos[{i}].id", f"video id {video.id!r} is already used by videos"
                                      f"[{first[video.id]}]; ids must be unique in a campaign", line))
        first.setdefault(video.id, i)
    if duplicates:
        raise CampaignError(duplicates)
    return campaign


def load_campaign(path: Path | str, data_dir: Path | None = None, display: str | None = None) -> Campaign:
    """Read, validate and (when `data_dir` is given) check every file reference of a campaign file."""
    path = Path(path)
    display = display or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CampaignError([Problem(display, "", "file not found")]) from None
    except IsADirectoryError:
        raise CampaignError([Problem(display, "", "is a directory; expected a campaign file")]) from None
    campaign = parse_campaign(raw, path.name, display)
    if data_dir is not None:
        check_references(campaign, data_dir)
    return campaign


# --- file references ---------------------------------------------------------------------------

REFERENCE_KINDS = {
    "image": ({".png", ".jpg", ".jpeg", ".webp"}, "an image"),
    "video": ({".mp4", ".mov", ".webm", ".mkv"}, "a video"),
    "music": ({".mp3", ".wav", ".m4a", ".aac", ".ogg", ".flac"}, "an audio file"),
    "audio": ({".mp3", ".wav", ".m4a", ".aac", ".ogg", ".flac"}, "an audio file"),
}


def resolve_reference(value: str, data_dir: Path) -> Path:
    """Resolve a campaign file reference to a path inside `data_dir`, or raise ValueError saying why not."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        raise ValueError("URLs are not accepted here yet; put the file under data/ and give its relative path")
    candidate = Path(value)
    if candidate.is_absolute():
        raise ValueError("absolute paths are not accepted; give a path relative to the data directory")
    root = data_dir.resolve()
    resolved = (root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError("the path leaves the data directory; give a path under data/")
    if not resolved.is_file():
        raise ValueError("no such file under the data directory")
    return resolved


#: what a referenced file must contain: PyAV stream type, and the codecs accepted for images
_IMAGE_CODECS = {"png", "mjpeg", "jpegls", "webp"}


def content_problem(path: Path, kind: str) -> str | None:
    """Why the file at `path` is not the `kind` it claims to be (an image that is text, audio without sound),
    or None when its content fits. Reads only the container header and one frame, from a local file."""
    import av

    expected = {"image": "a PNG, JPEG or WebP image", "video": "a video with a picture",
                "music": "audio with a sound track", "audio": "audio with a sound track"}[kind]
    try:
        with av.open(str(path), options={"protocol_whitelist": "file"}) as container:
            if kind in ("music", "audio"):
                ok = bool(container.streams.audio)
            else:
                stream = next(iter(container.streams.video), None)
                ok = stream is not None and (kind == "video" or stream.codec_context.name in _IMAGE_CODECS)
                if ok:
                    next(container.decode(stream))
    except (av.error.FFmpegError, OSError, ValueError, StopIteration):
        ok = False
    return None if ok else f"the file's content is not {expected}; check that the file is what its name says"


def check_references(campaign: Campaign, data_dir: Path) -> None:
    """Every referenced file must exist under `data_dir` and have a fitting extension."""
    problems: list[Problem] = []

    def check(value: str | None, kind: str, *path: str | int) -> None:
        if value is None:
            return
        suffixes, what = REFERENCE_KINDS[kind]
        file, line = campaign.where(*path)
        if Path(value).suffix.lower() not in suffixes:
            problems.append(Problem(file, field_name(path), f"{value!r} is not {what}; expected one of "
                                    + ", ".join(sorted(suffixes)), line))
            return
        try:
            resolved = resolve_reference(value, data_dir)
        except ValueError as exc:
            problems.append(Problem(file, field_name(path), f"{value!r}: {exc}", line))
            return
        if (wrong := content_problem(resolved, kind)) is not None:
            problems.append(Problem(file, field_name(path), f"{value!r}: {wrong}", line))

    for vi, video in enumerate(campaign.videos):
        check(video.music, "music", "videos", vi, "music")
        check(video.audio, "audio", "videos", vi, "audio")
        for si, shot in enumerate(video.shots):
            check(shot.image, "image", "videos", vi, "shots", si, "image")
            check(shot.video, "video", "videos", vi, "shots", si, "video")
    if problems:
        raise CampaignError(problems)

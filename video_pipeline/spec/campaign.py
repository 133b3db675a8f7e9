"""Campaign files, version 1: YAML or JSON campaigns, CSV or JSONL prompt lists.

`load_campaign(path, data_dir)` returns a validated `Campaign` or raises `CampaignError` listing every
problem with its file, line and field. See docs/campaign-format.md for the format.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from video_pipeline.errors import CampaignError, Problem
from video_pipeline.untrusted import (YAML_ALIASES, Refused, excerpt, inside, kind_of, printable, read_regular,
                                      yaml_overreach)

CAMPAIGN_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
VIDEO_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".csv": "csv", ".jsonl": "jsonl"}
MAX_TARGET_SECONDS = 1800.0
SNAPSHOT_VERSION = 1

# Budgets: what one file may cost to read, each checked while reading (docs/campaign-format.md lists them).
MAX_FILE_BYTES = 5 * 1024 * 1024   # checked by fstat before a byte is read, and again while reading
MAX_DEPTH = 20                     # mappings and lists inside each other (a campaign needs 6)
MAX_ROWS = 10_000                  # rows of a CSV or JSONL list (one video each)
MAX_SHOTS = 10_000                 # shots in a campaign, counted before anything is validated
MAX_NUMBER_DIGITS = 30             # digits of a whole number
MAX_PATH_CHARS = 4096              # a file reference (a CSV or JSONL cell naming a file)
MAX_PROBLEMS = 50                  # problems listed in one error (the rest are counted)
#: names Windows keeps for devices, with any extension: a campaign or video id that is one cannot be a folder or
#: file there (outputs/<campaign>/<video>.mp4)
WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})

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


def _not_reserved(value: str) -> str:
    if value.split(".")[0].lower() in WINDOWS_RESERVED:
        raise ValueError(f"got {value!r}; {value.upper()} is a device name on Windows (CON, PRN, AUX, NUL, COM0-9, "
                         "LPT0-9), which cannot name a folder or file there; choose another id")
    return value


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

    _id_not_reserved = field_validator("id")(_not_reserved)


class Label(_Strict):
    """A visible disclosure drawn into the picture."""

    text: str = Field(default="AI-generated", min_length=1, max_length=60)
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "bottom-right"

    @field_validator("text")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("expected one line of text without control characters")
        return value


class Provenance(_Strict):
    """Content Credentials (C2PA) on the finished videos: on unless the campaign says `provenance: off`."""

    credentials: bool = True
    #: what the manifest says of each segment's prompt: its SHA-256, or (opted in) the text as well
    prompts: Literal["hash", "text"] = "hash"
    label: Label | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _label_switch(cls, value):
        # `label: true` draws the default label; `label: false` (YAML's off/no) draws none
        if isinstance(value, bool):
            return {} if value else None
        return value


class Campaign(_Strict):
    version: Literal[1] = 1
    campaign: str = Field(pattern=CAMPAIGN_ID)
    budget_usd: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    budget_policy: Literal["refuse", "fit"] = "refuse"
    schedule: Literal["now", "batch"] = "now"
    style: str | None = Field(default=None, max_length=1000)
    defaults: Defaults = Defaults()
    provenance: Provenance = Provenance()
    videos: list[Video] = Field(min_length=1, max_length=10000)

    _source: "CampaignSource | None" = PrivateAttr(default=None)
    _media_dir: Path | None = PrivateAttr(default=None)

    _id_not_reserved = field_validator("campaign")(_not_reserved)

    @field_validator("provenance", mode="before")
    @classmethod
    def _provenance_switch(cls, value):
        # YAML 1.1 reads a bare `off`/`on` as false/true; JSON may say "off"/"on"
        if isinstance(value, bool) or value in ("off", "on"):
            return {"credentials": value in (True, "on")}
        if not isinstance(value, (dict, Provenance)):
            raise ValueError("expected `off`, `on`, or a mapping with `credentials`, `prompts` and `label`")
        return value

    @property
    def source(self) -> "CampaignSource":
        return self._source or CampaignSource(file="<memory>", sha256="", lines={})

    def references(self) -> set[str]:
        """Every file the campaign names (each video's music and driving audio, each shot's image and video), as
        written."""
        return {ref for v in self.videos
                for ref in (v.music, v.audio, *(r for shot in v.shots for r in (shot.image, shot.video))) if ref}

    @property
    def media_dir(self) -> Path | None:
        """The folder searched first for the files the campaign names (before the data directory): the campaign
        file's own folder when it was given on the command line, its imported copy once installed."""
        return self._media_dir

    def with_media_dir(self, folder: Path | None) -> "Campaign":
        self._media_dir = Path(folder) if folder is not None else None
        return self

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
                "spec": self.model_dump(mode="json"), **line_data,
                **({"media_dir": str(self.media_dir)} if self.media_dir is not None else {})}

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
        return campaign.with_media_dir(data.get("media_dir"))


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
    """Render ("videos", 0, "shots", 1, "prompt") as videos[0].shots[1].prompt (a key the file made up is cut to
    a printable excerpt)."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            name = excerpt(str(part), 40)
            out += f".{name}" if out else name
    return out


class ManyProblems(CampaignError):
    """A file with more than MAX_PROBLEMS problems: the first ones are listed, all are counted."""

    def __init__(self, problems: list[Problem], total: int):
        self.total = total
        super().__init__(problems)

    def render(self) -> str:
        return (f"{self.total} problem(s) in campaign file {self.problems[0].file}, the first {len(self.problems)} "
                f"listed (fix these first, and {self.total - len(self.problems)} more):\n"
                + "\n".join(f"  - {p}" for p in self.problems))


def refuse(problems: list[Problem]) -> CampaignError:
    """The error listing `problems`: all of them, or the first MAX_PROBLEMS and how many there are."""
    if len(problems) > MAX_PROBLEMS:
        return ManyProblems(problems[:MAX_PROBLEMS], len(problems))
    return CampaignError(problems)


# --- reading files -----------------------------------------------------------------------------


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader (libyaml's when available) that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be text or a number, not a {type(key).__name__}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_show(key)} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


def _guarded(constructor, what: str):
    """A scalar constructor whose failures (a 5000-digit number, the 30th of February) are YAML errors at the
    value's line, and whose numbers stay of a size a message can print."""

    def construct(loader: _UniqueKeyLoader, node: yaml.ScalarNode):
        try:
            value = constructor(loader, node)
        except (ValueError, OverflowError):
            value = None
        if value is None or (isinstance(value, int) and abs(value) >= 10 ** MAX_NUMBER_DIGITS):
            raise yaml.constructor.ConstructorError(
                None, None, f"{_show(node.value)} cannot be read as {what} (quote it to mean text)", node.start_mark)
        return value

    return construct


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
for _tag, _what in (("int", f"a number of at most {MAX_NUMBER_DIGITS} digits"), ("timestamp", "a date")):
    _UniqueKeyLoader.add_constructor(f"tag:yaml.org,2002:{_tag}",
                                     _guarded(yaml.constructor.SafeConstructor.yaml_constructors[
                                         f"tag:yaml.org,2002:{_tag}"], _what))


def _yaml_budget(text: str, display: str) -> None:
    """Read the YAML's events once, before anything is built from them: anchors and aliases are refused (the
    format never needs them), and so is nesting deeper than MAX_DEPTH (`untrusted.yaml_overreach`)."""
    over = yaml_overreach(text, _UniqueKeyLoader, MAX_DEPTH)
    if over is not None:
        line, reason = over
        hint = "; a campaign needs 6" if reason != YAML_ALIASES else ""
        raise refuse([Problem(display, "", reason + hint, line)])


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


class _JsonRefusal(ValueError):
    """Raised from inside json.loads by the hooks below: `key` (a repeated key) or `needle` (text) locates it,
    `expected` says what the file should hold instead."""

    def __init__(self, message: str, expected: str, needle: str | None = None, key: str | None = None):
        super().__init__(message)
        self.expected, self.needle, self.key = expected, needle, key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _JsonRefusal(f"duplicate key {_show(key)}", "expected each key once in an object", key=key)
        obj[key] = value
    return obj


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _JsonRefusal(f"a number of {len(digits.lstrip('-'))} digits", f"expected at most {MAX_NUMBER_DIGITS}",
                           needle=digits)
    return int(digits)


def _depth(data: Any) -> int:
    """How deep lists and mappings nest in parsed data (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                break
            stack.extend((item, level) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _json_depth_line(text: str) -> int | None:
    """The line where a JSON text first nests deeper than MAX_DEPTH (strings skipped)."""
    depth = 0
    for match in re.finditer(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


def _duplicate_key_line(text: str, key: str) -> tuple[int | None, int | None]:
    """Where a JSON document repeats `key` in one object: the repeat's line and the first one's."""
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None, None
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            first = None
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    if first is not None:
                        return key_node.start_mark.line + 1, first
                    first = key_node.start_mark.line + 1
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None, None


def _load_json(text: str, display: str, line: int | None = None, what: str = "invalid JSON") -> Any:
    """json.loads with the budgets: duplicate keys, over-long numbers and deep nesting refused at their line
    (`line`: the line a JSONL row is on)."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_object, parse_int=_bounded_int)
    except _JsonRefusal as exc:
        where, first = (None, None)
        if line is None and exc.key is not None:
            where, first = _duplicate_key_line(text, exc.key)
        elif line is None and exc.needle is not None:
            where = text.count("\n", 0, max(text.find(exc.needle), 0)) + 1
        hint = f" (first at line {first})" if first else ""
        raise refuse([Problem(display, "", f"{what}: {exc}{hint}; {exc.expected}", line or where)]) from None
    except RecursionError:
        too_deep = True
    else:
        too_deep = _depth(data) > MAX_DEPTH
    if too_deep:
        raise refuse([Problem(display, "", f"{what}: nested more than {MAX_DEPTH} levels deep; a campaign needs 6",
                              line or _json_depth_line(text))]) from None
    return data


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
            return _load_json(text, display), None
        except json.JSONDecodeError as exc:
            raise CampaignError([Problem(display, "", f"invalid JSON: {exc.msg} at column {exc.colno}", exc.lineno)]) from None
    _yaml_budget(text, display)
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


def _max_length(name: str) -> int:
    model = Shot if name in _ROW_SHOT_FIELDS else Video
    lengths = [m.max_length for m in model.model_fields[name].metadata if getattr(m, "max_length", None)]
    return lengths[0] if lengths else MAX_PATH_CHARS


_CELL_LIMITS = {name: _max_length(name) for name in _ROW_SHOT_FIELDS + _ROW_VIDEO_FIELDS}


def _columns(names: list[str]) -> str:
    """Column names a file made up, as a field: the first five, printable, and how many more."""
    shown = ", ".join(excerpt(str(n), 40) for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _unknown_columns(names: list[str], display: str, line: int) -> Problem:
    return Problem(display, _columns(names), "unknown column(s); expected some of "
                   + ", ".join(_ROW_VIDEO_FIELDS + _ROW_SHOT_FIELDS), line)


def _check_row(row: dict, count: int, line: int, display: str) -> None:
    """The budgets of a list, checked as each row is read: at most MAX_ROWS rows, no text longer than its field
    takes (the file stops being read at the first row over)."""
    if count >= MAX_ROWS:
        raise refuse([Problem(display, "", f"more than {MAX_ROWS} rows; the limit is {MAX_ROWS} (one video per row)",
                              line)])
    for key, value in row.items():
        limit = _CELL_LIMITS.get(key)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            field = f"videos[{count}].shots[0].{key}" if key in _ROW_SHOT_FIELDS else f"videos[{count}].{key}"
            raise refuse([Problem(display, field, f"got {_show(value)}; string should have at most {limit} "
                                  "characters", line)])


def _rows_to_campaign(rows: list[tuple[int, dict]], campaign_id: str, display: str) -> tuple[dict, dict[tuple, int]]:
    """A prompt list: each row is a one-shot video; the file stem is the campaign id."""
    videos: list[dict] = []
    lines: dict[tuple, int] = {(): 1, ("campaign",): 1}
    problems: list[Problem] = []
    width = max(3, len(str(len(rows))))
    for index, (line, row) in enumerate(rows):
        unknown = sorted(k for k in row if k not in _ROW_SHOT_FIELDS + _ROW_VIDEO_FIELDS)
        if unknown:
            problems.append(_unknown_columns(unknown, display, line))
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
        raise refuse(problems)
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
            raise CampaignError([_unknown_columns(unknown, display, 1)])
        reader.fieldnames = header
        start = reader.line_num + 1
        for raw in reader:
            if None in raw:
                raise CampaignError([Problem(display, "", f"row has more cells than the header's {len(header)}", reader.line_num)])
            row = {k: v.strip() for k, v in raw.items() if v is not None and v.strip() != ""}
            if row:
                _check_row(row, len(rows), start, display)
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):   # a quote opened on the row's first line is never closed
            raise CampaignError([Problem(display, "", "invalid CSV: a quoted cell is never closed; expected a "
                                         "closing \" (write a quote inside a cell as \"\")", start)]) from None
        if "field larger than field limit" in str(exc):   # csv's own bound, met while the cell is read
            raise CampaignError([Problem(display, "", f"invalid CSV: {exc}; the longest text a field takes is "
                                         f"{max(_CELL_LIMITS.values())} characters", start)]) from None
        raise CampaignError([Problem(display, "", f"invalid CSV: {exc}", reader.line_num)]) from None
    return rows


def _read_jsonl(text: str, display: str) -> list[tuple[int, dict]]:
    rows: list[tuple[int, dict]] = []
    for number, line in enumerate(io.StringIO(text), start=1):   # lines end at \n only, as JSONL says
        if not line.strip():
            continue
        try:
            row = _load_json(line, display, line=number, what="invalid JSON on this line")
        except json.JSONDecodeError as exc:
            raise CampaignError([Problem(display, "", f"invalid JSON on this line: {exc.msg} at column {exc.colno}; "
                                         "expected one JSON object per line", number)]) from None
        if not isinstance(row, dict):
            raise CampaignError([Problem(display, "", "each line must be a JSON object like {\"prompt\": \"...\"}", number)])
        _check_row(row, len(rows), number, display)
        rows.append((number, row))
    return rows


def _show(value: Any, limit: int = 80) -> str:
    """A value as the user wrote it (JSON spells non-finite numbers NaN and Infinity), cut to `limit` characters
    of the file's own text, saying how long it was."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** MAX_NUMBER_DIGITS:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return repr(value)
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}… ({type(value).__name__})"


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


def _count_problem(data: dict, display: str, lines) -> Problem | None:
    """More videos or shots than a campaign may hold, counted before anything is validated."""
    videos = data.get("videos")
    if not isinstance(videos, list):
        return None
    shots = sum(len(v["shots"]) for v in videos if isinstance(v, dict) and isinstance(v.get("shots"), list))
    line = CampaignSource(file=display, sha256="", lines=lines).line_of(("videos",))
    if len(videos) > 10_000:
        return Problem(display, "videos", f"{len(videos)} videos; the limit is 10000", line)
    if shots > MAX_SHOTS:
        return Problem(display, "videos", f"{shots} shots in the campaign; the limit is {MAX_SHOTS}", line)
    return None


def _format_of(filename: str, display: str) -> str:
    """The file's format from its extension, or the error saying which are accepted."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise CampaignError([Problem(display, "", f"unsupported file type {_show(suffix or '(none)')}; expected one "
                                     "of " + ", ".join(sorted(SUFFIXES)))])
    return SUFFIXES[suffix]


def parse_campaign(raw: bytes, filename: str, display: str | None = None, data_dir: Path | None = None,
                   media_dir: Path | None = None) -> Campaign:
    """Parse and validate campaign bytes. `filename` picks the format (and, for lists, the campaign id). With
    `data_dir`, a file whose fields are wrong also has its file references checked, so one pass names them all;
    `media_dir` is searched first for them (see `resolve_reference`) and kept on the campaign."""
    display = display or filename
    kind = _format_of(filename, display)
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
    if (too_many := _count_problem(data, display, lines)) is not None:
        raise CampaignError([too_many])
    source = CampaignSource(file=display, sha256=hashlib.sha256(raw).hexdigest(), lines=lines)
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        # every problem the file has, in one pass: besides the fields, the duplicate ids and (given the data
        # directory) the referenced files, read from the data as written
        problems = _pydantic_problems(exc, display, lines) + _duplicate_ids(data.get("videos"), source)
        if data_dir is not None:
            problems += _reference_problems(_raw_references(data.get("videos")), source, data_dir, media_dir)
        raise refuse(problems) from None
    campaign._source = source
    campaign.with_media_dir(media_dir)
    if duplicates := _duplicate_ids(data.get("videos"), source):
        raise refuse(duplicates)
    return campaign


def _duplicate_ids(videos, source: "CampaignSource") -> list[Problem]:
    """A video id used twice, from the videos as written (whatever else is wrong with them)."""
    first: dict[str, int] = {}
    duplicates = []
    for i, video in enumerate(videos if isinstance(videos, list) else []):
        ident = video.get("id") if isinstance(video, dict) else None
        if not isinstance(ident, str):
            continue
        if ident in first:
            duplicates.append(Problem(source.file, f"videos[{i}].id", f"video id {ident!r} is already used by videos"
                                      f"[{first[ident]}]; ids must be unique in a campaign",
                                      source.line_of(("videos", i, "id"))))
        first.setdefault(ident, i)
    return duplicates


def read_campaign_file(path: Path | str, display: str, data_dir: Path | None = None, links: bool = True) -> bytes:
    """A campaign file's bytes, read once and safely (`video_pipeline.untrusted`): a regular file of at most
    MAX_FILE_BYTES; a symbolic link only when `links` and, with `data_dir`, only to a file inside it."""
    path = Path(path)
    _format_of(path.name, display)            # said before the file is opened, whatever it is
    try:
        return read_regular(path, max_bytes=MAX_FILE_BYTES, root=data_dir, links=links)
    except Refused as refused:
        raise CampaignError([Problem(display, "", refused.reason)]) from None


def load_campaign(path: Path | str, data_dir: Path | None = None, display: str | None = None, *,
                  links: bool = True, media_dir: Path | None = None) -> Campaign:
    """Read (see `read_campaign_file`), validate and (when `data_dir` is given) check every file reference of a
    campaign file, looked for first under `media_dir` (see `resolve_reference`), by default the file's folder."""
    path = Path(path)
    display = printable(display or str(path))
    campaign = parse_campaign(read_campaign_file(path, display, data_dir, links), path.name, display, data_dir,
                              path.parent if media_dir is None else media_dir)
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


def resolve_reference(value: str, data_dir: Path, media_dir: Path | None = None) -> Path:
    """Resolve a campaign file reference to a regular file, or raise ValueError saying why not: first inside
    `media_dir` (the campaign file's own folder, or its installed copy), when the path stays inside that folder's
    tree and names something there; then inside `data_dir`. A link is followed only to a file inside the folder
    it was found in."""
    # the same words whichever way the file came in (the inbox does not look beside the file; docs say where)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        raise ValueError("URLs are not accepted here yet; put the file under data/ and give its relative path")
    candidate = Path(value)
    if candidate.is_absolute():
        raise ValueError("absolute paths are not accepted; give a path relative to the data directory")
    if media_dir is not None:
        folder = Path(media_dir).resolve()
        written = Path(os.path.normpath(candidate))          # as the installed copy is laid out (intake)
        local = folder / written
        if written.parts[:1] != ("..",) and os.path.lexists(local):
            return _regular_inside(local, folder, "the campaign file's folder")
    root = data_dir.resolve()
    if not inside((root / candidate).resolve(), root):
        raise ValueError("the path leaves the data directory; give a path under data/")
    if not os.path.lexists(root / candidate):
        raise ValueError("no such file under the data directory")
    return _regular_inside(root / candidate, root, "the data directory")


def _regular_inside(path: Path, root: Path, name: str) -> Path:
    resolved = path.resolve()
    if not inside(resolved, root):
        raise ValueError(f"is a link that leaves {name}")
    try:
        mode = resolved.stat().st_mode
    except OSError:
        raise ValueError(f"is a broken link in {name}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"is {kind_of(mode)}; expected a regular file")
    return resolved


def check_references(campaign: Campaign, data_dir: Path) -> None:
    """Every referenced file must be a regular file under `data_dir` with a fitting extension and content within
    the media limits (`media_limits`); a file named many times is opened once."""
    references = []
    for vi, video in enumerate(campaign.videos):
        references += [(video.music, "music", ("videos", vi, "music")), (video.audio, "audio", ("videos", vi, "audio"))]
        for si, shot in enumerate(video.shots):
            references += [(shot.image, "image", ("videos", vi, "shots", si, "image")),
                           (shot.video, "video", ("videos", vi, "shots", si, "video"))]
    if problems := _reference_problems(references, campaign.source, data_dir, campaign.media_dir):
        raise refuse(problems)


def _raw_references(videos) -> list[tuple]:
    """The file references of videos as written: text values of `music`, `audio`, and each shot's `image`, `video`."""
    references = []
    for vi, video in enumerate(videos if isinstance(videos, list) else []):
        if not isinstance(video, dict):
            continue
        references += [(video.get(k), k, ("videos", vi, k)) for k in ("music", "audio")]
        for si, shot in enumerate(video.get("shots") if isinstance(video.get("shots"), list) else []):
            if isinstance(shot, dict):
                references += [(shot.get(k), k, ("videos", vi, "shots", si, k)) for k in ("image", "video")]
    return [(value, kind, path) for value, kind, path in references if isinstance(value, str)]


def _reference_problems(references: list[tuple], source: "CampaignSource", data_dir: Path,
                        media_dir: Path | None = None) -> list[Problem]:
    from video_pipeline.spec.media_limits import content_problem

    problems: list[Problem] = []
    seen: dict[tuple[Path, str], str | None] = {}

    def check(value: str | None, kind: str, *path: str | int) -> None:
        if value is None:
            return
        suffixes, what = REFERENCE_KINDS[kind]
        file, line = source.file, source.line_of(tuple(path))
        shown = _show(value)
        if Path(value).suffix.lower() not in suffixes:
            problems.append(Problem(file, field_name(path), f"{shown} is not {what}; expected one of "
                                    + ", ".join(sorted(suffixes)), line))
            return
        try:
            resolved = resolve_reference(value, data_dir, media_dir)
        except ValueError as exc:
            problems.append(Problem(file, field_name(path), f"{shown}: {exc}", line))
            return
        if (resolved, kind) not in seen:
            found_in = media_dir.resolve() if media_dir is not None and inside(resolved, media_dir.resolve()) \
                else data_dir
            seen[(resolved, kind)] = content_problem(resolved, kind, found_in)
        if (wrong := seen[(resolved, kind)]) is not None:
            problems.append(Problem(file, field_name(path), f"{shown}: {wrong}", line))

    for value, kind, path in references:
        check(value, kind, *path)
    return problems

"""The model catalog: a validated view of data/catalog.yaml."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from video_pipeline.planning.billing import OUTCOMES, BillingRule
from video_pipeline.errors import PipelineError, Problem
from video_pipeline.spec.taxonomy import TaskCategory
from video_pipeline.untrusted import Refused, read_regular, yaml_overreach

Tier = Literal["speed", "mid", "quality", "premium"]
TIER_ORDER: dict[str, int] = {"speed": 0, "mid": 1, "quality": 2, "premium": 3}


class CatalogError(PipelineError, ValueError):
    """The catalog file is invalid; the message names the model and field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latency(_Frozen):
    p50_seconds: float = Field(gt=0)
    p95_seconds: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Latency":
        if self.p95_seconds < self.p50_seconds:
            raise ValueError("p95_seconds must be >= p50_seconds")
        return self


class AudioSupport(_Frozen):
    input: bool
    output: bool
    lip_sync: bool


class Route(_Frozen):
    provider: str = Field(min_length=1)
    model_id: str = Field(min_length=1)


class ModelSpec(_Frozen):
    id: str
    name: str
    tier: Tier
    categories: list[TaskCategory] = Field(min_length=1)
    latency: Latency
    durations: list[int] = Field(min_length=1)
    resolutions: list[Literal["720p", "1080p"]] = Field(min_length=1)
    aspect_ratios: list[Literal["16:9", "9:16", "1:1"]] = Field(min_length=1)
    audio: AudioSupport
    multi_shot: bool = False
    price_per_second: dict[str, float]
    price_source: str = Field(min_length=1)
    price_date: dt.date
    concurrency: int = Field(gt=0)
    output_url_lifetime_seconds: int = Field(gt=0)
    retired_on: dt.date | None = None
    routes: list[Route] = Field(min_length=1)
    billing: BillingRule = BillingRule()

    @model_validator(mode="after")
    def _priced_for_every_resolution(self) -> "ModelSpec":
        missing = [r for r in self.resolutions if r not in self.price_per_second]
        if missing:
            raise ValueError(f"no price for resolution(s) {', '.join(missing)}; a model without a price cannot be planned")
        if any(p < 0 for p in self.price_per_second.values()):
            raise ValueError("prices must be >= 0")
        if sorted(set(self.durations)) != self.durations or self.durations[0] <= 0:
            raise ValueError("durations must be positive and listed in increasing order")
        self.billing.check_against(self.resolutions, self.durations, {r.provider for r in self.routes})
        return self

    def price(self, resolution: str) -> float:
        return self.price_per_second[resolution]

    def cost(self, seconds: float, resolution: str) -> float:
        """The estimate for a job of `seconds` at `resolution` that succeeds, under the model's billing rule."""
        return self.billing.amount(self.price_per_second, seconds, resolution)

    def charge(self, seconds: float, resolution: str, outcome: str, *, provider: str | None = None,
               output_seconds: float | None = None) -> float:
        """What the provider bills for a job that ended in `outcome` (succeeded, failed, failed-policy, canceled);
        `output_seconds` counts instead of `seconds` under `billed_seconds: output`, `provider` picks its override."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        if not self.billing.charges(outcome, provider):
            return 0.0
        billed = output_seconds if self.billing.billed_seconds == "output" and output_seconds is not None else seconds
        return self.billing.amount(self.price_per_second, billed, resolution)

    def is_retired(self, on: dt.date) -> bool:
        return self.retired_on is not None and on >= self.retired_on

    @property
    def max_duration(self) -> int:
        return self.durations[-1]

    def default_duration(self) -> int:
        """The clip length used when a shot asks for none: the longest allowed up to the guide's 8 s."""
        fitting = [d for d in self.durations if d <= 8]
        return fitting[-1] if fitting else self.durations[0]


class TtsSpec(_Frozen):
    id: str
    provider: str
    model_id: str
    price_per_1k_chars: float = Field(ge=0)
    price_source: str = Field(min_length=1)
    price_date: dt.date

    def charge(self, chars: int) -> float:
        """What narrating `chars` characters costs, in USD rounded to 4 decimals."""
        if chars < 0:
            raise ValueError(f"chars must be >= 0, not {chars!r}")
        return round(self.price_per_1k_chars * chars / 1000, 4)


class Catalog(BaseModel):
    models: dict[str, ModelSpec]
    tts: dict[str, TtsSpec] = {}
    source: str = ""

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            raise KeyError(f"unknown model {model_id!r}; the catalog has {', '.join(sorted(self.models))}") from None

    def capable(self, category: TaskCategory) -> list[ModelSpec]:
        return [m for m in self.models.values() if category in m.categories]


def _named_field(err: dict) -> list[str]:
    """The field a whole-model check blamed (a FieldProblem), which pydantic's location leaves out."""
    field = getattr((err.get("ctx") or {}).get("error"), "field", None)
    return field.split(".") if field else []


def load_catalog(path: Path | str) -> Catalog:
    """Load and validate a catalog file; raises CatalogError naming the model and field at fault."""
    path = Path(path)
    return _load_cached(path.resolve(), path.stat().st_mtime_ns)


#: a catalog is a few dozen kilobytes; the file is checked before it is read, and read no further than this
CATALOG_MAX_BYTES = 1024 * 1024
#: mappings and lists inside each other (the catalog needs 5)
CATALOG_MAX_DEPTH = 12
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml's where PyYAML has it: 50 ms less a step


def _read_yaml(path: Path):
    """The catalog file's data, by PyYAML's safe loader (plain data only), after its limits are checked: a regular
    file of at most CATALOG_MAX_BYTES, UTF-8, no anchors or aliases (a few hundred bytes of them expand to
    gigabytes), nesting at most CATALOG_MAX_DEPTH deep."""
    try:
        text = read_regular(path, max_bytes=CATALOG_MAX_BYTES).decode("utf-8")
    except Refused as exc:
        raise CatalogError(f"{path.name}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    over = yaml_overreach(text, _SAFE_LOADER, CATALOG_MAX_DEPTH)
    if over is not None:
        raise CatalogError(f"{path.name}:{over[0]}: {over[1]}")
    loader = _SAFE_LOADER(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@lru_cache(maxsize=8)
def _load_cached(path: Path, _mtime: int) -> Catalog:
    try:
        raw = _read_yaml(path)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path.name}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
        raise CatalogError(f"{path.name}: expected a mapping with a `models:` mapping")
    problems: list[str] = []
    models: dict[str, ModelSpec] = {}
    for model_id, entry in raw["models"].items():
        try:
            models[model_id] = ModelSpec.model_validate({"id": model_id, **(entry or {})})
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                field = ".".join([str(p) for p in err["loc"]] + _named_field(err))
                problems.append(str(Problem(path.name, f"models.{model_id}{'.' + field if field else ''}", err["msg"])))
    tts: dict[str, TtsSpec] = {}
    for tts_id, entry in (raw.get("tts") or {}).items():
        try:
            tts[tts_id] = TtsSpec.model_validate({"id": tts_id, **(entry or {})})
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                field = ".".join(str(p) for p in err["loc"])
                problems.append(str(Problem(path.name, f"tts.{tts_id}.{field}", err["msg"])))
    if problems:
        raise CatalogError("invalid model catalog:\n" + "\n".join(f"  - {p}" for p in problems))
    return Catalog(models=models, tts=tts, source=str(path))

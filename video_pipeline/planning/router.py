"""The router: hard constraints first, then the guide's routing policy, with a reason for every choice."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from video_pipeline.planning.catalog import TIER_ORDER, Catalog, Latency, ModelSpec
from video_pipeline.planning.observed import ModelObservation
from video_pipeline.spec.taxonomy import TaskCategory

Observed = dict[str, ModelObservation]


@dataclass(frozen=True)
class RoutingTask:
    """What the router needs to know about one shot."""

    category: TaskCategory
    quality_tier: str = "standard"
    use_case: str = "general"
    resolution: str = "720p"
    aspect_ratio: str = "16:9"
    has_audio_input: bool = False
    has_human_subjects: bool = False
    complexity: str = "normal"
    requires_character_consistency: bool = False
    max_wait_seconds: int | None = None
    pinned_model: str | None = None
    needs_image_input: bool = False     # chained continuity: the previous segment's last frame seeds this one


@dataclass(frozen=True)
class RouteDecision:
    model: str
    fallbacks: tuple[str, ...]
    reason: str
    guide_choice: str
    excluded: dict[str, str] = field(default_factory=dict)


class NoCapableModel(ValueError):
    """No model in the catalog can do this task under its constraints."""


def effective_latency(model: ModelSpec, observed: Observed | None = None) -> Latency:
    """The catalog's latency prior, blended with observed latencies when there are any."""
    seen = (observed or {}).get(model.id)
    return seen.latency(model) if seen else model.latency


def is_viable_for_interactive(model: ModelSpec | None, max_wait_seconds: float = 60,
                              observed: Observed | None = None) -> bool:
    """The guide's rule: a model fits an interactive flow when its p95 latency is within the wait."""
    return model is not None and effective_latency(model, observed).p95_seconds <= max_wait_seconds


def guide_choice(task: RoutingTask) -> tuple[str, str]:
    """The model the guide's `route_video_task` picks, and the rule that picked it."""
    c = task.category
    if c == TaskCategory.TEXT_TO_VIDEO:
        if task.use_case == "product_showcase":
            return "seedance-2-0", "product showcase"
        if task.use_case == "music_video" or task.has_audio_input:
            return "seedance-2-0", "music video" if task.use_case == "music_video" else "audio drives the video (@Audio)"
        if task.quality_tier == "social":
            return "veo-3-1-fast", "social tier"
        if task.quality_tier == "premium":
            if task.complexity == "high_physics":
                return "sora-2", "premium tier, high physics"
            if task.has_human_subjects:
                return "veo-3-1-quality", "premium tier, human subjects"
            return "kling-3-0", "premium tier"
        if task.requires_character_consistency:
            return "wan-2-6", "character consistency (multi-shot)"
    if c == TaskCategory.IMAGE_TO_VIDEO:
        if task.use_case == "product_showcase":
            return "seedance-2-0", "image to video, product"
        return "kling-3-0", "image to video"
    if c == TaskCategory.VIDEO_ENHANCE:
        return "topaz-video-upscaler", "video enhance"
    if c == TaskCategory.AUDIO_LIP_SYNC:
        return "omnihuman", "audio-driven lip sync"
    return "veo-3-1-fast", "default speed tier"


def _exclusion(model: ModelSpec, task: RoutingTask, on: dt.date, providers: frozenset[str] | None,
               observed: Observed | None) -> str | None:
    if task.category not in model.categories:
        return f"cannot do {task.category.value}"
    if task.needs_image_input and TaskCategory.IMAGE_TO_VIDEO not in model.categories:
        return "takes no image input (chained continuity needs one)"
    if model.is_retired(on):
        return f"retired on {model.retired_on.isoformat()}"
    if task.resolution not in model.resolutions:
        return f"no {task.resolution}"
    if task.aspect_ratio not in model.aspect_ratios:
        return f"no {task.aspect_ratio}"
    if task.has_audio_input and task.category in (TaskCategory.TEXT_TO_VIDEO, TaskCategory.IMAGE_TO_VIDEO, TaskCategory.AUDIO_LIP_SYNC) and not model.audio.input:
        return "takes no audio input"
    if task.max_wait_seconds is not None and not is_viable_for_interactive(model, task.max_wait_seconds, observed):
        p95 = effective_latency(model, observed).p95_seconds
        return f"p95 {p95:g}s exceeds max_wait_seconds {task.max_wait_seconds}"
    if providers is not None and "local" not in providers and not any(r.provider in providers for r in model.routes):
        return "no configured provider serves it (routes: " + ", ".join(r.provider for r in model.routes) + ")"
    seen = (observed or {}).get(model.id)
    if seen is not None and seen.cooling_down:
        return "cooling down after a burst of failures"
    return None


def _closeness(model: ModelSpec, preferred: ModelSpec | None, task: RoutingTask, observed: Observed | None) -> tuple:
    """Sort key for 'next best': nearest tier to the guide's choice, then cheaper, then faster."""
    tier = TIER_ORDER[preferred.tier] if preferred else TIER_ORDER["speed"]
    return (abs(TIER_ORDER[model.tier] - tier), -TIER_ORDER[model.tier] if preferred and TIER_ORDER[preferred.tier] >= 2 else 0,
            model.price(task.resolution), effective_latency(model, observed).p50_seconds, model.id)


def route(task: RoutingTask, catalog: Catalog, on: dt.date | None = None,
          providers: frozenset[str] | None = None, max_fallbacks: int = 2,
          observed: Observed | None = None) -> RouteDecision:
    """Choose a model for `task`: the guide's pick when it is possible, otherwise the next best capable one."""
    on = on or dt.date.today()
    excluded = {m.id: why for m in catalog.models.values() if (why := _exclusion(m, task, on, providers, observed))}
    capable = [m for m in catalog.models.values() if m.id not in excluded]
    if not capable and observed:
        # Every capable model is cooling down: use them anyway rather than stop the campaign.
        cooling = {k for k, v in excluded.items() if v.startswith("cooling down")}
        capable = [m for m in catalog.models.values() if m.id in cooling]
        excluded = {k: v for k, v in excluded.items() if k not in cooling}
    if task.pinned_model:
        if task.pinned_model not in catalog.models:
            raise NoCapableModel(f"model {task.pinned_model!r} is not in the catalog; expected one of "
                                 + ", ".join(sorted(catalog.models)))
        if task.pinned_model in excluded and not excluded[task.pinned_model].startswith("cooling down"):
            raise NoCapableModel(f"pinned model {task.pinned_model!r} {excluded[task.pinned_model]}; capable models: "
                                 + (", ".join(m.id for m in capable) or "none"))
    if not capable:
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(excluded.items()))
        raise NoCapableModel(f"no model can do {task.category.value} at {task.resolution} {task.aspect_ratio}"
                             + (f" within {task.max_wait_seconds}s" if task.max_wait_seconds else "") + f" ({detail})")
    guide_model, rule = guide_choice(task)
    preferred = catalog.models.get(guide_model)
    ranked = sorted(capable, key=lambda m: _closeness(m, preferred, task, observed))
    if task.pinned_model:
        chosen = catalog.models[task.pinned_model]
        reason = f"pinned by the campaign (guide would pick {guide_model}: {rule})"
    elif guide_model not in excluded and preferred is not None:
        chosen = preferred
        reason = f"guide rule '{rule}' picks {guide_model}"
    else:
        chosen = ranked[0]
        why = excluded.get(guide_model, "is not in the catalog")
        reason = (f"guide rule '{rule}' picks {guide_model}, which {why}; {chosen.id} is the closest capable "
                  f"{chosen.tier}-tier model (${chosen.price(task.resolution):.3f}/s, "
                  f"p50 {effective_latency(chosen, observed).p50_seconds:g}s)")
    fallbacks = tuple(m.id for m in ranked if m.id != chosen.id)[:max_fallbacks]
    if excluded:
        reason += "; not: " + ", ".join(f"{k} ({v})" for k, v in sorted(excluded.items()) if task.category in catalog.models[k].categories)
        reason = reason.removesuffix("; not: ")
    return RouteDecision(model=chosen.id, fallbacks=fallbacks, reason=reason, guide_choice=guide_model, excluded=excluded)

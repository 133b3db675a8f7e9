"""The long-form planner: campaign videos → segments, each routed, timed and priced before anything is spent."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from video_pipeline.spec.campaign import Campaign, Shot, Video, field_name, resolve_reference
from video_pipeline.planning.catalog import Catalog, ModelSpec
from video_pipeline.errors import PlanningError, Problem
from video_pipeline.planning.router import NoCapableModel, Observed, RouteDecision, RoutingTask, effective_latency, route
from video_pipeline.storage.store import file_sha256
from video_pipeline.tables import ROUTED_JOB_PLANS
from video_pipeline.spec.taxonomy import TaskCategory, shot_category

#: The columns of a plan table, in order (the `plan --json` shape documents each; types in tables.py).
PLAN_COLUMNS = ROUTED_JOB_PLANS.names


@dataclass(frozen=True)
class SegmentPlan:
    campaign: str
    video_id: str
    segment_index: int
    segment_count: int
    shot_index: int
    category: str
    model: str
    fallbacks: tuple[str, ...]
    reason: str
    prompt: str
    seconds: float                # seconds of this segment in the finished video
    generate_seconds: int         # seconds requested from (and billed by) the model
    start_seconds: float
    target_seconds: float         # the finished video's planned length
    resolution: str
    aspect_ratio: str
    image: str | None
    video: str | None
    audio: str | None
    audio_offset_seconds: float
    continuity: str
    transition: str
    chained_from: str | None      # job key of the segment whose last frame seeds this one
    options: dict                 # model-specific request options, e.g. {"shot_type": "multi"} for Wan multi-shot
    est_cost_usd: float
    est_latency_seconds: float
    p95_latency_seconds: float
    job_key: str

    def row(self) -> dict:
        d = asdict(self)
        d["fallbacks"] = list(self.fallbacks)
        d["options"] = dict(self.options)
        return d


@dataclass
class CampaignPlan:
    campaign: str
    segments: list[SegmentPlan]
    budget_usd: float | None
    warnings: list[str] = field(default_factory=list)

    @property
    def total_cost_usd(self) -> float:
        return round(sum(s.est_cost_usd for s in self.segments), 4)

    def est_wall_seconds(self, catalog: Catalog) -> float:
        """Wall time if every model's segments run at its account concurrency; chained videos run in sequence."""
        per_model: dict[str, list[SegmentPlan]] = {}
        for s in self.segments:
            per_model.setdefault(s.model, []).append(s)
        waves = [math.ceil(len(segs) / catalog.get(m).concurrency) * max(x.est_latency_seconds for x in segs)
                 for m, segs in per_model.items()]
        chains: dict[str, float] = {}
        for s in self.segments:
            if s.continuity == "chained":
                chains[s.video_id] = chains.get(s.video_id, 0.0) + s.est_latency_seconds
        return round(max(waves + list(chains.values()) + [0.0]), 1)

    def rows(self) -> list[dict]:
        return [s.row() for s in self.segments]


FPS = 24
#: narration starts this long after the picture and leaves this much after its last word
NARRATION_LEAD = 0.5
NARRATION_TAIL = 0.5


def to_frames(seconds: float) -> int:
    """Seconds rounded to whole frames at the output's 24 fps (what a video can actually last)."""
    return max(1, round(seconds * FPS))


def split_seconds(seconds: float, durations: list[int]) -> list[tuple[int, float]]:
    """Cover `seconds` (rounded to whole frames) with the fewest clips of allowed durations, wasting least.

    Returns (generate_seconds, used_seconds) pairs; only the last clip is trimmed, and every clip is used for at
    least one frame (a sliver under a frame is dropped rather than billed as a whole clip).
    """
    frames = to_frames(seconds)
    longest = durations[-1]
    count = max(1, -(-frames // (longest * FPS)))
    fixed = [longest] * max(0, count - 2)
    rest = frames - sum(fixed) * FPS
    if count == 1:
        tail = [next(d for d in durations if d * FPS >= rest)]
    else:
        best = min(((a, b) for a in durations for b in durations if (a + b) * FPS >= rest and a >= b),
                   key=lambda p: (p[0] + p[1], -p[0]))
        tail = list(best)
    generate = fixed + tail
    used_frames = [g * FPS for g in generate]
    used_frames[-1] = frames - sum(used_frames[:-1])
    return [(g, round(f / FPS, 6)) for g, f in zip(generate, used_frames)]


def join_overlap(video: Video) -> float:
    """Seconds each join takes out of the timeline: the crossfade, plus frames dropped at both sides."""
    crossfade = video.transition_seconds if video.transition == "crossfade" else 0.0
    return crossfade + 2 * video.trim_join_frames / FPS


def share_seconds(total: float, parts: int) -> list[float]:
    """Split `total` seconds into `parts` whole-frame shares that add up to the total in frames."""
    frames = to_frames(total)
    base, extra = divmod(frames, parts)
    return [(base + (1 if i < extra else 0)) / FPS for i in range(parts)]


def job_key(**fields) -> str:
    """A job's identity: a hash of everything that determines the provider's output."""
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def segment_prompt(shot: Shot, style: str | None, index: int, count: int) -> str:
    """The shot prompt with the campaign's style anchor, so segments of one video look alike."""
    parts = [shot.prompt.strip()]
    if count > 1:
        parts.append(f"(continuous shot, part {index + 1} of {count})")
    if style:
        parts.append(f"Style: {style.strip()}")
    return " ".join(parts)


class _Planner:
    def __init__(self, campaign: Campaign, catalog: Catalog, data_dir: Path, on: dt.date,
                 providers: frozenset[str] | None, probe_seconds, observed: Observed | None = None,
                 resolution: str | None = None, cheapest: bool = False, narration: dict[str, float] | None = None,
                 categories: dict[tuple[str, int], str] | None = None):
        self.campaign = campaign
        self.categories = categories or {}
        self.catalog = catalog
        self.data_dir = data_dir
        self.on = on
        self.providers = providers
        self.probe_seconds = probe_seconds
        self.observed = observed
        self.resolution = resolution or campaign.defaults.resolution
        self.cheapest = cheapest
        self.narration = narration or {}
        self.problems: list[Problem] = []
        self.hashes: dict[str, str] = {}
        self.places: dict[str, str] = {}

    def input_hash(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        if ref not in self.hashes:
            self.hashes[ref] = file_sha256(self.resolve(ref))
        return self.hashes[ref]

    def resolve(self, ref: str) -> Path:
        return resolve_reference(ref, self.data_dir, self.campaign.media_dir)

    def located(self, ref: str | None) -> str | None:
        """A reference as the plan keeps it: the file's path under the data directory (where the engine and the
        assembly find it), or as written when it lies elsewhere (a plan only shown, never run)."""
        if ref is None or self.campaign.media_dir is None:
            return ref
        if ref not in self.places:        # a file named by many shots is looked up once
            try:
                self.places[ref] = self.resolve(ref).relative_to(self.data_dir.resolve()).as_posix()
            except ValueError:
                self.places[ref] = ref
        return self.places[ref]

    def task_for(self, video: Video, shot: Shot, category: TaskCategory) -> RoutingTask:
        d = self.campaign.defaults
        return RoutingTask(
            category=category, quality_tier=d.quality_tier, use_case=d.use_case, resolution=self.resolution,
            aspect_ratio=d.aspect_ratio, has_audio_input=video.audio is not None,
            has_human_subjects=shot.has_human_subjects, complexity=shot.complexity,
            requires_character_consistency=shot.requires_character_consistency,
            max_wait_seconds=d.max_wait_seconds, pinned_model=shot.model,
            needs_image_input=video.continuity == "chained",
        )

    def decide(self, task: RoutingTask, shot_cost) -> RouteDecision:
        decision = route(task, self.catalog, self.on, self.providers, observed=self.observed)
        if not self.cheapest or task.pinned_model:
            return decision
        # Fitting a budget: the capable model whose clips for this shot cost least (clip lengths matter,
        # not only the price per second), the usual pick kept as a fallback.
        candidates = [decision.model, *decision.fallbacks] + [
            m.id for m in self.catalog.models.values() if m.id not in decision.excluded
            and m.id not in (decision.model, *decision.fallbacks)]
        cheapest = min(candidates, key=lambda m: (shot_cost(self.catalog.get(m)), m))
        if cheapest == decision.model:
            return decision
        fallbacks = tuple(m for m in (decision.model, *decision.fallbacks) if m != cheapest)[:2]
        return RouteDecision(model=cheapest, fallbacks=fallbacks, guide_choice=decision.guide_choice,
                             excluded=decision.excluded,
                             reason=f"fitted to budget: {cheapest} is the cheapest capable model "
                                    f"for this shot (${self.catalog.get(cheapest).price(task.resolution):.3f}/s; "
                                    f"the plan would use {decision.model})")

    def target_of(self, video: Video) -> float | None:
        """The video's length to meet: its target, stretched to fit its narration (lead-in and tail included)."""
        spoken = self.narration.get(video.id)
        if spoken is None:
            return video.target_seconds
        needed = spoken + NARRATION_LEAD + NARRATION_TAIL
        return max(video.target_seconds or 0.0, needed)

    def shot_seconds(self, video: Video, si: int, shot: Shot, model: ModelSpec, category: TaskCategory,
                     extra: float = 0.0) -> float:
        target = self.target_of(video)
        if target is not None:
            # `extra` is what crossfades and trimmed join frames take away: generate it so the target still holds
            return share_seconds(target + extra, len(video.shots))[si]
        if category in (TaskCategory.VIDEO_ENHANCE, TaskCategory.VIDEO_TO_VIDEO) and shot.video:
            return min(self.probe_seconds(self.resolve(shot.video)), model.max_duration)
        if video.audio:  # the audio drives the video (or the lip sync): its length sets the video's
            audio = self.probe_seconds(self.resolve(video.audio))
            share = share_seconds(audio + extra, len(video.shots))[si]
            return min(share, model.max_duration) if category == TaskCategory.AUDIO_LIP_SYNC else share
        return float(model.default_duration())

    def _stage(self, vi: int, video: Video, extra: float) -> list | None:
        c = self.campaign
        staged: list[tuple[int, Shot, TaskCategory, object, list[tuple[int, float]]]] = []
        for si, shot in enumerate(video.shots):
            known = self.categories.get((video.id, si))   # what prompt_batches decided, when planned from it
            category = TaskCategory(known) if known else shot_category(shot, video, c.defaults.use_case)
            try:
                decision = self.decide(self.task_for(video, shot, category), lambda m, si=si, shot=shot, category=category: (
                    sum(m.cost(g, self.resolution) for g, _ in split_seconds(
                        self.shot_seconds(video, si, shot, m, category, extra), m.durations))))
            except NoCapableModel as exc:
                path = ("videos", vi, "shots", si, "model") if shot.model else ("videos", vi, "shots", si)
                file, line = c.where(*path)
                self.problems.append(Problem(file, field_name(path), str(exc), line))
                continue
            model = self.catalog.get(decision.model)
            pieces = split_seconds(self.shot_seconds(video, si, shot, model, category, extra), model.durations)
            staged.append((si, shot, category, decision, pieces))
        return staged if len(staged) == len(video.shots) else None

    def plan_video(self, vi: int, video: Video) -> list[SegmentPlan]:
        c = self.campaign
        overlap = join_overlap(video)
        extra = 0.0
        for _ in range(5):   # the segment count sets the overlap, and the overlap can change the count
            staged = self._stage(vi, video, extra)
            if staged is None:
                return []
            joins = sum(len(p) for *_, p in staged) - 1
            # compensate when the video has a length to meet: its target, or the audio that drives it
            needed = joins * overlap if (self.target_of(video) is not None or video.audio) else 0.0
            if abs(needed - extra) < 1e-9:
                break
            extra = needed
        shortest = min(u for *_, p in staged for _, u in p)
        if joins and shortest <= overlap + 1 / FPS:
            file, line = c.where("videos", vi, "transition_seconds")
            self.problems.append(Problem(file, f"videos[{vi}].transition_seconds", (
                f"a {overlap:g}s join overlap needs every segment longer than that, but one is {shortest:g}s; "
                "shorten transition_seconds or trim_join_frames, or give the video fewer shots"), line))
            return []
        total = sum(len(p) for *_, p in staged)
        target = round(sum(u for *_, p in staged for _, u in p) - (total - 1) * overlap, 3)
        segments: list[SegmentPlan] = []
        start = 0.0
        previous_key: str | None = None
        for si, shot, category, decision, pieces in staged:
            model = self.catalog.get(decision.model)
            latency = effective_latency(model, self.observed)
            options = {"shot_type": "multi"} if model.multi_shot and shot.requires_character_consistency else {}
            for piece, (generate, used) in enumerate(pieces):
                index = len(segments)
                chained = video.continuity == "chained" and index > 0
                prompt = segment_prompt(shot, c.style, piece, len(pieces))
                inputs = {
                    "image": self.input_hash(shot.image), "video": self.input_hash(shot.video),
                    "audio": self.input_hash(video.audio), "audio_offset": round(start, 3) if video.audio else None,
                    "chained_from": previous_key if chained else None,
                }
                key = job_key(model=model.id, prompt=prompt, seconds=generate, resolution=self.resolution,
                              aspect_ratio=c.defaults.aspect_ratio, category=category.value, options=options, **inputs)
                segments.append(SegmentPlan(
                    campaign=c.campaign, video_id=video.id, segment_index=index, segment_count=total, shot_index=si,
                    category=category.value, model=model.id, fallbacks=decision.fallbacks, reason=decision.reason,
                    prompt=prompt, seconds=used, generate_seconds=generate, start_seconds=round(start, 3),
                    target_seconds=target, resolution=self.resolution, aspect_ratio=c.defaults.aspect_ratio,
                    image=self.located(shot.image), video=self.located(shot.video), audio=self.located(video.audio),
                    audio_offset_seconds=round(start, 3) if video.audio else 0.0, continuity=video.continuity,
                    transition=video.transition, chained_from=previous_key if chained else None, options=options,
                    est_cost_usd=model.cost(generate, self.resolution),
                    est_latency_seconds=latency.p50_seconds, p95_latency_seconds=latency.p95_seconds,
                    job_key=key,
                ))
                start += used - overlap
                previous_key = key
        return segments


def _plan_once(campaign: Campaign, catalog: Catalog, data_dir: Path, on: dt.date, providers, probe_seconds,
               observed, narration, categories, resolution: str | None = None, cheapest: bool = False) -> CampaignPlan:
    planner = _Planner(campaign, catalog, data_dir, on, providers, probe_seconds, observed, resolution, cheapest,
                       narration, categories)
    segments: list[SegmentPlan] = []
    for vi, video in enumerate(campaign.videos):
        segments.extend(planner.plan_video(vi, video))
    if planner.problems:
        raise PlanningError("cannot plan campaign:\n" + "\n".join(f"  - {p}" for p in planner.problems))
    plan = CampaignPlan(campaign=campaign.campaign, segments=segments, budget_usd=campaign.budget_usd)
    for video in campaign.videos:
        spoken = (narration or {}).get(video.id)
        if spoken is not None and video.target_seconds is not None and planner.target_of(video) > video.target_seconds:
            plan.warnings.append(f"video {video.id}: the narration needs {planner.target_of(video):.1f}s, longer than "
                                 f"target_seconds {video.target_seconds:g}; the video is planned to the narration")
    return plan


def _cost_by_model(plan: CampaignPlan) -> str:
    by_model: dict[str, float] = {}
    for s in plan.segments:
        by_model[s.model] = by_model.get(s.model, 0.0) + s.est_cost_usd
    return ", ".join(f"{m} ${v:.2f}" for m, v in sorted(by_model.items(), key=lambda kv: -kv[1]))


def plan_campaign(campaign: Campaign, catalog: Catalog, data_dir: Path, on: dt.date | None = None,
                  providers: frozenset[str] | None = None, probe_seconds=None, enforce_budget: bool = True,
                  observed: Observed | None = None, narration: dict[str, float] | None = None,
                  categories: dict[tuple[str, int], str] | None = None) -> CampaignPlan:
    """Expand, route and price every segment; raise PlanningError (naming file, line, field) when impossible.

    `narration` is each narrated video's spoken seconds; `categories` each shot's task category by
    (video id, shot index), as prompt_batches decided it (computed here when absent).

    Over budget with `budget_policy: fit`, the plan first drops to 720p, then to the cheapest capable models;
    otherwise (or when even that is over) it is refused with what would fit.
    """
    if probe_seconds is None:
        from video_pipeline.media.probe import probe

        def probe_seconds(path: Path) -> float:
            return probe(path).duration

    on = on or dt.date.today()
    args = (campaign, catalog, data_dir, on, providers, probe_seconds, observed, narration, categories)
    plan = _plan_once(*args)
    budget = campaign.budget_usd
    if not enforce_budget or budget is None or plan.total_cost_usd <= budget + 1e-9:
        return plan
    attempts = []
    if campaign.defaults.resolution != "720p":
        attempts.append(("720p", False, "resolution lowered from 1080p to 720p"))
    attempts += [("720p", True, "cheapest capable models at 720p")]
    cheapest_cost = None
    for resolution, cheapest, what in attempts:
        try:
            fitted = _plan_once(*args, resolution=resolution, cheapest=cheapest)
        except PlanningError:
            continue
        cheapest_cost = fitted.total_cost_usd
        if campaign.budget_policy == "fit" and fitted.total_cost_usd <= budget + 1e-9:
            fitted.warnings.append(f"fitted to budget ${budget:.2f}: {what}; estimated ${fitted.total_cost_usd:.2f} "
                                   f"instead of ${plan.total_cost_usd:.2f}")
            return fitted
    file, line = campaign.where("budget_usd")
    over = plan.total_cost_usd - budget
    hint = (f" The cheapest capable plan (720p, cheapest models) costs ${cheapest_cost:.2f}"
            + (" and fits: set budget_policy: fit to use it." if cheapest_cost <= budget + 1e-9 and campaign.budget_policy != "fit"
               else ".") if cheapest_cost is not None else "")
    raise PlanningError(
        f"{file}{':' + str(line) if line else ''}: budget_usd: the plan costs an estimated ${plan.total_cost_usd:.2f}, "
        f"${over:.2f} over the budget of ${budget:.2f} ({_cost_by_model(plan)}).{hint} Raise budget_usd to at least "
        f"{math.ceil(plan.total_cost_usd * 100) / 100:.2f}, or shorten videos, lower the resolution or quality tier. "
        "Nothing was spent."
    )

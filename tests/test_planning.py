"""Planning: the router reproduces the guide's `route_video_task`, and the planner splits, prices and explains.

The guide's rules are in the project's reference copy of the guide (shared/reference/seed-article.txt) (`route_video_task`, `LATENCY_PROFILE`,
`is_viable_for_interactive`); `guide_choice` in video_pipeline/planning/router.py mirrors them.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import TIER_ORDER, load_catalog
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.errors import PlanningError
from video_pipeline.planning.planner import join_overlap, plan_campaign, split_seconds
from video_pipeline.planning.router import NoCapableModel, RoutingTask, guide_choice, is_viable_for_interactive, route
from video_pipeline.spec.taxonomy import TaskCategory

CATALOG = load_catalog(PROJECT_ROOT / "data" / "catalog.yaml")
RUN_DATE = dt.date(2026, 11, 24)
BEFORE_SORA_RETIRED = dt.date(2026, 6, 1)

T2V = TaskCategory.TEXT_TO_VIDEO
I2V = TaskCategory.IMAGE_TO_VIDEO
V2V = TaskCategory.VIDEO_TO_VIDEO
ENHANCE = TaskCategory.VIDEO_ENHANCE
LIP_SYNC = TaskCategory.AUDIO_LIP_SYNC


def fixed_probe(seconds: float = 7.5):
    """Media length without ffprobe: every referenced clip or audio file lasts `seconds`."""
    return lambda path: seconds


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the guide's route_video_task, branch by branch --------------------------------------------

# (case id, task, the guide's model, words of the rule that picked it)
GUIDE_BRANCHES = [
    ("t2v-product-showcase", dict(category=T2V, use_case="product_showcase"), "seedance-2-0", "product showcase"),
    ("t2v-product-showcase-beats-premium", dict(category=T2V, use_case="product_showcase", quality_tier="premium",
                                                complexity="high_physics"), "seedance-2-0", "product showcase"),
    ("t2v-music-video", dict(category=T2V, use_case="music_video"), "seedance-2-0", "music video"),
    ("t2v-audio-input", dict(category=T2V, has_audio_input=True), "seedance-2-0", "audio"),
    ("t2v-audio-input-beats-social", dict(category=T2V, quality_tier="social", has_audio_input=True),
     "seedance-2-0", "audio"),
    ("t2v-social", dict(category=T2V, quality_tier="social"), "veo-3-1-fast", "social"),
    ("t2v-social-beats-character", dict(category=T2V, quality_tier="social", requires_character_consistency=True),
     "veo-3-1-fast", "social"),
    ("t2v-premium-human", dict(category=T2V, quality_tier="premium", has_human_subjects=True),
     "veo-3-1-quality", "human"),
    ("t2v-premium", dict(category=T2V, quality_tier="premium"), "kling-3-0", "premium"),
    ("t2v-premium-beats-character", dict(category=T2V, quality_tier="premium", requires_character_consistency=True),
     "kling-3-0", "premium"),
    ("t2v-character-consistency", dict(category=T2V, requires_character_consistency=True), "wan-2-6", "character"),
    ("t2v-default", dict(category=T2V), "veo-3-1-fast", "default"),
    ("t2v-narrative-default", dict(category=T2V, use_case="narrative", has_human_subjects=True),
     "veo-3-1-fast", "default"),
    ("i2v-product", dict(category=I2V, use_case="product_showcase"), "seedance-2-0", "product"),
    ("i2v-general", dict(category=I2V), "kling-3-0", "image to video"),
    ("i2v-premium-high-physics", dict(category=I2V, quality_tier="premium", complexity="high_physics"),
     "kling-3-0", "image to video"),
    ("i2v-social", dict(category=I2V, quality_tier="social"), "kling-3-0", "image to video"),
    ("enhance", dict(category=ENHANCE), "topaz-video-upscaler", "enhance"),
    ("enhance-premium", dict(category=ENHANCE, quality_tier="premium"), "topaz-video-upscaler", "enhance"),
    ("lip-sync", dict(category=LIP_SYNC, use_case="talking_head", has_audio_input=True), "omnihuman", "lip sync"),
]


@pytest.mark.parametrize(("task", "model", "rule"), [c[1:] for c in GUIDE_BRANCHES], ids=[c[0] for c in GUIDE_BRANCHES])
def test_router_follows_each_branch_of_the_guide(task: dict, model: str, rule: str) -> None:
    routing_task = RoutingTask(**task)
    guide_model, guide_rule = guide_choice(routing_task)
    assert (guide_model, rule in guide_rule) == (model, True), guide_rule
    decision = route(routing_task, CATALOG, RUN_DATE)
    assert decision.model == model
    assert decision.guide_choice == model
    assert f"picks {model}" in decision.reason and rule in decision.reason
    assert model not in decision.fallbacks
    for fallback in decision.fallbacks:
        assert routing_task.category in CATALOG.get(fallback).categories
        assert not CATALOG.get(fallback).is_retired(RUN_DATE)


@pytest.mark.parametrize("on", [BEFORE_SORA_RETIRED, dt.date(2026, 9, 23)])
def test_premium_high_physics_picks_sora_2_while_it_is_offered(on: dt.date) -> None:
    for extra in ({}, {"has_human_subjects": True}):
        decision = route(RoutingTask(category=T2V, quality_tier="premium", complexity="high_physics", **extra),
                         CATALOG, on)
        assert decision.model == "sora-2"
        assert "high physics" in decision.reason
        assert "retired" not in decision.reason


@pytest.mark.parametrize("on", [dt.date(2026, 9, 24), RUN_DATE])
def test_premium_high_physics_after_sora_2_retired_picks_another_capable_model_and_says_retired(on: dt.date) -> None:
    task = RoutingTask(category=T2V, quality_tier="premium", complexity="high_physics")
    decision = route(task, CATALOG, on)
    chosen = CATALOG.get(decision.model)
    assert decision.guide_choice == "sora-2"
    assert decision.model != "sora-2" and "sora-2" not in decision.fallbacks
    assert T2V in chosen.categories and not chosen.is_retired(on)
    assert "retired" in decision.reason and "sora-2" in decision.reason and decision.model in decision.reason
    assert "retired" in decision.excluded["sora-2"]
    # the closest stand-in for a premium model is one from the best tier still offered
    best_tier = max(TIER_ORDER[m.tier] for m in CATALOG.capable(T2V) if not m.is_retired(on))
    assert TIER_ORDER[chosen.tier] == best_tier


@pytest.mark.parametrize("quality_tier", ["social", "standard", "premium"])
@pytest.mark.parametrize("use_case", ["general", "product_showcase", "music_video", "narrative", "talking_head"])
@pytest.mark.parametrize("flags", [{}, {"has_human_subjects": True, "complexity": "high_physics"},
                                   {"requires_character_consistency": True}, {"aspect_ratio": "9:16"}])
def test_video_to_video_never_gets_veo_3_1_fast(quality_tier: str, use_case: str, flags: dict) -> None:
    task = RoutingTask(category=V2V, quality_tier=quality_tier, use_case=use_case, **flags)
    decision = route(task, CATALOG, RUN_DATE)
    assert decision.model != "veo-3-1-fast" and "veo-3-1-fast" not in decision.fallbacks
    assert V2V in CATALOG.get(decision.model).categories
    assert "cannot do video_to_video" in decision.reason


def test_every_route_decision_is_capable_and_explained() -> None:
    for category in TaskCategory:
        for tier in ("social", "standard", "premium"):
            for resolution in ("720p", "1080p"):
                task = RoutingTask(category=category, quality_tier=tier, resolution=resolution,
                                   has_audio_input=category == LIP_SYNC, use_case="talking_head")
                decision = route(task, CATALOG, RUN_DATE)
                model = CATALOG.get(decision.model)
                assert category in model.categories and resolution in model.resolutions
                assert not model.is_retired(RUN_DATE)
                assert decision.reason.strip()


# --- latency: the guide's is_viable_for_interactive --------------------------------------------

GUIDE_LATENCY_PROFILE = {
    "veo-3-1-fast": (20, 45, "speed"),
    "hailuo-02": (25, 50, "speed"),
    "kling-3-0": (180, 300, "quality"),
    "veo-3-1-quality": (150, 270, "quality"),
    "sora-2": (480, 900, "premium"),
    "seedance-2-0": (90, 180, "mid"),
    "wan-2-6": (120, 240, "mid"),
}


@pytest.mark.parametrize("model_id", sorted(GUIDE_LATENCY_PROFILE))
def test_catalog_latency_matches_the_guide_table(model_id: str) -> None:
    model = CATALOG.get(model_id)
    assert (model.latency.p50_seconds, model.latency.p95_seconds, model.tier) == GUIDE_LATENCY_PROFILE[model_id]


@pytest.mark.parametrize("model_id", sorted(CATALOG.models))
def test_only_models_with_p95_within_60s_are_viable_for_interactive(model_id: str) -> None:
    model = CATALOG.get(model_id)
    expected = model_id in ("veo-3-1-fast", "hailuo-02")  # the guide: only speed-tier models fit under 60 s
    assert is_viable_for_interactive(model) is expected
    assert is_viable_for_interactive(model, 60) is expected
    assert is_viable_for_interactive(model, model.latency.p95_seconds) is True  # the bound is inclusive
    assert is_viable_for_interactive(model, model.latency.p95_seconds - 0.5) is False


def test_unknown_model_is_not_viable_for_interactive() -> None:
    assert "pika-9" not in CATALOG.models
    assert is_viable_for_interactive(CATALOG.models.get("pika-9")) is False
    assert is_viable_for_interactive(None, 10_000) is False


@pytest.mark.parametrize(
    "task",
    [dict(category=T2V, quality_tier="premium"), dict(category=T2V, quality_tier="premium", complexity="high_physics"),
     dict(category=T2V, requires_character_consistency=True), dict(category=I2V),
     dict(category=I2V, use_case="product_showcase")],
    ids=["premium", "premium-physics", "character", "i2v", "i2v-product"],
)
def test_max_wait_seconds_excludes_slow_models(task: dict) -> None:
    decision = route(RoutingTask(**task, max_wait_seconds=60), CATALOG, RUN_DATE)
    for model_id in (decision.model, *decision.fallbacks):
        assert CATALOG.get(model_id).latency.p95_seconds <= 60
    slow = [m.id for m in CATALOG.capable(task["category"]) if m.latency.p95_seconds > 60 and not m.is_retired(RUN_DATE)]
    assert slow
    for model_id in slow:
        assert "exceeds max_wait_seconds 60" in decision.excluded[model_id]
    assert decision.guide_choice in decision.excluded  # every guide pick above is slow (or retired)
    assert "exceeds max_wait_seconds 60" in decision.reason


def test_max_wait_seconds_no_model_can_meet_names_the_wait() -> None:
    with pytest.raises(NoCapableModel, match=r"within 30s"):
        route(RoutingTask(category=T2V, max_wait_seconds=30), CATALOG, RUN_DATE)
    with pytest.raises(NoCapableModel, match=r"video_to_video"):
        route(RoutingTask(category=V2V, max_wait_seconds=60), CATALOG, RUN_DATE)


def test_max_wait_seconds_in_campaign_defaults_reaches_every_segment(tmp_path: Path, data_dir: Path) -> None:
    path = write(tmp_path / "fast.yaml", """\
campaign: fast
defaults:
  quality_tier: premium
  max_wait_seconds: 60
videos:
  - id: a
    shots:
      - prompt: "A sprinter, slow motion"
        has_human_subjects: true
      - prompt: "A waterfall"
        complexity: high_physics
""")
    plan = plan_campaign(load_campaign(path, data_dir), CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe())
    assert plan.segments
    assert all(CATALOG.get(s.model).latency.p95_seconds <= 60 for s in plan.segments)


# --- pinned models -----------------------------------------------------------------------------


PINNED = """\
campaign: pinned
videos:
  - id: a
    target_seconds: 8
    shots:
      - prompt: "A red kite over a beach"
        model: {model}
"""


@pytest.mark.parametrize(
    ("model", "why"),
    [("topaz-video-upscaler", "cannot do text_to_video"), ("runway-aleph", "cannot do text_to_video"),
     ("sora-2", "retired on 2026-09-24"), ("pika-9", "not in the catalog")],
)
def test_pinned_model_that_cannot_do_the_task_names_file_line_and_field(tmp_path: Path, data_dir: Path, model: str,
                                                                       why: str) -> None:
    path = write(tmp_path / "pinned.yaml", PINNED.format(model=model))
    campaign = load_campaign(path, data_dir)
    with pytest.raises(PlanningError) as info:
        plan_campaign(campaign, CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe())
    message = str(info.value)
    assert f"{path}:7: videos[0].shots[0].model:" in message
    assert repr(model) in message and why in message


def test_pinned_capable_model_is_used_and_the_reason_says_so(tmp_path: Path, data_dir: Path) -> None:
    path = write(tmp_path / "pinned.yaml", PINNED.format(model="hailuo-02"))
    plan = plan_campaign(load_campaign(path, data_dir), CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe())
    assert [s.model for s in plan.segments] == ["hailuo-02"]
    assert "pinned" in plan.segments[0].reason and "veo-3-1-fast" in plan.segments[0].reason


def test_every_unplannable_shot_is_reported_at_once(tmp_path: Path, data_dir: Path) -> None:
    path = write(tmp_path / "two.yaml", """\
campaign: two
videos:
  - id: a
    shots:
      - prompt: "one"
        model: omnihuman
  - id: b
    shots:
      - prompt: "two"
        model: sora-2
""")
    with pytest.raises(PlanningError) as info:
        plan_campaign(load_campaign(path, data_dir), CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe())
    assert f"{path}:6: videos[0].shots[0].model:" in str(info.value)
    assert f"{path}:10: videos[1].shots[0].model:" in str(info.value)


# --- split_seconds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "durations", "expected"),
    [
        (3, [4, 6, 8], [(4, 3.0)]),
        (7.5, [4, 6, 8], [(8, 7.5)]),
        (8, [4, 6, 8], [(8, 8.0)]),
        (10, [4, 6, 8], [(6, 6.0), (4, 4.0)]),
        (12, [4, 6, 8], [(8, 8.0), (4, 4.0)]),
        (16.5, [4, 6, 8], [(8, 8.0), (6, 6.0), (4, 2.5)]),
        (60, [4, 6, 8], [(8, 8.0)] * 7 + [(4, 4.0)]),
        (17, [5, 10], [(10, 10.0), (10, 7.0)]),
        (21, [5, 10], [(10, 10.0), (10, 10.0), (5, 1.0)]),
        (30, [5, 10, 15], [(15, 15.0), (15, 15.0)]),
        (15, list(range(4, 16)), [(15, 15.0)]),
        (1, list(range(1, 31)), [(1, 1.0)]),
        (0.5, [4, 8, 12], [(4, 0.5)]),
    ],
)
def test_split_seconds_covers_the_target_exactly_with_the_fewest_clips(seconds: float, durations: list[int],
                                                                       expected: list) -> None:
    assert split_seconds(seconds, durations) == expected


def _least_generated(durations: list[int], count: int, target: float, cache: dict) -> int:
    """The fewest seconds `count` allowed clips can add up to while covering `target`."""
    key = (tuple(durations), count)
    if key not in cache:
        sums = {0}
        for _ in range(count):
            sums = {s + d for s in sums for d in durations}
        cache[key] = sorted(sums)
    return next(s for s in cache[key] if s >= target - 1e-9)


def test_split_seconds_for_every_catalog_model_and_target_from_1_to_120s() -> None:
    cache: dict = {}
    targets = [1 + i * 0.5 for i in range(239)]
    assert targets[0] == 1 and targets[-1] == 120
    for model in CATALOG.models.values():
        for target in targets:
            pieces = split_seconds(target, model.durations)
            where = f"{model.id} {target}s -> {pieces}"
            assert abs(sum(used for _, used in pieces) - target) <= 1e-6, where
            assert len(pieces) == math.ceil(target / model.max_duration), where
            for generate, used in pieces:
                assert generate in model.durations, where
                assert 0 < used <= generate, where
            assert all(used == generate for generate, used in pieces[:-1]), where  # only the last clip is trimmed
            assert sum(g for g, _ in pieces) == _least_generated(model.durations, len(pieces), target, cache), where


# --- budget and plan totals --------------------------------------------------------------------

OVER_BUDGET = """\
campaign: pricey
budget_usd: {budget}
defaults:
  quality_tier: social
videos:
  - id: long
    target_seconds: 30
    shots:
      - prompt: "A city wakes up"
"""


def test_over_budget_campaign_names_cost_budget_and_that_nothing_was_spent(tmp_path: Path, data_dir: Path) -> None:
    path = write(tmp_path / "pricey.yaml", OVER_BUDGET.format(budget=1))
    campaign = load_campaign(path, data_dir)
    with pytest.raises(PlanningError) as info:
        plan_campaign(campaign, CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe())
    message = str(info.value)
    # 30 s of veo-3-1-fast at 720p, $0.10/s
    expected_cost = 30 * CATALOG.get("veo-3-1-fast").price("720p")
    assert expected_cost == pytest.approx(3.0)
    assert "$3.00" in message and "$1.00" in message
    assert "Nothing was spent" in message
    assert f"{path}:2: budget_usd:" in message
    unenforced = plan_campaign(campaign, CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe(),
                               enforce_budget=False)
    assert unenforced.total_cost_usd == pytest.approx(expected_cost)


def test_campaign_exactly_at_budget_plans(tmp_path: Path, data_dir: Path) -> None:
    path = write(tmp_path / "pricey.yaml", OVER_BUDGET.format(budget=3))
    plan = plan_campaign(load_campaign(path, data_dir), CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe())
    assert plan.total_cost_usd == pytest.approx(3.0) and plan.budget_usd == 3


MIXED = """\
campaign: mixed
style: "foggy morning, muted colours"
defaults:
  quality_tier: premium
videos:
  - id: physics
    target_seconds: 25
    continuity: chained
    shots:
      - prompt: "Water crashes over rocks"
        complexity: high_physics
      - prompt: "A dancer spins"
        has_human_subjects: true
  - id: still
    shots:
      - prompt: "The bottle turns"
        image: samples/media/bottle.png
  - id: upscale
    shots:
      - prompt: "Sharper street"
        video: samples/media/street.mp4
        transform: upscale
  - id: restyle
    shots:
      - prompt: "Watercolour street"
        video: samples/media/street.mp4
        transform: style
  - id: song
    audio: samples/media/beat.m4a
    shots:
      - prompt: "Lights pulse to the beat"
"""


def _campaign_files(data_dir: Path, tmp_path: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "samples").iterdir() if p.is_file()) + [write(tmp_path / "mixed.yaml", MIXED)]


def test_every_planned_segment_has_a_reason_and_totals_equal_the_sum_of_parts(data_dir: Path, tmp_path: Path) -> None:
    planned = 0
    for path in _campaign_files(data_dir, tmp_path):
        campaign = load_campaign(path, data_dir)
        plan = plan_campaign(campaign, CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe(7.5),
                             enforce_budget=False)
        assert plan.segments, path.name
        priced = sum(CATALOG.get(s.model).price(s.resolution) * s.generate_seconds for s in plan.segments)
        assert plan.total_cost_usd == pytest.approx(priced, abs=1e-4), path.name
        assert plan.total_cost_usd == pytest.approx(sum(s.est_cost_usd for s in plan.segments), abs=1e-9)
        for video in campaign.videos:
            segments = [s for s in plan.segments if s.video_id == video.id]
            assert [s.segment_index for s in segments] == list(range(len(segments))), (path.name, video.id)
            assert all(s.segment_count == len(segments) for s in segments)
            # crossfades overlap neighbouring segments: the finished length is the sum less the overlaps
            total = sum(s.seconds for s in segments) - (len(segments) - 1) * join_overlap(video)
            assert all(s.target_seconds == pytest.approx(total, abs=1e-3) for s in segments)
            if video.target_seconds is not None:
                assert total == pytest.approx(video.target_seconds, abs=1e-6), (path.name, video.id)
            start = 0.0
            for s in segments:
                assert s.start_seconds == pytest.approx(start, abs=1e-3)
                start += s.seconds - join_overlap(video)
        for s in plan.segments:
            model = CATALOG.get(s.model)
            assert s.reason.strip(), (path.name, s.video_id)
            assert s.model in s.reason
            assert TaskCategory(s.category) in model.categories and not model.is_retired(RUN_DATE)
            assert s.generate_seconds in model.durations and 0 < s.seconds <= s.generate_seconds
            assert s.est_cost_usd == pytest.approx(model.price(s.resolution) * s.generate_seconds, abs=1e-4)
            planned += 1
    assert planned >= 15


def test_mixed_campaign_routes_each_shot_as_the_guide_says_on_the_run_date(data_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.yaml", MIXED)
    plan = plan_campaign(load_campaign(path, data_dir), CATALOG, data_dir, on=RUN_DATE, probe_seconds=fixed_probe(7.5))
    by_video: dict[str, list] = {}
    for s in plan.segments:
        by_video.setdefault(s.video_id, []).append(s)
    physics = [s for s in by_video["physics"] if s.shot_index == 0]
    assert physics and all(s.model != "sora-2" and "retired" in s.reason for s in physics)
    assert {s.model for s in by_video["physics"] if s.shot_index == 1} == {"veo-3-1-quality"}
    assert [s.model for s in by_video["still"]] == ["kling-3-0"]
    assert [s.model for s in by_video["upscale"]] == ["topaz-video-upscaler"]
    assert [s.category for s in by_video["restyle"]] == ["video_to_video"]
    assert all(s.model != "veo-3-1-fast" for s in by_video["restyle"])
    assert {s.model for s in by_video["song"]} == {"seedance-2-0"}
    # chained: each segment after the first is seeded by the one before
    chain = by_video["physics"]
    assert chain[0].chained_from is None
    assert [s.chained_from for s in chain[1:]] == [s.job_key for s in chain[:-1]]

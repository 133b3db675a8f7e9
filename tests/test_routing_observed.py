"""The router learns from what it observed, and the planner fits or refuses budgets before spending."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import write
from tests.support.pipeline import GENERATION, run_campaign_job
from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.errors import PlanningError
from video_pipeline.planning.observed import ObservationLog
from video_pipeline.planning.planner import plan_campaign
from video_pipeline.planning.router import RoutingTask, is_viable_for_interactive, route
from video_pipeline.spec.taxonomy import TaskCategory

RUN_DATE = dt.date(2026, 11, 24)
CATALOG = load_catalog(PROJECT_ROOT / "data" / "catalog.yaml")
SOCIAL = RoutingTask(category=TaskCategory.TEXT_TO_VIDEO, quality_tier="social")


@pytest.fixture
def log(tmp_path):
    log = ObservationLog(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield log
    log.dispose()


def test_observed_slow_p95_makes_a_speed_model_unfit_for_interactive_waits(log):
    assert is_viable_for_interactive(CATALOG.get("veo-3-1-fast"), 60)
    for i in range(30):
        log.record("veo-3-1-fast", "gemini", 70.0 + i, True)
    observed = log.summary()
    assert observed["veo-3-1-fast"].samples == 30
    assert not is_viable_for_interactive(CATALOG.get("veo-3-1-fast"), 60, observed)
    decision = route(RoutingTask(category=TaskCategory.TEXT_TO_VIDEO, quality_tier="social", max_wait_seconds=60),
                     CATALOG, RUN_DATE, observed=observed)
    assert decision.model == "hailuo-02"
    assert "veo-3-1-fast (p95" in decision.reason and "exceeds max_wait_seconds 60" in decision.reason


def test_few_observations_blend_with_the_catalog_prior(log):
    for _ in range(5):
        log.record("kling-3-0", "kling", 60.0, True)
    latency = log.summary()["kling-3-0"].latency(CATALOG.get("kling-3-0"))
    assert 60 < latency.p50_seconds < 180   # between observed and prior, closer to the prior with 5 samples
    assert latency.p50_seconds == pytest.approx((10 * 180 + 5 * 60) / 15)


def test_burst_of_failures_cools_a_model_down_and_the_reason_says_so(log):
    for _ in range(3):
        log.record("veo-3-1-fast", "gemini", None, False, "retryable")
    observed = log.summary()
    assert observed["veo-3-1-fast"].cooling_down
    assert observed["veo-3-1-fast"].failure_rate == 1.0
    decision = route(SOCIAL, CATALOG, RUN_DATE, observed=observed)
    assert decision.model != "veo-3-1-fast"
    assert "cooling down" in decision.reason


def test_old_failures_do_not_cool_a_model_down(log):
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    for _ in range(3):
        log.record("veo-3-1-fast", "gemini", None, False, "retryable", at=old)
    assert not log.summary()["veo-3-1-fast"].cooling_down
    assert route(SOCIAL, CATALOG, RUN_DATE, observed=log.summary()).model == "veo-3-1-fast"


def test_when_every_capable_model_cools_down_the_campaign_still_routes(log):
    task = RoutingTask(category=TaskCategory.VIDEO_ENHANCE)
    for _ in range(3):
        log.record("topaz-video-upscaler", "fal", None, False, "retryable")
    assert route(task, CATALOG, RUN_DATE, observed=log.summary()).model == "topaz-video-upscaler"


PREMIUM = """
campaign: premium-spot
budget_usd: {budget}
budget_policy: {policy}
defaults: {{quality_tier: premium, resolution: 1080p}}
videos:
  - id: spot
    target_seconds: 20
    shots: [{{prompt: "A chef plates a dessert", has_human_subjects: true}}]
"""


def test_budget_fit_lowers_resolution_then_picks_cheaper_models(data_dir):
    full = plan_campaign(load_campaign(write(data_dir / "a.yaml", PREMIUM.format(budget=100, policy="refuse"))),
                         CATALOG, data_dir, on=RUN_DATE)
    assert full.total_cost_usd == pytest.approx(8.0)   # veo-3-1-quality, 20 s at $0.40
    fitted = plan_campaign(load_campaign(write(data_dir / "b.yaml", PREMIUM.format(budget=2, policy="fit"))),
                           CATALOG, data_dir, on=RUN_DATE)
    assert fitted.total_cost_usd <= 2
    assert {s.resolution for s in fitted.segments} == {"720p"}
    assert all(s.reason.startswith("fitted to budget") for s in fitted.segments)
    assert any("fitted to budget $2.00" in w for w in fitted.warnings)


def test_budget_refusal_says_by_how_much_and_what_would_fit(data_dir):
    spec = write(data_dir / "c.yaml", PREMIUM.format(budget=2, policy="refuse"))
    with pytest.raises(PlanningError) as exc:
        plan_campaign(load_campaign(spec), CATALOG, data_dir, on=RUN_DATE)
    message = str(exc.value)
    assert "c.yaml:3: budget_usd:" in message
    assert "$8.00, $6.00 over the budget of $2.00" in message
    assert "cheapest capable plan" in message and "budget_policy: fit" in message
    assert "Nothing was spent." in message


def test_chained_character_video_on_wan_asks_for_multi_shot(data_dir):
    campaign = load_campaign(data_dir / "samples" / "long-form.yaml", data_dir)
    plan = plan_campaign(campaign, CATALOG, data_dir, on=RUN_DATE)
    trail = [s for s in plan.segments if s.video_id == "trail"]
    assert {s.model for s in trail} == {"wan-2-6"}
    assert all(s.options == {"shot_type": "multi"} for s in trail)
    assert all(TaskCategory.IMAGE_TO_VIDEO in CATALOG.get(s.model).categories for s in trail)


def test_chained_video_never_routes_to_a_model_without_image_input():
    task = RoutingTask(category=TaskCategory.VIDEO_TO_VIDEO, needs_image_input=True)
    decision = route(task, CATALOG, RUN_DATE)
    assert decision.model == "wan-2-6"
    assert "runway-aleph (takes no image input" in decision.reason


@pytest.mark.slow
def test_generation_records_what_it_observed_for_the_next_plan(instance, settings, data_dir):
    run_campaign_job(instance, settings, data_dir / "samples" / "social-ideas.csv", through=GENERATION)
    log = ObservationLog(settings.ledger_url)
    try:
        seen = log.summary()["veo-3-1-fast"]
    finally:
        log.dispose()
    assert seen.samples == 3 and seen.failure_rate == 0
    # recorded in provider seconds (the local provider reports its unscaled, model-shaped latency)
    assert 4 <= seen.p50_seconds <= 135   # local latencies are drawn within [0.2 p50, 3 p95] of 20/45 s

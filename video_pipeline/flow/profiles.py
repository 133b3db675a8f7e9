"""What the production profile's run queue needs to know about a campaign before its run starts.

deploy/production/dagster.yaml limits queued runs by these tags: `provider/<name>: "true"` for each provider the
plan will call, and `campaign/tier` for its quality tier (premium models are the slow, batch-only ones).
"""

from __future__ import annotations

from pathlib import Path

from video_pipeline.planning.catalog import Catalog, load_catalog
from video_pipeline.config import Settings
from video_pipeline.errors import PlanningError
from video_pipeline.flow.intake import validate_file
from video_pipeline.planning.planner import CampaignPlan

PROVIDER_TAG = "provider/{}"
TIER_TAG = "campaign/tier"


def providers_of(plan: CampaignPlan, catalog: Catalog, configured: frozenset[str] | None = None) -> list[str]:
    """The providers the plan's models (and their fallbacks) resolve to: each model's first route whose
    provider is configured (every route counts as configured in local and fake modes)."""
    names: set[str] = set()
    for segment in plan.segments:
        for model in (segment.model, *segment.fallbacks):
            spec = catalog.models.get(model)
            if spec is None:
                continue
            routes = [r.provider for r in spec.routes if configured is None or r.provider in configured]
            if routes:
                names.add(routes[0])
    return sorted(names)


def run_tags(plan: CampaignPlan, catalog: Catalog, tier: str, configured: frozenset[str] | None = None) -> dict[str, str]:
    tags = {PROVIDER_TAG.format(name): "true" for name in providers_of(plan, catalog, configured)}
    tags[TIER_TAG] = tier
    return tags


def campaign_run_tags(path: Path, settings: Settings) -> dict[str, str]:
    """Run-queue tags for a campaign file (plans it, spends nothing)."""
    from video_pipeline.flow.stages import live_provider_names

    configured = live_provider_names(settings)
    try:
        campaign, plan = validate_file(path, settings, providers=configured)
    except PlanningError:   # e.g. no key for a model it pins: the run itself reports that, naming the variables
        return {}
    return run_tags(plan, load_catalog(settings.catalog_file), campaign.defaults.quality_tier, configured)

"""The run queue's limits in deploy/production/dagster.yaml cover every provider a campaign's run is tagged with."""

from __future__ import annotations

import pytest
import yaml

from video_pipeline.planning.catalog import load_catalog
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.flow.profiles import campaign_run_tags

pytestmark = pytest.mark.production


def test_a_campaign_run_is_tagged_with_its_providers_and_every_provider_has_a_queue_limit(settings):
    tags = campaign_run_tags(settings.data_dir / "samples" / "launch-teaser.yaml", settings)
    assert tags["campaign/tier"] == "social"
    assert {k for k in tags if k.startswith("provider/")} >= {"provider/gemini"}

    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "production" / "dagster.yaml").read_text())
    limited = {(limit["key"], limit["value"]) for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    catalog = load_catalog(settings.catalog_file)
    routed = {route.provider for spec in catalog.models.values() for route in spec.routes}
    assert {(f"provider/{name}", "true") for name in routed} <= limited

"""The five assets through Dagster's materialize(), on the local provider: real MP4s, metadata, checks."""

from __future__ import annotations

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from definitions import ASSETS, build_resources
from tests.conftest import assert_video, write
from video_pipeline.flow.intake import accept


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def _materialize(instance, settings, spec_path, raise_on_error=True):
    accepted = accept(spec_path, settings, move=False)
    instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
    return materialize(ASSETS, partition_key=accepted.campaign_id, instance=instance, resources=build_resources(),
                       raise_on_error=raise_on_error)


def _metadata(result, asset: str) -> dict:
    [mat] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.mark.slow
def test_sample_campaign_materializes_into_probed_mp4s_with_cost_and_latency_metadata(instance, settings, data_dir):
    result = _materialize(instance, settings, data_dir / "samples" / "launch-teaser.yaml")
    assert result.success
    outputs = pd.read_parquet(settings.tables_dir / "assembled_outputs" / "launch-teaser.parquet")
    assert set(outputs["video_id"]) == {"teaser", "product-still"}
    for row in outputs.itertuples():
        assert row.state == "assembled"
        assert_video(row.output_path, row.target_seconds)
    plans = _metadata(result, "routed_job_plans")
    generated = _metadata(result, "generated_segments")
    assembled = _metadata(result, "assembled_outputs")
    assert plans["dagster/row_count"] == 3
    assert plans["est_cost_usd"] == pytest.approx(1.62)
    assert generated["cost_usd"] == pytest.approx(1.62)
    assert generated["succeeded"] == 3 and generated["failed"] == 0
    assert set(generated["latency_by_model"]) == {"veo-3-1-fast", "kling-3-0"}
    for meta in (plans, generated, assembled):
        assert meta["wall_seconds"] >= 0
    assert assembled["assembled"] == 2
    assert assembled["outputs"]["teaser"].endswith("outputs/launch-teaser/teaser.mp4")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"all_segments_stored": True, "every_video_assembled": True, "durations_on_target": True,
                      "loudness_on_target": True, "no_black_runs": True, "narration_audible": True,
                      "content_credentials_valid": True}


def test_campaign_over_budget_stops_at_planning_before_any_job_runs(instance, settings, data_dir):
    spec = write(data_dir / "pricey.yaml", """
campaign: pricey
budget_usd: 1
defaults: {quality_tier: premium, resolution: 1080p}
videos:
  - id: epic
    target_seconds: 60
    shots: [{prompt: "A dragon over the mountains", has_human_subjects: true}]
""")
    with pytest.raises(Exception, match="over the budget"):
        _materialize(instance, settings, spec)
    assert not (settings.tables_dir / "generated_segments" / "pricey.parquet").exists()
    assert not settings.clips_dir.exists() or not any(settings.clips_dir.rglob("*.mp4"))


@pytest.mark.slow
def test_rematerializing_a_partition_replaces_its_tables_without_touching_other_campaigns(instance, settings, data_dir):
    _materialize(instance, settings, data_dir / "samples" / "social-ideas.csv")
    other = settings.tables_dir / "assembled_outputs" / "social-ideas.parquet"
    before = other.read_bytes()
    result = _materialize(instance, settings, data_dir / "samples" / "product-stills.json")
    assert result.success
    assert other.read_bytes() == before
    outputs = pd.read_parquet(settings.tables_dir / "assembled_outputs" / "product-stills.parquet")
    assert_video(outputs["output_path"][0], 8, width=720, height=720)

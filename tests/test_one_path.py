"""One orchestration path: a run reads its campaign once, as the `campaign` asset, and every later stage works from
that snapshot; the file can change or vanish mid-run without changing what the run makes."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from definitions import ASSETS, build_resources
from resources.providers import VideoProviders
from tests.conftest import assert_video, write
from video_pipeline import campaign as campaign_module
from video_pipeline import planner
from video_pipeline.intake import accept

SPEC = """
campaign: steady
budget_usd: 5
defaults: {quality_tier: social, subtitles: soft}
videos:
  - id: harbour
    target_seconds: 5
    narration: "Boats rock gently in the harbour at dawn."
    shots: [{prompt: "Fishing boats in a misty harbour at dawn"}]
  - id: market
    target_seconds: 5
    shots: [{prompt: "A busy fish market, crates of ice"}]
"""

EDITED = """
campaign: steady
budget_usd: 5
defaults: {quality_tier: social, subtitles: none}
videos:
  - id: harbour
    target_seconds: 10
    narration: "Something else entirely, spoken over a different picture."
    transition: crossfade
    shots: [{prompt: "A storm"}, {prompt: "Lightning"}]
"""


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


class MeddlingProviders(VideoProviders):
    """The local providers, but the campaign's installed spec is rewritten when generation starts and deleted
    when storing starts: what a person editing the file during a run would do."""

    spec_path: str

    def registry(self, settings, catalog):
        from pathlib import Path

        spec = Path(self.spec_path)
        if spec.exists() and "Something else" not in spec.read_text():
            spec.write_text(EDITED)
        else:
            spec.unlink(missing_ok=True)
        return super().registry(settings, catalog)


def test_editing_then_deleting_the_campaign_file_mid_run_changes_nothing_the_run_makes(instance, settings, data_dir):
    accepted = accept(write(data_dir / "steady.yaml", SPEC), settings, move=False)
    instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
    resources = build_resources(providers=MeddlingProviders(spec_path=str(accepted.spec_path)))
    result = materialize(ASSETS, partition_key="steady", instance=instance, resources=resources)
    assert result.success
    assert not accepted.spec_path.exists()            # the run really did lose its file half-way

    outputs = pd.read_parquet(settings.tables_dir / "assembled_outputs" / "steady.parquet")
    assert sorted(outputs["video_id"]) == ["harbour", "market"]          # not the edited single video
    for row in outputs.itertuples():
        assert row.state == "assembled", row.error
        assert_video(row.output_path, 5.0)                               # the original targets, not 10 s
    harbour = outputs.set_index("video_id").loc["harbour"]
    subtitles = open(harbour["subtitles_srt"], encoding="utf-8").read()  # soft subtitles, as first asked
    assert "harbour at dawn" in subtitles and "Something else" not in subtitles
    plans = pd.read_parquet(settings.tables_dir / "routed_job_plans" / "steady.parquet")
    assert list(plans["prompt"]) == ["Fishing boats in a misty harbour at dawn", "A busy fish market, crates of ice"]
    report = (settings.outputs_dir / "steady" / "report.html").read_text(encoding="utf-8")
    assert "market" in report and "A storm" not in report
    [mat] = result.asset_materializations_for_node("campaign")
    assert mat.tags.get("dagster/data_version") == accepted.sha256      # the run's version is the spec's hash


def _count_calls(monkeypatch, module, name: str) -> list:
    """Wrap `module.name` everywhere it was imported, recording each call."""
    original, calls = getattr(module, name), []

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, name, None) is original:
            monkeypatch.setattr(mod, name, counted)
    return calls


def test_one_run_parses_the_campaign_once_and_plans_it_once(instance, settings, data_dir, monkeypatch):
    accepted = accept(data_dir / "samples" / "narrated-spot.yaml", settings, move=False)
    instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
    parses = _count_calls(monkeypatch, campaign_module, "parse_campaign")
    plans = _count_calls(monkeypatch, planner, "plan_campaign")
    result = materialize(ASSETS, partition_key=accepted.campaign_id, instance=instance, resources=build_resources())
    assert result.success
    assert (len(parses), len(plans)) == (1, 1)

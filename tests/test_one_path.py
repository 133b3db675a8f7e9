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
from video_pipeline.spec import campaign as campaign_module
from video_pipeline.planning import planner
from video_pipeline.flow.intake import accept

pytestmark = pytest.mark.slow

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


SHORT = """
campaign: override
defaults: {quality_tier: social}
videos:
  - id: one
    target_seconds: 5
    shots: [{prompt: "A lighthouse at night, beams sweeping the fog"}]
"""


def _launch(instance, settings, data_dir, pipeline_config: dict, name: str = "override"):
    """Run campaign_job as the UI's launchpad does: the `pipeline` resource's fields given as run config."""
    from definitions import build_definitions

    spec = SHORT.replace("campaign: override", f"campaign: {name}").replace("lighthouse", f"{name} lighthouse")
    accepted = accept(write(data_dir / f"{name}.yaml", spec), settings, move=False)
    if not instance.has_dynamic_partition("campaigns", accepted.campaign_id):
        instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
    job = build_definitions().resolve_job_def("campaign_job")
    return job.execute_in_process(partition_key=accepted.campaign_id, instance=instance, raise_on_error=False,
                                  run_config={"resources": {"pipeline": {"config": pipeline_config}}})


def _x264_options(path) -> bytes:
    """The encoder settings x264 writes into every stream it makes (what `mediainfo` shows as Encoding settings)."""
    blob = open(path, "rb").read()
    start = blob.index(b"options: ")
    return blob[start:blob.index(b"\x00", start)]


def test_launchpad_overrides_of_mode_time_scale_and_preset_reach_the_providers_and_the_download_guard(
        instance, settings, data_dir, monkeypatch):
    from tests.support.services import fleet_on_free_ports

    # the environment says live, glacial waits and the slowest preset: only the launchpad's values can finish fast
    monkeypatch.setenv("VIDEO_PIPELINE_MODE", "live")
    monkeypatch.setenv("VIDEO_PIPELINE_TIME_SCALE", "50")
    monkeypatch.setenv("VIDEO_PIPELINE_X264_PRESET", "veryslow")

    result = _launch(instance, settings, data_dir, {"mode": "local", "time_scale": 0.002, "x264_preset": "ultrafast"})
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    clips = pd.read_parquet(settings.tables_dir / "stored_clips" / "override.parquet")
    [clip] = clips.itertuples()
    assert clip.state == "stored" and clip.model and clip.source_url.startswith("file:")   # the local renderer
    for made in (clip.clip_path, pd.read_parquet(settings.tables_dir / "assembled_outputs" /
                                                 "override.parquet")["output_path"].iloc[0]):
        options = _x264_options(made)
        assert b"cabac=0" in options and b"subme=0" in options, options   # ultrafast, not veryslow

    # mode=fake from the launchpad: the adapters go to the fakes, and the download guard lets their loopback URLs
    # through (in live mode, the environment's, it refuses http and loopback)
    fleet, base = fleet_on_free_ports(latency=0.3)
    monkeypatch.setenv("VIDEO_PIPELINE_FAKES_PORT", str(base))
    try:
        result = _launch(instance, settings, data_dir, {"mode": "fake", "time_scale": 0.01,
                                                        "x264_preset": "ultrafast"}, name="override-fake")
    finally:
        fleet.stop()
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    clips = pd.read_parquet(settings.tables_dir / "stored_clips" / "override-fake.parquet")
    [clip] = clips.itertuples()
    assert clip.state == "stored", clip.error
    assert clip.source_url.startswith("http://127.0.0.1:")
    assert fleet.invoice()["jobs"] == 1                         # paid once, on the fake it was routed to

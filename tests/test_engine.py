"""The engine: real clips from the local provider, retries, fallbacks and fatal stops. Whole runs (planned,
generated, stored, joined) go through the Dagster job with a scripted provider; the engine's own decisions are unit
tests of generation on the planner's segments."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from tests.conftest import assert_video, write
from tests.support.pipeline import providers_from, run_campaign_job
from video_pipeline.flow import stages
from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.planning.planner import plan_campaign
from video_pipeline.jobs.engine import CampaignAborted
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.base import JobState, JobStatus, ProviderRegistry
from video_pipeline.providers.local import LocalProvider

RUN_DATE = dt.date(2026, 11, 24)


class Script:
    """What a test's scripted providers share, however many registries a run builds: the failures still to come
    per model, the jobs doomed to them, and every submission."""

    def __init__(self, failures: dict[str, list[tuple[str, str]]] | None = None):
        self.failures = {m: list(v) for m, v in (failures or {}).items()}
        self.doomed: dict[str, tuple[str, str]] = {}
        self.submitted: list[str] = []


class ScriptedProvider:
    """Wraps the local provider; fails chosen models the way a real provider would, and counts submissions."""

    def __init__(self, inner: LocalProvider, script: Script):
        self.inner = inner
        self.name = inner.name          # it serves the local provider's file:// outputs
        self.latency_scale = inner.latency_scale
        self.script = script

    @property
    def submitted(self) -> list[str]:
        return self.script.submitted

    async def submit(self, request):
        self.script.submitted.append(request.model)
        job_id = await self.inner.submit(request)
        if self.script.failures.get(request.model):
            self.script.doomed[job_id] = self.script.failures[request.model].pop(0)
        return job_id

    async def poll(self, job_id):
        if job_id in self.script.doomed:
            kind, message = self.script.doomed[job_id]
            return JobStatus(JobState.FAILED, error=message, error_kind=kind)
        return await self.inner.poll(job_id)

    async def cancel(self, job_id):
        return await self.inner.cancel(job_id)

    async def aclose(self):
        await self.inner.aclose()


def scripted_registry(settings, catalog, script: Script) -> ProviderRegistry:
    local = LocalProvider(catalog, settings.work_dir, time_scale=settings.time_scale, preset="ultrafast")
    return ProviderRegistry(catalog, {}, local=ScriptedProvider(local, script))


def scripted_run(instance, settings, spec, failures=None):
    """The campaign file through the Dagster job with the scripted provider serving every model: the run and the
    script (what was submitted)."""
    script = Script(failures)
    providers = providers_from(lambda run_settings, catalog: scripted_registry(run_settings, catalog, script))
    return run_campaign_job(instance, settings, spec, providers=providers), script


def _campaign(data_dir, text, name="c.yaml"):
    return load_campaign(write(data_dir / name, text), data_dir)


def _generate(settings, campaign, failures=None):
    """Generation alone (the engine's decisions) on the planner's segments: the outcomes table and the script."""
    catalog = load_catalog(settings.catalog_file)
    plan = plan_campaign(campaign, catalog, settings.data_dir, on=RUN_DATE)
    script = Script(failures)
    outcomes = stages.generated_segments(stages.plan_frame(plan), catalog, settings,
                                         registry=scripted_registry(settings, catalog, script))
    return outcomes, script


SOCIAL = """
campaign: engine-test
defaults: {quality_tier: social}
videos:
  - id: long
    target_seconds: 14
    shots:
      - prompt: "Morning fog over a lake"
      - prompt: "The sun breaks through"
"""


ONE_SHOT = """
campaign: engine-test
defaults: {quality_tier: social}
videos:
  - id: long
    target_seconds: 6
    shots: [{prompt: "Morning fog over a lake"}]
"""


@pytest.mark.slow
def test_long_video_is_planned_generated_stored_and_joined_to_its_target_length(instance, settings, data_dir):
    result, script = scripted_run(instance, settings, write(data_dir / "c.yaml", SOCIAL))
    plan, outcomes = result.output_for_node("routed_job_plans"), result.output_for_node("generated_segments")
    assert list(plan["model"]) == ["veo-3-1-fast"] * 2
    assert sum(plan["seconds"]) == pytest.approx(14)
    assert list(outcomes["state"]) == ["succeeded", "succeeded"]
    assert len(script.submitted) == 2
    clips = result.output_for_node("stored_clips")
    assert list(clips["state"]) == ["stored", "stored"]
    for path in clips["clip_path"]:
        assert str(path).startswith(str(settings.clips_dir))
    videos = result.output_for_node("assembled_outputs")
    assert list(videos["state"]) == ["assembled"]
    assert_video(videos["output_path"][0], 14)


@pytest.mark.slow
def test_content_policy_failure_falls_back_to_the_next_model_in_the_chain(settings, data_dir):
    campaign = _campaign(data_dir, ONE_SHOT)
    outcomes, script = _generate(settings, campaign, {"veo-3-1-fast": [("terminal", "content policy violation")]})
    row = outcomes.iloc[0]
    assert row["state"] == "succeeded"
    assert row["planned_model"] == "veo-3-1-fast"
    assert row["model"] != "veo-3-1-fast"
    [taken] = row["fallbacks_taken"]                   # one fallback, recorded as a list entry with its reason
    assert taken.startswith(f"veo-3-1-fast -> {row['model']}:") and "content policy violation" in taken
    assert script.submitted == ["veo-3-1-fast", row["model"]]


@pytest.mark.slow
def test_retryable_failure_is_retried_on_the_same_model(settings, data_dir):
    campaign = _campaign(data_dir, ONE_SHOT)
    outcomes, script = _generate(settings, campaign, {"veo-3-1-fast": [("retryable", "HTTP 503")]})
    row = outcomes.iloc[0]
    assert (row["state"], row["model"], row["attempts"]) == ("succeeded", "veo-3-1-fast", 2)
    assert script.submitted == ["veo-3-1-fast", "veo-3-1-fast"]


@pytest.mark.slow
def test_fatal_error_stops_the_campaign_with_the_reason(settings, data_dir):
    campaign = _campaign(data_dir, SOCIAL)
    with pytest.raises(CampaignAborted, match="invalid API key"):
        _generate(settings, campaign, {"veo-3-1-fast": [("fatal", "invalid API key"), ("fatal", "invalid API key")]})


@pytest.mark.slow
def test_segment_that_fails_everywhere_is_reported_and_the_video_is_not_assembled(instance, settings, data_dir):
    doomed = {m: [("terminal", "unsupported input")] * 3 for m in load_catalog(settings.catalog_file).models}
    result, _ = scripted_run(instance, settings, write(data_dir / "c.yaml", ONE_SHOT), doomed)
    assert result.output_for_node("generated_segments").iloc[0]["state"] == "failed"
    videos = result.output_for_node("assembled_outputs")
    assert videos.iloc[0]["state"] == "failed"
    assert "segment 0" in videos.iloc[0]["error"] and "unsupported input" in videos.iloc[0]["error"]
    assert not (settings.outputs_dir / "engine-test" / "long.mp4").exists()


@pytest.mark.slow
def test_chained_segments_start_from_the_previous_segments_last_frame(instance, settings, data_dir):
    result, _ = scripted_run(instance, settings, write(data_dir / "c.yaml", """
campaign: chained
defaults: {quality_tier: social, aspect_ratio: "9:16"}
videos:
  - id: walk
    target_seconds: 12
    continuity: chained
    shots: [{prompt: "A walk along the harbour"}]
"""))
    plan = result.output_for_node("routed_job_plans")
    assert plan["chained_from"][1] == plan["job_key"][0]
    assert (settings.work_dir / "frames" / f"{plan['job_key'][0]}-last.png").exists()
    assert_video(result.output_for_node("assembled_outputs")["output_path"][0], 12, width=720, height=1280)


@pytest.mark.slow
def test_image_video_and_audio_inputs_render_real_clips(instance, settings, data_dir):
    spec = yaml.safe_load((data_dir / "samples" / "long-form.yaml").read_text(encoding="utf-8"))
    spec["videos"] = spec["videos"][1:2]                     # the presenter: an image and a driving voice
    result, _ = scripted_run(instance, settings, write(data_dir / "samples" / "talking-head.yaml", yaml.safe_dump(spec)))
    clip = result.output_for_node("stored_clips").iloc[0]
    info = probe(clip["clip_path"])
    assert info.has_audio and info.video_codec == "h264"
    assert abs(info.duration - probe(data_dir / "samples/media/voice.m4a").duration) < 1.1


def test_poll_policy_follows_the_models_latency_profile():
    from video_pipeline.jobs.engine import PollPolicy

    policy = PollPolicy()
    first = policy.first_poll(20, 45)                     # veo-3-1-fast: ~19 s, just under its p50 (the guide's
    assert 15 < first < 22                                # poller spends 2.13 polls per job on this profile)
    assert 90 < policy.first_poll(180, 300) < 140          # kling-3-0
    later = [first]
    for _ in range(6):
        later.append(policy.next_poll(later[-1], 20, 45))
    gaps = [b - a for a, b in zip(later, later[1:])]
    assert all(g > 0 for g in gaps) and max(gaps) <= 60
    assert policy.next_poll(10, 180, 300, progress=0.5) == pytest.approx(20)   # progress 50% at 10 s: ETA 20 s
    assert policy.next_poll(10, 180, 300, hint=2) == pytest.approx(12)         # the provider's hint wins


def test_poll_schedule_sees_jobs_finish_sooner_than_the_guides_poller_for_no_more_polls():
    """Simulated clock over the guide's seven latency profiles (log-normal fitted to p50/p95), same jobs for both."""
    import math
    import random

    from video_pipeline.jobs.engine import PollPolicy

    profiles = [(20, 45), (25, 50), (180, 300), (150, 270), (480, 900), (90, 180), (120, 240)]
    rng = random.Random(11)
    jobs = [(p50, p95, rng.lognormvariate(math.log(p50), math.log(p95 / p50) / 1.645))
            for p50, p95 in profiles for _ in range(400)]

    def watch(latency, times):
        polls = 0
        for t in times:
            polls += 1
            if t >= latency:
                return (t - latency) / latency, polls

    def guide(latency):           # 10 s, doubling to 60 s
        t, step = 0.0, 10.0
        while True:
            t += step
            yield t
            step = min(step * 2, 60.0)

    def ours(p50, p95, policy=PollPolicy()):
        t = policy.first_poll(p50, p95)
        while True:
            yield t
            t = policy.next_poll(t, p50, p95)

    theirs = [watch(lat, guide(lat)) for _, _, lat in jobs]
    mine = [watch(lat, ours(p50, p95)) for p50, p95, lat in jobs]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean([p for _, p in mine]) <= mean([p for _, p in theirs]) * 1.01
    # in seconds (lag share x latency), for every model: exactly, 2.09x (Sora 2) to 3.64x (Hailuo 02) sooner
    for k in range(len(profiles)):
        model = slice(400 * k, 400 * (k + 1))
        lags = [(lag * lat, their_lag * lat) for (lag, _), (their_lag, _), (_, _, lat)
                in zip(mine[model], theirs[model], jobs[model])]
        assert mean([a for a, _ in lags]) * 1.7 <= mean([b for _, b in lags]), profiles[k]
    assert mean([lag for lag, _ in mine]) * 2.2 <= mean([lag for lag, _ in theirs])   # as a share: 2.50x exactly


def test_expired_output_url_is_reported_not_stored(settings, tmp_path):
    from video_pipeline.storage.store import fetch

    with pytest.raises(ProviderError, match="gone"):
        fetch((tmp_path / "vanished.mp4").as_uri(), tmp_path / "x.mp4")


@pytest.mark.parametrize("transition, trim", [("crossfade", 0), ("cut", 2), ("crossfade", 3)])
@pytest.mark.slow
def test_crossfades_and_trimmed_joins_still_meet_the_target_length(instance, settings, data_dir, transition, trim):
    result, _ = scripted_run(instance, settings, write(data_dir / "c.yaml", f"""
campaign: joins
defaults: {{quality_tier: social}}
videos:
  - id: joined
    target_seconds: 14
    transition: {transition}
    transition_seconds: 0.8
    trim_join_frames: {trim}
    shots:
      - prompt: "Morning fog over a lake"
      - prompt: "The sun breaks through"
"""))
    plan = result.output_for_node("routed_job_plans")
    overlap = (0.8 if transition == "crossfade" else 0) + 2 * trim / 24
    assert sum(plan["seconds"]) == pytest.approx(14 + (len(plan) - 1) * overlap, abs=0.05)
    assert_video(result.output_for_node("assembled_outputs")["output_path"][0], 14)

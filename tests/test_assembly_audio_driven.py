"""A video driven by its `audio` (Seedance's @Audio) keeps that audio, aligned to the picture, even though the
provider returns its clips without sound. Run against the fake BytePlus Ark (Seedance) server over loopback."""

from __future__ import annotations

import ffmpeg
import pytest

from resources.providers import VideoProviders
from tests.conftest import assert_video, run_campaign_job, write
from video_pipeline.config import Settings
from video_pipeline.media.ffmpeg import run_graph
from video_pipeline.media.measure import silence_runs
from video_pipeline.media.probe import open_media, probe
from video_pipeline.providers.fakes.fleet import start_fleet

pytestmark = pytest.mark.slow

BEEPS = (1.0, 4.5, 7.25)      # where the driving track has a 0.3 s tone; silence everywhere else


def _beeps(path, seconds: float = 9.0):
    expression = "+".join(f"between(t\\,{b}\\,{b + 0.3})" for b in BEEPS)
    tone = ffmpeg.input(f"aevalsrc=if({expression}\\,0.5*sin(2*PI*880*t)\\,0):s=44100:d={seconds}", f="lavfi")
    run_graph(ffmpeg.output(tone, str(path), acodec="pcm_s16le", ac=1), what="driving track")
    return path


class ScaledPolling(VideoProviders):
    """The live adapters, polling a 0.2 s fake job like one (not on Seedance's 90 s profile)."""

    def registry(self, settings, catalog):
        registry = super().registry(settings, catalog)
        for adapter in registry.providers.values():
            adapter.latency_scale = settings.time_scale
        return registry


def test_audio_driven_video_from_seedance_carries_its_driving_audio_aligned_to_the_picture(data_dir, tmp_path,
                                                                                          monkeypatch, instance):
    _beeps(data_dir / "samples" / "media" / "song.wav")
    campaign_file = write(data_dir / "song.yaml", """
campaign: song
defaults: {quality_tier: social, resolution: 720p, aspect_ratio: "16:9"}
videos:
  - id: clip
    audio: samples/media/song.wav
    transition: crossfade
    shots:
      - {prompt: "A singer under a street lamp", image: samples/media/bottle.png}
      - {prompt: "The crowd sways in the rain", image: samples/media/bottle.png}
""")
    with start_fleet(latency=0.2, providers=["ark"], work_dir=tmp_path / "fakes") as fleet:
        for key, value in fleet.environment().items():
            monkeypatch.setenv(key, value)
        settings = Settings.from_env()
        result = run_campaign_job(instance, settings, campaign_file, providers=ScaledPolling())
        plan, clips = result.output_for_node("routed_job_plans"), result.output_for_node("stored_clips")
        assert set(plan["model"]) == {"seedance-2-0"} and len(plan) == 2
        assert fleet.books["ark"].total_submissions == 2
    for path in clips["clip_path"]:   # Seedance's clips are silent: the sound can only come from the track
        quiet = silence_runs(path, min_seconds=0.5, noise_db=-60)
        assert len(quiet) == 1 and quiet[0][1] - quiet[0][0] >= probe(path).duration - 0.1, quiet
    videos = result.output_for_node("assembled_outputs")
    video = videos.iloc[0]
    assert video["state"] == "assembled", video["error"]
    assert_video(video["output_path"], 9.0)
    with open_media(video["output_path"]) as container:
        start = float(container.streams.video[0].start_time * container.streams.video[0].time_base)
    # each tone starts where the track has it, measured against the picture's own start (within a frame)
    heard = [end - start for _, end in silence_runs(video["output_path"], min_seconds=0.4, noise_db=-40)][:3]
    assert len(heard) == 3 and all(abs(h - b) <= 1 / 24 for h, b in zip(heard, BEEPS)), heard

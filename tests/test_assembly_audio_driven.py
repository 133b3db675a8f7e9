"""A video driven by its `audio` (Seedance's @Audio) keeps that audio, aligned to the picture, even though the
provider returns its clips without sound. Run against the fake BytePlus Ark (Seedance) server over loopback."""

from __future__ import annotations

import datetime as dt

import ffmpeg
import pytest

from tests.conftest import assert_video, write
from video_pipeline import stages
from video_pipeline.campaign import load_campaign
from video_pipeline.catalog import load_catalog
from video_pipeline.config import Settings
from video_pipeline.media.ffmpeg import run_graph
from video_pipeline.media.measure import silence_runs
from video_pipeline.media.probe import open_media, probe
from video_pipeline.netguard import DownloadPolicy
from video_pipeline.providers.fakes.fleet import start_fleet
from video_pipeline.store import ClipStore

pytestmark = pytest.mark.slow

BEEPS = (1.0, 4.5, 7.25)      # where the driving track has a 0.3 s tone; silence everywhere else


def _beeps(path, seconds: float = 9.0):
    expression = "+".join(f"between(t\\,{b}\\,{b + 0.3})" for b in BEEPS)
    tone = ffmpeg.input(f"aevalsrc=if({expression}\\,0.5*sin(2*PI*880*t)\\,0):s=44100:d={seconds}", f="lavfi")
    run_graph(ffmpeg.output(tone, str(path), acodec="pcm_s16le", ac=1), what="driving track")
    return path


def test_audio_driven_video_from_seedance_carries_its_driving_audio_aligned_to_the_picture(data_dir, tmp_path,
                                                                                          monkeypatch):
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
        catalog = load_catalog(settings.catalog_file)
        campaign = load_campaign(campaign_file, data_dir)
        plan, frame = stages.routed_job_plans(campaign, catalog, settings, on=dt.date(2026, 11, 24))
        assert set(frame["model"]) == {"seedance-2-0"} and len(frame) == 2
        registry = stages.build_registry(settings, catalog)
        registry.providers["ark"].latency_scale = settings.time_scale   # poll a 0.2 s fake job like one, not 90 s
        outcomes = stages.generated_segments(frame, catalog, settings, registry=registry)
        clips = stages.stored_clips(outcomes, ClipStore(settings.clips_dir, DownloadPolicy.from_settings(settings)))
        assert (clips["state"] == "stored").all(), list(clips["error"])
        assert fleet.books["ark"].total_submissions == 2
    for path in clips["clip_path"]:   # Seedance's clips are silent: the sound can only come from the track
        quiet = silence_runs(path, min_seconds=0.5, noise_db=-60)
        assert len(quiet) == 1 and quiet[0][1] - quiet[0][0] >= probe(path).duration - 0.1, quiet
    videos = stages.assembled_outputs(clips, settings, campaign)
    video = videos.iloc[0]
    assert video["state"] == "assembled", video["error"]
    assert_video(video["output_path"], 9.0)
    with open_media(video["output_path"]) as container:
        start = float(container.streams.video[0].start_time * container.streams.video[0].time_base)
    # each tone starts where the track has it, measured against the picture's own start (within a frame)
    heard = [end - start for _, end in silence_runs(video["output_path"], min_seconds=0.4, noise_db=-40)][:3]
    assert len(heard) == 3 and all(abs(h - b) <= 1 / 24 for h, b in zip(heard, BEEPS)), heard

"""Finished videos a person would publish: narration sets the length, music ducks under it, loudness is on
target, subtitles and stills are there. Verified by ffmpeg's own measurements, not by the code that made them."""

from __future__ import annotations

import shutil

import av
import pytest

from tests.conftest import assert_video, materialized, run_campaign_job, write
from video_pipeline.flow import stages
from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.media.measure import integrated_loudness, silence_runs
from video_pipeline.planning.planner import NARRATION_LEAD, NARRATION_TAIL
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="needs espeak-ng: ./scripts/test installs it when it runs as root")


def _finish(instance, settings, spec):
    """The campaign through the Dagster job: its narration, plan, the planner's warnings and the finished videos."""
    result = run_campaign_job(instance, settings, spec)
    warnings = materialized(result, "routed_job_plans")["warnings"]
    return (result.output_for_node("narration_tracks"), result.output_for_node("routed_job_plans"), warnings,
            result.output_for_node("assembled_outputs"))


@pytest.mark.slow
def test_narrated_spot_is_as_long_as_its_voice_at_minus_14_lufs_with_subtitles_and_stills(instance, settings, data_dir):
    narration, plan, _, videos = _finish(instance, settings, data_dir / "samples" / "narrated-spot.yaml")
    spoken = float(narration.iloc[0]["duration_seconds"])
    assert narration.iloc[0]["provider"] == "local" and spoken > 3
    video = videos.iloc[0]
    assert video["state"] == "assembled", video["error"]
    expected = spoken + NARRATION_LEAD + NARRATION_TAIL          # the voice sets the length; crossfades included
    assert_video(video["output_path"], expected)
    lufs, peak = integrated_loudness(video["output_path"])
    assert abs(lufs - (-14)) <= 1.0 and peak <= -1.0
    # the voice is heard from its lead-in to its end: no silence there
    voiced = (NARRATION_LEAD, NARRATION_LEAD + spoken)
    assert not [r for r in silence_runs(video["output_path"], min_seconds=0.6) if r[0] < voiced[1] and r[1] > voiced[0]]
    with av.open(video["output_path"]) as container:
        assert len(container.streams.subtitles) == 1 and container.streams.audio
    srt = open(video["subtitles_srt"], encoding="utf-8").read()
    assert srt.count(" --> ") == 3 and "100% less waste" in srt
    assert open(video["subtitles_vtt"], encoding="utf-8").read().startswith("WEBVTT")
    for still in ("poster", "contact_sheet"):
        with av.open(video[still]) as image:
            assert image.streams.video[0].codec_context.width > 0


@pytest.mark.slow
def test_narration_longer_than_the_target_stretches_the_video_and_says_so(instance, settings, data_dir):
    spec = write(data_dir / "short-target.yaml", """
campaign: short-target
defaults: {quality_tier: social, native_audio: replace}
videos:
  - id: v
    target_seconds: 4
    narration: "This sentence is much longer than four seconds of picture could ever hold. And it goes on."
    shots: [{prompt: "A long road"}]
""")
    narration, _, warnings, videos = _finish(instance, settings, spec)
    spoken = float(narration.iloc[0]["duration_seconds"])
    assert spoken > 4 and "longer than target_seconds 4" in warnings
    assert_video(videos.iloc[0]["output_path"], spoken + NARRATION_LEAD + NARRATION_TAIL)


def test_the_same_narration_is_spoken_once(settings, data_dir):
    campaign = load_campaign(data_dir / "samples" / "narrated-spot.yaml", data_dir)
    catalog = load_catalog(settings.catalog_file)
    first = stages.narration_tracks(campaign, catalog, settings)
    files = sorted((data_dir / "narration").rglob("*.m4a"))
    second = stages.narration_tracks(campaign, catalog, settings)
    assert list(first["audio_path"]) == list(second["audio_path"]) and sorted((data_dir / "narration").rglob("*.m4a")) == files


@pytest.mark.slow
def test_burned_subtitles_replace_the_soft_track_and_every_join_gets_a_score(instance, settings, data_dir):
    text = (data_dir / "samples" / "narrated-spot.yaml").read_text().replace(
        "  resolution: 720p\n", "  resolution: 720p\n  subtitles: burned\n").replace("transition: crossfade", "transition: cut")
    _, plan, _, videos = _finish(instance, settings, write(data_dir / "samples" / "burned.yaml", text))
    video = videos.iloc[0]
    with av.open(video["output_path"]) as container:
        assert len(container.streams.subtitles) == 0          # drawn into the picture instead
    assert video["subtitles_srt"].endswith(".srt")
    scores = video["join_scores"]                         # a list of records, not JSON text
    assert len(scores) == len(plan) - 1 == 1
    # a hard cut between two differently coloured shots jumps far more than the picture moves in a second
    assert scores[0]["score"] > 3 * scores[0]["baseline"]
    assert list(video["black_runs"]) == [] and list(video["silent_in_narration"]) == []


def _flash_and_beep_clip(path, seconds: float = 3.0):
    """A black clip with a white flash and a 1 kHz beep both starting at exactly 1.0 s, encoded as the local
    provider encodes (an IDR frame every half second)."""
    import ffmpeg

    from video_pipeline.media.ffmpeg import run_graph
    from video_pipeline.media.render import KEYFRAME_INTERVAL, h264_options

    picture = ffmpeg.input(f"color=black:s=320x180:r=24:d={seconds}", f="lavfi").drawbox(
        0, 0, "iw", "ih", color="white", thickness="fill", enable="between(t,1,1.05)")
    sound = ffmpeg.input(f"aevalsrc=if(between(t\\,1\\,1.2)\\,0.5*sin(2*PI*1000*t)\\,0):s=48000:d={seconds}",
                         f="lavfi")
    run_graph(ffmpeg.output(picture, sound, str(path), **h264_options("veryfast", 23, KEYFRAME_INTERVAL),
                            acodec="aac", ac=2, ar=48000), what="flash and beep")
    return path


def _flashes(path) -> list[float]:
    with av.open(str(path)) as container:
        return [round(float(f.time), 4) for f in container.decode(container.streams.video[0])
                if f.to_ndarray(format="gray").mean() > 128]


@pytest.mark.parametrize("transition", ["cut", "crossfade"])
@pytest.mark.slow
def test_joined_mixed_and_burned_sound_stays_in_sync_with_the_picture(tmp_path, transition):
    from video_pipeline.media.assemble import SegmentInput, concat
    from video_pipeline.media.mix import MixSpec, final_sound, mix
    from video_pipeline.media.probe import probe
    from video_pipeline.media.subtitles import Cue, burn_subtitles, write_srt

    clips = [_flash_and_beep_clip(tmp_path / f"{i}.mp4") for i in range(3)]
    joined = concat([SegmentInput(c, 3.0) for c in clips], tmp_path / "joined.mp4", 320, 180, "veryfast",
                    transition=transition, transition_seconds=0.5, intermediate=True)
    step = 2.5 if transition == "crossfade" else 3.0           # each clip starts this long after the previous
    assert abs(probe(joined).duration - (step * 2 + 3.0)) < 0.03
    mixed, loud = tmp_path / "mixed.mp4", tmp_path / "limited.mp4"
    mix(joined, mixed, MixSpec(duration=probe(joined).duration, narration_offset=0.5))
    # a loudness target the beeps reach only through the peak limiter, whose look-ahead delays the sound
    assert mix(joined, loud, MixSpec(duration=probe(joined).duration, target_lufs=-3))["limited"]
    burned = burn_subtitles(mixed, write_srt([Cue(0.2, 2.0, "in sync")], tmp_path / "s.srt"),
                            tmp_path / "burned.mp4", preset="ultrafast")

    def sound(native, duration, work):   # as the assembly stage makes it: the mix beside the picture, then muxed
        return final_sound(MixSpec(duration=duration, narration_offset=0.5), work, native=native)[0]

    together = concat([SegmentInput(c, 3.0) for c in clips], tmp_path / "together.mp4", 320, 180, "veryfast",
                      transition=transition, transition_seconds=0.5, sound=sound)
    assert abs(probe(together).duration - probe(joined).duration) < 0.03
    for out in (joined, mixed, loud, burned, together):
        flashes = _flashes(out)
        beeps = [end for _, end in silence_runs(out, min_seconds=0.5, noise_db=-40)][:3]   # sound begins
        starts = [flashes[0]] + [b for a, b in zip(flashes, flashes[1:]) if b - a > 1]
        assert len(starts) == 3 and len(beeps) == 3, (out.name, flashes, beeps)
        assert all(abs(b - a - step) <= 0.012 for a, b in zip(starts, starts[1:])), (out.name, starts)
        for flash, beep in zip(starts, beeps):
            assert abs(flash - beep) <= 0.012, (out.name, starts, beeps)   # a quarter of a frame at 24 fps

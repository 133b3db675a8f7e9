"""Crossfades re-encode only the transition windows: the picture between them is the clips' own bitstream,
copied, and the result is frame-accurate (its length in frames is the plan's, every frame decodes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import ffmpeg
import pytest

from video_pipeline.media import assemble
from video_pipeline.media.assemble import SegmentInput, concat
from video_pipeline.media.ffmpeg import ffmpeg_binary, run_args, run_graph
from video_pipeline.media.probe import open_media, probe
from video_pipeline.media.render import ClipSpec, h264_options, render_clip

pytestmark = pytest.mark.slow           # every test renders and joins real clips

W, H, FPS = 320, 180, 24


def _video_packets(path: Path) -> list[str]:
    """A hash of every video packet's payload, in decode order; keyframes left out, since a copy may repeat the
    stream's parameter sets inside them."""
    with open_media(path) as container:
        return [hashlib.sha256(bytes(p)).hexdigest() for p in container.demux(container.streams.video[0])
                if p.size and not p.is_keyframe]


def _frames_and_errors(path: Path) -> tuple[int, str]:
    with open_media(path) as container:
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    stderr = run_args([ffmpeg_binary(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                      what="decode check")
    return frames, stderr.strip()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[Path]:
    """Three 3 s clips from the local provider's renderer (moving gradient and text, native sound)."""
    folder = tmp_path_factory.mktemp("rendered")
    return [render_clip(ClipSpec(text=f"Shot {i}: a slow pan over hills", label=f"{i}", seconds=3, width=W, height=H,
                                 seed=f"xf-{i}", native_audio=True, preset="ultrafast"), folder / f"{i}.mp4")
            for i in range(3)]


def test_crossfade_copies_the_picture_between_transitions_and_keeps_every_frame(rendered, tmp_path):
    out = concat([SegmentInput(p, 3.0) for p in rendered], tmp_path / "joined.mp4", W, H, "ultrafast",
                 transition="crossfade", transition_seconds=0.5)
    frames, errors = _frames_and_errors(out)
    assert frames == 3 * 72 - 2 * 12 and not errors                  # 3 clips of 72 frames, two 12-frame overlaps
    assert abs(probe(out).duration - frames / FPS) < 0.03 and probe(out).audio_codec == "aac"
    copied = set(_video_packets(out))
    for clip in rendered:   # the middle of every clip (outside its crossfades) is its own bitstream, not re-encoded
        source = _video_packets(clip)
        assert len(source) > 48 and set(source[20:40]) <= copied


def test_a_clip_longer_than_its_use_is_cut_on_the_frame(rendered, tmp_path):
    """The planner uses only part of the last clip of a shot: the join ends where the plan says, to the frame."""
    out = concat([SegmentInput(rendered[0], 3.0), SegmentInput(rendered[1], 2.25)], tmp_path / "cut.mp4", W, H,
                 "ultrafast", transition="crossfade", transition_seconds=0.5, intermediate=True)
    frames, errors = _frames_and_errors(out)
    assert frames == 72 + 54 - 12 and not errors
    assert probe(out).audio_codec == "flac"                          # lossless: the mix encodes the sound once


def test_clips_from_another_encoder_are_rekeyed_and_still_join_frame_accurately(tmp_path):
    """A provider's clip with one IDR frame per clip and its own H.264 headers (main profile, no stitching)."""
    clips = []
    for i, colour in enumerate(("red", "green", "blue")):
        out = tmp_path / f"other-{i}.mp4"
        picture = ffmpeg.input(f"testsrc2=s={W}x{H}:r={FPS}:d=3", f="lavfi").drawbox(
            0, 0, 40, 40, color=colour, thickness="fill")
        sound = ffmpeg.input("sine=frequency=330:sample_rate=48000:duration=3", f="lavfi")
        run_graph(ffmpeg.output(picture, sound, str(out), vcodec="libx264", preset="ultrafast", pix_fmt="yuv420p",
                                **{"profile:v": "main"}, acodec="aac", ac=2, ar=48000), what="another encoder")
        clips.append(out)
    out = concat([SegmentInput(p, 3.0) for p in clips], tmp_path / "joined.mp4", W, H, "ultrafast",
                 transition="crossfade", transition_seconds=0.5)
    frames, errors = _frames_and_errors(out)
    assert frames == 3 * 72 - 2 * 12 and not errors
    assert abs(probe(out).duration - frames / FPS) < 0.03


def _solid(path: Path, rgb: str, seconds: float, gop: float, foreign: bool = False) -> Path:
    """A clip of one colour, with sound, its IDR frames every `gop` seconds: from the pipeline's own encoder
    settings, or (`foreign`) another encoder's (main profile, its own parameter sets: it fits, and is copied)."""
    picture = ffmpeg.input(f"color=c=0x{rgb}:s={W}x{H}:r={FPS}:d={seconds}", f="lavfi")
    sound = ffmpeg.input(f"sine=frequency=330:sample_rate=48000:duration={seconds}", f="lavfi")
    video = ({"vcodec": "libx264", "preset": "fast", "profile:v": "main", "pix_fmt": "yuv420p", "sc_threshold": 0,
              "forced-idr": 1, "force_key_frames": f"expr:gte(t,n_forced*{gop})"} if foreign
             else h264_options("ultrafast", 18, gop))
    run_graph(ffmpeg.output(picture, sound, str(path), **video, acodec="aac", ac=2, ar=48000), what="solid clip")
    return path


@pytest.mark.parametrize("gop, foreign, at_once", [(0.5, False, 128), (1.0, False, 128), (0.5, True, 128),
                                                   (1.0, False, 1)],
                         ids=["windows-as-long-as-the-fade", "windows-wider-than-the-fade", "another-encoder-between",
                              "a-run-a-window"])
def test_every_frame_of_a_crossfade_join_shows_its_clip_or_the_fade_between_them(tmp_path, monkeypatch, gop, foreign,
                                                                                  at_once):
    """Three clips of one colour each (red, green, blue), 3 s, joined with 0.5 s crossfades: each join's 12 frames
    go from one colour to the next with xfade's weights (frame k of the fade is k/12 of the way), in order, and
    every other frame is its clip's colour. With IDR frames every second, each window re-encodes more than the
    fade (frames before it of the first clip, after it of the second); the middle clip may come from another
    encoder, whose pieces are decoded in the same stream as the others'; the windows may be encoded in several
    runs (a long edit's)."""
    monkeypatch.setattr(assemble, "WINDOWS_AT_ONCE", at_once)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    clips = [_solid(tmp_path / f"{i}.mp4", "%02x%02x%02x" % c, 3.0, gop, foreign=foreign and i == 1)
             for i, c in enumerate(colours)]
    out = concat([SegmentInput(p, 3.0) for p in clips], tmp_path / "joined.mp4", W, H, "ultrafast",
                 transition="crossfade", transition_seconds=0.5)
    with open_media(out) as container:
        means = [frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
                 for frame in container.decode(container.streams.video[0])]
    assert len(means) == 3 * 72 - 2 * 12
    expected = []
    for i, colour in enumerate(colours):
        expected += [colour] * (72 - (12 if i < 2 else 0) - (12 if i > 0 else 0))
        if i < 2:
            nxt = colours[i + 1]
            expected += [tuple(a * (1 - k / 12) + b * k / 12 for a, b in zip(colour, nxt)) for k in range(12)]
    misses = [(n, [round(x) for x in got], [round(x) for x in want])
              for n, (got, want) in enumerate(zip(means, expected)) if max(abs(g - w) for g, w in zip(got, want)) > 8]
    assert not misses, misses[:5]


def test_a_crossfade_join_works_in_a_folder_whose_name_looks_like_a_pattern(rendered, tmp_path):
    """The segment muxer names its files from a printf pattern: an outputs folder called `100%d 'takes'` must be
    neither a pattern nor a broken quote."""
    out = tmp_path / "100%d 'takes'" / "joined.mp4"
    concat([SegmentInput(p, 3.0) for p in rendered], out, W, H, "ultrafast", transition="crossfade",
           transition_seconds=0.5)
    frames, errors = _frames_and_errors(out)
    assert frames == 3 * 72 - 2 * 12 and not errors


def test_a_join_whose_picture_fails_raises_its_error_and_makes_no_sound(rendered, tmp_path, monkeypatch):
    """The sound waits for the picture's windows to start; when the picture fails first, the sound is never made
    (no mix is run for a video that will not exist) and the picture's error is what the caller sees."""
    from video_pipeline.errors import MediaError

    def broken(cuts):
        raise MediaError("copy the bodies of 0.mp4: ffmpeg exited with 1")

    monkeypatch.setattr(assemble, "_split", broken)
    made = []
    with pytest.raises(MediaError, match="copy the bodies"):
        concat([SegmentInput(p, 3.0) for p in rendered], tmp_path / "joined.mp4", W, H, "ultrafast",
               transition="crossfade", transition_seconds=0.5, sound=lambda *args: made.append(args))
    assert made == [] and not (tmp_path / "joined.mp4").exists()


def test_pieces_that_decode_short_of_a_frame_are_an_error_not_a_shifted_picture(rendered, tmp_path, monkeypatch):
    """The windows are taken from one stream of the clips' pieces by frame number. If the pieces decoded to fewer
    frames than they hold (a frame of a damaged clip that did not decode), every later window would start a frame
    late: the join fails instead, saying so."""
    from dataclasses import replace

    from video_pipeline.errors import MediaError

    split = assemble._split

    def one_frame_missing(cuts):
        pieces = split(cuts)
        if pieces[0].tail is not None:   # the first clip's tail is counted a frame longer than it decodes to
            path, frames = pieces[0].tail
            pieces[0] = replace(pieces[0], tail=(path, frames + 1))
        return pieces

    monkeypatch.setattr(assemble, "_split", one_frame_missing)
    with pytest.raises(MediaError, match=r"decoded to \d+ frames, not \d+"):
        concat([SegmentInput(p, 3.0) for p in rendered], tmp_path / "joined.mp4", W, H, "ultrafast",
               transition="crossfade", transition_seconds=0.5)
    assert not (tmp_path / "joined.mp4").exists()

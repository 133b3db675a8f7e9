"""Assembly: normalise segments to one spec, then join them with the concat demuxer (stream copy)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from .ffmpeg import run_graph
from .probe import MediaInfo, probe
from .render import AUDIO_RATE, FPS

FRAME = 1 / FPS


@dataclass(frozen=True)
class SegmentInput:
    path: Path
    seconds: float   # how much of the clip the finished video uses (from its start)


def needs_normalising(info: MediaInfo, seconds: float, width: int, height: int) -> bool:
    """True unless the clip already matches the output spec and length, so it can be stream-copied."""
    return not (
        info.video_codec == "h264" and info.pixel_format == "yuv420p" and info.width == width
        and info.height == height and info.fps is not None and abs(info.fps - FPS) < 0.01
        and info.audio_codec == "aac" and abs(info.duration - seconds) <= FRAME
    )


def normalise(src: Path, dst: Path, seconds: float, width: int, height: int, preset: str,
              skip_seconds: float = 0.0) -> Path:
    """Trim to `seconds` (after skipping `skip_seconds`), scale and pad to width x height, 24 fps, yuv420p,
    AAC stereo (silence if none)."""
    info = probe(src)
    clip = ffmpeg.input(str(src), ss=f"{skip_seconds:.3f}") if skip_seconds else ffmpeg.input(str(src))
    picture = (clip.video.filter("scale", width, height, force_original_aspect_ratio="decrease")
               .filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color="black")
               .filter("setsar", 1).filter("fps", FPS).filter("format", "yuv420p"))
    if info.has_audio:
        sound = clip.audio
    else:
        sound = ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi").audio
    sound = sound.filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo").filter("apad")
    stream = ffmpeg.output(picture, sound, str(dst), t=f"{seconds:.3f}", vcodec="libx264", preset=preset, crf=20,
                           pix_fmt="yuv420p", acodec="aac", audio_bitrate="128k", ar=AUDIO_RATE, ac=2,
                           movflags="+faststart")
    run_graph(stream, what=f"normalise {src.name}")
    return dst


def concat(segments: list[SegmentInput], out: Path, width: int, height: int, preset: str = "veryfast",
           transition: str = "cut", transition_seconds: float = 0.5, trim_join_frames: int = 0) -> Path:
    """Join segments in order into `out` (written atomically): cuts by stream copy where the inputs already match,
    crossfades with xfade + acrossfade; `trim_join_frames` drops that many frames on each side of every join.
    Each segment's `seconds` includes its share of the overlap the planner added for the joins."""
    out.parent.mkdir(parents=True, exist_ok=True)
    trim = trim_join_frames * FRAME
    with tempfile.TemporaryDirectory(prefix="vp-join-", dir=out.parent) as tmp:
        parts: list[Path] = []
        lengths: list[float] = []
        for i, seg in enumerate(segments):
            head = trim if i > 0 else 0.0
            tail = trim if i < len(segments) - 1 else 0.0
            length = seg.seconds - head - tail
            info = probe(seg.path)
            if head or tail or needs_normalising(info, seg.seconds, width, height):
                parts.append(normalise(seg.path, Path(tmp) / f"part-{i:04d}.mp4", length, width, height, preset,
                                       skip_seconds=head))
            else:
                parts.append(seg.path)
            lengths.append(length)
        if transition == "crossfade" and len(parts) > 1:
            partial = Path(tmp) / "joined.mp4"
            _crossfade(parts, lengths, partial, transition_seconds, preset)
            os.replace(partial, out)
            return out
        listing = Path(tmp) / "parts.txt"
        # The concat demuxer's list syntax: single-quoted paths, a quote written as '\''.
        # Each entry's `duration` is its picture's planned length: without it the demuxer offsets the next file by
        # the longer AAC stream (1024-sample frames), and the picture drifts by a few ms at every join.
        listing.write_text("".join("file '" + str(p.resolve()).replace("'", "'\\''") + f"'\nduration {n:.6f}\n"
                                   for p, n in zip(parts, lengths)), encoding="utf-8")
        partial = Path(tmp) / "joined.mp4"
        stream = ffmpeg.output(ffmpeg.input(str(listing), f="concat", safe=0), str(partial), c="copy",
                               movflags="+faststart")
        run_graph(stream, what=f"join {out.name}")
        os.replace(partial, out)
    return out


def _crossfade(parts: list[Path], lengths: list[float], out: Path, seconds: float, preset: str) -> None:
    """One ffmpeg graph: a chain of xfade (picture) and acrossfade (sound), each join overlapping `seconds`."""
    inputs = [ffmpeg.input(str(p)) for p in parts]
    picture, sound = inputs[0].video, inputs[0].audio
    offset = 0.0
    for i in range(1, len(inputs)):
        offset += lengths[i - 1] - seconds
        picture = ffmpeg.filter([picture, inputs[i].video], "xfade", transition="fade", duration=f"{seconds:.3f}",
                                offset=f"{offset:.3f}")
        sound = ffmpeg.filter([sound, inputs[i].audio], "acrossfade", d=f"{seconds:.3f}")
    stream = ffmpeg.output(picture.filter("format", "yuv420p"), sound, str(out), vcodec="libx264", preset=preset,
                           crf=20, acodec="aac", audio_bitrate="128k", ar=AUDIO_RATE, ac=2, movflags="+faststart")
    run_graph(stream, what=f"crossfade into {out.name}")

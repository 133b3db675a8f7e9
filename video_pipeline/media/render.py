"""Render a real H.264 clip for the local provider: prompt text drawn over a moving picture.

Text reaches ffmpeg only through files (drawtext `textfile` with `expansion=none`), never a shell or a filter string.
"""

from __future__ import annotations

import hashlib
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from video_pipeline.atomic import temp_prefix
from video_pipeline.media.ffmpeg import run_graph

FPS = 24
AUDIO_RATE = 48000
BUNDLED_FONT = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"
RESOLUTIONS = {"720p": 720, "1080p": 1080}
#: the local provider starts an IDR frame every half second, so a join's transition window (cut at the nearest
#: keyframes) is the only part of a clip assembly has to re-encode; the rest is stream-copied
KEYFRAME_INTERVAL = 0.5


def h264_options(preset: str, crf: int, keyframes: tuple[float, ...] | float = ()) -> dict:
    """ffmpeg output options for every H.264 encode of the pipeline (renders, normalised segments, transition
    windows). `stitchable` keeps x264's SPS/PPS identical whatever the content and CRF, so pieces from different
    encodes can be stream-copied into one file; forced keyframes are IDR frames (closed GOPs) so a piece can start
    at one. `keyframes`: the times to put them at, or an interval in seconds."""
    options = {"vcodec": "libx264", "preset": preset, "crf": crf, "pix_fmt": "yuv420p",
               "x264-params": "stitchable=1", "forced-idr": 1}
    if isinstance(keyframes, (int, float)):
        options["force_key_frames"] = f"expr:gte(t,n_forced*{keyframes:g})"
    elif keyframes:
        options["force_key_frames"] = ",".join(f"{t:.6f}" for t in keyframes)
    return options


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixel size for a resolution name and aspect ratio (720p 16:9 → 1280x720, 9:16 → 720x1280)."""
    short = RESOLUTIONS[resolution]
    w, h = (int(x) for x in aspect_ratio.split(":"))
    if w >= h:
        return _even(short * w / h), short
    return short, _even(short * h / w)


def _even(x: float) -> int:
    return int(round(x / 2)) * 2


@dataclass(frozen=True)
class ClipSpec:
    text: str
    label: str
    seconds: float
    width: int
    height: int
    seed: str = ""
    image: Path | None = None
    video: Path | None = None
    transform: str | None = None
    audio: Path | None = None
    audio_offset: float = 0.0
    native_audio: bool = False
    preset: str = "veryfast"
    font: Path = BUNDLED_FONT
    keyframe_interval: float = KEYFRAME_INTERVAL


def _palette(seed: str) -> tuple[str, str]:
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return "0x%02x%02x%02x" % tuple(digest[:3]), "0x%02x%02x%02x" % tuple(digest[3:6])


def _cover(stream, width: int, height: int, pan_seconds: float | None):
    """Scale to cover the frame (a little larger when panning) and crop, panning left to right."""
    grow = 1.15 if pan_seconds else 1.0
    stream = stream.filter("scale", int(width * grow), int(height * grow), force_original_aspect_ratio="increase")
    x = f"(iw-{width})*min(t/{max(pan_seconds, 0.1):.3f},1)" if pan_seconds else "(iw-ow)/2"
    return stream.filter("crop", width, height, x=x, y="(ih-oh)/2")


def render_clip(spec: ClipSpec, out: Path) -> Path:
    """Render `spec` to `out` (MP4: H.264 yuv420p at 24 fps, AAC stereo); returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    w, h, secs = spec.width, spec.height, spec.seconds
    with tempfile.TemporaryDirectory(prefix=temp_prefix("vp-text-")) as tmp:
        text_file = Path(tmp) / "prompt.txt"
        label_file = Path(tmp) / "label.txt"
        columns = max(16, int(w / (h * 0.045) / 0.62))
        wrapped = "\n".join(textwrap.wrap(spec.text.replace("\r", " ").replace("\n", " "), columns)[:8]) or " "
        text_file.write_text(wrapped, encoding="utf-8")
        label_file.write_text(spec.label, encoding="utf-8")

        if spec.video is not None:
            picture = ffmpeg.input(str(spec.video), stream_loop=-1, t=secs).video
            picture = _cover(picture, w, h, None)
            picture = (picture.filter("hue", h=120, s=1.6) if spec.transform == "style"
                       else picture.filter("unsharp", 5, 5, 1.0))
        elif spec.image is not None:
            picture = ffmpeg.input(str(spec.image), loop=1, framerate=FPS, t=secs).video
            picture = _cover(picture, w, h, secs)
        else:
            c0, c1 = _palette(spec.seed or spec.text)
            picture = ffmpeg.input(f"gradients=s={w}x{h}:c0={c0}:c1={c1}:speed=0.015:r={FPS}:d={secs:.3f}",
                                   f="lavfi").video
        picture = picture.filter("fps", FPS).filter("format", "yuv420p").filter("setsar", 1)

        if spec.audio is not None:
            sound = ffmpeg.input(str(spec.audio), ss=f"{spec.audio_offset:.3f}", t=secs).audio
            waves = sound.filter("showwaves", s=f"{w}x{h // 5}", mode="cline", colors="white", rate=FPS)
            picture = ffmpeg.overlay(picture, waves, x=0, y=h - h // 5 - h // 20, eof_action="pass")
            sound = ffmpeg.input(str(spec.audio), ss=f"{spec.audio_offset:.3f}", t=secs).audio
        elif spec.native_audio:
            sound = ffmpeg.input(f"sine=frequency=220:sample_rate={AUDIO_RATE}:duration={secs:.3f}", f="lavfi").audio
            sound = sound.filter("volume", 0.05)
        else:
            sound = ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi", t=secs).audio
        sound = sound.filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo").filter("apad")

        size = max(14, h // 22)
        picture = picture.drawbox(0, 0, "iw", "ih", color="black@0.25", thickness="fill")
        picture = picture.drawtext(
            textfile=str(text_file), expansion="none", fontfile=str(spec.font), fontsize=size, fontcolor="white",
            line_spacing=size // 3, borderw=2, bordercolor="black@0.6", x="(w-text_w)/2",
            y=f"(h-text_h)/2+{h // 30}*sin(2*PI*t/{max(secs, 1):.3f})",
        )
        picture = picture.drawtext(
            textfile=str(label_file), expansion="none", fontfile=str(spec.font), fontsize=max(12, size * 2 // 3),
            fontcolor="white@0.85", x=size, y=size, box=1, boxcolor="black@0.4", boxborderw=size // 3,
        )
        stream = ffmpeg.output(
            picture, sound, str(out), t=f"{secs:.3f}", r=FPS, **h264_options(spec.preset, 23, spec.keyframe_interval),
            acodec="aac", audio_bitrate="128k", ar=AUDIO_RATE, ac=2, movflags="+faststart",
        )
        run_graph(stream, what=f"render {out.name}")
    return out


def extract_last_frame(video: Path, out: Path) -> Path:
    """Write the last frame of `video` as a PNG (the seed image of a chained segment)."""
    stream = ffmpeg.input(str(video), sseof=-0.1).video
    run_graph(ffmpeg.output(stream, str(out), vframes=1, update=1), what=f"last frame of {video.name}")
    return out

"""Input files for provider requests: local paths become data URIs (or raw base64 where a provider wants it)."""

from __future__ import annotations

import base64
import mimetypes
import tempfile
from pathlib import Path

import ffmpeg

from video_pipeline.atomic import temp_prefix
from video_pipeline.media.ffmpeg import run_graph

MAX_INLINE_BYTES = 20 * 1024 * 1024


def data_uri(path: Path) -> str:
    """`data:<mime>;base64,...` for a local file (images, audio, short videos)."""
    return f"data:{mime_type(path)};base64,{raw_base64(path)}"


def raw_base64(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_INLINE_BYTES:
        raise ValueError(f"{path.name} is {size} bytes; inline inputs are limited to {MAX_INLINE_BYTES}")
    return base64.b64encode(path.read_bytes()).decode("ascii")


def mime_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def audio_segment_uri(path: Path, offset: float, seconds: float) -> str:
    """The stretch of a soundtrack a segment plays over (from `offset`, for `seconds`), as a WAV data URI:
    each segment's model must hear its own part of the audio, not the whole track from the start."""
    with tempfile.TemporaryDirectory(prefix=temp_prefix("vp-audio-")) as tmp:
        out = Path(tmp) / "segment.wav"
        sound = ffmpeg.input(str(path), ss=f"{offset:.3f}", t=f"{seconds:.3f}").audio
        run_graph(ffmpeg.output(sound, str(out), acodec="pcm_s16le", ar=44100, ac=2), what=f"audio part of {path.name}")
        return f"data:audio/wav;base64,{raw_base64(out)}"

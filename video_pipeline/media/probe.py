"""Probing with PyAV, so no system ffprobe is needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from video_pipeline.errors import MediaError
from video_pipeline.media.ffmpeg import MEDIA_FORMATS, PROTOCOLS

#: the same whitelists as every ffmpeg run: a playlist posing as a clip is refused, never followed
OPEN_OPTIONS = {"protocol_whitelist": PROTOCOLS, "format_whitelist": ",".join(MEDIA_FORMATS)}


def open_media(path: Path | str):
    """Open a local media file with PyAV, refusing demuxers that would open other resources."""
    return av.open(str(path), options=dict(OPEN_OPTIONS))


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int | None
    height: int | None
    video_codec: str | None
    fps: float | None
    audio_codec: str | None
    pixel_format: str | None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


def probe(path: Path | str) -> MediaInfo:
    """Duration (seconds), size, codecs and frame rate of a media file; MediaError if it cannot be read."""
    try:
        with open_media(path) as container:
            video = next(iter(container.streams.video), None)
            audio = next(iter(container.streams.audio), None)
            duration = None
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif video is not None and video.duration is not None and video.time_base is not None:
                duration = float(video.duration * video.time_base)
            if duration is None:
                raise MediaError(f"{Path(path).name}: no duration could be read")
            return MediaInfo(
                duration=float(duration),
                width=video.codec_context.width if video else None,
                height=video.codec_context.height if video else None,
                video_codec=video.codec_context.name if video else None,
                fps=float(video.average_rate) if video is not None and video.average_rate else None,
                audio_codec=audio.codec_context.name if audio else None,
                pixel_format=video.codec_context.pix_fmt if video else None,
            )
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        # av.error.ArgumentError (EINVAL) is what a demuxer outside the whitelist gives
        raise MediaError(f"{Path(path).name}: cannot be decoded as media ({exc})") from None


def video_time_base(path: Path | str) -> str:
    """The video stream's time base as `num/den` (MP4's track timescale), e.g. `1/12288`."""
    try:
        with open_media(path) as container:
            base = container.streams.video[0].time_base
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"{Path(path).name}: no video stream to read a time base from ({exc})") from None
    return f"{base.numerator}/{base.denominator}"


def decodes(path: Path | str, max_frames: int = 3) -> bool:
    """True when the first frames of the video stream decode."""
    try:
        with open_media(path) as container:
            stream = next(iter(container.streams.video), None)
            if stream is None:
                return False
            for i, _ in enumerate(container.decode(stream)):
                if i + 1 >= max_frames:
                    break
            return True
    except (av.error.FFmpegError, OSError, ValueError):
        return False

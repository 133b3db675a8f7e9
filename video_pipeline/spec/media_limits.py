"""What a file a campaign refers to must be, checked from its header before anything decodes it.

The file is opened once (a regular file under the data directory, within its kind's size limit). Images: Pillow
reads the header only (format, size); video and audio: PyAV reads the container's header with every decoder
disabled (codec, size, frame rate, duration). Only a file within the limits below is decoded, one frame, by a
decoder told the largest picture it may allocate. A 16000×16000 PNG or an MP4 whose header claims a week is
refused in milliseconds instead of costing gigabytes and minutes of ffmpeg. docs/campaign-format.md lists the
limits.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from video_pipeline.untrusted import Refused, open_regular

MIB = 1024 * 1024

MAX_IMAGE_BYTES = 50 * MIB
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 8192 * 4608            # an 8K frame: 37.7 megapixels, about 150 MB decoded
IMAGE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP"}   # Pillow's name → ours

MAX_VIDEO_BYTES = 1024 * MIB
MAX_VIDEO_SIDE = 4096
MAX_VIDEO_FPS = 120
MAX_VIDEO_SECONDS = 300.0
VIDEO_CODECS = ("h264", "hevc", "vp8", "vp9", "av1")

MAX_AUDIO_BYTES = 500 * MIB
MAX_AUDIO_SECONDS = 1800.0                # the longest video a campaign may ask for
MAX_AUDIO_RATE = 192_000
MAX_AUDIO_CHANNELS = 8
AUDIO_CODECS = ("aac", "mp3", "opus", "vorbis", "flac", "alac")   # and uncompressed PCM

#: the demuxers each kind may be read with (none opens another file or a URL); mp4, mov and m4a are "mov"
VIDEO_DEMUXERS = "mov,matroska"
AUDIO_DEMUXERS = "mov,mp3,aac,wav,ogg,flac"

EXPECTED = {"image": "a PNG, JPEG or WebP image", "video": "a video with a picture",
            "music": "audio with a sound track", "audio": "audio with a sound track"}
MAX_BYTES = {"image": MAX_IMAGE_BYTES, "video": MAX_VIDEO_BYTES, "music": MAX_AUDIO_BYTES, "audio": MAX_AUDIO_BYTES}


def content_problem(path: Path, kind: str, root: Path | None = None) -> str | None:
    """Why the file at `path` is not the `kind` it claims to be or is over a limit, or None when it fits.

    Reads the header, and for a picture one frame, from the one descriptor it opens."""
    try:
        with open_regular(path, max_bytes=MAX_BYTES[kind], root=root) as (fd, st):
            if st.st_size == 0:
                return f"the file is empty; expected {EXPECTED[kind]}"
            with os.fdopen(os.dup(fd), "rb") as handle:
                if kind == "image":
                    return _image_problem(handle)
                return _av_problem(handle, kind)
    except Refused as refused:
        return refused.reason


def _not_what(kind: str) -> str:
    return f"the file's content is not {EXPECTED[kind]}; check that the file is what its name says"


def _image_problem(handle) -> str | None:
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own limit is lower, and is said
        try:
            with Image.open(handle) as image:
                name = IMAGE_FORMATS.get(image.format or "")
                if name is None:
                    return f"is a {image.format} image; expected a PNG, JPEG or WebP image"
                width, height = image.size
                if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                    return _image_too_big(f"{width}×{height} px")
                image.load()       # one decode, of a picture known to be within the limits
        except Image.DecompressionBombError as bomb:      # Pillow's own, far higher limit: it says the count
            pixels = re.search(r"\((\d+) pixels\)", str(bomb))
            return _image_too_big(f"{pixels.group(1)} pixels" if pixels else "too many pixels")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            return _not_what("image")
    return None


def _image_too_big(size: str) -> str:
    return (f"the image is {size}; the limit is {MAX_IMAGE_SIDE} px per side and {MAX_IMAGE_PIXELS} pixels "
            f"({MAX_IMAGE_SIDE}×{MAX_IMAGE_PIXELS // MAX_IMAGE_SIDE})")


def _av_problem(handle, kind: str) -> str | None:
    import av

    # no decoder may run while the header is read: find_stream_info would otherwise decode frames of any size
    options = {"codec_whitelist": "none", "format_whitelist": VIDEO_DEMUXERS if kind == "video" else AUDIO_DEMUXERS}
    try:
        with av.open(handle, options=options) as container:
            seconds = _seconds(container)
            if kind == "video":
                return _video_problem(container, seconds)
            return _audio_problem(container, seconds)
    except (av.error.FFmpegError, OSError, ValueError, StopIteration, ZeroDivisionError, OverflowError):
        return _not_what(kind)


def _seconds(container) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return None


def _first(streams):
    """The first stream of a kind and its codec's name, or (None, None)."""
    stream = next(iter(streams), None)
    if stream is None or stream.codec_context is None:
        return None, None
    return stream, stream.codec_context.codec.canonical_name


def _video_problem(container, seconds: float | None) -> str | None:
    stream, codec = _first(container.streams.video)
    if stream is None:
        return _not_what("video")
    if codec not in VIDEO_CODECS:
        return f"the video is coded as {codec}; expected one of {', '.join(VIDEO_CODECS)} (re-encode it, e.g. to H.264)"
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        return _not_what("video")
    if max(width, height) > MAX_VIDEO_SIDE:
        return f"the video is {width}×{height} px; the limit is {MAX_VIDEO_SIDE} px per side"
    rate = stream.average_rate or stream.base_rate
    if rate is not None and float(rate) > MAX_VIDEO_FPS:
        return f"the video runs at {float(rate):g} frames per second; the limit is {MAX_VIDEO_FPS}"
    if seconds is None:
        return "the video's duration cannot be read from its header; expected a complete video file"
    if seconds > MAX_VIDEO_SECONDS:
        return f"the video lasts {seconds:.0f} s; the limit is {MAX_VIDEO_SECONDS:.0f} s"
    stream.codec_context.options = {"max_pixels": str(MAX_VIDEO_SIDE * MAX_VIDEO_SIDE)}   # whatever the frames say
    stream.thread_count = 1
    next(container.decode(stream))
    return None


def _audio_problem(container, seconds: float | None) -> str | None:
    stream, codec = _first(container.streams.audio)
    if stream is None:
        return _not_what("audio")
    if codec not in AUDIO_CODECS and not codec.startswith("pcm_"):
        return f"the sound is coded as {codec}; expected one of {', '.join(AUDIO_CODECS)} or PCM"
    context = stream.codec_context
    if (context.sample_rate or 0) > MAX_AUDIO_RATE or (context.channels or 0) > MAX_AUDIO_CHANNELS:
        return (f"the sound has {context.channels} channel(s) at {context.sample_rate} Hz; the limit is "
                f"{MAX_AUDIO_CHANNELS} channels at {MAX_AUDIO_RATE} Hz")
    if seconds is None:
        return "the sound's duration cannot be read from its header; expected a complete audio file"
    if seconds > MAX_AUDIO_SECONDS:
        return f"the sound lasts {seconds:.0f} s; the limit is {MAX_AUDIO_SECONDS:.0f} s"
    return None

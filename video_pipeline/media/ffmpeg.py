"""The one ffmpeg runner: finds a binary and runs ffmpeg-python graphs as argument lists, never through a shell.

Every input is opened with a protocol and a demuxer whitelist: media files only ever read local files, so a
crafted input (an HLS or concat playlist posing as a clip, pointing at http:// or at another file) is refused.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import ffmpeg as ffmpeg_python

from video_pipeline.errors import MediaError

#: demuxers a clip, a still, a soundtrack or a narration may be read with: none of them opens other resources
MEDIA_FORMATS = ("mov", "matroska", "mpegts", "avi", "wav", "mp3", "aac", "flac", "ogg", "image2", "png_pipe",
                 "jpeg_pipe", "webp_pipe")
#: an input named with `-f`: only that demuxer (the concat demuxer's own list, a lavfi source, an SRT file);
#: the concat demuxer's entries inherit the whitelists and must be media files
NAMED_FORMATS = {"concat": ("concat", *MEDIA_FORMATS), "lavfi": ("lavfi",), "srt": ("srt",)}
PROTOCOLS = "file"


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """ffmpeg on PATH when there is one, otherwise the static binary the imageio-ffmpeg wheel ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def guard_inputs(args: list[str]) -> list[str]:
    """`args` with `-protocol_whitelist file` and a `-format_whitelist` put before every `-i`.

    An input forced with `-f NAME` may use only that demuxer (NAME must be one we know); any other input only
    the media demuxers. A format ffmpeg cannot name in the whitelist is refused with MediaError.
    """
    guarded: list[str] = []
    forced: str | None = None
    i = 0
    while i < len(args):
        token = args[i]
        if token == "-f" and i + 1 < len(args):
            forced = args[i + 1]
        if token == "-i" and i + 1 < len(args):
            if forced is not None and forced not in NAMED_FORMATS:
                raise MediaError(f"ffmpeg input {args[i + 1]!r}: the {forced!r} demuxer is not allowed")
            formats = NAMED_FORMATS[forced] if forced else MEDIA_FORMATS
            guarded += ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", ",".join(formats), token, args[i + 1]]
            forced = None
            i += 2
            continue
        guarded.append(token)
        i += 1
    return guarded


def run_graph(stream, *, what: str, timeout: float = 1800) -> None:
    """Run an ffmpeg-python output stream; raise MediaError with ffmpeg's last lines on failure."""
    args = ffmpeg_python.compile(stream, cmd=ffmpeg_binary(), overwrite_output=True)
    run_args([*args[:1], "-hide_banner", "-nostdin", "-loglevel", "error", *args[1:]], what=what, timeout=timeout)


def run_args(args: list[str], *, what: str, timeout: float = 1800) -> str:
    """Run ffmpeg (`args[0]` is the binary) with guarded inputs and no shell; returns its stderr.

    Raises MediaError with ffmpeg's last lines when it fails or outlives `timeout` seconds."""
    command = [args[0], *guard_inputs(list(args[1:]))]
    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{what}: ffmpeg did not finish within {timeout:g}s") from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-5:]
        raise MediaError(f"{what}: ffmpeg exited with {proc.returncode}: " + " | ".join(tail))
    return stderr

"""The one ffmpeg runner: finds a binary and runs ffmpeg-python graphs as argument lists."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import ffmpeg as ffmpeg_python

from ..errors import MediaError


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """ffmpeg on PATH when there is one, otherwise the static binary the imageio-ffmpeg wheel ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_graph(stream, *, what: str, timeout: float = 1800) -> None:
    """Run an ffmpeg-python output stream; raise MediaError with ffmpeg's last lines on failure."""
    args = ffmpeg_python.compile(stream, cmd=ffmpeg_binary(), overwrite_output=True)
    run_args([*args[:1], "-hide_banner", "-nostdin", "-loglevel", "error", *args[1:]], what=what, timeout=timeout)


def run_args(args: list[str], *, what: str, timeout: float = 1800) -> None:
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{what}: ffmpeg did not finish within {timeout:g}s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise MediaError(f"{what}: ffmpeg exited with {proc.returncode}: " + " | ".join(tail))

"""Input files for provider requests: local paths become data URIs (or raw base64 where a provider wants it)."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path

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

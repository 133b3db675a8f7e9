"""Files written whole: each writer works in a hidden sibling of its own and moves it into place with os.replace,
so a reader never sees half a file and two runs writing the same output (two runs of one campaign, a rerun
while the first still finishes) never write into one temporary file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def private_sibling(path: Path | str, tag: str = "partial") -> Path:
    """A hidden temporary name beside `path`, unique to this writer, with the same suffix (ffmpeg picks its muxer
    from the suffix). Only letters, digits, dots and hyphens are added, so it is safe in ffmpeg filter options."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")

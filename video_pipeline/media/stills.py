"""Still images of a video: a poster frame and a contact sheet of evenly spaced frames, each in one ffmpeg run."""

from __future__ import annotations

import math
import os
from pathlib import Path

from video_pipeline.atomic import private_sibling
from video_pipeline.errors import MediaError
from video_pipeline.media.ffmpeg import ffmpeg_binary, run_args
from video_pipeline.media.probe import probe

POSTER_SECONDS = 1.0


def _write_png(out: Path, args: list[str], what: str) -> Path:
    """Run ffmpeg writing one PNG to a temporary sibling of `out`, then move it into place."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = private_sibling(out)
    try:
        run_args([ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args,
                  "-frames:v", "1", "-update", "1", "-c:v", "png", "-f", "image2", str(partial)], what=what)
        if not partial.exists() or partial.stat().st_size == 0:
            raise MediaError(f"{what}: ffmpeg wrote no frame")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def poster(video: Path, out_png: Path, at_seconds: float | None = None) -> Path:
    """Save one full-size frame as PNG: at `at_seconds`, else at 1 s (10 % in for clips under 10 s)."""
    at = poster_seconds(probe(video).duration, at_seconds)
    args = ["-ss", f"{at:.3f}", "-i", str(Path(video).resolve()), "-map", "0:v:0", "-an"]
    return _write_png(out_png, args, what=f"poster of {Path(video).name}")


def poster_seconds(duration: float, at_seconds: float | None = None) -> float:
    """Where the poster frame is taken: `at_seconds`, else 1 s (10 % in for clips under 10 s), kept inside the clip
    (past the last frame ffmpeg would decode nothing); to the millisecond, as a seek takes it."""
    at = min(POSTER_SECONDS, duration * 0.1) if at_seconds is None else at_seconds
    return round(max(0.0, min(at, duration - 0.1)), 3)


def contact_sheet(video: Path, out_png: Path, columns: int = 4, rows: int = 3, width: int = 320) -> Path:
    """Tile `columns` x `rows` evenly spaced frames, each scaled to `width` px wide, into one PNG."""
    graph = sheet_graph(video, probe(video).duration, columns, rows, width)
    args = ["-i", str(Path(video).resolve()), "-map", "0:v:0", "-an", "-vf", graph, "-fps_mode", "passthrough"]
    return _write_png(out_png, args, what=f"contact sheet of {Path(video).name}")


def sheet_graph(video: Path, duration: float, columns: int = 4, rows: int = 3, width: int = 320) -> str:
    """The filter chain that makes a contact sheet of a `duration`-second picture (see `contact_sheet`)."""
    if columns < 1 or rows < 1 or width < 2:
        raise MediaError(f"contact sheet of {Path(video).name}: needs columns, rows >= 1 and width >= 2")
    count = columns * rows
    # Frame k is the first frame at or after the middle of the k-th of `count` equal slices of the clip;
    # `prev_selected_t` (NaN before the first pick) stops one slice from picking twice.
    # Targets are rounded down to the microsecond so a frame exactly on a target is not skipped by rounding.
    targets = [math.floor((k + 0.5) * duration / count * 1e6) / 1e6 for k in range(count)]
    pick = "+".join(f"gte(t,{t:.6f})*not(gte(prev_selected_t,{t:.6f}))" for t in targets)
    return ",".join([
        "select=" + pick.replace(",", "\\,"),   # the expression's commas escaped, or they would split the graph
        f"scale={width}:-2",
        "setsar=1",
        f"tile={columns}x{rows}",
    ])

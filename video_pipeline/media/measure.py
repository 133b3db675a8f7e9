"""Measurements ffmpeg reports on stderr: EBU R128 loudness, black stretches and silent stretches.

Each runs ffmpeg once with `-f null -` (decode, write nothing) and parses the filter's log lines; `review` makes
all of them, a contact sheet and a poster, from one decode of a finished video.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.errors import MediaError
from video_pipeline.media.ffmpeg import DEFAULT_RUN_MB, ffmpeg_binary, run_args
from video_pipeline.media.probe import probe

_NUMBER = r"(-?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|inf))"   # ffmpeg prints times with %g: 2.5e-05 happens


def run_for_stderr(args: list[str], *, what: str, timeout: float = 1800, memory_mb: float = DEFAULT_RUN_MB) -> str:
    """Run ffmpeg with `args` (an argument list, no shell, inputs guarded) and return its stderr."""
    return run_args([ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", *args], what=what, timeout=timeout,
                    memory_mb=memory_mb)


def _input(path: Path | str) -> list[str]:
    # An absolute path cannot be mistaken for an option or a protocol prefix.
    return ["-i", str(Path(path).resolve())]


def _require_audio(path: Path | str, what: str) -> float:
    info = probe(path)
    if not info.has_audio:
        raise MediaError(f"{what}: {Path(path).name} has no audio stream")
    return info.duration


def integrated_loudness(path: Path | str) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) of the first audio stream, per EBU R128 / ITU BS.1770."""
    what = f"loudness of {Path(path).name}"
    _require_audio(path, what)
    # framelog=quiet drops the per-100 ms lines; the summary is still logged at info level.
    stderr = run_for_stderr([*_input(path), "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=quiet",
                             "-f", "null", "-"], what=what)
    return ebur128_summary(stderr, what)


def ebur128_summary(stderr: str, what: str, true_peak: bool = True) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) from the summary an `ebur128=peak=true` filter logs (without `true_peak`:
    the sample peak in dBFS that `ebur128=peak=sample` logs)."""
    summary = stderr.rsplit("Summary:", 1)
    if len(summary) != 2:
        raise MediaError(f"{what}: ffmpeg printed no ebur128 summary")
    lufs = re.search(r"Integrated loudness:\s*I:\s*" + _NUMBER + r" LUFS", summary[1])
    peak = re.search((r"True peak:" if true_peak else r"Sample peak:") + r"\s*Peak:\s*" + _NUMBER + r" dBFS",
                     summary[1])
    if not lufs or not peak:
        raise MediaError(f"{what}: cannot read the ebur128 summary")
    return float(lufs.group(1)), float(peak.group(1))


@dataclass(frozen=True)
class Review:
    black_runs: list[tuple[float, float]]
    silent_runs: list[tuple[float, float]]     # empty when the video has no sound
    loudness_lufs: float | None                # None when the video has no sound
    true_peak_db: float | None
    contact_sheet: Path
    poster: Path | None                        # when asked for


def review(path: Path | str, sheet_png: Path, black_seconds: float = 0.5, silence_seconds: float = 1.0,
           pixel_threshold: float = 0.10, noise_db: float = -50, poster_png: Path | None = None) -> Review:
    """A finished video's checks from one decode of it: its black stretches (as `black_runs`), silent stretches
    (as `silence_runs`), integrated loudness and true peak (as `integrated_loudness`), its contact sheet written to
    `sheet_png` (as `stills.contact_sheet`) and, when asked, its poster frame to `poster_png` (as `stills.poster`);
    each image written atomically."""
    from video_pipeline.atomic import private_sibling
    from video_pipeline.media.stills import poster_seconds, sheet_graph

    path = Path(path)
    what = f"review of {path.name}"
    info = probe(path)
    if info.video_codec is None:
        raise MediaError(f"{what}: {path.name} has no video stream")
    images = {"tiles": Path(sheet_png).resolve()}
    graph = (f"[0:v:0]split={2 + (poster_png is not None)}[black][sheet]{'[still]' if poster_png else ''};"
             f"[black]blackdetect=d={black_seconds:g}:pix_th={pixel_threshold:g}[checked];"
             f"[sheet]{sheet_graph(path, info.duration)}[tiles]")
    if poster_png is not None:   # the first frame at or after the poster's time, as a seek to it gives
        images["poster"] = Path(poster_png).resolve()
        graph += f";[still]select=gte(t\\,{poster_seconds(info.duration):.6f})[poster]"
    outputs = ["-map", "[checked]", "-f", "null", "-"]
    if info.has_audio:
        graph += (f";[0:a:0]silencedetect=n={noise_db:g}dB:d={silence_seconds:g},"
                  "ebur128=peak=true:framelog=quiet[heard]")
        outputs += ["-map", "[heard]", "-f", "null", "-"]
    partials = {name: private_sibling(png) for name, png in images.items()}
    stills = []
    for name, partial in partials.items():
        images[name].parent.mkdir(parents=True, exist_ok=True)
        stills += ["-map", f"[{name}]", "-frames:v", "1", "-update", "1", "-fps_mode", "passthrough", "-c:v", "png",
                   "-f", "image2", "-y", str(partial)]
    try:
        stderr = run_for_stderr([*_input(path), "-filter_complex", graph, *stills, *outputs], what=what)
        for name, partial in partials.items():
            if not partial.exists() or partial.stat().st_size == 0:
                raise MediaError(f"{what}: ffmpeg wrote no {'contact sheet' if name == 'tiles' else 'poster'}")
        for name, partial in partials.items():
            os.replace(partial, images[name])
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
    lufs = peak = None
    if info.has_audio:
        lufs, peak = ebur128_summary(stderr, what)
    return Review(black_runs=_black(stderr), silent_runs=_silent(stderr, info.duration) if info.has_audio else [],
                  loudness_lufs=lufs, true_peak_db=peak, contact_sheet=images["tiles"], poster=images.get("poster"))


def black_runs(path: Path | str, min_seconds: float = 0.5, pixel_threshold: float = 0.10) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of black picture lasting at least `min_seconds`."""
    what = f"black detection in {Path(path).name}"
    stderr = run_for_stderr([*_input(path), "-map", "0:v:0", "-an", "-vf",
                             f"blackdetect=d={min_seconds:g}:pix_th={pixel_threshold:g}", "-f", "null", "-"],
                            what=what)
    return _black(stderr)


def _black(stderr: str) -> list[tuple[float, float]]:
    return [(float(s), float(e)) for s, e in
            re.findall(r"black_start:\s*" + _NUMBER + r"\s+black_end:\s*" + _NUMBER, stderr)]


def silence_runs(path: Path | str, min_seconds: float = 0.5, noise_db: float = -50) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch where every channel stays below `noise_db` dBFS for `min_seconds`."""
    what = f"silence detection in {Path(path).name}"
    duration = _require_audio(path, what)
    stderr = run_for_stderr([*_input(path), "-map", "0:a:0", "-vn", "-af",
                             f"silencedetect=n={noise_db:g}dB:d={min_seconds:g}", "-f", "null", "-"], what=what)
    return _silent(stderr, duration)


def _silent(stderr: str, duration: float) -> list[tuple[float, float]]:
    runs: list[tuple[float, float]] = []
    start: float | None = None
    for kind, value in re.findall(r"silence_(start|end):\s*" + _NUMBER, stderr):
        if kind == "start":
            start = max(0.0, float(value))
        elif start is not None:
            runs.append((start, float(value)))
            start = None
    if start is not None:   # silence still running when the stream ended
        runs.append((start, duration))
    return runs

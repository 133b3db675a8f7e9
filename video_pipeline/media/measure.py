"""Measurements ffmpeg reports on stderr: EBU R128 loudness, black stretches and silent stretches.

Each runs ffmpeg once with `-f null -` (decode, write nothing) and parses the filter's log lines.
"""

from __future__ import annotations

import re
from pathlib import Path

from video_pipeline.errors import MediaError
from video_pipeline.media.ffmpeg import ffmpeg_binary, run_args
from video_pipeline.media.probe import probe

_NUMBER = r"(-?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|inf))"   # ffmpeg prints times with %g: 2.5e-05 happens


def run_for_stderr(args: list[str], *, what: str, timeout: float = 1800) -> str:
    """Run ffmpeg with `args` (an argument list, no shell, inputs guarded) and return its stderr."""
    return run_args([ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", *args], what=what, timeout=timeout)


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


def ebur128_summary(stderr: str, what: str) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) from the summary an `ebur128=peak=true` filter logs."""
    summary = stderr.rsplit("Summary:", 1)
    if len(summary) != 2:
        raise MediaError(f"{what}: ffmpeg printed no ebur128 summary")
    lufs = re.search(r"Integrated loudness:\s*I:\s*" + _NUMBER + r" LUFS", summary[1])
    peak = re.search(r"True peak:\s*Peak:\s*" + _NUMBER + r" dBFS", summary[1])
    if not lufs or not peak:
        raise MediaError(f"{what}: cannot read the ebur128 summary")
    return float(lufs.group(1)), float(peak.group(1))


def black_runs(path: Path | str, min_seconds: float = 0.5, pixel_threshold: float = 0.10) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of black picture lasting at least `min_seconds`."""
    what = f"black detection in {Path(path).name}"
    stderr = run_for_stderr([*_input(path), "-map", "0:v:0", "-an", "-vf",
                             f"blackdetect=d={min_seconds:g}:pix_th={pixel_threshold:g}", "-f", "null", "-"],
                            what=what)
    return [(float(s), float(e)) for s, e in
            re.findall(r"black_start:\s*" + _NUMBER + r"\s+black_end:\s*" + _NUMBER, stderr)]


def silence_runs(path: Path | str, min_seconds: float = 0.5, noise_db: float = -50) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch where every channel stays below `noise_db` dBFS for `min_seconds`."""
    what = f"silence detection in {Path(path).name}"
    duration = _require_audio(path, what)
    stderr = run_for_stderr([*_input(path), "-map", "0:a:0", "-vn", "-af",
                             f"silencedetect=n={noise_db:g}dB:d={min_seconds:g}", "-f", "null", "-"], what=what)
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

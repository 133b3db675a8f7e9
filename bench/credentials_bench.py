"""What Content Credentials (issue 17) add to assembly, measured on the assembly bench's edit.

A: the 12 x 8 s 720p edit of bench/assembly_bench.py (crossfades, narration, ducked music, loudness): its wall time,
   then what `assembled_outputs` adds per video for its credentials (`flow.provenance.sign_video`: sign with 14
   ingredients, read back and validate, write `<video>.c2pa.json`), timed several times on that output. Target:
   signing under 10% of the assembly's wall time.
B: the same for a 10-minute video (80 of the segments joined by cuts, 80 segment ingredients), where signing's cost
   grows with the file and the ingredients.

Usage: .venv/bin/python bench/credentials_bench.py [--work DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from assembly_bench import MUSIC, NARRATION_LEAD, _contender, render_segments, speak  # noqa: E402

from video_pipeline.flow.provenance import sign_video  # noqa: E402
from video_pipeline.media.assemble import SegmentInput, concat  # noqa: E402
from video_pipeline.media.credentials import (  # noqa: E402
    ALGORITHMIC, TRAINED, Ingredient, Manifest, development_key, fingerprint, read_credentials)
from video_pipeline.media.probe import probe  # noqa: E402
from video_pipeline.storage.store import file_sha256  # noqa: E402


def manifest(video: Path, segments: list[Path], narration: Path) -> Manifest:
    """What the pipeline says of the bench's edit: every segment, the narration and the music as ingredients."""
    ingredients = [Ingredient(f"segment-{i}", f"segment {i}: veo-3-1-fast on local", path, TRAINED, "veo-3-1-fast",
                              {"segment_index": i, "model": "veo-3-1-fast", "provider": "local",
                               "provider_job_id": f"bench-{i}", "sha256": file_sha256(path),
                               "prompt_sha256": fingerprint(f"prompt {i}")})
                   for i, path in enumerate(segments)]
    ingredients.append(Ingredient("narration", "narration: espeak-ng voice en, placed at 0.5 s", narration,
                                  ALGORITHMIC, "espeak-ng", {"sha256": file_sha256(narration)}))
    ingredients.append(Ingredient("music", "music, ducked under the narration: beat.m4a", MUSIC, None, None,
                                  {"sha256": file_sha256(MUSIC)}))
    return Manifest(video.name, tuple(ingredients), (f"{len(segments)} segments joined with 0.5 s crossfades",
                                                      f"narration placed at {NARRATION_LEAD} s, loudness -14 LUFS"),
                    {"campaign": "bench", "video_id": video.stem})


def time_signing(video: Path, spec: Manifest, key, repeat: int, work: Path) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per signing of a fresh copy of `video` (rewritten each time, as in a run)."""
    times = []
    for i in range(repeat):
        copy = work / f"signed-{i}-{video.name}"
        shutil.copyfile(video, copy)
        wall, cpu = time.perf_counter(), time.process_time()
        sign_video(copy, spec, key)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
        creds = read_credentials(copy, key.anchors)
        assert creds.state == "Trusted" and creds.binding_ok, (creds.state, creds.failures)
        copy.unlink()
        copy.with_suffix(".c2pa.json").unlink()
    return times


def _ms(times: list[tuple[float, float]]) -> str:
    wall, cpu = (statistics.median(t[k] for t in times) * 1000 for k in (0, 1))
    return f"{wall:.0f} ms wall, {cpu:.0f} ms CPU (medians of {len(times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="keep rendered segments here between runs")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="credentials-bench-") as tmp:
        work = args.work or Path(tmp)
        segments = render_segments(work / "segments")
        narration = speak(work)
        key = development_key(Path(tmp) / "credentials")

        # the edit in its own process, timed by wall clock and by the CPU seconds of its process tree (the machine
        # is shared: CPU seconds are what its load does not inflate); signing runs in this process, as in a run
        runs = [_contender("ours", segments, narration, work) for _ in range(2)]
        edit = work / "ours.mp4"
        signing = time_signing(edit, manifest(edit, segments, narration), key, args.repeat, work)
        wall, cpu = (statistics.mean(r[k] for r in runs) for k in (0, 1))
        sign_wall, sign_cpu = (statistics.median(t[k] for t in signing) for k in (0, 1))
        print(f"A 12 x 8 s edit: assembly {', '.join(f'{w:.2f} s wall / {c:.2f} s CPU' for w, c in runs)} "
              f"({probe(edit).duration:.2f} s of video, {edit.stat().st_size / 2**20:.1f} MiB); credentials "
              f"{_ms(signing)} = {100 * sign_wall / wall:.2f}% of the assembly's wall time, "
              f"{100 * sign_cpu / cpu:.2f}% of its CPU (target < 10%)")

        long = work / "ten-minutes.mp4"
        parts = [segments[i % len(segments)] for i in range(80)]
        concat([SegmentInput(p, probe(p).duration) for p in parts], long, 1280, 720, "veryfast")
        signing = time_signing(long, manifest(long, parts, narration), key, args.repeat, work)
        print(f"B 10-minute cut join, 80 segment ingredients: {probe(long).duration:.1f} s of video, "
              f"{long.stat().st_size / 2**20:.1f} MiB; credentials {_ms(signing)}")

if __name__ == "__main__":
    main()

"""Rewrite the "Hostile input" section of docs/RELIABILITY.md: every corpus case through `validate`, `run` and the
inbox sensor in one process (tests/bad_inputs/entry_points.py), with what each cost. Other sections are left as
they are.

    .venv/bin/python -m tests.bad_inputs.hostile_report      # from the repository root, about a minute
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bad_inputs.corpus import cases, materialize, prepare
from video_pipeline.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "docs" / "RELIABILITY.md"
TITLE = "## Hostile input"
FAST = {"VIDEO_PIPELINE_MODE": "local", "VIDEO_PIPELINE_TIME_SCALE": "0.002", "VIDEO_PIPELINE_X264_PRESET": "ultrafast"}


def measure(root: Path) -> list[dict]:
    data = root / "project" / "data"
    data.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
    shutil.copytree(PROJECT_ROOT / "data" / "samples", data / "samples")
    (data / "inbox").mkdir()
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    prepare(data, root / "outside")
    corpus = root / "corpus"
    corpus.mkdir()
    for case in cases():
        materialize(corpus, case)
    env = {**os.environ, **FAST, "VIDEO_PIPELINE_DATA_DIR": str(data), "DAGSTER_HOME": str(root / "home")}
    results = root / "results.jsonl"
    subprocess.run([sys.executable, "-m", "tests.bad_inputs.entry_points", str(data), str(corpus), str(results)],
                   env=env, cwd=PROJECT_ROOT, check=True, timeout=1800, capture_output=True)
    return [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]


def _refusal(case, record: dict) -> str:
    lines = [line.strip().removeprefix("- ") for line in (record["note"] or "").splitlines() if case.expect in line]
    text = lines[0] if lines else "(no error file)"
    text = re.sub(r"^\S*/(?=\S)", "", text)                 # the file by name, wherever the entry point put it
    return text.replace("|", "/")


def _cpu(record: dict) -> float:
    return max(record["validate_cpu"], record["run_cpu"], record["sensor_cpu"])


def render(records: list[dict], seconds: float) -> str:
    *hostile, behind = records
    table = cases()
    slowest = max(hostile, key=lambda r: max(r["validate_s"], r["run_s"], r["sensor_s"]))
    heaviest = max(hostile, key=lambda r: max(r["validate_mib"], r["run_mib"], r["sensor_mib"]))
    ok = [r for r in hostile if r["validate"] == 1 and r["run"] == 1 and r["requested"] == 0 and r["note"]]
    rows = [f"| `{c.name}` | {c.kind} | {_refusal(c, r)} | {r['validate_s']:.2f} | {r['run_s']:.2f} | "
            f"{r['sensor_s']:.2f} | {_cpu(r):.2f} | {max(r['validate_mib'], r['run_mib'], r['sensor_mib']):.0f} |"
            for c, r in zip(table, hostile)]
    new = len(table) - [c.name for c in table].index("alias-bomb.yaml")      # cases.yaml lists them last
    return f"""{TITLE}

Files made to hurt: to cost time or memory, to block the inbox, or to make an error quote a secret. All
{len(table)} cases of `tests/bad_inputs/` ({len(table) - new} bad inputs above and {new} hostile ones: alias bombs,
deep nesting, a million rows, megabyte prompts, 5000-digit numbers, FIFOs, links to `/proc/self/environ`,
`/etc/passwd` and `/dev/zero`, names with escape sequences, right-to-left marks or bytes that are not UTF-8,
Windows device names, and media whose headers claim 16000×16000 pixels, 9 hours, 1000 fps or PNG frames) went
through `video-pipeline validate`, `video-pipeline run` and one inbox-sensor tick, all in one process
(`tests/bad_inputs/entry_points.py`, run by `.venv/bin/python -m tests.bad_inputs.hostile_report` on {dt.date.today()},
{platform.system()}, Python {platform.python_version()}, {os.cpu_count()} cores, {seconds:.0f} s in all). Memory is how far the
process's peak resident size rose during the case, past everything before it (the process started at
{hostile[0]['baseline_mib']:.0f} MiB with Dagster, pandas and PyAV loaded).

- **{len(ok)} of {len(hostile)}** refused by all three: `validate` and `run` exit 1, the sensor moves the file to
  `rejected/` beside its error; the slowest took {max(slowest['validate_s'], slowest['run_s'], slowest['sensor_s']):.2f} s
  ({_cpu(slowest):.2f} s of CPU, `{slowest['name']}`), the most memory {max(heaviest['validate_mib'], heaviest['run_mib'], heaviest['sensor_mib']):.0f} MiB
  (`{heaviest['name']}`). Before (issue 14's measurements): the alias bomb took 77 s and 5.4 GB and blocked the inbox, the deep JSON and the
  million rows failed with a traceback or 1.5 GB, a FIFO hung `validate`, the 16000×16000 PNG passed.
- A valid file dropped behind them all was {"taken and run" if behind["requested"] and behind["run"] == 0 else "NOT run"}
  (the sensor requested `{", ".join(behind["requested"])}`; `run` exited {behind["run"]}).
- `tests/test_hostile_processes.py` asserts this for every case (5 s of CPU and 30 s of wall clock, so a loaded
  machine does not fail it while a hang still does; 300 MiB; one line naming the file and the rule,
  no traceback, no sentinel of the environment nor a line of `/etc/passwd` in any output, the file untouched);
  `tests/test_security.py` runs its secrets scan with links to `/proc/self/environ` in the inbox, named on
  `validate` and `run` and taken by a sensor tick in processes whose environment holds the sentinel keys.
- A tick never raises: whatever an entry is (a link, a FIFO, a socket, a name that is not UTF-8) it is accepted or
  set aside; one that cannot even be moved is remembered in the cursor and skipped until it changes, and a tick
  starts no new file after 30 s (`assets/sensors.py`).

The input limits, each checked while reading (docs/campaign-format.md, "Limits", says them all): a regular file of
at most 5 MiB, opened once without following a link at its last step; no symbolic link in the inbox, none leaving
the data directory elsewhere; no YAML anchors or aliases; 20 levels of nesting; no duplicate keys (YAML, JSON,
JSONL); numbers of 30 digits; 10,000 rows; 10,000 videos, 500 shots per video and 10,000 per campaign; each text
field's length (prompt 2,500 characters); no Windows device name as an id; errors quote at most 80 characters and
list 50 problems. Images: PNG, JPEG or WebP, 50 MiB, 8,192 px per side, 37.7 megapixels. Video: H.264, HEVC, VP8,
VP9 or AV1, 1 GiB, 4,096 px per side, 120 fps, 300 s. Sound: AAC, MP3, Opus, Vorbis, FLAC, ALAC or PCM, 500 MiB,
8 channels, 192 kHz, 1,800 s.

| file | what it is | refused with (the error file's line) | validate s | run s | sensor s | CPU s (most) | memory +MiB |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def rewrite(text: str, section: str) -> str:
    """`text` with its hostile-input section replaced by `section` (appended when it has none)."""
    parts = re.split(r"(?m)^(?=## )", text)
    kept = [p for p in parts if not p.startswith(TITLE)]
    return "".join(kept).rstrip("\n") + "\n\n" + section


def main() -> int:
    import time

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="vp-hostile-"))
    try:
        records = measure(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    OUT.write_text(rewrite(OUT.read_text(encoding="utf-8"), render(records, time.monotonic() - started)),
                   encoding="utf-8")
    print(f"wrote the hostile-input section of {OUT.relative_to(PROJECT_ROOT)}: {len(records) - 1} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())

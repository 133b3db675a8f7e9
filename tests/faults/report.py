"""Regenerate docs/RELIABILITY.md: run the fault campaign and the bad-input corpus, write both tables.

    .venv/bin/python -m tests.faults.report            # from the repository root, ~2 minutes

The same cases run in CI as tests (tests/faults/, tests/test_bad_inputs.py), which assert 0 lost and 0 paid twice
and the error of every bad input; this command records the figures of one run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from video_pipeline.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "docs" / "RELIABILITY.md"
#: the sections this command writes; any other `## ` section already in the file (another command's, such as
#: `python -m tests.bad_inputs.hostile_report`) is kept after them as it is
OWN_SECTIONS = ("## Faults", "## Bad input")


def fault_rows(root: Path) -> tuple[list[str], dict]:
    from tests.faults.harness import CASES, run_case, run_kill_loop, start_fault_fleet, stop_s3

    rows = []
    totals = {"lost": 0, "twice": 0}
    fleet = start_fault_fleet(root)
    try:
        for case in CASES:
            r = run_case(case, fleet, root)
            totals["lost"] += r.lost
            totals["twice"] += r.paid_twice
            first_error = (r.errors[0] if r.errors else "-").replace("|", "/")
            if len(first_error) > 90:
                first_error = first_error[:87] + "..."
            how = f" ({r.note})" if r.note else ""
            rows.append(f"| {case.fault} | {case.stage} | {r.planned} | {r.lost} | {r.paid_twice} | {r.paid_unused} | "
                        f"{r.submissions} | {r.runs} | {r.uncertain_runs} | {r.operator or '-'} | "
                        f"{r.recover_seconds:.1f} | {'yes' if r.assembled else 'NO'} | "
                        f"{case.expect}{how}; first error seen: {first_error} |")
    finally:
        fleet.stop()
        stop_s3()
    kill = run_kill_loop(root, kills=3)
    totals["lost"] += kill.lost
    totals["twice"] += kill.paid_twice
    points = "; ".join(f"at {t:.1f} s ({s})" for t, s in zip(kill.kills, kill.states_at_kill))
    rows.append(f"| SIGKILL of the run process ×{len(kill.kills)} | anywhere (random) | {kill.planned} | {kill.lost} | "
                f"{kill.paid_twice} | {kill.paid_unused} | {kill.submissions} | {len(kill.kills) + 1} | 0 | - | "
                f"{kill.recover_seconds:.1f} | {'yes' if kill.output_ok else 'NO'} | `video-pipeline run` killed "
                f"{points}; the last run finishes the video |")
    return rows, totals


def bad_input_rows(root: Path) -> list[str]:
    from tests.bad_inputs.corpus import cases, huge_file, prepare
    from video_pipeline.config import Settings
    from video_pipeline.flow.intake import INVALID, validate_file

    data = root / "bad" / "data"
    data.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
    prepare(data, root / "bad" / "outside")
    settings = Settings(data_dir=data)
    huge = huge_file(root / "bad")
    rows = []
    for case in cases():
        path = huge if case.name == "huge.yaml" else case.path
        try:
            validate_file(path, settings, display=case.name)
            message = "ACCEPTED (a bug: it should be refused)"
        except INVALID as exc:
            text = str(exc)
            message = text.split("\n", 1)[1].strip().removeprefix("- ") if "\n" in text else text
        rows.append(f"| `{case.name}` | {case.kind} | {message.replace('|', '/').replace(chr(10), ' ')} |")
    return rows


def render(fault: list[str], totals: dict, bad: list[str], seconds: float) -> str:
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    return f"""# Reliability: faults and bad input

Figures from one run of `.venv/bin/python -m tests.faults.report` on {today} ({platform.system()}, Python
{platform.python_version()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end: wall times
depend on how busy the machine is; the run took {seconds:.0f} s). That command rewrites this file;
the same cases run in CI with the test command (`./scripts/test`): `tests/faults/` asserts 0 lost and 0 paid twice
for every fault, `tests/test_bad_inputs.py` asserts each bad input's error through all three entry points.

## Faults

The whole pipeline (campaign_job, the Dagster job: campaign → prompt batches → narration → routed plans → generated
segments → stored clips → assembled outputs; each run on a Dagster instance of its own) in live mode against the
providers' fake servers over real HTTP, one fault per case, then run again as an operator (or the expiring-outputs
sensor) would until the video is assembled. A fault in the clip store is the run's clip storage resource swapped
for one whose disk is full or whose S3 endpoint answers 503. Each campaign has
one 8 s video of two segments. Latencies are compressed: fake jobs take {_latency()} s and polling follows the
catalog's latency profiles × `VIDEO_PIPELINE_TIME_SCALE`={_scale()}; HTTP calls time out after {_timeout()} s.

- **lost**: planned segments without a stored, verified clip at the end (must be 0).
- **paid twice**: billable jobs the fakes counted beyond the first for an identical request body (must be 0);
  failed and canceled jobs are not billed by the providers and are not counted.
- **paid, unused**: billable jobs whose output was never stored (the cost a fault caused).
- **uncertain runs**: runs that ended with a segment uncertain (its submit's answer was lost and the provider
  cannot be searched): nothing was sent for it again, by that run or any later one, until the operator decided.
- **operator**: what the operator did with `video-pipeline resolve` after the second such run: adopt the job found
  in the provider's console (here: the fake's book, matched by prompt and time window), or resubmit when the
  console shows none.
- **recover s**: wall seconds from the first run's start until the video was assembled, reruns included.

Total: **{totals['lost']} segments lost, {totals['twice']} paid twice.**

| fault | where it strikes | segments | lost | paid twice | paid, unused | submissions | runs | uncertain runs | operator | recover s | assembled | what happened |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(fault)}

Notes:

- *S3 errors*: the production profile's `S3ClipStore` on a real S3 API (moto's server, its own process on
  loopback). Through the first run every S3 request meets an endpoint answering 503 SlowDown, past the client's
  retries: each clip's storing fails with the bucket and key named, nothing else is lost. The rerun reuses the
  paid jobs and uploads both clips; the bucket is then listed and each object hashed against its key.
- *Storage full*: a 4 KiB tmpfs is mounted over the clip store for the first run (root only); without mount
  permission the harness falls back to RLIMIT_FSIZE on the run process (EFBIG rather than ENOSPC). The table says
  which was used.
- *Stuck job*: Veo on the Gemini API has no cancel, so the stuck job stays billable: 1 paid, unused.
- *Lost answers* (`lost-reset`, `lost-slow`, `lost-502`): the fake creates the job, then drops the connection, holds
  the answer past the client's timeout, or answers as a proxy with a 502 page. Each routed video provider's fake is
  tested with its own fresh fake (a team's own account). Where the provider can be searched (Kling by
  `external_task_id`, fal's request listing, Ark's task list, DashScope's task query) the engine finds the job and
  adopts it in the same run: one paid job per segment. Where it cannot (Veo on the Gemini API, MiniMax, Runway) the
  segment stays uncertain through a rerun with no automatic second submission, and `resolve --adopt` finishes it.
  The older submit faults (503, reset, timeout before anything is created) show the other side: on Gemini the
  operator finds nothing and resubmits; on Kling and Ark the lookup shows no job and the engine sends it again.
- *Stalled answer*: the first run's submit answer is held 2 s, four times the submit lease used here (0.5 s; 30 s
  in production), while a second run of the campaign starts. The first run renews its lease while it waits, so the
  second waits too and then shares the job.
- *Killed mid-submit*: a run (its own process) is SIGKILLed once the fake has created the job and holds the
  answer. The rerun finds the lease lapsed and the request sent: uncertain, settled as above.
- *SIGKILL*: `video-pipeline run` (fake mode, a 16 s video of four segments) is killed three times, with its
  process group: once a job is in flight, once a job has finished but is not stored, once a clip is stored (so
  while storing or assembling), each a random (seeded) fraction of a second after the ledger shows that moment.
  The ledger's state at each kill is shown. Each rerun resumes the jobs in flight and reuses the finished ones;
  the final run's wall time is the time to recover.

## Bad input

Every file under `tests/bad_inputs/` (with `cases.yaml` saying what each must name), run through
`video-pipeline validate`; the inbox sensor's `rejected/<file>.error.txt` and the asset run give the same text
(asserted by `tests/test_bad_inputs.py`), the original is kept byte for byte and nothing else changes.
`huge.yaml` is generated at test time. Valid but tricky text (quotes, colons, `%`, backslashes, newlines,
right-to-left scripts) is in `tests/bad_inputs/valid/` and renders into a probed video with burned subtitles.

| file | what is wrong | error (as `validate` prints it) |
|---|---|---|
{chr(10).join(bad)}
"""


def _latency() -> str:
    from tests.faults.harness import FAKE_LATENCY

    return f"{FAKE_LATENCY:g}"


def _scale() -> str:
    from tests.faults.harness import TIME_SCALE

    return TIME_SCALE


def _timeout() -> str:
    from tests.faults.harness import ADAPTER_TIMEOUT

    return f"{ADAPTER_TIMEOUT:g}"


def kept_sections(text: str) -> str:
    """The `## ` sections of `text` this command does not write, to append to what it writes."""
    kept = "".join(p for p in re.split(r"(?m)^(?=## )", text)[1:] if not p.startswith(OWN_SECTIONS)).rstrip("\n")
    return f"\n{kept}\n" if kept else ""


def main() -> int:
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="vp-reliability-"))
    try:
        fault, totals = fault_rows(root)
        bad = bad_input_rows(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    previous = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
    OUT.write_text(render(fault, totals, bad, time.monotonic() - started) + kept_sections(previous), encoding="utf-8")
    print(f"wrote {OUT.relative_to(PROJECT_ROOT)}: {totals['lost']} lost, {totals['twice']} paid twice")
    return 0 if totals == {"lost": 0, "twice": 0} else 1


if __name__ == "__main__":
    sys.exit(main())

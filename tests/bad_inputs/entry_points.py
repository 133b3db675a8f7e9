"""Every corpus case through the three entry points of one process, as a user meets them, with what each cost.

    python -m tests.bad_inputs.entry_points DATA_DIR CORPUS_DIR RESULTS.jsonl

For each case: `video-pipeline validate FILE`, `video-pipeline run FILE` (the CLI's `main`, its file descriptors 1
and 2 captured, so ffmpeg's or a C library's writes are caught too) and one inbox sensor tick with the file in
data/inbox/; one JSON line per case: exit codes, seconds per entry point, how far the process's peak memory rose
past everything before it, the outputs, the error file, and whether the file is still what it was. Then a valid
file goes through the inbox and through `run`, to show nothing was left blocking. Run by
tests/test_hostile_processes.py in a fresh process with sentinel values in the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from assets.sensors import campaign_inbox_sensor
from resources import PipelineConfig
from tests.bad_inputs.corpus import cases, kept_as, place, settle
from video_pipeline.cli.main import main


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe() -> float:
    """How far the measured peak moves when 64 MiB more than the peak is touched (proof the measure is live)."""
    before = peak_mib()
    resident = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    block = bytearray(int((before - resident + 64) * 2**20))
    block[::4096] = b"x" * len(block[::4096])
    moved = peak_mib() - before
    del block
    return round(moved, 1)


@contextlib.contextmanager
def captured():
    """Descriptors 1 and 2 into one temporary file; yields a function returning what was written."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        text: list[str] = []
        try:
            yield lambda: "".join(text)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(record: dict, entry: str, call):
    """Run `call`; record its result, wall and CPU seconds, and how many MiB the process's peak memory rose."""
    before, cpu, started = peak_mib(), cpu_seconds(), time.monotonic()
    result = call()
    record[f"{entry}_s"] = round(time.monotonic() - started, 3)
    record[f"{entry}_cpu"] = round(cpu_seconds() - cpu, 3)
    record[f"{entry}_mib"] = round(peak_mib() - before, 1)
    return result


def tick(instance):
    return campaign_inbox_sensor(build_sensor_context(instance=instance, resources={"pipeline": PipelineConfig()}))


def main_(data_dir: Path, corpus: Path, results: Path) -> int:
    valid = data_dir / "samples" / "social-ideas.csv"
    with DagsterInstance.ephemeral() as instance, results.open("w", encoding="utf-8") as out:
        with captured():            # warm up: everything a refusal may import, before memory is measured
            main(["validate", str(corpus / "over-budget.yaml")])
            main(["validate", str(corpus / "image-not-an-image.yaml")])
            main(["run", str(corpus / "empty.yaml")])
        baseline = peak_mib()
        for case in cases():
            path = corpus / case.fs_name
            original = kept_as(path)
            record: dict = {"name": case.name, "baseline_mib": round(baseline, 1)}
            with captured() as text:
                record["validate"] = timed(record, "validate", lambda: main(["validate", str(path)]))
                record["run"] = timed(record, "run", lambda: main(["run", str(path)]))
                inbox = place(path, data_dir / "inbox" / path.name)
                settle(inbox)
                result = timed(record, "sensor", lambda: tick(instance))
            record["output"] = text()
            record["requested"] = len(getattr(result, "run_requests", None) or [])
            note = data_dir / "rejected" / f"{path.name}.error.txt"
            record["note"] = note.read_text(encoding="utf-8") if note.exists() else None
            record["unchanged"] = (kept_as(path) == original and os.path.lexists(data_dir / "rejected" / path.name)
                                   and kept_as(data_dir / "rejected" / path.name) == original)
            out.write(json.dumps(record) + "\n")
            out.flush()
        behind = place(valid, data_dir / "inbox" / valid.name)   # a valid file, after them all
        settle(behind)
        with captured() as text:
            result = tick(instance)
            code = main(["run", str(valid)])
        out.write(json.dumps({"name": "(valid file behind them)", "requested": [r.partition_key for r in
                                                                                  result.run_requests],
                              "run": code, "output": text(), "probe_mib": probe()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main_(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))

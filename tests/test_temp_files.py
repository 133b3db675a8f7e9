"""What a killed run leaves behind (a half download, a join's folder, a mix in progress) is removed by the next run
of the campaign and never a live writer's; what a run writes is an ordinary file (the umask's permissions)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from video_pipeline.atomic import owned_temp, private_sibling, temp_prefix
from video_pipeline.flow.stages import clear_leftovers

#: a writer in its own process, killed (SIGKILL) once its temporary files exist, as a killed run leaves them
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys, tempfile
    from pathlib import Path
    from video_pipeline.atomic import owned_temp, private_sibling, temp_prefix
    data, campaign = Path(sys.argv[1]), sys.argv[2]
    outputs = data / "outputs" / campaign
    for folder in (data / "clips", outputs, data / "campaigns", data / "tables" / "campaign"):
        folder.mkdir(parents=True, exist_ok=True)
    owned_temp(data / "clips", "incoming-", ".mp4").write_bytes(b"half a download")
    join = Path(tempfile.mkdtemp(prefix=temp_prefix("vp-join-"), dir=outputs))
    (join / "part-0000.mp4").write_bytes(b"a normalised part")
    private_sibling(outputs / "one.mp4", "mix").write_bytes(b"a mix in progress")
    private_sibling(data / "campaigns" / f"{campaign}.yaml", "incoming").write_bytes(b"half a spec")
    private_sibling(data / "tables" / "campaign" / f"{campaign}.json", "tmp").write_bytes(b"{")
    Path(tempfile.mkdtemp(prefix=temp_prefix("vp-text-"))).joinpath("prompt.txt").write_text(campaign)
    print(os.getpid(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def killed_run(data_dir: Path, campaign: str) -> set[Path]:
    """Run the killed writer; returns the paths it left (in the data directory and the temporary folder)."""
    before = set(Path(tempfile.gettempdir()).glob("vp-text-*"))
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(data_dir), campaign], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    pid = proc.stdout.strip()
    left = {p for p in data_dir.rglob(f"*-{pid}-*") if p.parent.name != p.name}
    left |= set(Path(tempfile.gettempdir()).glob("vp-text-*")) - before
    assert len(left) == 6, left
    return left


def test_a_killed_writers_leftovers_are_swept_and_live_and_look_alike_files_are_kept(settings, data_dir):
    left = killed_run(data_dir, "sweep")
    outputs = data_dir / "outputs" / "sweep"
    live = [owned_temp(data_dir / "clips", "incoming-", ".mp4"),          # this process: alive
            private_sibling(outputs / "two.mp4", "mix")]
    for path in live:
        path.write_bytes(b"a live writer's")
    elsewhere_new = outputs / ".three.mix-T00000000-17-abcdef12.mp4"   # another machine, touched just now
    elsewhere_old = outputs / ".four.mix-T00000000-17-abcdef12.mp4"    # another machine, untouched for two days
    results = [outputs / "vp-join-h1a2b3c4d-1-x.mp4", outputs / "incoming-1.mp4", outputs / "one.mp4"]
    for path in (elsewhere_new, elsewhere_old, *results):
        path.write_bytes(b"kept")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(elsewhere_old, (two_days_ago, two_days_ago))

    removed = set(clear_leftovers(settings, "sweep"))

    assert removed == left | {elsewhere_old}
    assert not any(p.exists() for p in removed)
    assert all(p.exists() for p in (*live, elsewhere_new, *results))
    assert clear_leftovers(settings, "sweep") == []                     # nothing more, and nothing twice


def test_temporary_names_carry_their_writer_and_are_safe_in_ffmpeg_options(tmp_path):
    name = private_sibling(tmp_path / "video.mp4", "mix").name
    assert name.startswith(".video.mix-T") and f"-{os.getpid()}-" in name and name.endswith(".mp4")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
    assert temp_prefix("vp-join-").startswith("vp-join-T") and temp_prefix("vp-join-").endswith(f"-{os.getpid()}-")


@pytest.mark.slow
def test_the_next_run_removes_a_killed_runs_leftovers_and_writes_ordinary_files(settings, data_dir, instance):
    from tests.conftest import run_campaign_job

    left = killed_run(data_dir, "tidy")
    spec = data_dir / "tidy.yaml"
    spec.write_text("campaign: tidy\ndefaults: {quality_tier: social}\nvideos:\n"
                    "  - id: one\n    target_seconds: 4\n    shots: [{prompt: \"A kite over a beach\"}]\n")
    result = run_campaign_job(instance, settings, spec)
    row = result.output_for_node("assembled_outputs").iloc[0]
    assert row["state"] == "assembled", row["error"]
    assert not any(p.exists() for p in left)
    umask = os.umask(0)
    os.umask(umask)
    ordinary = 0o666 & ~umask
    written = [Path(row["output_path"]), Path(row["poster"]), Path(row["contact_sheet"]),
               *(data_dir / "clips" / "sha256").rglob("*.mp4")]
    assert len(written) >= 4
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: ordinary for p in written}
    assert not [p for p in (data_dir / "outputs" / "tidy").iterdir() if "-T" in p.name]   # nothing of its own left

"""One run of `./scripts/demo`, exactly as the README shows it, shared by the report and the docs tests.

It runs once per test session, in its own data directory and Dagster instance (never the repository's), with
stdout a pipe (so progress comes as plain lines), and the fast settings every test uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import FAST_ENV
from video_pipeline.config import PROJECT_ROOT

DEMO_COMMAND = "./scripts/demo"


@dataclass(frozen=True)
class DemoRun:
    root: Path
    data_dir: Path
    env: dict[str, str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> Path:
        return self.data_dir / "outputs" / "launch-teaser" / "report.html"


_run: DemoRun | None = None


def project_env(root: Path) -> tuple[Path, dict[str, str]]:
    """A data directory with the catalog and samples under `root`, and the environment that points at it."""
    data = root / "data"
    if not data.exists():
        data.mkdir(parents=True)
        shutil.copy(PROJECT_ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
        shutil.copytree(PROJECT_ROOT / "data" / "samples", data / "samples")
        (data / "inbox").mkdir()
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_PIPELINE_") and k != "FORCE_COLOR"}
    env.update(FAST_ENV, VIDEO_PIPELINE_DATA_DIR=str(data), DAGSTER_HOME=str(home))
    return data, env


def demo_run(tmp_path_factory) -> DemoRun:
    """Run `./scripts/demo` once per session (from the repository root, as a newcomer would)."""
    global _run
    if _run is None:
        root = tmp_path_factory.mktemp("demo")
        data, env = project_env(root)
        proc = subprocess.run(["bash", "-c", DEMO_COMMAND], cwd=PROJECT_ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        _run = DemoRun(root, data, env, proc.returncode, proc.stdout, proc.stderr)
    return _run

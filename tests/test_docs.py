"""The README and docs stay true: every shell command they show is run (offline, against one demo run), console
examples print what the page says, the demo ends as the README shows, the launchpad config is valid for the job,
and every link and picture the README names exists.

A block that cannot run offline carries `<!-- not-offline: WHY -->` on the line before its fence, where WHY is one
of the reasons below; a marker with any other reason fails, so each skipped block is explained here.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.demo_run import DEMO_COMMAND, demo_run
from video_pipeline.config import PROJECT_ROOT

#: why a block is not executed; the marker names one of these
WHY_NOT_RUN = {
    "live": "calls real providers: it needs API keys, the network, and it spends money",
    "server": "starts a server that runs until interrupted (the UI, fake providers, webhooks); "
              "tests/test_ui.py, tests/test_live_mode.py and tests/test_webhooks.py start them and talk to them",
    "setup": "./scripts/demo runs once per session in tests/demo_run.py (exactly that command; its output is "
             "checked below and by tests/test_report.py) and ./scripts/test is the suite this test belongs to",
    "services": "needs machines and services set up as the page describes (PostgreSQL, S3, Redis/RabbitMQ, "
                "Kubernetes, /etc files); tests/production runs the same stack on loopback",
    "illustration": "a pattern with placeholders (FILE, <id>, ...), not a command to type as is",
    "dg": "dg reads the project from pyproject.toml in the checkout (the docs run in a scratch folder); "
          "tests/test_dg.py runs dg check defs, dg list defs and dg launch, tests/test_ui.py starts dg dev",
}
#: programs an unmarked block may run: the project's own commands and harmless shell built-ins. Anything else
#: (sudo, apt-get, docker, kubectl, psql, curl to a real host, ...) is never run blind from a page: the block must
#: carry a not-offline marker, or the program is added here once someone has checked it is safe offline.
OFFLINE_PROGRAMS = {"video-pipeline", "dagster", "source", ".", "set", "export", "cd", "mkdir", "cp", "cat", "ls",
                    "echo", "test", "python", "head", "tail", "grep", ".venv/bin/video-pipeline", ".venv/bin/python"}
SHELL = {"bash", "sh", "shell"}
PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*([\w-]+)(?::\s*(.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    marker: str | None
    argument: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(PROJECT_ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.match(before.strip())
        found.append(Block(page, text[:match.start()].count("\n") + 1, match.group(1), match.group(2),
                           marker.group(1) if marker else None, marker.group(2) if marker else None))
    return found


ALL = [b for page in PAGES for b in blocks(page)]
COMMANDS = [b for b in ALL if b.lang in SHELL | {"console"}]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    run = demo_run(tmp_path_factory)
    assert run.returncode == 0, f"{DEMO_COMMAND} failed:\n{run.stdout}\n{run.stderr}"
    return run


@pytest.fixture(scope="module")
def workdir(demo, tmp_path_factory) -> Path:
    """Where the pages' commands run: `.venv/` and `data/` (the demo's, with its ledger and outputs) as in a
    checkout, plus the files the pages define with `<!-- file: NAME -->`."""
    work = tmp_path_factory.mktemp("docs-work")
    (work / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    (work / "data").symlink_to(demo.data_dir)
    for block in ALL:
        if block.marker == "file":
            (work / block.argument).write_text(block.body, encoding="utf-8")
    return work


def programs(script: str) -> list[str]:
    """The program each simple command of a shell script starts (after any VAR=value assignments)."""
    import shlex

    found = []
    for line in script.replace("\\\n", " ").splitlines():   # a line ends a command, like ; does
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.wordchars += "~-./$={}*?:@%+,"
        expect = True
        for token in lexer:
            if token in (";", "&&", "||", "|", "&", "(", ")"):
                expect = True
            elif expect and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
                found.append(token)
                expect = False
    return found


def _wildcard(expected: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in expected.split("…")) + r"\Z")


def _matches(expected: list[str], actual: list[str]) -> bool:
    return len(expected) == len(actual) and all(_wildcard(e).match(a) for e, a in zip(expected, actual))


@pytest.mark.parametrize("block", COMMANDS, ids=[b.where for b in COMMANDS])
@pytest.mark.slow
def test_shell_block_runs_offline_or_says_why_not(block: Block, request):
    if block.marker == "not-offline":
        assert block.argument in WHY_NOT_RUN, (
            f"{block.where}: <!-- not-offline: {block.argument} --> needs one of {', '.join(WHY_NOT_RUN)}")
        return   # not executed, for the reason in WHY_NOT_RUN
    assert block.marker is None, f"{block.where}: unknown marker {block.marker!r} before a shell block"
    script = block.body if block.lang != "console" else "\n".join(
        line[2:] for line in block.body.splitlines() if line.startswith("$ "))
    unsafe = [p for p in programs(script) if p not in OFFLINE_PROGRAMS]
    assert not unsafe, (f"{block.where}: runs {', '.join(unsafe)}, which this test does not run blind; mark the block "
                        f"<!-- not-offline: WHY --> (WHY one of {', '.join(WHY_NOT_RUN)}) or, once checked safe "
                        "offline, add the program to OFFLINE_PROGRAMS")
    demo, workdir = request.getfixturevalue("demo"), request.getfixturevalue("workdir")
    env = {**demo.env, "PATH": f"{PROJECT_ROOT / '.venv' / 'bin'}:{demo.env['PATH']}"}
    if block.lang != "console":
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.body], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{block.where}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return
    # a console example: each `$ command` runs, and prints what the page shows after it
    steps, current = [], None
    for line in block.body.splitlines():
        if line.startswith("$ "):
            current = (line[2:], [])
            steps.append(current)
        elif current is not None:
            current[1].append(line.rstrip())
    assert steps, f"{block.where}: a console block without a `$ ` command"
    for command, expected in steps:
        proc = subprocess.run(["bash", "-c", f"{{ {command}\n}} 2>&1"], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=300)
        actual = [line.rstrip() for line in proc.stdout.rstrip("\n").splitlines()]
        assert _matches(expected, actual), (f"{block.where}: `{command}` printed\n" + "\n".join(actual)
                                            + "\nbut the page shows\n" + "\n".join(expected))


@pytest.mark.slow
def test_demo_ends_as_the_readme_shows(demo):
    shown = [b for b in ALL if b.marker == "output-of" and b.argument == DEMO_COMMAND]
    assert len(shown) == 1, "the README shows the demo's output once, marked <!-- output-of: ./scripts/demo -->"
    expected = shown[0].body.strip().splitlines()
    # the page shows paths under data/; the run's data directory is a temporary one; timings vary
    actual = [line.replace(f"{demo.data_dir}/", "data/") for line in demo.stdout.strip().splitlines()]
    actual = [line for line in actual if not line.startswith(("segments: ", "campaign launch-teaser: spec",
                                                                "materializing "))]
    expected = [re.sub(r"in \d+(\.\d+)?s,", "in …s,", line) for line in expected]
    # a video's measured length may differ from the page's by a few hundredths (encoder settings)
    shown = [float(s) for line in expected for s in re.findall(r"\((\d+\.\d+)s,", line)]
    measured = [float(s) for line in actual for s in re.findall(r"\((\d+\.\d+)s,", line)]
    assert len(shown) == len(measured) and all(abs(a - b) <= 0.1 for a, b in zip(shown, measured)), actual
    expected = [re.sub(r"\(\d+\.\d+s,", "(…s,", line) for line in expected]
    assert _matches(expected, actual), "\n".join(actual)


def test_launchpad_config_in_the_readme_is_valid_for_the_campaign_job():
    from dagster import validate_run_config

    from definitions import defs

    configs = [b for b in ALL if b.marker == "launchpad-config"]
    assert configs, "the README documents the launchpad's run config in a block marked <!-- launchpad-config -->"
    for block in configs:
        validate_run_config(defs().resolve_job_def("campaign_job"), yaml.safe_load(block.body))


def test_every_page_and_picture_the_readme_links_exists():
    readme = (PROJECT_ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)\)", readme)
    assert "docs/images/report.png" in targets and "docs/images/asset-graph.png" in targets
    missing = [t for t in targets if not t.startswith("http") and not (PROJECT_ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"

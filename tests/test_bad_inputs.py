"""Every file of the bad-input corpus (tests/bad_inputs/) is refused with the same clear error — file, line,
field and what was expected — by `video-pipeline validate`, by the inbox sensor's rejected/ error file and by the
asset run; the original is kept byte for byte (a link as the same link, a FIFO as a FIFO), nothing else in the data
directory changes, and no error quotes more than a short excerpt of the file or anything from outside it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, Failure, build_asset_context, build_sensor_context

from assets.campaign import campaign
from assets.prompts import prompt_batches
from assets.routing import routed_job_plans
from assets.sensors import campaign_inbox_sensor
from resources import PipelineConfig
from resources.providers import VideoProviders
from tests.bad_inputs.corpus import HERE, cases, kept_as, materialize, place, prepare, settle, shown
from video_pipeline.cli.main import main

CASES = cases()


def test_corpus_has_at_least_thirty_kinds_and_every_file_is_listed():
    kept = {c.name for c in CASES if c.make is None}
    on_disk = {p.name for p in HERE.iterdir() if p.is_file() and p.suffix in (".yaml", ".json", ".csv", ".jsonl")
               and p.name != "cases.yaml"}
    assert on_disk == kept
    assert len({c.kind for c in CASES}) == len(CASES) >= 85


@pytest.fixture(autouse=True)
def collect_garbage():
    """Run finalizers of dropped database connections now, at a safe point: CPython 3.11.7 raises "AST constructor
    recursion depth mismatch" when one runs inside ast.parse (as pytest's and hypothesis's lazy imports do)."""
    yield
    import gc

    gc.collect()


@pytest.fixture(scope="module")
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def corpus(data_dir, tmp_path) -> Path:
    """The media the corpus refers to under data/, and a folder holding copies of the corpus files."""
    prepare(data_dir, tmp_path / "outside")
    folder = tmp_path / "corpus"
    folder.mkdir()
    for c in CASES:
        materialize(folder, c)
    return folder


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (symlinks as their target) with its content hash; the ledger by its job count
    (planning opens it, creating an empty one, to read what was observed of each model)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith("ledger.sqlite"):
            out["ledger jobs"] = str(_ledger_jobs(path)) if rel == "ledger.sqlite" else out.get("ledger jobs", "0")
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_fifo():
            out[rel] = "fifo"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _ledger_jobs(path: Path) -> int:
    import sqlalchemy as sa

    from video_pipeline.jobs.ledger import jobs

    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def same_words(text: str, name: str) -> str:
    """An error as the person reads it, with the file shown by name whatever directory each entry point shows."""
    return re.sub(r"[^\s'\"]*/(?=" + re.escape(name) + r"\b)", "", text.strip())


def via_cli(path: Path, capsys) -> tuple[str, list[dict]]:
    assert main(["validate", str(path), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False
    return payload["error"]["message"], payload["error"]["problems"]


def via_sensor(path: Path, data_dir: Path, instance) -> str:
    inbox = place(path, data_dir / "inbox" / path.name)
    settle(inbox)                               # settled: the sensor skips files still being written
    result = campaign_inbox_sensor(build_sensor_context(instance=instance, resources={"pipeline": PipelineConfig()}))
    assert not result.run_requests and not result.dynamic_partitions_requests
    note = data_dir / "rejected" / f"{path.name}.error.txt"
    text = note.read_text(encoding="utf-8")
    return text.split("\n\n", 1)[1].rsplit("\n\nFix the file", 1)[0]


def via_assets(path: Path, data_dir: Path) -> str:
    """Install the file as a campaign's active spec and run the assets that read it: the first failure's text."""
    campaigns = data_dir / "campaigns"
    campaigns.mkdir(exist_ok=True)
    spec = place(path, campaigns / path.name)
    key = Path(path.name).stem
    try:
        resources = {"pipeline": PipelineConfig(), "providers": VideoProviders()}
        with pytest.raises(Failure) as failed:
            validated = campaign(build_asset_context(partition_key=key, resources=resources)).value
            frame = prompt_batches(build_asset_context(partition_key=key, resources=resources), campaign=validated)
            routed_job_plans(build_asset_context(partition_key=key, resources=resources), campaign=validated,
                             prompt_batches=frame, narration_tracks=pd.DataFrame())
        return failed.value.description
    finally:
        spec.unlink()


SENTINEL = "SENTINEL-hostile-input-7d1c"
PASSWD_HEAD = Path("/etc/passwd").read_text(errors="replace").split("\n", 1)[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.slow
def test_bad_input_gives_one_clear_error_through_cli_sensor_and_assets(case, corpus, data_dir, instance, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("HOSTILE_SENTINEL", SENTINEL)       # in /proc/self/environ: must never be quoted
    path = corpus / case.fs_name
    original = kept_as(path)
    before = snapshot(data_dir)

    cli_message, problems = via_cli(path, capsys)
    assert kept_as(path) == original and snapshot(data_dir) == before      # validate changes nothing

    asset_message = via_assets(path, data_dir)
    assert snapshot(data_dir) | {"ledger jobs": "0"} == before | {"ledger jobs": "0"}   # no job, nothing written
    before = snapshot(data_dir)

    sensor_message = via_sensor(path, data_dir, instance)
    assert kept_as(data_dir / "rejected" / case.fs_name) == original          # the original, kept as it was
    after = snapshot(data_dir)
    assert set(after) - set(before) == {f"rejected/{case.fs_name}", f"rejected/{case.fs_name}.error.txt"}
    assert {k: v for k, v in after.items() if k in before} == before          # nothing else touched

    # one message, whichever way the file came in
    name = shown(case)
    message = same_words(cli_message, name)
    assert same_words(sensor_message, name) == message
    assert same_words(asset_message, name) == message
    # short, one line per problem, nothing from outside the file
    assert all(len(line) <= 500 for line in message.splitlines()), max(message.splitlines(), key=len)
    for text in (cli_message, sensor_message, asset_message):
        assert SENTINEL not in text and PASSWD_HEAD not in text and "Traceback" not in text
    # and it says where and what was expected
    where = f"{name}:{case.line}:" if case.line else f"{name}:"
    assert where in message, message
    if case.field:
        assert f" {case.field}:" in message, message
    assert case.expect in message, message
    if problems:                                   # the --json shape carries the same facts, structured
        assert any(p["line"] == case.line and p["field"] == case.field for p in problems), problems


@pytest.mark.slow
def test_valid_but_tricky_prompts_render_into_a_probed_video_with_their_exact_text(settings, data_dir, instance):
    """Quotes, colons, percent signs, backslashes, newlines and right-to-left text reach drawtext and the burned
    subtitles as text, never as syntax: the video is made, lasts what was asked, and the subtitles say it all."""
    from tests.conftest import assert_video, run_campaign_job

    spec = data_dir / "tricky-prompts.yaml"
    shutil.copy(HERE / "valid" / "tricky-prompts.yaml", spec)
    assert main(["validate", str(spec)]) == 0
    videos = run_campaign_job(instance, settings, spec).output_for_node("assembled_outputs")
    row = videos.iloc[0]
    assert row["state"] == "assembled", row["error"]
    assert_video(row["output_path"], row["target_seconds"])
    words = Path(row["subtitles_srt"]).read_text(encoding="utf-8")
    for text in ('"100%"', "50%%", "C:\\temp\\new;", "שלום", "مرحبا"):
        assert text in words, (text, words)

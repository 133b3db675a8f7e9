"""Where a campaign's media are found: beside the campaign file first (inside its folder's tree), then under the
data directory; a run reads its own copies, so the samples run with any data directory and a later edit of the
originals changes nothing that ran (issue 18, point 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import assert_video, write
from video_pipeline.cli.main import main
from video_pipeline.config import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "data" / "samples"

CAMPAIGN = """\
campaign: {name}
videos:
  - id: hero
    music: {music}
    shots:
      - prompt: "The bottle turns slowly on a marble table"
        image: {image}
"""


def _run(path: Path, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["run", str(path), "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_a_campaign_outside_the_data_directory_finds_its_media_beside_it_and_runs_on_copies(data_dir, tmp_path,
                                                                                          capsys):
    folder = tmp_path / "work" / "spring"
    shutil.copytree(SAMPLES / "media", folder / "shots", ignore=shutil.ignore_patterns("*.mp4", "*.wav"))
    path = write(folder / "spring.yaml", CAMPAIGN.format(name="spring", music="shots/beat.m4a",
                                                           image="shots/bottle.png"))
    assert main(["validate", str(path)]) == 0
    code, result = _run(path, capsys)
    assert code == 0, result
    [out] = result["outputs"]
    assert_video(out["output_path"], out["duration_seconds"])
    copies = data_dir / "campaigns" / "spring.media" / "shots"
    assert sorted(p.name for p in copies.iterdir()) == ["beat.m4a", "bottle.png"]
    assert (copies / "bottle.png").read_bytes() == (folder / "shots" / "bottle.png").read_bytes()

    # a second version without music: the first version's copies are archived, never left to stand in
    write(path, CAMPAIGN.format(name="spring", music="shots/beat.m4a", image="shots/bottle.png")
          .replace("    music: shots/beat.m4a\n", ""))
    code, result = _run(path, capsys)
    assert code == 0, result
    assert sorted(p.name for p in copies.iterdir()) == ["bottle.png"]
    assert len(list((data_dir / "archive").glob("*-spring.media"))) == 1


def test_beside_the_file_comes_first_the_data_directory_second_and_neither_can_be_left(data_dir, tmp_path, capsys):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.png").write_bytes((SAMPLES / "media" / "bottle.png").read_bytes())
    # found under the data directory (not beside the file): the samples' own path
    ok = write(folder / "ok.yaml", CAMPAIGN.format(name="ok", music="samples/media/beat.m4a",
                                                   image="samples/media/bottle.png"))
    assert main(["validate", str(ok)]) == 0
    # a path that leaves the campaign's folder is not looked for there, and leaves the data directory too
    inner = folder / "inner"
    bad = write(inner / "bad.yaml", CAMPAIGN.format(name="bad", music="samples/media/beat.m4a",
                                                    image="../secret.png"))
    capsys.readouterr()
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml:7: videos[0].shots[0].image: '../secret.png': the path leaves the data directory" in err, err
    # a link beside the file that points out of its folder is refused, naming the field
    (inner / "linked.png").symlink_to(folder / "secret.png")
    linked = write(inner / "linked.yaml", CAMPAIGN.format(name="linked", music="samples/media/beat.m4a",
                                                          image="linked.png"))
    assert main(["validate", str(linked)]) == 1
    assert "videos[0].shots[0].image: 'linked.png': is a link that leaves the campaign file's folder" in \
        capsys.readouterr().err


def test_the_inbox_reads_media_under_the_data_directory_only(data_dir, settings):
    from video_pipeline.flow.intake import take

    write(data_dir / "inbox" / "bottle.png", "")      # beside the inbox file: never looked at
    path = write(data_dir / "inbox" / "drop.yaml", CAMPAIGN.format(name="drop", music="samples/media/beat.m4a",
                                                                   image="bottle.png"))
    taken = take(path, settings)
    assert taken.accepted is None and "no such file under the data directory" in taken.error


@pytest.mark.slow
def test_a_sample_runs_with_an_empty_data_directory(tmp_path, data_dir, monkeypatch, capsys):
    empty = tmp_path / "fresh-data"
    empty.mkdir()
    monkeypatch.setenv("VIDEO_PIPELINE_DATA_DIR", str(empty))
    code, result = _run(SAMPLES / "product-stills.json", capsys)
    assert code == 0, result
    assert {o["state"] for o in result["outputs"]} == {"assembled"}
    assert (empty / "campaigns" / "product-stills.media" / "media" / "bottle.png").is_file()

"""Hostile input, the quick checks: files are opened once and checked before a byte is read, the readers keep to
their budgets (aliases, depth, duplicate keys, rows, long text, numbers), media is judged from its header, and one
inbox tick takes a whole zoo of bad entries without raising and still runs the valid file behind them.

Every case of the corpus also runs through the three entry points in tests/test_bad_inputs.py, and through real
processes with time and memory measured in tests/test_hostile_processes.py (both slow)."""

from __future__ import annotations

import json
import os
import socket
import stat
import tracemalloc
from pathlib import Path

import pytest
from dagster import DagsterInstance, SkipReason, build_sensor_context

from assets.sensors import campaign_inbox_sensor
from resources import PipelineConfig
from tests.bad_inputs.corpus import GENERATED, HERE, png, png_header, settle
from video_pipeline.errors import CampaignError
from video_pipeline.spec import media_limits
from video_pipeline.spec.campaign import MAX_FILE_BYTES, ManyProblems, load_campaign, parse_campaign
from video_pipeline.untrusted import Refused, excerpt, printable, read_regular

SENTINEL = "SENTINEL-hostile-quick-51e0"
GOOD = b"campaign: good\nvideos:\n  - id: one\n    shots: [{prompt: \"A kite over a beach\"}]\n"


def refusal(raw: bytes, name: str) -> CampaignError:
    with pytest.raises(CampaignError) as refused:
        parse_campaign(raw, name)
    return refused.value


def only(error: CampaignError):
    assert len(error.problems) == 1, error.problems
    return error.problems[0]


def peak_mib(call) -> float:
    """The most memory Python allocated while `call` ran, in MiB."""
    tracemalloc.start()
    try:
        call()
    except CampaignError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak / 2**20


# --- opening a file ------------------------------------------------------------------------------------------------


def reason(path: Path, **options) -> str:
    with pytest.raises(Refused) as refused:
        read_regular(path, max_bytes=MAX_FILE_BYTES, **options)
    return refused.value.reason


def test_what_is_not_a_regular_file_is_refused_before_a_byte_is_read(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)                                        # opening it to read would wait for a writer forever
    assert reason(fifo) == "is a FIFO (named pipe); expected a regular file"
    assert reason(Path("/dev/zero")) == "is a character device; expected a regular file"
    assert reason(tmp_path) == "is a directory; expected a regular file"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.yaml"))
        assert reason(tmp_path / "sock.yaml") == "is a socket; expected a regular file"
    assert reason(tmp_path / "nowhere.yaml") == "file not found"
    sparse = tmp_path / "sparse.yaml"
    with sparse.open("wb") as handle:                      # a size fstat sees, without writing 5 MB
        handle.truncate(MAX_FILE_BYTES + 1)
    assert reason(sparse) == f"file is {MAX_FILE_BYTES + 1} bytes; the limit is {MAX_FILE_BYTES}"


def test_links_are_followed_only_inside_the_root_and_never_where_links_are_not_taken(tmp_path):
    root = tmp_path / "data"
    (root / "inbox").mkdir(parents=True)
    (root / "real.yaml").write_bytes(GOOD)
    inside = root / "inbox" / "inside.yaml"
    inside.symlink_to(root / "real.yaml")
    environ = root / "inbox" / "env.csv"
    environ.symlink_to("/proc/self/environ")
    assert read_regular(inside, max_bytes=MAX_FILE_BYTES, root=root) == GOOD
    assert reason(inside, root=root, links=False).startswith("is a symbolic link; only regular files are taken here")
    assert reason(environ, root=root) == "is a symbolic link to a file outside the data directory; give the file itself"
    assert reason(environ, root=root, links=False) == reason(environ, root=root)


def test_a_file_whose_size_is_not_what_it_holds_is_refused_without_quoting_it(monkeypatch):
    monkeypatch.setenv("HOSTILE_SENTINEL", SENTINEL)
    # /proc files say they are empty and are not: read directly (no link), one byte shows it
    said = reason(Path("/proc/self/environ"))
    assert said.startswith("the file changed while it was read (its size said 0 bytes)") and SENTINEL not in said


def test_a_file_that_grows_while_it_is_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "growing.yaml"
    path.write_bytes(GOOD)
    real_read = os.read

    def read_then_append(fd, n):
        chunk = real_read(fd, n)
        with path.open("ab") as writer:            # a writer still at work
            writer.write(b"# more\n")
        return chunk

    monkeypatch.setattr("video_pipeline.untrusted.os.read", read_then_append)
    assert "the file changed while it was read" in reason(path)


def test_names_and_excerpts_are_one_printable_line():
    assert printable("evil\x1b[31m\nname.yaml") == "evil\\x1b[31m\\x0aname.yaml"
    assert printable(os.fsdecode(b"caf\xe9.yaml")) == "caf\\xe9.yaml"
    assert printable("invoice\u202eyaml.csv") == "invoice\\u202eyaml.csv"
    assert printable("kampanj-ö.csv") == "kampanj-ö.csv"                     # letters stay letters
    assert excerpt("A" * 100_000) == "A" * 80 + "… (100000 characters)"


# --- parsers with budgets ------------------------------------------------------------------------------------------


def test_yaml_anchors_and_aliases_are_refused_before_anything_expands():
    bomb = (HERE / "alias-bomb.yaml").read_bytes()
    assert peak_mib(lambda: parse_campaign(bomb, "bomb.yaml")) < 5          # 9^9 strings were 5.4 GB
    problem = only(refusal(bomb, "bomb.yaml"))
    assert problem.line == 1 and "anchors (&name) and aliases (*name) are not accepted" in problem.message
    plain = GOOD.replace(b"videos:", b"style: &s calm\nvideos:")          # one harmless anchor is refused too
    assert "anchors" in only(refusal(plain, "one.yaml")).message


@pytest.mark.parametrize("name", ["deep.json", "deep.yaml"])
def test_nesting_deeper_than_the_limit_is_one_clear_error(name):
    raw = GENERATED[name]() if name in GENERATED else (HERE / name).read_bytes()
    problem = only(refusal(raw, name))
    assert "nested more than 20 levels deep" in problem.message and problem.line in (1, 2)


def test_duplicate_keys_are_refused_in_json_and_jsonl_as_in_yaml():
    problem = only(refusal((HERE / "duplicate-key.json").read_bytes(), "dup.json"))
    assert (problem.line, problem.message) == (5, "invalid JSON: duplicate key 'budget_usd' (first at line 3); "
                                                  "expected each key once in an object")
    problem = only(refusal((HERE / "duplicate-key.jsonl").read_bytes(), "dup.jsonl"))
    assert problem.line == 2 and "duplicate key 'prompt'" in problem.message


def test_a_million_row_list_stops_at_the_row_limit():
    raw = GENERATED["million-rows.csv"]()
    assert len(raw) == 2_000_007
    problem = only(refusal(raw, "rows.csv"))
    assert (problem.line, problem.message) == (10_002, "more than 10000 rows; the limit is 10000 (one video per row)")


@pytest.mark.parametrize("name", ["long-prompt.yaml", "long-prompt.jsonl", "long-prompt.csv"])
def test_a_megabyte_prompt_gives_a_short_error(name):
    error = refusal(GENERATED[name](), name)
    assert len(str(error)) < 400, str(error)                            # was the whole megabyte, twice
    assert "A" * 81 not in str(error)


@pytest.mark.slow
def test_a_million_row_list_is_refused_within_a_few_megabytes():
    raw = GENERATED["million-rows.csv"]()
    assert peak_mib(lambda: parse_campaign(raw, "rows.csv")) < 20        # 1.5 GB before


def test_many_problems_are_counted_and_the_first_fifty_listed():
    error = refusal(b'{"prompt": "p", "target_seconds": -1}\n' * 200, "many.jsonl")
    assert isinstance(error, ManyProblems) and error.total == 200 and len(error.problems) == 50
    assert str(error).startswith("200 problem(s) in campaign file many.jsonl, the first 50 listed")


@pytest.mark.parametrize("name, words", [
    ("bigint.json", "a number of 5000 digits; expected at most 30"),
    ("bigint.yaml", "cannot be read as a number of at most 30 digits"),
    ("sexagesimal.yaml", "cannot be read as a number of at most 30 digits"),
])
def test_numbers_too_long_to_print_are_refused_at_their_line(name, words):
    problem = only(refusal(GENERATED[name](), name))
    assert words in problem.message and problem.line in (2, 3) and len(problem.message) < 300


def test_windows_device_names_cannot_be_campaign_or_video_ids():
    assert "CON is a device name on Windows" in only(refusal(b"prompt\na\n", "con.csv")).message
    problem = only(refusal(GOOD.replace(b"id: one", b"id: com1"), "c.yaml"))
    assert problem.field == "videos[0].id" and "COM1 is a device name" in problem.message


# --- media, from the header ----------------------------------------------------------------------------------------


def test_a_16000_pixel_png_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(16000, 16000))                       # what a decoder would allocate 256 MB for
    assert peak_mib(lambda: media_limits.content_problem(path, "image")) < 5   # decoded, it is 256 MB
    assert media_limits.content_problem(path, "image").startswith("the image is 256000000 pixels; the limit is 8192")
    path.write_bytes(png_header(8193, 8))
    assert media_limits.content_problem(path, "image").startswith("the image is 8193×8 px")
    path.write_bytes(png(64, 48))
    assert media_limits.content_problem(path, "image") is None


def test_referenced_fifos_and_empty_files_say_what_they_are(data_dir):
    media = data_dir / "media"
    media.mkdir()
    os.mkfifo(media / "pipe.png")
    (media / "empty.png").write_bytes(b"")
    spec = data_dir / "refs.yaml"
    spec.write_text("campaign: refs\nvideos:\n  - id: one\n    shots:\n      - prompt: p\n        image: media/pipe.png\n"
                    "      - prompt: q\n        image: media/empty.png\n")
    with pytest.raises(CampaignError) as refused:
        load_campaign(spec, data_dir)
    messages = [p.message for p in refused.value.problems]
    assert messages == ["'media/pipe.png': is a FIFO (named pipe); expected a regular file",
                        "'media/empty.png': the file is empty; expected a PNG, JPEG or WebP image"]


# --- the inbox never blocks ----------------------------------------------------------------------------------------


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def tick(instance, cursor=None):
    return campaign_inbox_sensor(build_sensor_context(instance=instance, cursor=cursor,
                                                      resources={"pipeline": PipelineConfig()}))


def test_one_tick_sets_aside_every_kind_of_bad_entry_and_runs_the_valid_file_behind_them(data_dir, instance,
                                                                                         monkeypatch):
    monkeypatch.setenv("HOSTILE_SENTINEL", SENTINEL)
    inbox = data_dir / "inbox"
    os.mkfifo(inbox / "pipe.yaml")
    (inbox / "env.csv").symlink_to("/proc/self/environ")
    (inbox / "zero.yaml").symlink_to("/dev/zero")
    (inbox / "gone.yaml").symlink_to(inbox / "nothing-here.yaml")        # dangling
    (inbox / "bomb.yaml").write_bytes((HERE / "alias-bomb.yaml").read_bytes())
    (inbox / os.fsdecode(b"caf\xe9.yaml")).write_bytes(b"- a list\n")
    (inbox / "notes.txt").write_bytes(b"not a campaign\n")
    (inbox / "a-folder.yaml").mkdir()                                     # folders are left alone
    bad = sorted(p.name for p in inbox.iterdir() if p.name != "a-folder.yaml")
    for path in inbox.iterdir():
        settle(path, 120)
    (inbox / "good.yaml").write_bytes(GOOD)
    settle(inbox / "good.yaml", 60)                                       # dropped behind them all

    result = tick(instance)                                               # never raises

    assert [r.partition_key for r in result.run_requests] == ["good"]
    assert sorted(p.name for p in inbox.iterdir()) == ["a-folder.yaml"]
    rejected = data_dir / "rejected"
    for name in bad:
        assert os.path.lexists(rejected / name), name
        note = (rejected / f"{name}.error.txt").read_text(encoding="utf-8")
        assert SENTINEL not in note and "root:" not in note and "Traceback" not in note
        assert printable(name) in note
    assert stat.S_ISFIFO(os.lstat(rejected / "pipe.yaml").st_mode)          # moved as it was, never opened
    assert os.readlink(rejected / "env.csv") == "/proc/self/environ"
    assert json.loads(result.cursor)["rejected"] == len(bad)


def test_a_file_that_cannot_even_be_moved_is_remembered_and_skipped_and_intake_goes_on(data_dir, instance):
    inbox = data_dir / "inbox"
    (data_dir / "rejected").write_text("a file where the folder should be\n")   # rejected/ cannot be made
    (inbox / "bad.yaml").write_bytes(b"- a list\n")
    settle(inbox / "bad.yaml", 120)
    first = tick(instance)
    assert list(json.loads(first.cursor)["refused"]) == ["bad.yaml"]          # refused where it lies
    (inbox / "good.yaml").write_bytes(GOOD)
    settle(inbox / "good.yaml", 60)
    second = tick(instance, cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["good"]     # the stuck file stops nothing
    assert (inbox / "bad.yaml").exists() and "bad.yaml" in json.loads(second.cursor)["refused"]
    assert isinstance(tick(instance, cursor=second.cursor), SkipReason)     # not tried again while unchanged
    (data_dir / "rejected").unlink()
    (inbox / "bad.yaml").write_bytes(b"- a list, edited\n")               # changed: tried again, and set aside
    settle(inbox / "bad.yaml", 60)
    fourth = tick(instance, cursor=second.cursor)
    assert (data_dir / "rejected" / "bad.yaml.error.txt").exists() and json.loads(fourth.cursor)["refused"] == {}

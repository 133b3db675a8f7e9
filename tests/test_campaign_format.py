"""Campaign file validation: every sample loads, and every bad input is refused with an error a person can act on.

An error names the file, the line (where the format has lines) and the field, and says what was expected.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from video_pipeline.spec.campaign import check_references, load_campaign
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.errors import CampaignError, PlanningError
from video_pipeline.flow.intake import validate_file

SAMPLES = PROJECT_ROOT / "data" / "samples"

# A minimal valid YAML campaign; tests vary one thing at a time.
GOOD_YAML = """\
version: 1
campaign: spring-launch
videos:
  - id: teaser
    shots:
      - prompt: "A bottle on a counter"
"""


def put(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def refused(path: Path, data_dir: Path | None = None) -> CampaignError:
    return refused_with(path, data_dir)


def refused_with(path: Path, data_dir: Path | None = None, **options) -> CampaignError:
    with pytest.raises(CampaignError) as info:
        load_campaign(path, data_dir, **options)
    return info.value


def only_problem(error: CampaignError):
    assert len(error.problems) == 1, error.problems
    return error.problems[0]


# --- the samples -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "campaign_id", "video_ids"),
    [
        ("launch-teaser.yaml", "launch-teaser", ["teaser", "product-still"]),
        ("long-form.yaml", "long-form", ["trail", "talking-head"]),
        ("product-stills.json", "product-stills", ["bottle-orbit"]),
        ("quick-clips.jsonl", "quick-clips", ["sparkle", "restyle"]),
        ("social-ideas.csv", "social-ideas", ["morning", "ocean", "neon"]),
    ],
)
def test_every_sample_loads_with_its_references_checked(data_dir: Path, name: str, campaign_id: str,
                                                        video_ids: list[str]) -> None:
    campaign = load_campaign(data_dir / "samples" / name, data_dir)
    assert campaign.campaign == campaign_id
    assert [v.id for v in campaign.videos] == video_ids
    assert all(v.shots and all(s.prompt for s in v.shots) for v in campaign.videos)
    assert len(campaign.source.sha256) == 64


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.iterdir() if p.is_file()))
def test_any_file_under_samples_loads(data_dir: Path, name: str) -> None:
    campaign = load_campaign(data_dir / "samples" / name, data_dir)
    assert campaign.videos
    if name.endswith((".csv", ".jsonl")):
        assert campaign.campaign == Path(name).stem


def test_csv_file_stem_becomes_the_campaign_id_and_each_row_a_video(tmp_path: Path) -> None:
    path = put(tmp_path, "autumn-ideas.csv", 'prompt,target_seconds\n"Leaves fall, slowly",6\nRain on a window,8\n')
    campaign = load_campaign(path)
    assert campaign.campaign == "autumn-ideas"
    assert [v.id for v in campaign.videos] == ["video-001", "video-002"]
    assert [v.shots[0].prompt for v in campaign.videos] == ["Leaves fall, slowly", "Rain on a window"]
    assert [v.target_seconds for v in campaign.videos] == [6.0, 8.0]
    assert campaign.where("videos", 1, "shots", 0, "prompt") == (str(path), 3)


def test_jsonl_file_stem_becomes_the_campaign_id_and_each_line_a_video(tmp_path: Path) -> None:
    path = put(tmp_path, "night-shots.jsonl", '{"id": "moon", "prompt": "The moon rises"}\n\n{"prompt": "Stars"}\n')
    campaign = load_campaign(path)
    assert campaign.campaign == "night-shots"
    assert [v.id for v in campaign.videos] == ["moon", "video-002"]
    assert campaign.where("videos", 1, "shots", 0, "prompt") == (str(path), 3)


# --- bad inputs: structure and fields ----------------------------------------------------------


def test_missing_prompt_names_file_line_and_field(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", """\
campaign: spring-launch
videos:
  - id: teaser
    shots:
      - prompt: "First shot"
      - has_human_subjects: true
        complexity: normal
""")
    problem = only_problem(error := refused(path))
    assert (problem.file, problem.line, problem.field) == (str(path), 6, "videos[0].shots[1].prompt")
    assert "required" in problem.message
    assert f"{path}:6: videos[0].shots[1].prompt:" in str(error)


def test_bad_campaign_id_names_line_field_and_expected_pattern(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML.replace("campaign: spring-launch", "campaign: Spring_Launch"))
    problem = only_problem(error := refused(path))
    assert (problem.line, problem.field) == (2, "campaign")
    assert "'Spring_Launch'" in problem.message
    assert "lowercase letters, digits and '-'" in problem.message
    assert f"{path}:2: campaign:" in str(error)


def test_unknown_field_names_its_line_and_full_path(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML + "        colour: red\n")
    problem = only_problem(error := refused(path))
    assert (problem.line, problem.field) == (7, "videos[0].shots[0].colour")
    assert "unknown field" in problem.message and "spelling" in problem.message
    assert str(path) in str(error)


def test_image_and_video_on_one_shot_is_refused_naming_the_shot(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML + "        image: samples/media/bottle.png\n"
                                              "        video: samples/media/street.mp4\n"
                                              "        transform: style\n")
    problem = only_problem(error := refused(path))
    assert (problem.line, problem.field) == (6, "videos[0].shots[0]")
    assert "either `image`" in problem.message and "not both" in problem.message
    assert f"{path}:6: videos[0].shots[0]:" in str(error)


def test_video_without_transform_says_which_transforms_exist(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML + "        video: samples/media/street.mp4\n")
    problem = only_problem(refused(path))
    assert (problem.line, problem.field) == (6, "videos[0].shots[0]")
    assert "transform: style" in problem.message and "transform: upscale" in problem.message


def test_transform_value_outside_the_allowed_set_lists_the_allowed_values(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML + "        video: samples/media/street.mp4\n        transform: sharpen\n")
    problem = only_problem(refused(path))
    assert (problem.line, problem.field) == (8, "videos[0].shots[0].transform")
    assert "'sharpen'" in problem.message and "'style'" in problem.message and "'upscale'" in problem.message


def test_duplicate_yaml_key_names_both_lines_and_the_key(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML + '        prompt: "A second prompt"\n')
    problem = only_problem(error := refused(path))
    assert problem.line == 7
    assert "duplicate key 'prompt'" in problem.message and "first at line 6" in problem.message
    assert f"{path}:7:" in str(error)


def test_invalid_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    # An unquoted prompt containing ": " is the classic YAML mistake.
    path = put(tmp_path, "c.yaml", GOOD_YAML.replace('"A bottle on a counter"', "Close-up: coffee pours"))
    problem = only_problem(error := refused(path))
    assert problem.line == 6
    assert problem.message.startswith("invalid YAML:")
    assert "mapping values are not allowed" in problem.message
    assert f"{path}:6: invalid YAML" in str(error)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = put(tmp_path, "c.json", '{\n  "campaign": "spring-launch",\n  "videos": [\n'
                                   '    {"id": "teaser" "shots": [{"prompt": "x"}]}\n  ]\n}\n')
    problem = only_problem(error := refused(path))
    assert problem.line == 4
    assert problem.message.startswith("invalid JSON:") and "','" in problem.message
    assert f"{path}:4:" in str(error)


def test_json_field_errors_name_the_line_of_the_field(tmp_path: Path) -> None:
    path = put(tmp_path, "c.json", json.dumps({
        "campaign": "spring-launch",
        "defaults": {"resolution": "4k"},
        "videos": [{"id": "teaser", "shots": [{"prompt": "x"}]}],
    }, indent=2))
    problem = only_problem(refused(path))
    assert (problem.line, problem.field) == (4, "defaults.resolution")
    assert "'4k'" in problem.message and "'720p'" in problem.message and "'1080p'" in problem.message


def test_jsonl_line_that_is_not_an_object_names_its_line(tmp_path: Path) -> None:
    path = put(tmp_path, "quick.jsonl", '{"prompt": "one"}\n\n["two"]\n{"prompt": "four"}\n')
    problem = only_problem(error := refused(path))
    assert problem.line == 3
    assert "JSON object" in problem.message and '{"prompt": "..."}' in problem.message
    assert f"{path}:3:" in str(error)


def test_jsonl_invalid_json_names_its_line(tmp_path: Path) -> None:
    path = put(tmp_path, "quick.jsonl", '{"prompt": "one"}\n{"prompt": "two",}\n')
    problem = only_problem(refused(path))
    assert problem.line == 2
    assert "invalid JSON" in problem.message


def test_csv_unknown_column_names_the_column_a_line_and_the_expected_columns(tmp_path: Path) -> None:
    path = put(tmp_path, "ideas.csv", "prompt,colour\nA red car,red\n")
    error = refused(path)
    problem = error.problems[0]
    assert problem.field == "colour"
    assert problem.line in (1, 2)  # the header that names it, or the row that carries it
    assert "unknown column" in problem.message
    for expected in ("prompt", "image", "target_seconds", "has_human_subjects"):
        assert expected in problem.message
    assert f"{path}:{problem.line}: colour:" in str(error)


def test_csv_whose_stem_is_not_a_campaign_id_names_the_file_and_the_rule(tmp_path: Path) -> None:
    path = put(tmp_path, "Social Ideas.csv", "prompt\nA wave\n")
    problem = only_problem(error := refused(path))
    assert problem.field == "campaign"
    assert "'Social Ideas'" in problem.message and "campaign id" in problem.message
    assert "lowercase letters, digits, '-'" in problem.message
    assert str(path) in str(error)


def test_jsonl_whose_stem_is_not_a_campaign_id_is_refused(tmp_path: Path) -> None:
    problem = only_problem(refused(put(tmp_path, "-quick.jsonl", '{"prompt": "x"}\n')))
    assert problem.field == "campaign" and "'-quick'" in problem.message


def test_utf16_file_asks_for_utf8(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML.encode("utf-16"))
    problem = only_problem(error := refused(path))
    assert problem.line == 1
    assert "UTF-16" in problem.message and "UTF-8" in problem.message
    assert str(path) in str(error)


def test_invalid_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML.encode("utf-8").replace(b"bottle", b"bo\xfftle"))
    problem = only_problem(refused(path))
    assert problem.line == 6 and "UTF-8" in problem.message


def test_utf8_with_bom_loads(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", b"\xef\xbb\xbf" + GOOD_YAML.encode("utf-8"))
    assert load_campaign(path).campaign == "spring-launch"


@pytest.mark.parametrize("name", ["c.yaml", "c.json", "empty.csv", "empty.jsonl"])
@pytest.mark.parametrize("content", ["", "  \n\n"])
def test_empty_file_says_a_campaign_was_expected(tmp_path: Path, name: str, content: str) -> None:
    path = put(tmp_path, name, content)
    problem = only_problem(error := refused(path))
    assert problem.line == 1
    assert "empty" in problem.message and "expected" in problem.message
    assert str(path) in str(error)


def test_top_level_list_says_a_mapping_was_expected(tmp_path: Path) -> None:
    problem = only_problem(refused(put(tmp_path, "c.yaml", "- campaign: x\n")))
    assert problem.line == 1 and "mapping" in problem.message and "list" in problem.message


def test_unsupported_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    problem = only_problem(refused(put(tmp_path, "c.txt", GOOD_YAML)))
    assert "'.txt'" in problem.message and ".yaml" in problem.message and ".csv" in problem.message


@pytest.mark.parametrize(
    ("line3", "line4", "constant", "field"),
    [
        ('  "budget_usd": NaN,', '  "videos": [{"id": "teaser", "shots": [{"prompt": "x"}]}]', "NaN", "budget_usd"),
        ('  "videos": [{"id": "teaser",', '    "target_seconds": Infinity, "shots": [{"prompt": "x"}]}]',
         "Infinity", "target_seconds"),
    ],
    ids=["nan-budget", "infinite-target-seconds"],
)
def test_nan_or_infinity_in_json_names_line_and_field(tmp_path: Path, line3: str, line4: str, constant: str,
                                                      field: str) -> None:
    path = put(tmp_path, "c.json", f'{{\n  "campaign": "spring-launch",\n{line3}\n{line4}\n}}\n')
    expected_line = 3 if constant == "NaN" else 4
    problem = only_problem(error := refused(path))
    assert constant in problem.message
    assert problem.line == expected_line, f"expected line {expected_line}, got {problem.line}: {error}"
    assert field in (problem.field + problem.message), f"the field {field} is not named: {error}"


def test_negative_budget_in_json_names_line_field_and_bound(tmp_path: Path) -> None:
    path = put(tmp_path, "c.json", '{\n  "campaign": "spring-launch",\n  "budget_usd": -5,\n'
                                   '  "videos": [{"id": "teaser", "shots": [{"prompt": "x"}]}]\n}\n')
    problem = only_problem(error := refused(path))
    assert (problem.line, problem.field) == (3, "budget_usd")
    assert "-5" in problem.message and "greater than 0" in problem.message
    assert f"{path}:3: budget_usd:" in str(error)


def test_duplicate_video_ids_name_the_id_and_say_ids_must_be_unique(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", GOOD_YAML + "  - id: teaser\n    shots:\n      - prompt: again\n")
    problem = only_problem(error := refused(path))
    assert problem.field.startswith("videos")
    assert problem.line is not None and 3 <= problem.line <= 7
    assert "'teaser'" in problem.message and "unique" in problem.message
    assert str(path) in str(error)


def test_every_problem_in_a_file_is_listed_at_once(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", """\
campaign: Bad Id
budget_usd: 0
videos:
  - id: teaser
    shots:
      - image: a.png
""")
    error = refused(path)
    assert {(p.field, p.line) for p in error.problems} == {
        ("campaign", 1), ("budget_usd", 2), ("videos[0].shots[0].prompt", 6)}
    assert str(error).startswith("3 problem(s)")


# --- file references ---------------------------------------------------------------------------


def with_image(directory: Path, image: str) -> Path:
    return put(directory, "inbox/refs.yaml", GOOD_YAML + f"        image: {json.dumps(image)}\n")


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("../outside.png", "leaves the data directory"),
        ("samples/../../outside.png", "leaves the data directory"),
        ("samples/media/missing.png", "no such file under the data directory"),
        ("https://example.com/a.png", "URLs are not accepted"),
        ("samples/media/bottle.txt", "is not an image"),
    ],
)
def test_bad_image_reference_names_file_line_field_and_reason(data_dir: Path, image: str, expected: str) -> None:
    (data_dir.parent / "outside.png").write_bytes(b"\x89PNG not really")
    (data_dir / "samples" / "media" / "bottle.txt").write_text("not an image")
    path = with_image(data_dir, image)
    campaign = load_campaign(path)  # the file itself is valid; only the reference is wrong
    with pytest.raises(CampaignError) as info:
        check_references(campaign, data_dir)
    problem = only_problem(info.value)
    assert (problem.file, problem.line, problem.field) == (str(path), 7, "videos[0].shots[0].image")
    assert repr(image) in problem.message and expected in problem.message
    # load_campaign with a data directory runs the same check
    assert only_problem(refused(path, data_dir)) == problem


def test_absolute_reference_is_refused_even_inside_the_data_dir(data_dir: Path) -> None:
    inside = data_dir / "samples" / "media" / "bottle.png"
    assert inside.is_file()
    problem = only_problem(refused(with_image(data_dir, str(inside)), data_dir))
    assert (problem.line, problem.field) == (7, "videos[0].shots[0].image")
    assert "absolute paths are not accepted" in problem.message and "relative to the data directory" in problem.message


def test_symlink_inside_data_dir_pointing_outside_is_refused(data_dir: Path) -> None:
    secret = data_dir.parent / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    (data_dir / "samples" / "media" / "innocent.png").symlink_to(secret)
    problem = only_problem(refused(with_image(data_dir, "samples/media/innocent.png"), data_dir))
    assert (problem.line, problem.field) == (7, "videos[0].shots[0].image")
    assert "leaves the data directory" in problem.message


def test_symlink_inside_data_dir_pointing_inside_it_is_accepted(data_dir: Path) -> None:
    (data_dir / "samples" / "media" / "alias.png").symlink_to(data_dir / "samples" / "media" / "bottle.png")
    campaign = load_campaign(with_image(data_dir, "samples/media/alias.png"), data_dir)
    assert campaign.videos[0].shots[0].image == "samples/media/alias.png"


def test_every_bad_reference_in_a_campaign_is_reported(data_dir: Path) -> None:
    path = put(data_dir, "inbox/refs.yaml", """\
campaign: refs
videos:
  - id: one
    audio: ../voice.m4a
    shots:
      - prompt: "p"
        image: samples/media/nope.png
  - id: two
    music: samples/media/bottle.png
    shots:
      - prompt: "p"
        video: /etc/passwd.mp4
        transform: upscale
""")
    error = refused(path, data_dir)
    assert {(p.field, p.line) for p in error.problems} == {
        ("videos[0].audio", 4), ("videos[0].shots[0].image", 7), ("videos[1].music", 9),
        ("videos[1].shots[0].video", 12)}


def test_missing_campaign_file_is_a_campaign_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    problem = only_problem(error := refused(path))
    assert problem.file == str(path) and "not found" in problem.message
    assert str(path) in str(error)


# --- content is preserved, and bad files are left alone ----------------------------------------

TRICKY_PROMPT = ('She says "don\'t stop": 100% sure, 50%% off, C:\\path\\n not a newline, '
                 "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd \u0645\u0631\u062d\u0628\u0627 \u200fend # not a comment")


@pytest.mark.parametrize("kind", ["yaml", "json", "jsonl", "csv"])
def test_prompt_with_quotes_colons_percent_backslashes_and_rtl_text_loads_unchanged(tmp_path: Path,
                                                                                    kind: str) -> None:
    if kind == "yaml":
        text = "campaign: tricky\nvideos:\n  - id: v\n    shots:\n      - prompt: " \
               + json.dumps(TRICKY_PROMPT, ensure_ascii=False) + "\n"
    elif kind == "json":
        text = json.dumps({"campaign": "tricky", "videos": [{"id": "v", "shots": [{"prompt": TRICKY_PROMPT}]}]},
                          ensure_ascii=False)
    elif kind == "jsonl":
        text = json.dumps({"id": "v", "prompt": TRICKY_PROMPT}, ensure_ascii=False) + "\n"
    else:
        text = "id,prompt\nv,\"" + TRICKY_PROMPT.replace('"', '""') + "\"\n"
    campaign = load_campaign(put(tmp_path, f"tricky.{kind}", text))
    assert campaign.campaign == "tricky"
    assert campaign.videos[0].shots[0].prompt == TRICKY_PROMPT


def test_prompt_with_yaml_block_scalar_keeps_its_lines(tmp_path: Path) -> None:
    path = put(tmp_path, "c.yaml", "campaign: block\nvideos:\n  - id: v\n    shots:\n      - prompt: |\n"
                                   "          Line one: colon\n          Line two 100%\n")
    assert load_campaign(path).videos[0].shots[0].prompt == "Line one: colon\nLine two 100%"


BAD_FILES = {
    "missing-prompt.yaml": "campaign: x\nvideos:\n  - id: v\n    shots:\n      - image: a.png\n",
    "dup-key.yaml": GOOD_YAML + "        prompt: again\n",
    "broken.json": '{"campaign": "x", "videos": [',
    "nan-budget.json": '{"campaign": "x", "budget_usd": NaN, "videos": [{"id": "v", "shots": [{"prompt": "p"}]}]}',
    "bad-column.csv": "prompt,colour\na,red\n",
    "not-object.jsonl": '["a"]\n',
    "Bad Stem.csv": "prompt\na\n",
    "utf16.yaml": GOOD_YAML.encode("utf-16"),
    "escape.yaml": GOOD_YAML + "        image: ../../outside.png\n",
    "empty.yaml": "",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_never_modified_by_validation(data_dir: Path, settings, name: str) -> None:
    inbox = data_dir / "inbox"
    path = put(inbox, name, BAD_FILES[name])
    before = path.read_bytes()
    stat_before = path.stat()
    listing_before = sorted(p.name for p in inbox.iterdir())
    with pytest.raises(CampaignError):
        load_campaign(path, data_dir)
    with pytest.raises((CampaignError, PlanningError)):
        validate_file(path, settings)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == stat_before.st_mtime_ns
    assert sorted(p.name for p in inbox.iterdir()) == listing_before
    assert not (data_dir / "rejected").exists() and not (data_dir / "archive").exists()


def test_samples_are_not_modified_by_validation(data_dir: Path, settings) -> None:
    samples = data_dir / "samples"
    before = {p.name: p.read_bytes() for p in samples.iterdir() if p.is_file()}
    for name in before:
        load_campaign(samples / name, data_dir)
    assert {p.name: p.read_bytes() for p in samples.iterdir() if p.is_file()} == before
    assert before == {p.name: p.read_bytes() for p in SAMPLES.iterdir() if p.is_file()}


def test_symlinked_campaign_file_is_read_only_when_it_stays_in_the_data_directory(data_dir: Path,
                                                                                  tmp_path: Path) -> None:
    inside = put(data_dir, "drafts/real.yaml", GOOD_YAML)
    link = data_dir / "campaigns" / "linked.yaml"
    link.parent.mkdir()
    os.symlink(inside, link)
    assert load_campaign(link, data_dir).campaign == "spring-launch"
    # where links are not taken at all (the inbox), this one is refused too, saying so
    assert "is a symbolic link; only regular files are taken here" in only_problem(
        refused_with(link, data_dir, links=False)).message
    outside = data_dir / "campaigns" / "outside.yaml"
    os.symlink(put(tmp_path, "elsewhere/real.yaml", GOOD_YAML), outside)
    assert "symbolic link to a file outside the data directory" in only_problem(refused(outside, data_dir)).message
    assert load_campaign(outside).campaign == "spring-launch"       # no data directory: the file alone is read
    shutil.rmtree(tmp_path / "elsewhere")
    assert "not found" in only_problem(refused(outside)).message

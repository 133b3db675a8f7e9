"""Billing rules in the catalog: what a job costs when it succeeds, and what a provider bills when it does not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from video_pipeline.spec.campaign import load_campaign
from video_pipeline.planning.catalog import CatalogError, load_catalog
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.planning.planner import plan_campaign

CATALOG_FILE = PROJECT_ROOT / "data" / "catalog.yaml"
CATALOG = load_catalog(CATALOG_FILE)
RUN_DATE = dt.date(2026, 11, 24)


def model_entry(billing: dict | None = None, **overrides) -> dict:
    """A valid catalog entry for a test model, with `billing` (none: the default rule) and field overrides."""
    entry = {
        "name": "Test model", "tier": "mid", "categories": ["text_to_video"],
        "latency": {"p50_seconds": 10, "p95_seconds": 20}, "durations": [5, 10], "resolutions": ["720p", "1080p"],
        "aspect_ratios": ["16:9"], "audio": {"input": False, "output": False, "lip_sync": False},
        "price_per_second": {"720p": 0.1, "1080p": 0.2}, "price_source": "test", "price_date": "2026-11-24",
        "concurrency": 1, "output_url_lifetime_seconds": 3600,
        "routes": [{"provider": "fal", "model_id": "test/model"}, {"provider": "runway", "model_id": "test_model"}],
    }
    if billing is not None:
        entry["billing"] = billing
    entry.update(overrides)
    return entry


def catalog_with(tmp_path: Path, **entries):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    return load_catalog(path)


def spec(tmp_path: Path, billing: dict | None = None, **overrides):
    return catalog_with(tmp_path, m=model_entry(billing, **overrides)).get("m")


def load_error(tmp_path: Path, billing: dict, **overrides) -> str:
    with pytest.raises(CatalogError) as info:
        spec(tmp_path, billing, **overrides)
    return str(info.value)


# --- what a successful job costs ----------------------------------------------------------------------------------

def test_without_a_billing_block_a_model_bills_per_requested_second_and_not_for_failures(tmp_path):
    model = spec(tmp_path)
    assert (model.billing.unit, model.billing.billed_seconds, model.billing.charged_on_failure) == \
        ("second", "requested", "never")
    assert model.cost(7, "720p") == 0.7
    assert model.cost(7, "1080p") == 1.4
    assert model.charge(7, "720p", "succeeded") == 0.7


def test_a_per_second_catalog_model_costs_its_price_times_the_seconds():
    veo = CATALOG.get("veo-3-1-fast")
    assert veo.cost(8, "720p") == pytest.approx(8 * veo.price("720p")) == 0.8
    assert veo.cost(6, "1080p") == 0.72


def test_cost_is_rounded_to_four_decimals(tmp_path):
    model = spec(tmp_path, price_per_second={"720p": 0.123456, "1080p": 0.2})
    assert model.cost(3, "720p") == 0.3704


def test_a_seven_second_request_on_a_five_or_ten_second_model_bills_ten_seconds(tmp_path):
    model = spec(tmp_path, {"unit": "clip", "clip_lengths": [5, 10]})
    assert model.cost(7, "720p") == 1.0             # 10 s x $0.10
    assert model.cost(5, "720p") == 0.5             # a request that fills a clip exactly pays for that clip
    assert model.cost(3, "1080p") == 1.0            # the shortest clip is the least a job costs: 5 s x $0.20
    kling = CATALOG.get("kling-3-0")
    assert kling.cost(7, "720p") == round(10 * kling.price("720p"), 4)


def test_clip_prices_replace_the_per_second_price_times_the_length(tmp_path):
    model = spec(tmp_path, {"unit": "clip", "clip_lengths": [5, 10],
                            "clip_prices": {"720p": {5: 0.35, 10: 0.6}}})
    assert model.cost(4, "720p") == 0.35
    assert model.cost(9, "720p") == 0.6
    assert model.cost(9, "1080p") == 2.0            # no clip prices at 1080p: $0.20/s x 10 s


def test_a_request_longer_than_the_longest_clip_cannot_be_priced(tmp_path):
    model = spec(tmp_path, {"unit": "clip", "clip_lengths": [5, 10]})
    with pytest.raises(ValueError, match="longer than the longest billed clip"):
        model.cost(12, "720p")


def test_a_per_request_model_costs_the_same_whatever_the_length(tmp_path):
    model = spec(tmp_path, {"unit": "request", "price_per_request": {"720p": 0.25, "1080p": 0.4}})
    assert model.cost(1, "720p") == model.cost(10, "720p") == 0.25
    assert model.charge(10, "1080p", "succeeded") == 0.4


def test_a_minimum_charge_bills_a_short_job_as_the_minimum(tmp_path):
    model = spec(tmp_path, {"minimum_seconds": 4})
    assert model.cost(1, "720p") == 0.4
    assert model.cost(4, "720p") == 0.4
    assert model.cost(6, "720p") == 0.6


def test_a_model_billed_on_its_output_charges_the_seconds_delivered(tmp_path):
    model = spec(tmp_path, {"billed_seconds": "output"})
    assert model.charge(10, "720p", "succeeded", output_seconds=7.5) == 0.75
    assert model.charge(10, "720p", "succeeded") == 1.0          # output unknown: the request stands for it
    requested = spec(tmp_path, {"billed_seconds": "requested"})
    assert requested.charge(10, "720p", "succeeded", output_seconds=7.5) == 1.0


def test_runway_debits_whole_credits_of_one_cent():
    aleph = CATALOG.get("runway-aleph")
    assert aleph.billing.credit_usd == 0.01
    assert aleph.cost(7, "720p") == 1.05 and aleph.billing.credits(1.05) == 105     # 15 credits per second
    assert aleph.cost(2.5, "720p") == 0.38           # 37.5 credits are debited as 38


def test_a_resolution_without_a_price_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no price for resolution '4k'"):
        spec(tmp_path).cost(5, "4k")


# --- what a failed or canceled job costs ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy, charged", [
    ("never", {"succeeded"}),
    ("policy", {"succeeded", "failed-policy"}),
    ("always", {"succeeded", "failed", "failed-policy", "canceled"}),
])
def test_charged_on_failure_decides_which_ended_jobs_are_billed(tmp_path, policy, charged):
    model = spec(tmp_path, {"charged_on_failure": policy})
    for outcome in ("succeeded", "failed", "failed-policy", "canceled"):
        assert model.charge(5, "720p", outcome) == (0.5 if outcome in charged else 0.0), outcome


def test_runway_charges_a_moderated_veo_job_that_gemini_and_fal_do_not():
    veo = CATALOG.get("veo-3-1-fast")
    assert veo.charge(8, "720p", "failed-policy", provider="runway") == 0.8
    assert veo.charge(8, "720p", "failed-policy", provider="gemini") == 0.0
    assert veo.charge(8, "720p", "failed-policy", provider="fal") == 0.0
    assert veo.charge(8, "720p", "failed", provider="runway") == 0.0           # only moderation is charged
    assert CATALOG.get("runway-aleph").charge(4, "720p", "failed-policy") == 0.6


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown outcome 'aborted'"):
        CATALOG.get("veo-3-1-fast").charge(8, "720p", "aborted")


def test_narration_is_charged_per_thousand_characters():
    eleven = CATALOG.tts["elevenlabs-multilingual-v2"]
    assert eleven.charge(1500) == round(1.5 * eleven.price_per_1k_chars, 4)
    assert CATALOG.tts["local-espeak"].charge(10_000) == 0.0


# --- the catalog file ------------------------------------------------------------------------------------------------

def test_every_catalog_model_cites_an_explicit_billing_rule():
    raw = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))["models"]
    for model_id, entry in raw.items():
        assert "billing" in entry, model_id
        rule = CATALOG.get(model_id).billing
        assert not rule.source.startswith("default"), model_id
        if rule.unit == "clip":          # clip-billed models make exactly the clips they bill
            assert rule.clip_lengths == CATALOG.get(model_id).durations, model_id


def test_fixed_length_models_bill_per_clip():
    assert CATALOG.get("kling-3-0").billing.clip_lengths == [5, 10]
    assert CATALOG.get("hailuo-02").billing.clip_lengths == [6, 10]


@pytest.mark.parametrize("billing, overrides, field, words", [
    ({"unit": "minute"}, {}, "models.m.billing.unit", "'second', 'clip' or 'request'"),
    ({"unit": "clip"}, {}, "models.m.billing.clip_lengths", "needs clip_lengths"),
    ({"unit": "clip", "clip_lengths": [10, 5]}, {}, "models.m.billing.clip_lengths", "increasing order"),
    ({"unit": "clip", "clip_lengths": [5, 8]}, {}, "models.m.billing.clip_lengths", "longest billed clip is 8 s"),
    ({"clip_lengths": [5, 10]}, {}, "models.m.billing.clip_lengths", "unit: clip only"),
    ({"unit": "clip", "clip_lengths": [5, 10], "clip_prices": {"720p": {5: 0.3}}}, {},
     "models.m.billing.clip_prices", "each clip length"),
    ({"unit": "clip", "clip_lengths": [5, 10], "clip_prices": {"4k": {5: 1, 10: 2}}}, {},
     "models.m.billing.clip_prices", "4k"),
    ({"unit": "request"}, {}, "models.m.billing.price_per_request", "needs price_per_request"),
    ({"unit": "request", "price_per_request": {"720p": 0.2}}, {}, "models.m.billing.price_per_request", "1080p"),
    ({"unit": "clip", "clip_lengths": [5, 10], "minimum_seconds": 3}, {}, "models.m.billing.minimum_seconds",
     "unit: second only"),
    ({"minimum_seconds": -1}, {}, "models.m.billing.minimum_seconds", "greater than 0"),
    ({"charged_on_failure": "sometimes"}, {}, "models.m.billing.charged_on_failure", "'never', 'policy' or 'always'"),
    ({"provider_failure": {"kling": "policy"}}, {}, "models.m.billing.provider_failure", "kling"),
    ({"credit_usd": 0}, {}, "models.m.billing.credit_usd", "greater than 0"),
    ({"per_clip": True}, {}, "models.m.billing.per_clip", "Extra inputs are not permitted"),
])
def test_an_invalid_billing_rule_is_a_load_error_naming_the_field(tmp_path, billing, overrides, field, words):
    message = load_error(tmp_path, billing, **overrides)
    assert f"catalog.yaml: {field}:" in message, message
    assert words in message, message


# --- the planner prices with the rule -------------------------------------------------------------------------------

def test_the_plan_estimates_each_segment_with_the_models_billing_rule(tmp_path, data_dir):
    raw = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    raw["models"]["kling-3-0"]["billing"] = {"unit": "clip", "clip_lengths": [5, 10],
                                             "clip_prices": {"720p": {5: 0.3, 10: 0.55}}, "source": "test"}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    catalog = load_catalog(path)
    spec_file = tmp_path / "kling.yaml"
    spec_file.write_text("campaign: clips\ndefaults:\n  resolution: 720p\nvideos:\n  - id: v\n"
                         "    target_seconds: 15\n    shots:\n      - prompt: \"A harbour at dawn\"\n"
                         "        model: kling-3-0\n", encoding="utf-8")
    plan = plan_campaign(load_campaign(spec_file, data_dir), catalog, data_dir, on=RUN_DATE,
                         probe_seconds=lambda path: 5.0)
    assert sorted(s.generate_seconds for s in plan.segments) == [5, 10]
    assert sorted(s.est_cost_usd for s in plan.segments) == [0.3, 0.55]
    assert plan.total_cost_usd == pytest.approx(0.85)


def test_a_catalog_past_its_limits_is_refused_by_name_before_it_is_built(tmp_path):
    """The catalog file is read as plain data within limits: aliases, a huge file and a FIFO are refused with the
    file's name (and line), and nothing hangs or grows."""
    import os

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x", "x", "x", "x", "x", "x", "x", "x"]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n'
                    "models: {}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"bomb\.yaml:1: YAML anchors"):
        load_catalog(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"models: {}\n" + b"#" * (1024 * 1024 + 10))
    with pytest.raises(CatalogError, match=r"huge\.yaml: .*the limit is 1048576"):
        load_catalog(huge)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(CatalogError, match=r"fifo\.yaml: .*FIFO|fifo\.yaml: .*regular file"):
        load_catalog(fifo)
    deep = tmp_path / "deep.yaml"
    deep.write_text("models: " + "[" * 30 + "]" * 30 + "\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"deep\.yaml:1: nested more than"):
        load_catalog(deep)

"""Automation: the inbox sensor and the nightly batch schedule, evaluated on an ephemeral instance."""

from __future__ import annotations

import os
import time

import pytest
from dagster import build_schedule_context, build_sensor_context, instance_for_test

from assets.schedules import nightly_batch_schedule
from assets.sensors import campaign_inbox_sensor
from resources import PipelineConfig
from tests.conftest import write


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


def _drop(data_dir, name, text):
    path = write(data_dir / "inbox" / name, text)
    old = time.time() - 10   # settled: not still being written
    os.utime(path, (old, old))
    return path


def _tick(instance, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"pipeline": PipelineConfig()})
    return campaign_inbox_sensor(context)


GOOD = """
campaign: spring-sale
videos:
  - id: hero
    shots: [{prompt: "Tulips open in time-lapse"}]
"""


def test_valid_file_is_archived_and_becomes_a_partition_with_one_run(instance, data_dir):
    original = _drop(data_dir, "spring.yaml", GOOD).read_bytes()
    result = _tick(instance)
    assert [r.partition_key for r in result.run_requests] == ["spring-sale"]
    assert result.run_requests[0].run_key.startswith("spring-sale-")
    assert [req.partition_keys for req in result.dynamic_partitions_requests] == [["spring-sale"]]
    assert not (data_dir / "inbox" / "spring.yaml").exists()
    archived = list((data_dir / "archive").iterdir())
    assert len(archived) == 1 and archived[0].read_bytes() == original
    assert (data_dir / "campaigns" / "spring-sale.yaml").read_bytes() == original


def test_same_content_dropped_again_gets_the_same_run_key(instance, data_dir):
    _drop(data_dir, "spring.yaml", GOOD)
    first = _tick(instance)
    instance.add_dynamic_partitions("campaigns", ["spring-sale"])
    _drop(data_dir, "spring.yaml", GOOD)
    second = _tick(instance, cursor=first.cursor)
    assert first.run_requests[0].run_key == second.run_requests[0].run_key
    assert second.dynamic_partitions_requests == []
    assert len(list((data_dir / "archive").iterdir())) == 2   # both originals kept


def test_broken_file_moves_to_rejected_beside_an_error_naming_line_and_field(instance, data_dir):
    text = "campaign: spring-sale\nvideos:\n  - id: hero\n    shots:\n      - image: samples/media/bottle.png\n"
    _drop(data_dir, "broken.yaml", text)
    result = _tick(instance)
    assert result.run_requests == []
    assert (data_dir / "rejected" / "broken.yaml").read_text() == text
    error = (data_dir / "rejected" / "broken.yaml.error.txt").read_text()
    assert "broken.yaml:5" in error and "videos[0].shots[0].prompt" in error and "required" in error
    assert not (data_dir / "campaigns").exists() or not any((data_dir / "campaigns").iterdir())


def test_file_still_being_written_waits_for_the_next_tick(instance, data_dir):
    write(data_dir / "inbox" / "fresh.yaml", GOOD)   # mtime is now
    result = _tick(instance)
    assert not getattr(result, "run_requests", None)
    assert (data_dir / "inbox" / "fresh.yaml").exists()


def test_batch_campaign_gets_a_partition_but_waits_for_the_nightly_schedule(instance, data_dir):
    _drop(data_dir, "night.yaml", GOOD.replace("campaign: spring-sale", "campaign: night-run\nschedule: batch"))
    result = _tick(instance)
    assert result.run_requests == []
    assert [req.partition_keys for req in result.dynamic_partitions_requests] == [["night-run"]]
    instance.add_dynamic_partitions("campaigns", ["night-run", "other"])
    context = build_schedule_context(instance=instance, resources={"pipeline": PipelineConfig()})
    requests = nightly_batch_schedule(context)
    assert [r.partition_key for r in requests] == ["night-run"]
    assert requests[0].tags["campaign/spec_sha256"]

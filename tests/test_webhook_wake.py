"""Webhooks wake, polls decide, and a chatty provider never turns into a polling storm.

A campaign in fake mode with webhooks on, against the Kling fake sending a "processing" status callback every
second during a 20 s job (as Kling's callbacks do on each status change): a delivery brings the next poll forward
at most once, and only one that says the job ended; then the latency profile's schedule resumes. The fake counts
the polls it answered.
"""

from __future__ import annotations

import pytest

from tests.conftest import assert_video, run_campaign_job, write
from tests.support.services import fleet_on_free_ports, served
from video_pipeline.config import Settings
from video_pipeline.jobs.ledger import JobLedger
from video_pipeline.jobs.webhooks import ReceiverConfig, create_receiver

pytestmark = pytest.mark.slow

JOB_SECONDS = 20.0
TOKEN = "wake-test-token-0123456789"


def test_status_callbacks_every_second_cost_at_most_one_poll_each_and_the_video_is_delivered(data_dir,
                                                                                               monkeypatch,
                                                                                               instance):
    spec = write(data_dir / "chatty.yaml", """
campaign: chatty
videos:
  - id: spot
    target_seconds: 5
    shots:
      - prompt: a lighthouse at dusk, waves breaking below
        model: kling-3-0
""")
    fleet, base = fleet_on_free_ports(latency=JOB_SECONDS)
    kling = fleet.books["kling"]
    kling.progress_every = 1.0
    try:
        monkeypatch.setenv("VIDEO_PIPELINE_MODE", "fake")
        monkeypatch.setenv("VIDEO_PIPELINE_FAKES_PORT", str(base))
        # the catalog's Kling profile (p50 180 s) scaled so its median is the fake's 20 s
        monkeypatch.setenv("VIDEO_PIPELINE_TIME_SCALE", str(JOB_SECONDS / 180))
        monkeypatch.setenv("VIDEO_PIPELINE_WEBHOOKS", "1")
        monkeypatch.setenv("VIDEO_PIPELINE_WEBHOOK_TOKEN", TOKEN)
        settings = Settings.from_env()
        ledger = JobLedger(settings.ledger_url)
        with served(create_receiver(ledger, ReceiverConfig.from_settings(settings))) as receiver:
            settings = settings.with_overrides(webhook_url=receiver.url + "/")
            monkeypatch.setenv("VIDEO_PIPELINE_WEBHOOK_URL", receiver.url + "/")
            result = run_campaign_job(instance, settings, spec)
        ledger.dispose()
    finally:
        fleet.stop()

    video = result.output_for_node("assembled_outputs").iloc[0]
    assert video["state"] == "assembled", video["error"]
    assert_video(video["output_path"], 5.0)

    (job,) = kling.created
    polls = [path for method, path in kling.requests if method == "GET" and path.endswith(job.id)]
    callbacks = [status for _, status in kling.progress_deliveries if status == 200]
    assert len(callbacks) >= JOB_SECONDS * 0.6, kling.progress_deliveries      # the receiver took them
    assert kling.total_submissions == 1
    # one poll per callback at most, plus the one that sees the job finished
    assert 1 <= len(polls) <= 1 + len(callbacks), (len(polls), len(callbacks))
    # callbacks that only say "still processing" bring no poll forward: the latency profile's own polls (4 in
    # this run with 18 callbacks) and the one the final delivery wakes
    assert len(polls) <= len(callbacks) // 2, (len(polls), len(callbacks))

"""fal-client against the fake fal queue, over TLS: the SDK builds `https://{FAL_QUEUE_RUN_HOST}/...` URLs, so the
fake serves https with a throwaway CA (`video-pipeline fakes serve --tls` does the same) and the SDK, in a process
of its own (tests/sdk/fal_driver.py), trusts it through `SSL_CERT_FILE`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.conftest import assert_video, serving
from video_pipeline.providers.fakes.fal import create_app

KEY = "test-fal-key"
DRIVER = Path(__file__).with_name("fal_driver.py")


@pytest.fixture
def fake(book, ca):
    with serving(create_app(book, api_key=KEY), tls=ca) as server:
        yield server


def drive(fake, ca, step: str, *args: str, key: str = KEY) -> dict:
    """Run one step of the driver with fal-client pointed at the fake; returns what it printed."""
    host = fake.url.removeprefix("https://")
    env = {**os.environ, "FAL_KEY": key, "FAL_RUN_HOST": host, "FAL_QUEUE_RUN_HOST": host,
           "SSL_CERT_FILE": str(ca.ca_file)}
    done = subprocess.run([sys.executable, str(DRIVER), step, *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_queued_request_completes_with_logs_and_a_real_video(fake, ca, book, tmp_path):
    """fal-client asks for logs with `logs=true` (the fake answered only `logs=1` before)."""
    seen = drive(fake, ca, "complete", str(tmp_path / "out.mp4"))
    assert seen["events"][0] == "Queued" and seen["events"][-1] == "Completed" and "InProgress" in seen["events"]
    assert seen["logs"] and seen["logs"][0]["message"]
    assert seen["result"]["video"]["url"].startswith("https://127.0.0.1:")
    assert_video(tmp_path / "out.mp4", 4)
    assert book.total_submissions == 1


@pytest.mark.slow
def test_a_request_cancelled_in_the_queue_has_no_result(fake, ca, book):
    book.latency = 30.0          # still in the queue when the cancel arrives
    seen = drive(fake, ca, "cancel")
    assert seen == {"status": "Completed", "error_type": "client_cancelled", "result": 499}


@pytest.mark.slow
def test_an_unknown_endpoint_and_a_wrong_key_are_refused(fake, ca, book):
    assert drive(fake, ca, "unknown-model")["status"] == 404
    refused = drive(fake, ca, "wrong-key", key="wrong-id:wrong-secret")
    assert refused == {"status": 401, "message": "No user found for Key ID and Secret"}
    assert book.total_submissions == 0

"""`video-pipeline fakes serve --tls`: every fake over https with a certificate from a new local CA, and the
environment to use them printed, the CA file included (what an https-only SDK is told to trust)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.services import free_port
from video_pipeline.providers.fakes.fleet import FAKE_CREDENTIALS


@pytest.mark.slow
def test_fakes_serve_tls_prints_https_urls_and_the_ca_that_signs_them(tmp_path):
    base = free_port(len(FAKE_CREDENTIALS))
    env = {**os.environ, "VIDEO_PIPELINE_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "video_pipeline.cli", "fakes", "serve", "--tls", "--port",
                             str(base), "--latency", "0.2"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        printed: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while "SSL_CERT_FILE" not in printed:
            assert time.monotonic() < deadline and proc.poll() is None, "fakes serve --tls printed no CA"
            line = proc.stdout.readline().strip()
            if line.startswith("export ") and "=" in line and " " not in line.removeprefix("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                printed[key] = value
        url = printed["VIDEO_PIPELINE_REPLICATE_BASE_URL"]
        assert url == f"https://127.0.0.1:{base + list(FAKE_CREDENTIALS).index('replicate')}"
        trusted = ssl.create_default_context(cafile=printed["SSL_CERT_FILE"])
        answer = httpx.get(f"{url}/v1/predictions", headers={"Authorization": "Bearer test-replicate-token"},
                           verify=trusted)
        assert answer.status_code == 200 and answer.json()["results"] == []
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/v1/predictions", verify=ssl.create_default_context())     # the system's roots only
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

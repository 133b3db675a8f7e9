"""dashscope (Alibaba's SDK) against the fake DashScope: `dashscope.base_http_api_url` pointed at the fake."""

from __future__ import annotations

import dashscope
import httpx
import pytest
from dashscope import VideoSynthesis

from tests.sdk.conftest import assert_video, serving
from video_pipeline.providers.fakes.dashscope import create_app

KEY = "test-dashscope-key"
MODEL = "wan2.6-t2v"


@pytest.fixture
def fake(book, monkeypatch):
    with serving(create_app(book, api_key=KEY)) as server:
        monkeypatch.setattr(dashscope, "base_http_api_url", f"{server.url}/api/v1")   # the SDK's documented option
        yield server


@pytest.mark.slow
def test_async_call_then_wait_completes_with_a_real_video(fake, book, tmp_path):
    """The SDK's flow: submit, then `wait` (it polls every second or more)."""
    task = VideoSynthesis.async_call(model=MODEL, prompt="a lighthouse at dusk", size="1280*720", duration=5,
                                     api_key=KEY)
    assert task.status_code == 200 and task.output.task_status == "PENDING"
    done = VideoSynthesis.wait(task, api_key=KEY)
    assert done.output.task_status == "SUCCEEDED"
    (tmp_path / "out.mp4").write_bytes(httpx.get(done.output.video_url).content)
    assert_video(tmp_path / "out.mp4", 5)


def test_a_pending_task_can_be_cancelled(fake, book):
    book.latency = 30.0          # still pending when the cancel arrives
    task = VideoSynthesis.async_call(model=MODEL, prompt="a lighthouse", api_key=KEY)
    assert VideoSynthesis.cancel(task, api_key=KEY).status_code == 200
    assert VideoSynthesis.fetch(task, api_key=KEY).output.task_status == "CANCELED"


def test_an_unknown_model_is_refused_as_dashscope_does(fake, book):
    answer = VideoSynthesis.async_call(model="wan9.9-t2v", prompt="a lighthouse", api_key=KEY)
    assert (answer.status_code, answer.code, answer.message) == (400, "InvalidParameter", "Model not exist.")
    assert book.total_submissions == 0


def test_a_wrong_key_is_a_401_invalid_api_key(fake, book):
    answer = VideoSynthesis.async_call(model=MODEL, prompt="a lighthouse", api_key="sk-wrong")
    assert (answer.status_code, answer.code) == (401, "InvalidApiKey")
    assert book.total_submissions == 0

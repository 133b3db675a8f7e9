"""runwayml (the official SDK) against the fake Runway (`RunwayML(base_url=...)`)."""

from __future__ import annotations

import base64

import httpx
import pytest
import runwayml
from runwayml import RunwayML
from runwayml.types.task_retrieve_response import Cancelled, Running, Succeeded

from tests.sdk.conftest import assert_video, serving, wait_until
from video_pipeline.providers.fakes.runway import create_app

KEY = "test-runway-key"


@pytest.fixture
def fake(book):
    with serving(create_app(book, api_key=KEY, concurrency=10)) as server:
        yield server


def client(fake, key: str = KEY) -> RunwayML:
    return RunwayML(api_key=key, base_url=fake.url, max_retries=0)


@pytest.mark.slow
def test_wait_for_task_output_returns_a_succeeded_task_with_a_real_video(fake, book, tmp_path):
    """The SDK's documented flow; its poller waits about 6 s between polls."""
    task = client(fake).text_to_video.create(model="veo3.1_fast", prompt_text="a lighthouse at dusk",
                                             ratio="1280:720", duration=4).wait_for_task_output(timeout=60)
    assert task.status == "SUCCEEDED" and task.cost.credits == 60
    (tmp_path / "out.mp4").write_bytes(httpx.get(task.output[0]).content)
    assert_video(tmp_path / "out.mp4", 4)


def test_retrieved_tasks_are_typed_by_their_status_with_their_cost(fake, book):
    """runwayml's types need `estimatedCost` while a task runs and `cost` once it ended (without them every task
    read as pending)."""
    c = client(fake)
    book.faults.add("job", "stuck")                    # this one runs until the test ends
    running = c.text_to_video.create(model="gen4.5", prompt_text="a lighthouse", ratio="1280:720", duration=5)
    task = wait_until(lambda: (t := c.tasks.retrieve(running.id)).status == "RUNNING" and t)
    assert isinstance(task, Running) and task.estimated_cost.credits == 60.0
    created = c.text_to_video.create(model="gen4.5", prompt_text="a harbour", ratio="1280:720", duration=5)
    task = wait_until(lambda: (t := c.tasks.retrieve(created.id)).status == "SUCCEEDED" and t)
    assert isinstance(task, Succeeded) and task.cost.credits == 60 and task.output


def test_video_to_video_takes_the_sdks_aleph2(fake, book, tmp_path):
    from video_pipeline.media.render import ClipSpec, render_clip

    clip = render_clip(ClipSpec(text="source", label="src", seconds=2, width=320, height=180, seed="s",
                                preset="ultrafast"), tmp_path / "source.mp4")
    uri = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()
    c = client(fake)
    created = c.video_to_video.create(model="aleph2", video_uri=uri, prompt_text="make it snow")
    task = wait_until(lambda: (t := c.tasks.retrieve(created.id)).status == "SUCCEEDED" and t)
    assert isinstance(task, Succeeded)
    assert book.jobs[created.id].meta["model"] == "aleph2"


def test_deleting_a_pending_task_cancels_it(fake, book):
    book.latency = 30.0          # still pending when the DELETE arrives
    c = client(fake)
    created = c.text_to_video.create(model="gen4.5", prompt_text="a lighthouse", ratio="1280:720", duration=5)
    c.tasks.delete(created.id)
    task = c.tasks.retrieve(created.id)
    assert isinstance(task, Cancelled) and task.cost.credits == 0


def test_an_unknown_model_is_a_validation_error(fake, book):
    with pytest.raises(runwayml.BadRequestError) as exc:
        client(fake).text_to_video.create(model="gen9", prompt_text="x", ratio="1280:720", duration=5)
    assert exc.value.status_code == 400 and exc.value.body["issues"][0]["path"] == ["model"]
    assert book.total_submissions == 0


def test_a_wrong_key_is_an_authentication_error(fake, book):
    with pytest.raises(runwayml.AuthenticationError) as exc:
        client(fake, key="key_wrong").text_to_video.create(model="gen4.5", prompt_text="x", ratio="1280:720",
                                                             duration=5)
    assert "Invalid API key" in exc.value.body["error"]
    assert book.total_submissions == 0

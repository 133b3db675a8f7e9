"""BytePlus's Ark runtime SDK (byteplus-python-sdk-v2, `byteplussdkarkruntime.Ark(base_url=...)`) against the fake
ModelArk: content generation tasks for Seedance."""

from __future__ import annotations

import httpx
import pytest
from byteplussdkarkruntime import Ark
from byteplussdkarkruntime._exceptions import ArkAuthenticationError, ArkNotFoundError

from tests.sdk.conftest import assert_video, serving, wait_until
from video_pipeline.providers.fakes.ark import create_app

KEY = "test-ark-key"
MODEL = "dreamina-seedance-2-0-260128"
PROMPT = [{"type": "text", "text": "a lighthouse at dusk"}]


@pytest.fixture
def fake(book):
    with serving(create_app(book, api_key=KEY)) as server:
        yield server


def client(fake, key: str = KEY) -> Ark:
    return Ark(base_url=f"{fake.url}/api/v3", api_key=key, max_retries=0)


@pytest.mark.slow
def test_a_task_with_the_sdks_nulls_completes_with_a_real_video(fake, book, tmp_path):
    """The SDK sends every optional field it was not given as null (the fake refused `duration: null` before)."""
    c = client(fake)
    created = c.content_generation.tasks.create(model=MODEL, content=PROMPT)
    task = wait_until(lambda: (t := c.content_generation.tasks.get(task_id=created.id)).status == "succeeded" and t)
    (tmp_path / "out.mp4").write_bytes(httpx.get(task.content.video_url).content)
    assert_video(tmp_path / "out.mp4", 5)                       # Ark's default duration
    assert task.model == MODEL and book.total_submissions == 1


def test_the_task_list_shows_the_sdks_tasks(fake, book):
    c = client(fake)
    created = c.content_generation.tasks.create(model=MODEL, content=PROMPT, duration=4, ratio="16:9")
    listed = c.content_generation.tasks.list(page_size=10, model=MODEL, task_ids=[created.id])
    assert listed.total == 1 and [t.id for t in listed.items] == [created.id]
    assert listed.items[0].duration == 4


def test_deleting_a_queued_task_cancels_it(fake, book):
    book.latency = 30.0          # still queued when the DELETE arrives
    c = client(fake)
    created = c.content_generation.tasks.create(model=MODEL, content=PROMPT, duration=4)
    c.content_generation.tasks.delete(created.id)
    assert c.content_generation.tasks.get(task_id=created.id).status == "cancelled"


def test_an_unknown_model_is_a_404_in_arks_error_shape(fake, book):
    with pytest.raises(ArkNotFoundError) as exc:
        client(fake).content_generation.tasks.create(model="seedance-9-0", content=PROMPT)
    assert exc.value.code == "InvalidEndpointOrModel.NotFound"
    assert book.total_submissions == 0


def test_a_wrong_key_is_an_authentication_error(fake, book):
    with pytest.raises(ArkAuthenticationError) as exc:
        client(fake, key="wrong").content_generation.tasks.create(model=MODEL, content=PROMPT)
    assert exc.value.code == "AuthenticationError"
    assert book.total_submissions == 0

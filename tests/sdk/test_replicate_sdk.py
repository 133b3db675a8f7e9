"""replicate-python against the fake Replicate (`Client(base_url=...)`)."""

from __future__ import annotations

import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError

from tests.sdk.conftest import assert_video, serving, wait_until
from video_pipeline.providers.fakes.replicate import create_app, version_of

TOKEN = "test-replicate-token"
MODEL = "google/veo-3.1-fast"


@pytest.fixture
def fake(book):
    with serving(create_app(book, api_token=TOKEN)) as server:
        yield server


def client(fake, token: str = TOKEN) -> replicate.Client:
    return replicate.Client(api_token=token, base_url=fake.url)


@pytest.mark.slow
def test_run_completes_a_prediction_whose_output_is_a_real_video(fake, book, tmp_path):
    output = client(fake).run(MODEL, input={"prompt": "a lighthouse at dusk", "duration": 4})
    (tmp_path / "out.mp4").write_bytes(httpx.get(str(output)).content)
    assert_video(tmp_path / "out.mp4", 4)
    assert book.total_submissions == 1 and [j.meta["model"] for j in book.jobs.values()] == [MODEL]


def test_run_with_a_version_reads_the_version_the_sdk_asks_for(fake, book, tmp_path):
    """`run("owner/name:version")` creates the prediction, then GETs the model's version (was a 404)."""
    output = client(fake).run(f"{MODEL}:{version_of(MODEL)}", input={"prompt": "a lighthouse", "duration": 4})
    assert str(output).endswith(".mp4") or ".mp4?" in str(output)
    assert ("GET", f"/v1/models/{MODEL}/versions/{version_of(MODEL)}") in book.requests
    version = client(fake).models.get(MODEL).versions.get(version_of(MODEL))
    assert version.id == version_of(MODEL)


def test_a_prediction_canceled_while_starting_ends_canceled(fake, book):
    book.latency = 30.0          # still starting when the cancel arrives
    c = client(fake)
    prediction = c.models.predictions.create(model=MODEL, input={"prompt": "a lighthouse", "duration": 4})
    assert prediction.status == "starting"
    prediction.cancel()
    prediction.reload()
    assert prediction.status == "canceled"


@pytest.mark.parametrize("model", ["google/veo-9-imaginary", "nobody/nothing"])
def test_an_unknown_model_is_a_404_problem_detail(fake, book, model):
    with pytest.raises(ReplicateError) as exc:
        client(fake).models.predictions.create(model=model, input={"prompt": "x"})
    assert exc.value.status == 404 and exc.value.title == "Not found"
    assert book.total_submissions == 0


def test_a_wrong_token_is_a_401_problem_detail(fake, book):
    with pytest.raises(ReplicateError) as exc:
        client(fake, token="r8_wrong").models.predictions.create(model=MODEL, input={"prompt": "x"})
    assert exc.value.status == 401 and "authentication token" in exc.value.detail
    assert book.total_submissions == 0


def test_polling_sees_the_statuses_replicate_documents(fake, book):
    book.latency = 3.0           # each status lasts long enough to be seen, however loaded the machine is
    prediction = client(fake).models.predictions.create(model=MODEL, input={"prompt": "a lighthouse", "duration": 4})
    seen = [prediction.status]

    def done():
        prediction.reload()
        if prediction.status != seen[-1]:
            seen.append(prediction.status)
        return prediction.status in ("succeeded", "failed", "canceled")

    wait_until(done)
    assert seen == ["starting", "processing", "succeeded"]

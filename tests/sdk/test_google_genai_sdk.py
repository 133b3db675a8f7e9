"""google-genai against the fake Vertex AI (Vertex mode: project, location, service-account credentials) and the
fake Gemini API (Developer API mode), through `HttpOptions(base_url=...)`.

google-genai 3.x offers `generate_videos` only in Vertex mode: in Developer API mode the SDK still polls operations
and downloads files, so there the job is submitted by the pipeline's own adapter."""

from __future__ import annotations

import asyncio
import ssl

import google.auth.exceptions
import httpx
import pytest
from google import genai
from google.auth.transport.requests import AuthorizedSession
from google.genai import errors, types
from google.oauth2 import service_account

from tests.providers.conftest import request
from tests.sdk.conftest import assert_video, serving, wait_until
from video_pipeline.providers.fakes import gemini as gemini_fake
from video_pipeline.providers.fakes.vertex import ServiceAccount, create_app
from video_pipeline.providers.gemini import GeminiProvider

PROJECT, LOCATION, MODEL = "test-project", "us-central1", "veo-3.1-fast-generate-001"
ACCOUNT = ServiceAccount.new(PROJECT)
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


@pytest.fixture
def fake(book):
    with serving(create_app(book, project=PROJECT, location=LOCATION, account=ACCOUNT)) as server:
        yield server


def credentials(fake, tmp_path, account: ServiceAccount = ACCOUNT):
    key_file = account.write(tmp_path / f"{account.key_id}.json", f"{fake.url}/token", PROJECT)
    return service_account.Credentials.from_service_account_file(str(key_file), scopes=SCOPES)


def vertex(fake, tmp_path, project: str = PROJECT, account: ServiceAccount = ACCOUNT) -> genai.Client:
    return genai.Client(vertexai=True, project=project, location=LOCATION,
                        credentials=credentials(fake, tmp_path, account),
                        http_options=types.HttpOptions(base_url=fake.url, api_version="v1"))


def generate(client: genai.Client, model: str = MODEL, **config) -> types.GenerateVideosOperation:
    return client.models.generate_videos(model=model, source=types.GenerateVideosSource(prompt="a lighthouse at dusk"),
                                         config=types.GenerateVideosConfig(duration_seconds=4, number_of_videos=1,
                                                                           **config))


def finished(client: genai.Client, operation):
    box = [operation]

    def done():
        box[0] = client.operations.get(box[0])
        return box[0].done

    wait_until(done)
    return box[0]


def test_vertex_mode_generates_a_video_returned_as_bytes(fake, book, tmp_path):
    client = vertex(fake, tmp_path)
    operation = finished(client, generate(client))
    assert operation.error is None
    video = operation.result.generated_videos[0].video
    assert video.mime_type == "video/mp4" and video.uri is None
    (tmp_path / "out.mp4").write_bytes(video.video_bytes)
    assert_video(tmp_path / "out.mp4", 4)
    assert [j.meta["model"] for j in book.jobs.values()] == [MODEL]
    assert ("POST", "/token") in book.requests          # the SDK exchanged the service account's assertion


def test_vertex_mode_writes_to_cloud_storage_read_back_with_the_same_credentials(fake, book, tmp_path):
    client = vertex(fake, tmp_path)
    operation = finished(client, generate(client, output_gcs_uri="gs://campaign-outputs/veo/"))
    uri = operation.result.generated_videos[0].video.uri
    assert uri.startswith("gs://campaign-outputs/veo/") and uri.endswith(".mp4")
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    session = AuthorizedSession(credentials(fake, tmp_path))
    response = session.get(f"{fake.url}/download/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}",
                           params={"alt": "media"})
    assert response.status_code == 200
    (tmp_path / "out.mp4").write_bytes(response.content)
    assert_video(tmp_path / "out.mp4", 4)


def test_vertex_mode_refuses_an_unknown_model_and_another_project_in_googles_shape(fake, book, tmp_path):
    with pytest.raises(errors.ClientError) as exc:
        generate(vertex(fake, tmp_path), model="veo-9-imaginary")
    assert (exc.value.code, exc.value.status) == (404, "NOT_FOUND") and "veo-9-imaginary" in exc.value.message
    with pytest.raises(errors.ClientError) as exc:
        generate(vertex(fake, tmp_path, project="not-my-project"))
    assert (exc.value.code, exc.value.status) == (403, "PERMISSION_DENIED")
    assert book.total_submissions == 0


def test_vertex_mode_with_an_untrusted_key_gets_no_token(fake, book, tmp_path):
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        generate(vertex(fake, tmp_path, account=ServiceAccount.new(PROJECT, "stranger")))
    assert book.total_submissions == 0 and book.requests == [("POST", "/token")]


KEY = "test-gemini-key"
PREVIEW = "veo-3.1-fast-generate-preview"


@pytest.fixture
def gemini(book, ca):
    """The fake Gemini API over https: the SDK reads a file's name only out of an https URI."""
    with serving(gemini_fake.create_app(book, api_key=KEY), tls=ca) as server:
        yield server


def developer_client(gemini, ca, key: str = KEY) -> genai.Client:
    trust = ssl.create_default_context(cafile=str(ca.ca_file))          # httpx's documented `verify`
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gemini.url, client_args={"verify": trust}))


def submitted(gemini, ca) -> str:
    """A Veo job created by the pipeline's own adapter (trusting the same CA), its operation name."""
    adapter = GeminiProvider(KEY, base_url=gemini.url,
                             client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca.ca_file))))

    async def go():
        try:
            return await adapter.submit(request(route_model_id=PREVIEW, seconds=4))
        finally:
            await adapter.client.aclose()

    return asyncio.run(go())


def test_developer_api_mode_polls_and_downloads_what_the_pipeline_submitted(gemini, ca, book, tmp_path):
    job_id = submitted(gemini, ca)
    client = developer_client(gemini, ca)
    with pytest.raises(ValueError, match="only supported in"):
        generate(client, model=PREVIEW)                     # google-genai 3.x: Veo only in Vertex mode
    operation = finished(client, types.GenerateVideosOperation(name=job_id))
    video = operation.result.generated_videos[0].video
    (tmp_path / "out.mp4").write_bytes(client.files.download(file=video))
    assert_video(tmp_path / "out.mp4", 4)


def test_developer_api_mode_with_a_wrong_key_is_googles_api_key_invalid(gemini, ca, book):
    job_id = submitted(gemini, ca)
    client = developer_client(gemini, ca, key="wrong")
    with pytest.raises(errors.ClientError) as exc:
        client.operations.get(types.GenerateVideosOperation(name=job_id))
    assert (exc.value.code, exc.value.status) == (400, "INVALID_ARGUMENT")
    assert exc.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"

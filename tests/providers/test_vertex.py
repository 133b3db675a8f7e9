"""Vertex AI (Veo) adapter against its fake over real loopback HTTP: OAuth through a service-account key file,
predictLongRunning / fetchPredictOperation, outputs inline or in Cloud Storage."""

from __future__ import annotations

import base64
import json
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.providers.conftest import request
from tests.providers.test_gemini import FAILED_OPERATIONS
from tests.providers.contract import (
    DOWNLOAD_FAULTS,
    FAKES_ONLY,
    TRANSIENT_POLL_FAULTS,
    TRANSIENT_SUBMIT_FAULTS,
    assert_download_fault_raises,
    assert_failed_job_is_classified,
    assert_stuck_job_runs_and_cancel_is_refused_without_a_call,
    assert_terminal_before_any_call,
    assert_transient_poll_fault_retried,
    assert_wrong_key_is_fatal,
    fast_retries,
    run_to_terminal,
    submit_once,
)
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes.vertex import ServiceAccount, create_app
from video_pipeline.providers.vertex import VertexCredentials, VertexProvider, gcs_download_url, regional_base_url
from video_pipeline.storage.store import fetch

PROJECT, LOCATION = "test-project", "us-central1"
MODEL = "veo-3.1-fast-generate-001"
RESOURCE = f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}"
SUBMIT = f"/v1/{RESOURCE}:predictLongRunning"
ACCOUNT = ServiceAccount.new(PROJECT)          # the one the fake trusts
STRANGER = ServiceAccount.new(PROJECT, "someone-else")
BUCKET_URI = "gs://campaign-outputs/veo/"


@pytest.fixture
def app(book):
    return create_app(book, project=PROJECT, location=LOCATION, account=ACCOUNT)


#: the key files the adapters read (one per adapter: each names its own fake's token endpoint)
KEYS = tempfile.TemporaryDirectory(prefix="vp-vertex-keys-")


def adapter(server, key: ServiceAccount = ACCOUNT, project: str = PROJECT, storage_uri: str | None = None):
    """The adapter against `server`, its credentials a key file of `key` whose token endpoint is the fake."""
    key_file = key.write(Path(KEYS.name) / f"{uuid.uuid4().hex}.json", f"{server.url}/token", project)
    return fast_retries(VertexProvider(project, location=LOCATION, credentials=VertexCredentials(str(key_file)),
                                       base_url=server.url, storage_base_url=server.url, storage_uri=storage_uri))


def veo(job_key: str = "k1", **kw):
    return request(job_key, route_model_id=MODEL, seconds=4, **kw)


def operation_id(job_id: str) -> str:
    return job_id.rsplit("/", 1)[1]


def submit_posts(book) -> list[str]:
    return [p for m, p in book.requests if m == "POST" and p != "/token"]


def test_happy_path_with_inline_bytes_writes_a_real_mp4(connect, book, tmp_path):
    outcome = run_to_terminal(connect, veo())
    assert outcome.job_id.startswith(f"{RESOURCE}/operations/")
    assert outcome.seen == [JobState.RUNNING, JobState.SUCCEEDED]          # Vertex has no queued state
    url = outcome.status.output_url
    assert url == f"vertex-inline:{outcome.job_id}#0"
    dest = tmp_path / "out.mp4"
    assert outcome.adapter.fetch_output(url, dest) == dest.stat().st_size > 0
    assert probe(dest).duration == pytest.approx(4, abs=0.1)
    [job] = book.jobs.values()
    assert (job.meta["model"], job.seconds, book.total_submissions) == (MODEL, 4.0, 1)
    assert [p for _, p in book.requests].count("/token") == 1                 # the token is reused until it expires


def test_outputs_in_cloud_storage_download_with_the_token_only(connect, server, book, tmp_path):
    outcome = run_to_terminal(lambda: connect(storage_uri=BUCKET_URI), veo())
    [job] = book.jobs.values()
    url = outcome.status.output_url
    assert url == gcs_download_url(f"{BUCKET_URI}{job.id}/sample_0.mp4", server.url)
    assert "/download/storage/v1/b/campaign-outputs/o/veo%2F" in url
    with pytest.raises(ProviderError, match="401"):
        fetch(url, tmp_path / "anonymous.mp4", policy=FAKES_ONLY)
    headers = outcome.adapter.download_headers(url)
    assert headers["Authorization"].startswith("Bearer ya29.")
    fetch(url, tmp_path / "out.mp4", headers=headers, policy=FAKES_ONLY)
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(4, abs=0.1)
    assert outcome.adapter.fetch_output(url, tmp_path / "other.mp4") is None      # a plain download, not inline
    assert outcome.adapter.download_headers("https://evil.example/o.mp4") == {}


@pytest.mark.parametrize("fault, match", DOWNLOAD_FAULTS)
def test_expired_and_truncated_storage_downloads_are_errors_not_clips(connect, book, tmp_path, fault, match):
    outcome = run_to_terminal(lambda: connect(storage_uri=BUCKET_URI), veo())
    headers = outcome.adapter.download_headers(outcome.status.output_url)
    assert_download_fault_raises(outcome.status, book, tmp_path / "x.mp4", fault, match, headers=headers)


def test_request_body_is_veos_vertex_form(tmp_path):
    image = tmp_path / "first.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake-frame")
    portrait = replace(request(route_model_id=MODEL, seconds=6, image=image, options={"negative_prompt": "no text"}),
                       aspect_ratio="9:16", resolution="1080p")
    a = VertexProvider(PROJECT, location=LOCATION, storage_uri=BUCKET_URI)
    assert a.body(portrait) == {
        "instances": [{"prompt": request().prompt,
                       "image": {"bytesBase64Encoded": base64.b64encode(image.read_bytes()).decode(),
                                 "mimeType": "image/png"}}],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 6, "resolution": "1080p", "negativePrompt": "no text",
                       "sampleCount": 1, "generateAudio": True, "storageUri": BUCKET_URI}}
    assert a.base_url == "https://us-central1-aiplatform.googleapis.com"
    assert regional_base_url("global") == "https://aiplatform.googleapis.com"
    assert a.model_path(MODEL) == f"/v1/{RESOURCE}"


@pytest.mark.parametrize("kw, match", [({"seconds": 5}, "4/6/8"), ({"seconds": 4, "audio": "a.wav"}, "image")])
def test_inputs_veo_cannot_take_are_terminal_before_any_call(kw, match, tmp_path):
    if "audio" in kw:
        kw["audio"] = tmp_path / kw["audio"]
    assert_terminal_before_any_call(
        lambda: VertexProvider(PROJECT, location=LOCATION).body(request(route_model_id=MODEL, **kw)), match)


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_submit_faults_are_retried_and_create_exactly_one_job(connect, book, fault):
    book.faults.add("submit", fault)
    job_id = submit_once(connect, veo())
    assert operation_id(job_id) in book.jobs and book.total_submissions == 1
    assert submit_posts(book) == [SUBMIT] * 2


@pytest.mark.parametrize("fault", TRANSIENT_POLL_FAULTS)
def test_transient_poll_faults_are_retried(connect, book, fault):
    assert_transient_poll_fault_retried(connect, veo(), book, fault)


@pytest.mark.parametrize("fault, kind, text", FAILED_OPERATIONS)
def test_failed_operations_are_classified(connect, book, fault, kind, text):
    outcome = assert_failed_job_is_classified(connect, veo(), book, fault, kind=kind, says=text)
    assert outcome.seen == [JobState.RUNNING, JobState.FAILED]


def test_stuck_operation_stays_running_and_cancel_is_refused_without_a_call(connect, book):
    assert_stuck_job_runs_and_cancel_is_refused_without_a_call(connect, veo(), book)


def test_a_key_the_token_endpoint_does_not_trust_is_fatal_and_never_shown(connect, book, tmp_path):
    message = assert_wrong_key_is_fatal(lambda: submit_once(lambda: connect(key=STRANGER), veo()),
                                        book, secrets=[STRANGER.private_key_pem[40:80], STRANGER.key_id],
                                        says=["invalid_grant", "Invalid JWT Signature"])
    assert "BEGIN PRIVATE KEY" not in message
    assert book.requests == [("POST", "/token")]


def test_another_project_is_fatal_and_an_unknown_model_terminal_in_googles_shape(connect, book):
    assert_wrong_key_is_fatal(lambda: submit_once(lambda: connect(project="not-my-project"), veo()), book,
                              secrets=[], says=["HTTP 403", "PERMISSION_DENIED"])
    with pytest.raises(ProviderError) as exc:
        submit_once(connect, request(route_model_id="veo-9-imaginary", seconds=4))
    assert exc.value.kind == ProviderError.TERMINAL
    assert "HTTP 404" in str(exc.value) and "NOT_FOUND" in str(exc.value) and "veo-9-imaginary" in str(exc.value)
    assert book.total_submissions == 0


def test_missing_key_file_is_fatal_naming_the_variable(tmp_path):
    a = VertexProvider(PROJECT, location=LOCATION, credentials=VertexCredentials(str(tmp_path / "absent.json")))
    with pytest.raises(ProviderError) as exc:
        a.auth_headers()
    assert exc.value.kind == ProviderError.FATAL
    assert "GOOGLE_APPLICATION_CREDENTIALS='absent.json': cannot read it" in str(exc.value)


def test_the_key_file_holds_what_google_auth_reads(server, tmp_path):
    written = json.loads(ACCOUNT.write(tmp_path / "k.json", f"{server.url}/token", PROJECT).read_text())
    assert written["type"] == "service_account" and written["client_email"] == ACCOUNT.email
    assert (tmp_path / "k.json").stat().st_mode & 0o077 == 0


def test_key_files_of_other_kinds_are_refused_by_type(tmp_path):
    (tmp_path / "external.json").write_text(json.dumps({"type": "external_account", "audience": "x"}))
    (tmp_path / "garbage.json").write_text("{not json")
    for name, says in (("external.json", "external_account"), ("garbage.json", "not a JSON key file")):
        with pytest.raises(ProviderError, match=says) as exc:
            VertexCredentials(str(tmp_path / name)).token()
        assert exc.value.kind == ProviderError.FATAL


OP = f"{RESOURCE}/operations/abc123"


@pytest.mark.parametrize("payload, state, kind, url", [
    ({"name": OP}, JobState.RUNNING, None, None),
    ({"name": OP, "done": False}, JobState.RUNNING, None, None),
    ({"name": OP, "done": True, "response": {"videos": [{"gcsUri": "gs://b/p/v.mp4", "mimeType": "video/mp4"}]}},
     JobState.SUCCEEDED, None, "https://storage.googleapis.com/download/storage/v1/b/b/o/p%2Fv.mp4?alt=media"),
    ({"name": OP, "done": True, "response": {"videos": [{"bytesBase64Encoded": "AAAA", "mimeType": "video/mp4"}]}},
     JobState.SUCCEEDED, None, f"vertex-inline:{OP}#0"),
    ({"name": OP, "done": True, "response": {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["blocked"]}},
     JobState.FAILED, ProviderError.TERMINAL, None),
    ({"name": OP, "done": True, "error": {"code": 3, "message": "bad image"}}, JobState.FAILED, ProviderError.TERMINAL,
     None),
    ({"name": OP, "done": True, "error": {"code": 7, "message": "denied"}}, JobState.FAILED, ProviderError.FATAL, None),
    ({"name": OP, "done": True, "error": {"code": 13, "message": "internal"}}, JobState.FAILED,
     ProviderError.RETRYABLE, None),
    ({"name": OP, "done": True, "response": {"videos": []}}, JobState.FAILED, ProviderError.RETRYABLE, None),
])
def test_status_mapping_from_documented_operations(payload, state, kind, url):
    status = VertexProvider.status_from(payload)
    assert (status.state, status.error_kind, status.output_url) == (state, kind, url)


@pytest.mark.parametrize("status, body, kind", [
    (401, {"error": {"code": 401, "message": "invalid credentials", "status": "UNAUTHENTICATED"}}, ProviderError.FATAL),
    (403, {"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}}, ProviderError.FATAL),
    (400, {"error": {"code": 400, "message": "durationSeconds", "status": "INVALID_ARGUMENT"}}, ProviderError.TERMINAL),
    (404, {"error": {"code": 404, "message": "Publisher Model not found", "status": "NOT_FOUND"}},
     ProviderError.TERMINAL),
    (429, {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}, ProviderError.RETRYABLE),
])
def test_http_errors_are_classified_from_googles_error_envelope(status, body, kind):
    response = httpx.Response(status, json=body)
    a = VertexProvider(PROJECT, location=LOCATION)
    assert a.error_kind(response) == kind
    assert body["error"]["status"] in a.error_message(response)


def test_the_settings_configure_vertex_from_the_sdks_variable_names(tmp_path):
    from video_pipeline.config import Settings, SettingsError
    from video_pipeline.providers.live import configured_providers

    key_file = ACCOUNT.write(tmp_path / "key.json", "https://oauth2.googleapis.com/token", PROJECT)
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "our-project", "GOOGLE_CLOUD_LOCATION": "europe-west4",
                                  "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
                                  "VIDEO_PIPELINE_VERTEX_STORAGE_URI": "gs://our-bucket/veo/"})
    vertex = configured_providers(settings)["vertex"]
    assert (vertex.project, vertex.location, vertex.storage_uri) == ("our-project", "europe-west4", "gs://our-bucket/veo/")
    assert vertex.base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert vertex.storage_base_url == "https://storage.googleapis.com"
    assert vertex._credentials.key_file == str(key_file)
    assert "vertex" not in configured_providers(Settings.from_env({"GOOGLE_CLOUD_PROJECT": "our-project"}))
    with pytest.raises(SettingsError, match="VIDEO_PIPELINE_VERTEX_STORAGE_URI='s3://b/': expected a Cloud Storage"):
        Settings.from_env({"VIDEO_PIPELINE_VERTEX_STORAGE_URI": "s3://b/"})


def test_fake_mode_fakes_only_the_providers_whose_variables_are_set():
    from video_pipeline.config import Settings
    from video_pipeline.flow.stages import live_provider_names
    from video_pipeline.providers.fakes.fleet import fixed_environment

    only_vertex = Settings(mode="fake", secrets={"GOOGLE_CLOUD_PROJECT": "ours", "GOOGLE_CLOUD_LOCATION": "eu"})
    assert live_provider_names(only_vertex) == {"vertex"}
    assert live_provider_names(Settings(mode="fake")) is None          # none set: every fake
    env = fixed_environment(9000, frozenset({"vertex"}))
    assert env["GOOGLE_CLOUD_PROJECT"] == "test-project" and "GEMINI_API_KEY" not in env
    assert env["VIDEO_PIPELINE_VERTEX_BASE_URL"] == env["VIDEO_PIPELINE_VERTEX_STORAGE_BASE_URL"] == "http://127.0.0.1:9008"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"].endswith("video-pipeline-fakes-9000/vertex-service-account.json")

"""Google Veo 3.x through Vertex AI: a long-running prediction per video, on the regional endpoint.

Submit `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predictLongRunning` with
`{instances: [{prompt, image?}], parameters: {aspectRatio, durationSeconds, resolution, sampleCount, generateAudio,
storageUri?}}` → `{name: "projects/…/publishers/google/models/{model}/operations/{id}"}`; poll `POST
…/models/{model}:fetchPredictOperation` with `{operationName}` until `done`. The result is
`response.videos[]`, each `{gcsUri, mimeType}` when `storageUri` was given, else `{bytesBase64Encoded, mimeType}`;
`raiMediaFilteredCount` counts samples the safety filter removed; a failed operation carries `error` (a
google.rpc.Status). Host: `https://{location}-aiplatform.googleapis.com` (`https://aiplatform.googleapis.com` for
location `global`). Auth: `Authorization: Bearer <OAuth access token>` for the cloud-platform scope, from a
service-account (or any ADC) key file at GOOGLE_APPLICATION_CREDENTIALS, else Application Default Credentials
(google-auth). Sources: googleapis/python-genai `models.py` (`_GenerateVideosParameters_to_vertex`),
`operations.py` (`_fetch_predict_videos_operation`), `_operations_converters.py` (`_Video_from_vertex`),
`_api_client.py` (regional host); cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation.

Outputs: a `gs://bucket/object` is read through the Cloud Storage JSON API (`GET
/download/storage/v1/b/{bucket}/o/{object}?alt=media`) with the same token (`download_headers` gives it only to the
storage host). Inline bytes are not kept in the ledger: their output URL is `vertex-inline:{operation}#{n}`, and
`fetch_output` fetches the operation again and writes sample n (the operation keeps its result). No cancel call.
Unconfirmed: how long an operation keeps inline bytes; `generateAudio` is sent as the catalog's Veo models make
sound (Vertex documents it as required for Veo 3).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import threading
from pathlib import Path
from urllib.parse import quote

import httpx

from video_pipeline.errors import ProviderError
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.gemini import (
    URL_LIFETIME,
    GoogleErrors,
    operation_failure,
    rai_filtered,
    same_origin,
    veo_body,
)
from video_pipeline.providers.http import USER_AGENT, HttpProvider

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
API_VERSION = "v1"
STORAGE_BASE_URL = "https://storage.googleapis.com"
INLINE_SCHEME = "vertex-inline"
MAX_INLINE_VIDEO_BYTES = 512 * 1024 * 1024
CREDENTIALS_VARIABLE = "GOOGLE_APPLICATION_CREDENTIALS"


def regional_base_url(location: str) -> str:
    """Vertex AI's endpoint for a location: regional hosts, one global host."""
    return "https://aiplatform.googleapis.com" if location == "global" else f"https://{location}-aiplatform.googleapis.com"


def gcs_download_url(gcs_uri: str, storage_base_url: str = STORAGE_BASE_URL) -> str:
    """`gs://bucket/path/to/object` as the Cloud Storage JSON API's media download URL."""
    bucket, _, name = gcs_uri.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise ValueError(f"not a gs://bucket/object URI: {gcs_uri!r}")
    return f"{storage_base_url.rstrip('/')}/download/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"


class VertexCredentials:
    """OAuth access tokens for the cloud-platform scope (google-auth), refreshed before they expire.

    From the key file when one is named (a service account's or an authorized user's), else Application Default
    Credentials (google-auth's `default`: gcloud's login, the metadata server). The file's name is shown in
    errors; its content never is."""

    def __init__(self, key_file: str | None = None):
        self.key_file = key_file
        self._credentials = None
        self._lock = threading.Lock()

    def _load(self):
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        if self.key_file:
            return self._from_file(Path(self.key_file))
        try:
            credentials, _ = google.auth.default(scopes=list(SCOPES))
        except DefaultCredentialsError as exc:
            raise self._refused(f"no {CREDENTIALS_VARIABLE} and no Application Default Credentials "
                                f"({_first_line(exc)})") from None
        return credentials

    def _from_file(self, path: Path):
        """A service-account or authorized-user key file, each read by its own google-auth loader (the generic
        loader also takes external-account files, whose URLs google-auth asks callers to vet)."""
        from google.oauth2 import credentials as user_credentials
        from google.oauth2 import service_account

        where = f"{CREDENTIALS_VARIABLE}={path.name!r}"
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise self._refused(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
        except ValueError:
            raise self._refused(f"{where} is not a JSON key file") from None
        kind = info.get("type") if isinstance(info, dict) else None
        try:
            if kind == "service_account":
                return service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
            if kind == "authorized_user":
                return user_credentials.Credentials.from_authorized_user_info(info, scopes=list(SCOPES))
        except (ValueError, KeyError) as exc:
            raise self._refused(f"{where}: {_first_line(exc)}") from None
        raise self._refused(f"{where} holds a key of type {kind!r}")

    @staticmethod
    def _refused(why: str) -> ProviderError:
        return ProviderError(f"Vertex AI credentials could not be loaded: {why}; expected a service-account key "
                             "file (JSON), an authorized-user file (`gcloud auth application-default login`) or "
                             "Application Default Credentials", kind=ProviderError.FATAL, provider="vertex")

    def token(self) -> str:
        """A valid access token (blocking: refreshes over the network when needed)."""
        from google.auth.exceptions import RefreshError, TransportError
        from google.auth.transport.requests import Request

        with self._lock:
            if self._credentials is None:
                self._credentials = self._load()
            if not self._credentials.valid:
                try:
                    self._credentials.refresh(Request())
                except RefreshError as exc:
                    raise ProviderError(f"Vertex AI refused the credentials: {_first_line(exc)}",
                                        kind=ProviderError.FATAL, provider="vertex") from None
                except TransportError as exc:
                    raise ProviderError(f"could not reach Google's token endpoint: {_first_line(exc)}",
                                        kind=ProviderError.RETRYABLE, provider="vertex") from None
            return self._credentials.token


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


class VertexProvider(GoogleErrors, HttpProvider):
    name = "vertex"
    default_base_url = ""        # regional: `regional_base_url(location)`
    #: configured when the project and location are set (the names google-genai and gcloud use); the credentials
    #: come from GOOGLE_APPLICATION_CREDENTIALS when set, else Application Default Credentials
    env_keys = ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION")

    def __init__(self, project: str, *, location: str, credentials: VertexCredentials | None = None,
                 storage_base_url: str | None = None, storage_uri: str | None = None, base_url: str | None = None,
                 **kw):
        super().__init__(base_url=base_url or regional_base_url(location), **kw)
        self.project, self.location = project, location
        self._credentials = credentials or VertexCredentials()
        self.storage_base_url = (storage_base_url or STORAGE_BASE_URL).rstrip("/")
        self.storage_uri = storage_uri       # gs://bucket/prefix/ for outputs; None: bytes in the operation

    @classmethod
    def from_keys(cls, keys, **kw) -> "VertexProvider":
        key_file = (keys.get(CREDENTIALS_VARIABLE) or "").strip() or None
        return cls(keys["GOOGLE_CLOUD_PROJECT"].strip(), location=keys["GOOGLE_CLOUD_LOCATION"].strip(),
                   credentials=VertexCredentials(key_file), **kw)

    # --- auth -----------------------------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._credentials.token()}"}

    async def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        await asyncio.to_thread(self._credentials.token)      # a refresh blocks: not on the event loop
        return await super().request(method, path, **kwargs)

    def download_headers(self, url: str) -> dict[str, str]:
        """The bearer token, but only for the storage host the outputs are read from."""
        return self.auth_headers() if same_origin(url, self.storage_base_url) else {}

    # --- the protocol -----------------------------------------------------------------------------------------

    def model_path(self, model: str) -> str:
        return f"/{API_VERSION}/projects/{self.project}/locations/{self.location}/publishers/google/models/{model}"

    def body(self, request: GenerationRequest) -> dict:
        body = veo_body(request, self.name)
        body["parameters"].update(sampleCount=1, generateAudio=True)
        if self.storage_uri:
            body["parameters"]["storageUri"] = self.storage_uri
        return body

    async def submit(self, request: GenerationRequest) -> str:
        response = await self.request("POST", f"{self.model_path(request.route_model_id)}:predictLongRunning",
                                      json=self.body(request))
        return response.json()["name"]

    def _fetch_path(self, job_id: str) -> str:
        resource = job_id.rpartition("/operations/")[0]
        if not resource.startswith("projects/"):
            raise ProviderError(f"not a Vertex AI operation name: {job_id!r}", kind=ProviderError.TERMINAL,
                                provider=self.name, job_id=job_id)
        return f"/{API_VERSION}/{resource}:fetchPredictOperation"

    async def poll(self, job_id: str) -> JobStatus:
        response = await self.request("POST", self._fetch_path(job_id), job_id=job_id,
                                      json={"operationName": job_id})
        return self.status_from(response.json(), self.storage_base_url)

    @staticmethod
    def status_from(operation: dict, storage_base_url: str = STORAGE_BASE_URL) -> JobStatus:
        """Map a Vertex AI operation (as fetchPredictOperation returns it) onto the common status."""
        if not operation.get("done"):
            return JobStatus(JobState.RUNNING)
        if error := operation.get("error"):
            return operation_failure(error)
        result = operation.get("response") or {}
        for index, video in enumerate(result.get("videos") or []):
            if video.get("gcsUri"):
                url = gcs_download_url(video["gcsUri"], storage_base_url)
            elif video.get("bytesBase64Encoded"):
                url = f"{INLINE_SCHEME}:{operation['name']}#{index}"
            else:
                continue
            return JobStatus(JobState.SUCCEEDED, progress=1.0, output_url=url,
                             url_expires_at=dt.datetime.now(dt.timezone.utc) + URL_LIFETIME)
        if result.get("raiMediaFilteredCount"):
            return rai_filtered(result)
        return JobStatus(JobState.FAILED, error="operation finished without a video",
                         error_kind=ProviderError.RETRYABLE)

    def fetch_output(self, url: str, dest: Path) -> int | None:
        """Write an inline output (`vertex-inline:{operation}#{n}`) to `dest`: the operation fetched again, its
        sample n decoded. None for any other URL (downloaded as usual)."""
        if not url.startswith(f"{INLINE_SCHEME}:"):
            return None
        operation, _, index = url.removeprefix(f"{INLINE_SCHEME}:").rpartition("#")
        with httpx.Client(timeout=120.0, headers={"user-agent": USER_AGENT}) as client:
            response = client.post(self.url(self._fetch_path(operation)), json={"operationName": operation},
                                   headers=self.auth_headers())
        if response.status_code >= 400:
            raise ProviderError(f"fetching the output of {operation}: HTTP {response.status_code}: "
                                f"{self.error_message(response)}", kind=self.error_kind(response), provider=self.name)
        try:
            video = (response.json().get("response") or {}).get("videos", [])[int(index)]
            data = base64.b64decode(video["bytesBase64Encoded"], validate=True)
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
            raise ProviderError(f"the operation {operation} no longer holds output {index} ({type(exc).__name__})",
                                provider=self.name) from None
        if len(data) > MAX_INLINE_VIDEO_BYTES:
            raise ProviderError(f"inline output of {len(data)} bytes is over the {MAX_INLINE_VIDEO_BYTES}-byte cap",
                                kind=ProviderError.TERMINAL, provider=self.name)
        dest.write_bytes(data)
        return len(data)


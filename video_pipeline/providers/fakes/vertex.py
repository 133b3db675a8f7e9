"""A fake Vertex AI for Veo: predictLongRunning and fetchPredictOperation on the publisher-model path (v1 and
v1beta1, as google-genai calls them), Google's OAuth token endpoint for a service account, and Cloud Storage's
media download for outputs written to a `storageUri`.

Auth as Google does it: `POST /token` takes a service-account assertion (`grant_type=urn:ietf:params:oauth:
grant-type:jwt-bearer`, an RS256 JWT signed with the account's key, `aud` Google's token endpoint, a `scope` with
cloud-platform) and answers `{access_token, expires_in, token_type}`; every other call needs `Authorization: Bearer
<that token>`. `ServiceAccount` makes a key pair and writes the key file google-auth reads (its `token_uri` points
here). A bad assertion is a 400 `invalid_grant`; a missing or unknown token a 401 UNAUTHENTICATED; another project
a 403 PERMISSION_DENIED; another location or an unknown model a 404 NOT_FOUND (Google's error envelope).

Results: with `parameters.storageUri` the operation lists `{gcsUri, mimeType}` under that prefix, served by `GET
/download/storage/v1/b/{bucket}/o/{object}?alt=media` to the same bearer; without it, `{bytesBase64Encoded,
mimeType}` inline. `fail-policy` ends with `raiMediaFilteredCount` and no video; `fail-invalid` and
`fail-retryable` with an operation `error` (google.rpc codes 3 and 13).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import injected, json_body, serve_video
from video_pipeline.providers.fakes.gemini import FAILURES, HTTP_STATUS, RAI_REASON
from video_pipeline.providers.fakes.jobs import JobBook

#: Veo models Vertex AI serves (the Vertex model pages; veo-3.0-*-001 were retired on 2026-06-30)
MODELS = {"veo-3.1-generate-001", "veo-3.1-fast-generate-001", "veo-3.1-generate-preview",
          "veo-3.1-fast-generate-preview"}
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: the audience Google's token endpoint wants in an assertion (google-auth sets it whatever the key file's token_uri)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
TOKEN_SECONDS = 3600
RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
PREFIX = "/{version:str}/projects/{project:str}/locations/{location:str}/publishers/google/models/{model:str}"
API_VERSIONS = ("v1", "v1beta1")


@dataclass(frozen=True)
class ServiceAccount:
    """A service account's identity and RSA key, as the fake knows it and as a key file carries it."""

    email: str
    key_id: str
    private_key_pem: str

    @classmethod
    def new(cls, project: str = "test-project", name: str = "video-pipeline") -> "ServiceAccount":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return cls(f"{name}@{project}.iam.gserviceaccount.com", secrets.token_hex(20), pem)

    def public_key(self):
        return serialization.load_pem_private_key(self.private_key_pem.encode(), password=None).public_key()

    def key_file(self, token_uri: str, project: str) -> dict:
        """The JSON key file google-auth's `load_credentials_from_file` reads."""
        return {"type": "service_account", "project_id": project, "private_key_id": self.key_id,
                "private_key": self.private_key_pem, "client_email": self.email, "client_id": "100000000000000000000",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
                "universe_domain": "googleapis.com"}

    def write(self, path: Path, token_uri: str, project: str) -> Path:
        """Write the key file (owner-readable only) and return its path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(self.key_file(token_uri, project), indent=2))
        return path


def _error(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message, "status": HTTP_STATUS.get(status, "INTERNAL")
                      if status != 401 else "UNAUTHENTICATED"}}


def _reply(status: int, message: str) -> JSONResponse:
    return JSONResponse(_error(status, message), status_code=status)


def problem_with(body: object) -> str | None:
    """Why Vertex would refuse this predictLongRunning body (the INVALID_ARGUMENT message), or None."""
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        return "instances must hold exactly one instance"
    instance, params = instances[0], body.get("parameters") or {}
    if not isinstance(params, dict):
        return "parameters must be an object"
    prompt, image = instance.get("prompt"), instance.get("image")
    if prompt is not None and not isinstance(prompt, str):
        return "instances[0].prompt must be a string"
    if not prompt and image is None:
        return "A prompt or an image is required."
    if image is not None and not (isinstance(image, dict) and image.get("mimeType")
                                  and (image.get("bytesBase64Encoded") or image.get("gcsUri"))):
        return "instances[0].image needs mimeType and bytesBase64Encoded or gcsUri"
    checks = (("durationSeconds", lambda v: isinstance(v, int) and not isinstance(v, bool) and v in (4, 6, 8),
               "durationSeconds must be 4, 6 or 8"),
              ("aspectRatio", lambda v: v in ("16:9", "9:16"), "aspectRatio must be 16:9 or 9:16"),
              ("resolution", lambda v: v in ("720p", "1080p", "4k"), "resolution must be 720p, 1080p or 4k"),
              ("sampleCount", lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4,
               "sampleCount must be 1 to 4"),
              ("generateAudio", lambda v: isinstance(v, bool), "generateAudio must be a boolean"),
              ("storageUri", lambda v: isinstance(v, str) and v.startswith("gs://") and len(v) > 5,
               "storageUri must be a gs:// URI"))
    for name, ok, message in checks:
        if params.get(name) is not None and not ok(params[name]):
            return message
    return None


def create_app(book: JobBook, project: str = "test-project", location: str = "us-central1",
               account: ServiceAccount | None = None) -> Starlette:
    """`account`: the service account whose assertions the token endpoint accepts (default: a new one, on
    `app.state.account`)."""
    account = account or ServiceAccount.new(project)
    tokens: dict[str, float] = {}          # access token → expiry

    def unauthenticated(request: Request) -> JSONResponse | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if tokens.get(token, 0) < time.time():
            return _reply(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                               "login cookie or other valid authentication credential.")
        return None

    def resource_problem(request: Request) -> JSONResponse | None:
        p = request.path_params
        if p["version"] not in API_VERSIONS:
            return _reply(404, f"API version {p['version']} not found")
        if p["project"] != project:
            return _reply(403, f"Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform."
                               f"googleapis.com/projects/{p['project']}/locations/{p['location']}/publishers/google/"
                               f"models/{p['model']}' (or it may not exist).")
        if p["location"] != location or p["model"] not in MODELS:
            return _reply(404, f"Publisher Model `projects/{p['project']}/locations/{p['location']}/publishers/"
                               f"google/models/{p['model']}` not found.")
        return None

    async def token(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        refused = JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                               status_code=400)
        if form.get("grant_type") != JWT_BEARER:
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"},
                                status_code=400)
        try:
            claims = jwt.decode(str(form.get("assertion", "")), account.public_key(), algorithms=["RS256"],
                                audience=[GOOGLE_TOKEN_URI, str(request.url.replace(query=""))],
                                options={"require": ["iss", "exp", "aud"]})
        except jwt.InvalidTokenError:
            return refused
        if claims.get("iss") != account.email or SCOPE not in str(claims.get("scope", "")).split():
            return refused
        access = f"ya29.fake-{secrets.token_urlsafe(24)}"
        tokens[access] = time.time() + TOKEN_SECONDS
        return JSONResponse({"access_token": access, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"})

    async def predict(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if (denied := unauthenticated(request) or resource_problem(request)) is not None:
            return denied
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        body = await json_body(request)
        if (problem := problem_with(body)) is not None:
            return _reply(400, problem)
        instance, params = body["instances"][0], body.get("parameters") or {}
        model = request.path_params["model"]
        job = book.create(body, instance.get("prompt") or "image to video", params.get("durationSeconds") or 8,
                          params.get("aspectRatio") or "16:9", model=model,
                          resolution=params.get("resolution") or "720p", storage_uri=params.get("storageUri"),
                          image=instance.get("image") is not None)
        return JSONResponse({"name": f"projects/{project}/locations/{location}/publishers/google/models/{model}"
                                     f"/operations/{job.id}"})

    def operation_json(job, name: str) -> dict:
        phase = job.phase()
        if phase in ("queued", "running"):
            return {"name": name}        # proto3 JSON omits done=false
        if phase == "failed" and job.fault in FAILURES:
            return {"name": name, "done": True, "error": FAILURES[job.fault]}
        if phase == "failed":
            return {"name": name, "done": True, "response": {"@type": RESPONSE_TYPE, "raiMediaFilteredCount": 1,
                                                             "raiMediaFilteredReasons": [RAI_REASON]}}
        if job.meta.get("storage_uri"):
            video = {"gcsUri": f"{job.meta['storage_uri'].rstrip('/')}/{job.id}/sample_0.mp4", "mimeType": "video/mp4"}
        else:
            video = {"bytesBase64Encoded": base64.b64encode(book.mp4(job)).decode("ascii"), "mimeType": "video/mp4"}
        return {"name": name, "done": True, "response": {"@type": RESPONSE_TYPE, "videos": [video]}}

    async def fetch(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if (denied := unauthenticated(request) or resource_problem(request)) is not None:
            return denied
        if (fault := await injected(book, "poll", _error)) is not None:
            return fault
        body = await json_body(request)
        name = body.get("operationName") if isinstance(body, dict) else None
        p = request.path_params
        resource = f"projects/{p['project']}/locations/{p['location']}/publishers/google/models/{p['model']}"
        if not isinstance(name, str) or not name.startswith(f"{resource}/operations/"):
            return _reply(400, "operationName must name an operation of this model")
        job = book.get(name.rpartition("/")[2])
        if job is None or job.meta.get("model") != p["model"]:
            return _reply(404, f"Operation {name} not found.")
        return JSONResponse(operation_json(job, name))

    async def storage(request: Request) -> Response:
        book.requests.append(("GET", request.url.path))
        if (denied := unauthenticated(request)) is not None:
            return denied
        bucket, name = request.path_params["bucket"], request.path_params["object"]
        job_id = name.rsplit("/", 2)[-2] if name.count("/") >= 1 else ""
        job = book.get(job_id)
        stored = job.meta.get("storage_uri", "") if job is not None else ""
        if (job is None or request.query_params.get("alt") != "media" or not stored
                or f"gs://{bucket}/{name}" != f"{stored.rstrip('/')}/{job.id}/sample_0.mp4"):
            return _reply(404, f"No such object: {bucket}/{name}")
        return serve_video(book, job, book.faults.take("download"))

    app = Starlette(routes=[
        Route("/token", token, methods=["POST"]),
        Route(PREFIX + ":predictLongRunning", predict, methods=["POST"]),
        Route(PREFIX + ":fetchPredictOperation", fetch, methods=["POST"]),
        Route("/download/storage/v1/b/{bucket:str}/o/{object:path}", storage, methods=["GET"]),
    ])
    app.state.account = account
    app.state.project, app.state.location = project, location
    return app


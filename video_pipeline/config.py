"""Settings read from `VIDEO_PIPELINE_*` environment variables (one place, one prefix): the only module that reads
the process environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from video_pipeline.errors import PipelineError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_PREFIX = "VIDEO_PIPELINE_"

#: Every variable the project reads, with its default and meaning (the README lists these).
VARIABLES: dict[str, tuple[str, str]] = {
    "VIDEO_PIPELINE_MODE": ("local", "`local` renders every clip offline; `fake` runs the live adapters against the "
                            "fake servers of `video-pipeline fakes serve`; `live` calls the providers whose keys are set"),
    "VIDEO_PIPELINE_FAKES_PORT": ("8710", "first port of `video-pipeline fakes serve` (one port per provider)"),
    "VIDEO_PIPELINE_TIME_SCALE": ("0.02", "local provider: simulated wait = model latency sample x this factor"),
    "VIDEO_PIPELINE_DATA_DIR": ("./data", "campaign inbox, archive, clip store, tables and outputs"),
    "VIDEO_PIPELINE_CATALOG": ("<data dir>/catalog.yaml", "the model catalog file"),
    "VIDEO_PIPELINE_X264_PRESET": ("veryfast", "x264 preset for rendering and assembly"),
    "VIDEO_PIPELINE_FONT": ("bundled DejaVu Sans", "font file for text drawn by the local provider"),
    "VIDEO_PIPELINE_SEED": ("0", "seed for the local provider's simulated latencies"),
    "VIDEO_PIPELINE_WEBHOOKS": ("0", "1: the engine also wakes on webhook deliveries written to the ledger (polling stays on)"),
    "VIDEO_PIPELINE_WEBHOOK_URL": ("unset", "public base URL of `webhooks serve`; adapters register it with providers"),
    "VIDEO_PIPELINE_WEBHOOK_TOKEN": ("unset", "shared token for providers that sign nothing (MiniMax, Kling)"),
    "VIDEO_PIPELINE_FAL_JWKS_URL": ("fal's JWKS", "keys that verify fal's webhook signatures (or _FILE for a file)"),
    "VIDEO_PIPELINE_FAL_USER_ID": ("unset", "your fal account's user id: the webhook receiver then refuses fal "
                                   "deliveries signed for any other account"),
    "VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL": ("fal's platform API", "where fal's request listing is read to find a "
                                             "submit whose answer was lost"),
    "VIDEO_PIPELINE_VERTEX_STORAGE_URI": ("unset", "Veo on Vertex AI: a gs://bucket/prefix/ where Vertex writes the "
                                          "videos (read back with the same credentials); unset, they come back "
                                          "inline in the operation"),
    "VIDEO_PIPELINE_DOWNLOAD_HOSTS": ("unset", "live mode: extra comma-separated domains provider results may be "
                                      "downloaded from (https, public addresses only), beside the known provider hosts"),
    "VIDEO_PIPELINE_LEDGER_URL": ("sqlite:///<data dir>/ledger.sqlite", "SQLAlchemy URL of the job ledger and model observations"),
    "VIDEO_PIPELINE_PROFILE": ("local", "`local`: clips under the data directory; `production`: clips in S3, ledger on "
                               "PostgreSQL (docs/deployment.md); Dagster's own storage follows DAGSTER_HOME's dagster.yaml"),
    "VIDEO_PIPELINE_S3_BUCKET": ("unset", "production profile: the bucket that keeps clips and finished outputs"),
    "VIDEO_PIPELINE_S3_PREFIX": ("video-pipeline", "production profile: key prefix inside the bucket"),
    "VIDEO_PIPELINE_S3_ENDPOINT_URL": ("AWS", "production profile: an S3-compatible endpoint (MinIO, moto, a region)"),
    "VIDEO_PIPELINE_EXECUTOR": ("multiprocess", "how a run executes its steps: `multiprocess`, `in_process` or `celery`"),
    "VIDEO_PIPELINE_CELERY_BROKER": ("redis://127.0.0.1:6379/0", "`celery` executor: the broker URL workers listen on"),
    "VIDEO_PIPELINE_CELERY_BACKEND": ("redis://127.0.0.1:6379/1", "`celery` executor: the result backend URL"),
    "VIDEO_PIPELINE_C2PA_CERT": ("unset", "Content Credentials: the signing certificate chain (PEM text or a file), "
                                 "signer first; unset: an untrusted development chain made under the data directory"),
    "VIDEO_PIPELINE_C2PA_KEY": ("unset", "Content Credentials: the signing certificate's private key (PEM text or a "
                                "file); a secret, never logged"),
    "VIDEO_PIPELINE_C2PA_ALG": ("es256", "Content Credentials: the key's signing algorithm: es256, es384, es512, "
                                "ps256, ps384, ps512 or ed25519"),
    "VIDEO_PIPELINE_C2PA_TSA_URL": ("unset", "Content Credentials: an RFC 3161 timestamp authority that countersigns "
                                    "each manifest"),
    "VIDEO_PIPELINE_C2PA_TRUST_ANCHORS": ("unset", "Content Credentials: a PEM file of root certificates the "
                                          "verification check trusts (the development CA is trusted without it)"),
}

PROFILES = ("local", "production")
EXECUTORS = ("multiprocess", "in_process", "celery")

MODES = ("local", "fake", "live")
#: the signing algorithms C2PA allows (VIDEO_PIPELINE_C2PA_ALG)
C2PA_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

#: the names the providers' own SDKs read their keys and webhook secrets from (read here, and nowhere else)
SECRET_VARIABLES = ("GEMINI_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY", "MINIMAX_API_KEY", "ARK_API_KEY",
                    "DASHSCOPE_API_KEY", "FAL_KEY", "REPLICATE_API_TOKEN", "RUNWAYML_API_SECRET", "OPENAI_API_KEY",
                    "ELEVENLABS_API_KEY", "REPLICATE_WEBHOOK_SECRET", "GEMINI_WEBHOOK_SECRET",
                    # Vertex AI (Veo): the project and location google-genai and gcloud read, and the key file of
                    # Application Default Credentials (a path: the file itself is the secret)
                    "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS")
#: VIDEO_PIPELINE_<NAME>_BASE_URL points an adapter (or fal's platform API) somewhere else, e.g. at a fake
BASE_URL_SUFFIX = "_BASE_URL"

#: field → environment variable, for the fields read from one variable each
_FIELD_VARIABLES = {
    "mode": "MODE", "fakes_port": "FAKES_PORT", "time_scale": "TIME_SCALE", "data_dir": "DATA_DIR",
    "catalog_path": "CATALOG", "x264_preset": "X264_PRESET", "font_path": "FONT", "seed": "SEED",
    "webhooks": "WEBHOOKS", "webhook_url": "WEBHOOK_URL", "webhook_token": "WEBHOOK_TOKEN",
    "fal_jwks_url": "FAL_JWKS_URL", "fal_jwks_file": "FAL_JWKS_FILE", "fal_user_id": "FAL_USER_ID",
    "download_hosts": "DOWNLOAD_HOSTS", "vertex_storage_uri": "VERTEX_STORAGE_URI",
    "ledger": "LEDGER_URL", "profile": "PROFILE", "s3_bucket": "S3_BUCKET", "s3_prefix": "S3_PREFIX",
    "s3_endpoint_url": "S3_ENDPOINT_URL", "executor": "EXECUTOR", "celery_broker": "CELERY_BROKER",
    "celery_backend": "CELERY_BACKEND", "c2pa_cert": "C2PA_CERT", "c2pa_key": "C2PA_KEY", "c2pa_alg": "C2PA_ALG",
    "c2pa_tsa_url": "C2PA_TSA_URL", "c2pa_trust_anchors": "C2PA_TRUST_ANCHORS",
}
#: fields whose value comes from a variable outside the VIDEO_PIPELINE_ prefix (a standard name)
_FOREIGN_VARIABLES = {"aws_region": "AWS_REGION", "dagster_home": "DAGSTER_HOME"}


class SettingsError(PipelineError, ValueError):
    """An environment variable (or a run's override) holds a value the pipeline cannot use."""


class Settings(BaseModel):
    """Everything the pipeline is told from outside, resolved once: by `from_env` from the environment (the one
    reader of `os.environ` in the project) or by a run's resource overrides. Every part receives this object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["local", "fake", "live"] = "local"
    fakes_port: int = Field(default=8710, ge=1, le=65535)
    time_scale: float = Field(default=0.02, ge=0, allow_inf_nan=False)
    data_dir: Path = PROJECT_ROOT / "data"
    catalog_path: Path | None = None
    x264_preset: Literal[X264_PRESETS] = "veryfast"   # type: ignore[valid-type]
    font_path: Path | None = None
    seed: int = 0
    ledger: str | None = None
    webhooks: bool = False
    webhook_url: str | None = None
    webhook_token: SecretStr | None = None
    fal_jwks_url: str | None = None
    fal_jwks_file: Path | None = None
    fal_user_id: str | None = None
    download_hosts: tuple[str, ...] = ()
    vertex_storage_uri: str | None = None
    profile: Literal["local", "production"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = "video-pipeline"
    s3_endpoint_url: str | None = None
    aws_region: str | None = None
    executor: Literal["multiprocess", "in_process", "celery"] = "multiprocess"
    celery_broker: str | None = None
    celery_backend: str | None = None
    dagster_home: Path | None = None
    #: Content Credentials: the signing chain and key (PEM text, or a file holding it), algorithm, timestamp authority
    c2pa_cert: str | None = None
    c2pa_key: SecretStr | None = None
    c2pa_alg: Literal[C2PA_ALGORITHMS] = "es256"   # type: ignore[valid-type]
    c2pa_tsa_url: str | None = None
    c2pa_trust_anchors: Path | None = None
    #: provider (or "fal_platform") → base URL, from VIDEO_PIPELINE_<PROVIDER>_BASE_URL
    base_urls: dict[str, str] = Field(default_factory=dict)
    #: SDK variable name → value, for the keys and webhook secrets in SECRET_VARIABLES that are set
    secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("data_dir", "catalog_path", "fal_jwks_file", "dagster_home", "c2pa_trust_anchors", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("font_path", mode="after")
    @classmethod
    def _font_exists(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser().resolve()
        if not value.is_file():
            raise ValueError("no such font file")
        return value

    @field_validator("ledger", mode="after")
    @classmethod
    def _ledger_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("expected an SQLAlchemy URL such as sqlite:///path/ledger.sqlite or "
                             "postgresql+psycopg2://host/db")
        return value

    @field_validator("vertex_storage_uri", mode="after")
    @classmethod
    def _gcs_uri(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("gs://") and value[len("gs://"):].split("/")[0]):
            raise ValueError("expected a Cloud Storage URI such as gs://my-bucket/veo-outputs/")
        return value

    @field_validator("download_hosts", mode="before")
    @classmethod
    def _domains(cls, value):
        if isinstance(value, str):
            value = value.split(",")
        domains = []
        for entry in value or ():
            domain = entry.strip().lower().lstrip("*").strip(".")
            if not domain:
                continue
            if "/" in domain or ":" in domain or "." not in domain:
                raise ValueError(f"{entry.strip()!r} is not a domain; expected comma-separated domains such as "
                                 "cdn.example.com")
            domains.append(domain)
        return tuple(domains)

    @field_validator("c2pa_alg", mode="before")
    @classmethod
    def _algorithm_any_case(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("c2pa_tsa_url", mode="after")
    @classmethod
    def _tsa_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("expected the timestamp authority's http(s) URL, e.g. http://timestamp.digicert.com")
        return value

    @model_validator(mode="after")
    def _c2pa_pair(self) -> "Settings":
        if (self.c2pa_cert is None) != (self.c2pa_key is None):
            raise ValueError("set both VIDEO_PIPELINE_C2PA_CERT and VIDEO_PIPELINE_C2PA_KEY (the signing certificate "
                             "chain and its private key), or neither to sign with the development credentials")
        return self

    @model_validator(mode="after")
    def _production_needs_postgres(self) -> "Settings":
        if self.profile == "production" and not str(self.ledger or "").startswith("postgresql"):
            raise ValueError("VIDEO_PIPELINE_PROFILE=production: set VIDEO_PIPELINE_LEDGER_URL to the PostgreSQL "
                             "database Dagster uses (postgresql+psycopg2://user@host:5432/db); runs on several "
                             "machines must share one ledger")
        return self

    # --- what the rest of the code asks -------------------------------------------------------

    def secret(self, name: str) -> str | None:
        """A key or webhook secret by its SDK variable name (None when unset). Never log what this returns."""
        value = self.secrets.get(name)
        return value.get_secret_value() if value is not None else None

    def keys(self) -> dict[str, str]:
        """Every set key and secret by its SDK variable name (for adapters' constructors; never logged)."""
        return {name: value.get_secret_value() for name, value in self.secrets.items()}

    def base_url(self, provider: str, default: str) -> str:
        """Where an adapter sends its requests: VIDEO_PIPELINE_<PROVIDER>_BASE_URL when set, else `default`."""
        return self.base_urls.get(provider) or default

    def with_overrides(self, **overrides) -> "Settings":
        """These settings with a run's overrides (None means: keep), validated like the environment."""
        changed = {k: v for k, v in overrides.items() if v is not None}
        if not changed:
            return self
        return _validated({**self.model_dump(), **changed}, {})

    @property
    def ledger_url(self) -> str:
        return self.ledger or f"sqlite:///{(self.data_dir / 'ledger.sqlite').resolve()}"

    @property
    def catalog_file(self) -> Path:
        if self.catalog_path is not None:
            return self.catalog_path
        own = self.data_dir / "catalog.yaml"
        return own if own.exists() else PROJECT_ROOT / "data" / "catalog.yaml"

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def rejected_dir(self) -> Path:
        return self.data_dir / "rejected"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def campaigns_dir(self) -> Path:
        return self.data_dir / "campaigns"

    @property
    def clips_dir(self) -> Path:
        return self.data_dir / "clips"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def tables_dir(self) -> Path:
        return self.data_dir / "tables"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Read settings from the environment (`environ`, else this process's); keyword overrides win."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        values: dict = {}
        origin: dict[str, str] = {}
        for field_name, suffix in _FIELD_VARIABLES.items():
            if (value := get(ENV_PREFIX + suffix)) is not None:
                values[field_name], origin[field_name] = value, ENV_PREFIX + suffix
        for field_name, variable in _FOREIGN_VARIABLES.items():
            if (value := get(variable)) is not None:
                values[field_name], origin[field_name] = value, variable
        values["base_urls"] = {name[len(ENV_PREFIX):-len(BASE_URL_SUFFIX)].lower(): value.strip()
                               for name, value in env.items()
                               if name.startswith(ENV_PREFIX) and name.endswith(BASE_URL_SUFFIX) and value.strip()}
        values["secrets"] = {name: value for name in SECRET_VARIABLES if (value := get(name)) is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return _validated(values, origin)


def _validated(values: dict, origin: dict[str, str]) -> Settings:
    """Settings from raw values; a bad value raises SettingsError naming its variable and what is expected."""
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            field_name = str(err["loc"][0]) if err["loc"] else ""
            name = origin.get(field_name) or (ENV_PREFIX + _FIELD_VARIABLES[field_name] if field_name in
                                              _FIELD_VARIABLES else field_name)
            message = err["msg"].removeprefix("Value error, ").replace("Input should be", "expected")
            if err["type"] == "literal_error":
                message = message.replace("expected", "expected one of", 1).replace(" or ", ", ").replace("'", "")
            if field_name in ("webhook_token", "c2pa_key", "c2pa_cert") or field_name == "secrets" or not field_name:
                lines.append(f"{name}: {message}" if field_name else message)     # never echo a secret (or a PEM)
            else:
                lines.append(f"{name}={values.get(field_name)!r}: {message}")
        raise SettingsError("; ".join(lines)) from None


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `extra` on top: what a program the project starts (a Dagster webserver or
    daemon in a bench, a worker) inherits. Read here, as every other reading of the environment."""
    return {**os.environ, **(extra or {})}


def export_environment(values: Mapping[str, str]) -> None:
    """Set variables in this process's environment, for code that reads its settings from it later (a bench that
    runs Dagster in this process)."""
    os.environ.update(values)

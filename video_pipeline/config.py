"""Settings read from `VIDEO_PIPELINE_*` environment variables (one place, one prefix)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

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
    "VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL": ("fal's platform API", "where fal's request listing is read to find a "
                                             "submit whose answer was lost"),
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
}

PROFILES = ("local", "production")
EXECUTORS = ("multiprocess", "in_process", "celery")

MODES = ("local", "fake", "live")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


@dataclass(frozen=True)
class Settings:
    mode: str = "local"
    time_scale: float = 0.02
    data_dir: Path = PROJECT_ROOT / "data"
    catalog_path: Path | None = None
    x264_preset: str = "veryfast"
    font_path: Path | None = None
    seed: int = 0
    ledger: str | None = None
    webhooks: bool = False
    profile: str = "local"

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
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Read settings from the environment; explicit keyword overrides win."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value.strip() if value is not None and value.strip() != "" else None

        values: dict = {}
        mode = get("MODE")
        if mode is not None:
            if mode not in MODES:
                raise SettingsError(f"VIDEO_PIPELINE_MODE={mode!r}: expected one of {', '.join(MODES)}")
            values["mode"] = mode
        scale = get("TIME_SCALE")
        if scale is not None:
            try:
                values["time_scale"] = float(scale)
            except ValueError:
                raise SettingsError(f"VIDEO_PIPELINE_TIME_SCALE={scale!r}: expected a number >= 0") from None
            if not math.isfinite(values["time_scale"]) or values["time_scale"] < 0:
                raise SettingsError(f"VIDEO_PIPELINE_TIME_SCALE={scale!r}: expected a finite number >= 0")
        data_dir = get("DATA_DIR")
        if data_dir is not None:
            values["data_dir"] = Path(data_dir).expanduser().resolve()
        catalog = get("CATALOG")
        if catalog is not None:
            values["catalog_path"] = Path(catalog).expanduser().resolve()
        preset = get("X264_PRESET")
        if preset is not None:
            if preset not in X264_PRESETS:
                raise SettingsError(f"VIDEO_PIPELINE_X264_PRESET={preset!r}: expected one of {', '.join(X264_PRESETS)}")
            values["x264_preset"] = preset
        font = get("FONT")
        if font is not None:
            path = Path(font).expanduser().resolve()
            if not path.is_file():
                raise SettingsError(f"VIDEO_PIPELINE_FONT={font!r}: no such font file")
            values["font_path"] = path
        seed = get("SEED")
        if seed is not None:
            try:
                values["seed"] = int(seed)
            except ValueError:
                raise SettingsError(f"VIDEO_PIPELINE_SEED={seed!r}: expected an integer") from None
        ledger = get("LEDGER_URL")
        if ledger is not None:
            if "://" not in ledger:
                raise SettingsError("VIDEO_PIPELINE_LEDGER_URL: expected an SQLAlchemy URL such as "
                                    "sqlite:///path/ledger.sqlite or postgresql+psycopg2://host/db")
            values["ledger"] = ledger
        hooks = get("WEBHOOKS")
        if hooks is not None:
            if hooks not in ("0", "1", "true", "false"):
                raise SettingsError(f"VIDEO_PIPELINE_WEBHOOKS={hooks!r}: expected 1 or 0")
            values["webhooks"] = hooks in ("1", "true")
        profile = get("PROFILE")
        if profile is not None:
            if profile not in PROFILES:
                raise SettingsError(f"VIDEO_PIPELINE_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
            values["profile"] = profile
            if profile == "production" and not str(values.get("ledger", "")).startswith("postgresql"):
                raise SettingsError("VIDEO_PIPELINE_PROFILE=production: set VIDEO_PIPELINE_LEDGER_URL to the "
                                    "PostgreSQL database Dagster uses (postgresql+psycopg2://user@host:5432/db); "
                                    "runs on several machines must share one ledger")
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("data_dir"), str):
            values["data_dir"] = Path(values["data_dir"]).resolve()
        return cls(**values)

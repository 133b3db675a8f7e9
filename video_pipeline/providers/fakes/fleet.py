"""Every video provider's fake on loopback at once, with the environment that points the live adapters at them.

`video-pipeline fakes serve` runs this for demos; tests use it to run campaigns in live mode, offline.
"""

from __future__ import annotations

import importlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .jobs import JobBook
from .server import FakeServer

#: provider → (environment variable → test value, create_app keyword for each variable)
FAKE_CREDENTIALS: dict[str, dict[str, tuple[str, str]]] = {
    "gemini": {"GEMINI_API_KEY": ("test-gemini-key", "api_key")},
    "kling": {"KLING_ACCESS_KEY": ("test-kling-access-key-0123456789ab", "access_key"),
              "KLING_SECRET_KEY": ("test-kling-secret-key-0123456789ab", "secret_key")},
    "minimax": {"MINIMAX_API_KEY": ("test-minimax-key", "api_key")},
    "ark": {"ARK_API_KEY": ("test-ark-key", "api_key")},
    "dashscope": {"DASHSCOPE_API_KEY": ("test-dashscope-key", "api_key")},
    "fal": {"FAL_KEY": ("test-fal-key", "api_key")},
    "replicate": {"REPLICATE_API_TOKEN": ("test-replicate-token", "api_token")},
    "runway": {"RUNWAYML_API_SECRET": ("test-runway-key", "api_key")},
}


DEFAULT_BASE_PORT = 8710
#: fixed, public test secrets, so a receiver configured from the printed environment accepts the fakes' webhooks
FAKE_WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5YWI="


def fleet_base_port() -> int:
    return int(os.environ.get("VIDEO_PIPELINE_FAKES_PORT", DEFAULT_BASE_PORT))


def fixed_environment(base_port: int | None = None) -> dict[str, str]:
    """The environment for fakes served by `video-pipeline fakes serve` on consecutive ports from `base_port`."""
    base = base_port or fleet_base_port()
    env: dict[str, str] = {}
    for i, name in enumerate(FAKE_CREDENTIALS):
        env[f"VIDEO_PIPELINE_{name.upper()}_BASE_URL"] = f"http://127.0.0.1:{base + i}"
        env.update({var: value for var, (value, _) in FAKE_CREDENTIALS[name].items()})
    env.update(_webhook_environment(env["VIDEO_PIPELINE_FAL_BASE_URL"]))
    return env


def _webhook_environment(fal_url: str) -> dict[str, str]:
    """What `video-pipeline webhooks serve` needs to verify the fakes' signed deliveries."""
    return {"REPLICATE_WEBHOOK_SECRET": FAKE_WEBHOOK_SECRET, "GEMINI_WEBHOOK_SECRET": FAKE_WEBHOOK_SECRET,
            "VIDEO_PIPELINE_FAL_JWKS_URL": f"{fal_url}/.well-known/jwks.json"}


def fleet_is_up(base_port: int | None = None) -> bool:
    base = base_port or fleet_base_port()
    try:
        with socket.create_connection(("127.0.0.1", base), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Fleet:
    servers: dict[str, FakeServer] = field(default_factory=dict)
    books: dict[str, JobBook] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """Keys set to the fakes' test values and every VIDEO_PIPELINE_<PROVIDER>_BASE_URL pointed at its fake."""
        env = {"VIDEO_PIPELINE_MODE": "live"}
        for name, server in self.servers.items():
            env[f"VIDEO_PIPELINE_{name.upper()}_BASE_URL"] = server.url
            env.update({var: value for var, (value, _) in FAKE_CREDENTIALS[name].items()})
        if "fal" in self.servers:
            env.update(_webhook_environment(self.servers["fal"].url))
        return env

    def duplicate_submissions(self) -> int:
        return sum(book.duplicate_submissions() for book in self.books.values())

    def stop(self) -> None:
        for book in self.books.values():
            book.stop_webhooks()
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_fleet(latency: float = 0.5, providers: list[str] | None = None, work_dir: Path | None = None,
                base_port: int | None = None, latency_p95: float | None = None) -> Fleet:
    """Start one fake per provider (all by default) with jobs taking `latency` seconds (the median, when a
    `latency_p95` makes them vary)."""
    fleet = Fleet()
    for i, name in enumerate(providers or list(FAKE_CREDENTIALS)):
        module = importlib.import_module(f"video_pipeline.providers.fakes.{name}")
        book = JobBook(latency=latency, latency_p95=latency_p95, seed=i,
                       work_dir=(work_dir / name) if work_dir else None, webhook_secret=FAKE_WEBHOOK_SECRET)
        kwargs = {kw: value for value, kw in FAKE_CREDENTIALS[name].values()}
        server = FakeServer(module.create_app(book, **kwargs), port=(base_port + i) if base_port else None).start()
        fleet.servers[name], fleet.books[name] = server, book
    return fleet

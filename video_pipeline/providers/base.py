"""The provider protocol: submit a generation request, poll its handle, cancel it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from video_pipeline.planning.catalog import Catalog
from video_pipeline.errors import ProviderError


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)


@dataclass(frozen=True)
class GenerationRequest:
    job_key: str
    model: str              # catalog id, e.g. veo-3-1-fast
    route_model_id: str     # the provider's own id for the model
    category: str
    prompt: str
    seconds: int
    resolution: str
    aspect_ratio: str
    label: str = ""
    image: Path | None = None
    video: Path | None = None
    transform: str | None = None
    audio: Path | None = None
    audio_offset: float = 0.0
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    progress: float | None = None
    output_url: str | None = None
    url_expires_at: dt.datetime | None = None
    error: str | None = None
    error_kind: str | None = None     # ProviderError kinds: retryable | terminal | fatal
    poll_after: float | None = None   # the provider's hint, in seconds
    latency_seconds: float | None = None  # the provider's own account of the job's duration (created → done)
    billed_usd: float | None = None       # the provider's own figure for what the job costs, where it gives one


class VideoProvider(Protocol):
    """What the engine needs of a provider. Optional extras the engine uses when present:
    `event_key(job_id)` (the id its webhooks name), `refresh_output_url(job_id)` (a fresh URL for a finished job),
    `download_headers(url)` (auth an output download needs), `fetch_output(url, dest)` (writes an output that is
    no plain download, e.g. Vertex's inline bytes, returning its size, or None for a URL to download as usual) and
    `stuck_grace_seconds` (real-time slack before a job counts as stuck, default 30)."""

    name: str
    #: factor applied to catalog latencies when planning waits (1.0 for real providers)
    latency_scale: float

    async def submit(self, request: GenerationRequest) -> str: ...

    async def poll(self, job_id: str) -> JobStatus: ...

    async def cancel(self, job_id: str) -> bool: ...

    async def aclose(self) -> None: ...


class ProviderRegistry:
    """Which provider serves each model: in local mode the local renderer serves every model."""

    def __init__(self, catalog: Catalog, providers: dict[str, VideoProvider], local: VideoProvider | None = None):
        self.catalog = catalog
        self.providers = providers
        self.local = local

    @property
    def configured(self) -> frozenset[str]:
        return frozenset(self.providers) | ({"local"} if self.local else frozenset())

    def provider_for(self, model: str) -> tuple[VideoProvider, str]:
        """The provider and its model id for a catalog model; ProviderError (fatal) when none is configured."""
        spec = self.catalog.get(model)
        if self.local is not None:
            return self.local, spec.routes[0].model_id
        for route in spec.routes:
            if route.provider in self.providers:
                return self.providers[route.provider], route.model_id
        names = ", ".join(r.provider for r in spec.routes)
        raise ProviderError(f"no configured provider serves {model} (its routes: {names}); set the API key of one "
                            "of them or use VIDEO_PIPELINE_MODE=local", kind=ProviderError.FATAL)

    def provider_named(self, name: str, model: str) -> tuple[VideoProvider, str]:
        """The provider that took an earlier job (to resume polling it) and its id for `model`."""
        spec = self.catalog.get(model)
        if self.local is not None and name == self.local.name:
            return self.local, spec.routes[0].model_id
        if name in self.providers:
            route = next((r for r in spec.routes if r.provider == name), spec.routes[0])
            return self.providers[name], route.model_id
        raise ProviderError(f"provider {name} took job(s) of {model} in an earlier run but is not configured now; "
                            "configure it again to resume them", kind=ProviderError.FATAL)

    def download_headers(self, provider: str, url: str) -> dict[str, str]:
        """Headers the named provider needs to download one of its outputs (usually none)."""
        adapter = self.providers.get(provider)
        return adapter.download_headers(url) if adapter is not None and hasattr(adapter, "download_headers") else {}

    def fetch_output(self, provider: str, url: str, dest: Path) -> int | None:
        """Write an output the named provider must fetch itself into `dest` (its size), or None: download `url`."""
        adapter = self.providers.get(provider)
        fetch = getattr(adapter, "fetch_output", None)
        return fetch(url, dest) if fetch is not None else None

    async def aclose(self) -> None:
        for p in list(self.providers.values()) + ([self.local] if self.local else []):
            await p.aclose()

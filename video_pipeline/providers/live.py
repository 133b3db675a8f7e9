"""Live adapters, one module each, and which of them the environment configures.

An adapter is configured when every variable in its `env_keys` is set (the names the providers' official SDKs
use). Its base URL can be pointed elsewhere (a fake server) with `VIDEO_PIPELINE_<PROVIDER>_BASE_URL`.
"""

from __future__ import annotations

import importlib
from typing import Mapping

from video_pipeline.providers.base import VideoProvider

#: provider name (as in the catalog's routes) → "module:Class"
ADAPTERS: dict[str, str] = {
    "gemini": "video_pipeline.providers.gemini:GeminiProvider",
    "kling": "video_pipeline.providers.kling:KlingProvider",
    "minimax": "video_pipeline.providers.minimax:MiniMaxProvider",
    "ark": "video_pipeline.providers.ark:ArkProvider",
    "dashscope": "video_pipeline.providers.dashscope:DashScopeProvider",
    "fal": "video_pipeline.providers.fal:FalProvider",
    "replicate": "video_pipeline.providers.replicate:ReplicateProvider",
    "runway": "video_pipeline.providers.runway:RunwayProvider",
    "vertex": "video_pipeline.providers.vertex:VertexProvider",
}


def adapter_class(provider: str):
    module, _, cls = ADAPTERS[provider].partition(":")
    return getattr(importlib.import_module(module), cls)


def required_keys(provider: str) -> tuple[str, ...]:
    return tuple(adapter_class(provider).env_keys)


def configured_names(keys: Mapping[str, str]) -> frozenset[str]:
    """Providers whose API keys are all in `keys` (SDK variable name → value; no adapter is instantiated)."""
    return frozenset(p for p in ADAPTERS if all(keys.get(k, "").strip() for k in required_keys(p)))


def build_adapter(provider: str, keys: Mapping[str, str], **kw) -> VideoProvider:
    """One adapter from its keys (SDK variable name → value) and constructor options (base_url, webhooks...)."""
    cls = adapter_class(provider)
    if hasattr(cls, "from_keys"):
        return cls.from_keys(keys, **kw)
    return cls(keys[cls.env_keys[0]].strip(), **kw)


def configured_providers(settings) -> dict[str, VideoProvider]:
    """One adapter per provider whose keys the settings hold, pointed where the settings say (base URLs,
    webhook receiver); keys are never logged."""
    keys = settings.keys()
    token = settings.webhook_token.get_secret_value() if settings.webhook_token else None
    out: dict[str, VideoProvider] = {}
    for name in sorted(configured_names(keys)):
        out[name] = build_adapter(name, keys, base_url=settings.base_urls.get(name),
                                  webhook_url=settings.webhook_url, webhook_token=token, **_extra(name, settings))
    return out


def _extra(provider: str, settings) -> dict:
    """Constructor options only some adapters take: fal's platform API, Vertex's storage host and output bucket."""
    if provider == "fal" and "fal_platform" in settings.base_urls:
        return {"platform_base_url": settings.base_urls["fal_platform"]}
    if provider == "vertex":
        return {"storage_base_url": settings.base_urls.get("vertex_storage"), "storage_uri": settings.vertex_storage_uri}
    return {}

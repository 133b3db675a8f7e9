"""Live adapters, one module each, and which of them the environment configures.

An adapter is configured when every variable in its `env_keys` is set (the names the providers' official SDKs
use). Its base URL can be pointed elsewhere (a fake server) with `VIDEO_PIPELINE_<PROVIDER>_BASE_URL`.
"""

from __future__ import annotations

import importlib
import os
from typing import Mapping

from .base import VideoProvider

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
}


def adapter_class(provider: str):
    module, _, cls = ADAPTERS[provider].partition(":")
    return getattr(importlib.import_module(module), cls)


def required_keys(provider: str) -> tuple[str, ...]:
    return tuple(adapter_class(provider).env_keys)


def configured_names(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Providers whose API keys are all set (no adapter is instantiated)."""
    env = os.environ if environ is None else environ
    return frozenset(p for p in ADAPTERS if all(env.get(k, "").strip() for k in required_keys(p)))


def configured_providers(environ: Mapping[str, str] | None = None) -> dict[str, VideoProvider]:
    """One adapter per provider whose keys are set; keys are read here, once, and never logged."""
    env = os.environ if environ is None else environ
    out: dict[str, VideoProvider] = {}
    for name in configured_names(env):
        cls = adapter_class(name)
        out[name] = cls.from_env(env) if hasattr(cls, "from_env") else cls(env[cls.env_keys[0]].strip())
    return out

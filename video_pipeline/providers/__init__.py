"""Providers: one protocol, many adapters (the local renderer here; live HTTP adapters beside it)."""

from .base import GenerationRequest, JobState, JobStatus, ProviderRegistry, VideoProvider

__all__ = ["GenerationRequest", "JobState", "JobStatus", "ProviderRegistry", "VideoProvider"]

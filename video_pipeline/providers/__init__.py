"""Providers: one protocol, many adapters (the local renderer, one HTTP adapter per provider, the narration voices)
and one fake server per provider.

Rule: imports core, media and planning (the catalog); never storage, jobs or anything above. A new provider is one
adapter module, one fake in fakes/ and one catalog entry.
"""

from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus, ProviderRegistry, VideoProvider

__all__ = ["GenerationRequest", "JobState", "JobStatus", "ProviderRegistry", "VideoProvider"]

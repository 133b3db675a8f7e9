"""Video and narration providers as resources: the offline renderer, the fakes, or live adapters, chosen by the
run's settings (`mode`, and the keys the settings module read under the providers' own SDK names).

Swapping a mock for the real API is configuration (`mode`), not code; tests swap in a subclass whose `registry`
returns fakes.
"""

from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from video_pipeline.planning.catalog import Catalog
from video_pipeline.config import Settings

if TYPE_CHECKING:
    from video_pipeline.providers.base import ProviderRegistry


class VideoProviders(ConfigurableResource):
    """Builds the provider registry for a run from the run's settings."""

    def registry(self, settings: Settings, catalog: Catalog) -> "ProviderRegistry":
        from video_pipeline.flow.stages import build_registry

        return build_registry(settings, catalog)

    def configured(self, settings: Settings) -> frozenset[str] | None:
        """The providers planning routes to: those with keys in live mode (and in fake mode when any are set); None
        otherwise."""
        from video_pipeline.flow.stages import live_provider_names

        return live_provider_names(settings)


class NarrationVoices(ConfigurableResource):
    """The narration (TTS) provider: espeak-ng offline; OpenAI or ElevenLabs live when their keys are set."""

    def voice(self, settings: Settings, catalog: Catalog):
        from video_pipeline.flow.stages import narration_voice

        return narration_voice(settings, catalog)

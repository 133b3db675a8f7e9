"""Video providers as a resource: the offline local renderer, or live adapters, chosen by configuration."""


from dagster import ConfigurableResource

from video_pipeline.catalog import Catalog
from video_pipeline.config import Settings
from video_pipeline.providers.base import ProviderRegistry
from video_pipeline.stages import build_registry


class VideoProviders(ConfigurableResource):
    """Builds the provider registry for a run. Tests swap in a subclass whose `registry` returns fakes."""

    def registry(self, settings: Settings, catalog: Catalog) -> ProviderRegistry:
        return build_registry(settings, catalog)

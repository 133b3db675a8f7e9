"""Video providers as a resource: the offline renderer, the fakes, or live adapters, chosen by configuration.

API keys are fields bound to `EnvVar` in definitions.py, so Dagster reads them when a run starts and never shows
them in the UI. Swapping a mock for the real API is configuration (`mode`), not code.
"""

import os

from dagster import ConfigurableResource
from pydantic import Field

from video_pipeline.catalog import Catalog
from video_pipeline.config import Settings
from video_pipeline.providers.base import ProviderRegistry
from video_pipeline.stages import build_registry, live_provider_names

#: API-key environment variable → resource field
KEY_FIELDS = {
    "GEMINI_API_KEY": "gemini_api_key", "KLING_ACCESS_KEY": "kling_access_key",
    "KLING_SECRET_KEY": "kling_secret_key", "MINIMAX_API_KEY": "minimax_api_key", "ARK_API_KEY": "ark_api_key",
    "DASHSCOPE_API_KEY": "dashscope_api_key", "FAL_KEY": "fal_key", "REPLICATE_API_TOKEN": "replicate_api_token",
    "RUNWAYML_API_SECRET": "runwayml_api_secret",
}


class VideoProviders(ConfigurableResource):
    """Builds the provider registry for a run. Tests swap in a subclass whose `registry` returns fakes."""

    mode: str | None = Field(default=None, description="local | fake | live; empty: VIDEO_PIPELINE_MODE")
    gemini_api_key: str | None = None
    kling_access_key: str | None = None
    kling_secret_key: str | None = None
    minimax_api_key: str | None = None
    ark_api_key: str | None = None
    dashscope_api_key: str | None = None
    fal_key: str | None = None
    replicate_api_token: str | None = None
    runwayml_api_secret: str | None = None

    def api_keys(self) -> dict[str, str] | None:
        """The keys bound to this resource, or None to read the process environment."""
        bound = {var: getattr(self, field) for var, field in KEY_FIELDS.items() if getattr(self, field)}
        return bound or None

    def settings_for(self, settings: Settings) -> Settings:
        return Settings.from_env(mode=self.mode, data_dir=settings.data_dir) if self.mode else settings

    def registry(self, settings: Settings, catalog: Catalog) -> ProviderRegistry:
        return build_registry(self.settings_for(settings), catalog, keys=self.api_keys())

    def configured(self, settings: Settings) -> frozenset[str] | None:
        """In live mode, the providers with keys (planning routes only to them); None otherwise."""
        return live_provider_names(self.settings_for(settings), self.api_keys())


def from_environment() -> VideoProviders:
    """Bind every API key that is set to an EnvVar (read at run launch, redacted in the UI)."""
    from dagster import EnvVar

    return VideoProviders(**{field: EnvVar(var) for var, field in KEY_FIELDS.items() if os.environ.get(var)})


class NarrationVoices(ConfigurableResource):
    """The narration (TTS) provider family: espeak-ng offline; OpenAI or ElevenLabs live when their keys are bound."""

    mode: str | None = Field(default=None, description="local | fake | live; empty: VIDEO_PIPELINE_MODE")
    openai_api_key: str | None = None
    elevenlabs_api_key: str | None = None

    def voice(self, settings: Settings, catalog: Catalog):
        from video_pipeline.stages import narration_voice

        keys = {var: value for var, value in (("OPENAI_API_KEY", self.openai_api_key),
                                              ("ELEVENLABS_API_KEY", self.elevenlabs_api_key)) if value}
        mode_settings = Settings.from_env(mode=self.mode, data_dir=settings.data_dir) if self.mode else settings
        return narration_voice(mode_settings, catalog, keys or None)


def voices_from_environment() -> NarrationVoices:
    from dagster import EnvVar

    fields = {"OPENAI_API_KEY": "openai_api_key", "ELEVENLABS_API_KEY": "elevenlabs_api_key"}
    return NarrationVoices(**{field: EnvVar(var) for var, field in fields.items() if os.environ.get(var)})

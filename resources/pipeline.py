"""The pipeline's settings as the one resource every other resource and asset reads them from."""


from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from video_pipeline.planning.catalog import Catalog, load_catalog
from video_pipeline.config import Settings


class PipelineConfig(ConfigurableResource):
    """Where data lives and how clips are made. Leave a field empty to use its VIDEO_PIPELINE_* variable; a value
    given here (in the launchpad, for one run) reaches every part of that run: providers, downloads, rendering."""

    data_dir: str | None = Field(default=None, description="VIDEO_PIPELINE_DATA_DIR: inbox, clips, tables, outputs")
    mode: str | None = Field(default=None, description="VIDEO_PIPELINE_MODE: local (offline), fake or live")
    time_scale: float | None = Field(default=None, description="VIDEO_PIPELINE_TIME_SCALE: local provider wait factor")
    catalog_path: str | None = Field(default=None, description="VIDEO_PIPELINE_CATALOG: the model catalog file")
    x264_preset: str | None = Field(default=None, description="VIDEO_PIPELINE_X264_PRESET for rendering and assembly")

    _resolved: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._resolved = self._resolve()     # once per run process: every asset and resource of the step shares it

    def settings(self) -> Settings:
        """The environment's settings with this resource's overrides (the settings module validates both)."""
        return self._resolved if self._resolved is not None else self._resolve()

    def _resolve(self) -> Settings:
        return Settings.from_env(data_dir=self.data_dir, mode=self.mode, time_scale=self.time_scale,
                                 catalog_path=self.catalog_path, x264_preset=self.x264_preset)

    def catalog(self) -> Catalog:
        return load_catalog(self.settings().catalog_file)

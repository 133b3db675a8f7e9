"""The pipeline's settings as the one resource every other resource and asset reads them from."""


from dagster import ConfigurableResource
from pydantic import Field

from video_pipeline.catalog import Catalog, load_catalog
from video_pipeline.config import Settings


class PipelineConfig(ConfigurableResource):
    """Where data lives and how clips are made. Leave a field empty to use its VIDEO_PIPELINE_* variable; a value
    given here (in the launchpad, for one run) reaches every part of that run: providers, downloads, rendering."""

    data_dir: str | None = Field(default=None, description="VIDEO_PIPELINE_DATA_DIR: inbox, clips, tables, outputs")
    mode: str | None = Field(default=None, description="VIDEO_PIPELINE_MODE: local (offline), fake or live")
    time_scale: float | None = Field(default=None, description="VIDEO_PIPELINE_TIME_SCALE: local provider wait factor")
    catalog_path: str | None = Field(default=None, description="VIDEO_PIPELINE_CATALOG: the model catalog file")
    x264_preset: str | None = Field(default=None, description="VIDEO_PIPELINE_X264_PRESET for rendering and assembly")

    def settings(self) -> Settings:
        """The environment's settings with this resource's overrides (the settings module validates both)."""
        return Settings.from_env(data_dir=self.data_dir, mode=self.mode, time_scale=self.time_scale,
                                 catalog_path=self.catalog_path, x264_preset=self.x264_preset)

    def catalog(self) -> Catalog:
        return load_catalog(self.settings().catalog_file)

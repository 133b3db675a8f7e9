"""The pipeline's settings as a resource: unset fields fall back to VIDEO_PIPELINE_* at run time."""


from dagster import ConfigurableResource
from pydantic import Field

from video_pipeline.catalog import Catalog, load_catalog
from video_pipeline.config import Settings


class PipelineConfig(ConfigurableResource):
    """Where data lives and how clips are rendered. Leave a field empty to use its VIDEO_PIPELINE_* variable."""

    data_dir: str | None = Field(default=None, description="VIDEO_PIPELINE_DATA_DIR: inbox, clips, tables, outputs")
    mode: str | None = Field(default=None, description="VIDEO_PIPELINE_MODE: local (offline) or live")
    time_scale: float | None = Field(default=None, description="VIDEO_PIPELINE_TIME_SCALE: local provider wait factor")
    catalog_path: str | None = Field(default=None, description="VIDEO_PIPELINE_CATALOG: the model catalog file")
    x264_preset: str | None = Field(default=None, description="VIDEO_PIPELINE_X264_PRESET for rendering and assembly")

    def settings(self) -> Settings:
        return Settings.from_env(data_dir=self.data_dir, mode=self.mode, time_scale=self.time_scale,
                                 catalog_path=self.catalog_path, x264_preset=self.x264_preset)

    def catalog(self) -> Catalog:
        return load_catalog(self.settings().catalog_file)

"""Clip storage as a resource: content-addressed files under the data directory."""


from dagster import ConfigurableResource
from pydantic import Field

from video_pipeline.config import Settings
from video_pipeline.store import ClipStore


class ClipStorage(ConfigurableResource):
    root: str | None = Field(default=None, description="where clips are kept; default <data dir>/clips")

    def store(self, settings: Settings) -> ClipStore:
        from pathlib import Path

        return ClipStore(Path(self.root) if self.root else settings.clips_dir)

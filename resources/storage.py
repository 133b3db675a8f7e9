"""Clip storage as a resource: content-addressed files under the data directory, or in S3 (production profile,
`resources/s3.py`, imported only there: dagster-aws and boto3 take longer to import than the rest of the code)."""

from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from video_pipeline.config import Settings

from .pipeline import PipelineConfig

if TYPE_CHECKING:
    from video_pipeline.storage.store import ClipStore

    from .io import ParquetTableIOManager


class ClipStorage(ConfigurableResource):
    """Clips kept under a local directory (the local profile)."""

    root: str | None = Field(default=None, description="where clips are kept; default <data dir>/clips")

    def store(self, settings: Settings) -> "ClipStore":
        """The store for a run: downloads obey the run's download policy (its mode, hosts and base URLs)."""
        from video_pipeline.storage.netguard import DownloadPolicy
        from video_pipeline.storage.store import ClipStore

        return ClipStore(Path(self.root) if self.root else settings.clips_dir, DownloadPolicy.from_settings(settings))

    def tables(self, pipeline: PipelineConfig) -> "ParquetTableIOManager":
        """The IO manager for the stage tables: files under the data directory, beside these clips."""
        from .io import ParquetTableIOManager

        return ParquetTableIOManager(pipeline=pipeline)


def clip_storage_for(settings: Settings) -> ClipStorage:
    """The clip storage the profile asks for: local files, or S3 (VIDEO_PIPELINE_S3_*; credentials come from the
    usual AWS chain, never from this project's configuration)."""
    if settings.profile != "production":
        return ClipStorage()
    if not settings.s3_bucket:
        raise ValueError("VIDEO_PIPELINE_PROFILE=production keeps clips in S3: set VIDEO_PIPELINE_S3_BUCKET "
                         "(and VIDEO_PIPELINE_S3_ENDPOINT_URL for an S3-compatible service)")
    from dagster_aws.s3 import S3Resource

    from .s3 import S3ClipStorage

    return S3ClipStorage(s3=S3Resource(endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region),
                         bucket=settings.s3_bucket, prefix=settings.s3_prefix)

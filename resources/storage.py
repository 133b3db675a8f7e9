"""Clip storage as a resource: content-addressed files under the data directory, or in S3 (production profile)."""

from pathlib import Path

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from video_pipeline.config import Settings
from video_pipeline.storage.netguard import DownloadPolicy
from video_pipeline.storage.store import ClipStore


class ClipStorage(ConfigurableResource):
    """Clips kept under a local directory (the local profile)."""

    root: str | None = Field(default=None, description="where clips are kept; default <data dir>/clips")

    def store(self, settings: Settings) -> ClipStore:
        """The store for a run: downloads obey the run's download policy (its mode, hosts and base URLs)."""
        return ClipStore(Path(self.root) if self.root else settings.clips_dir, DownloadPolicy.from_settings(settings))


class S3ClipStorage(ClipStorage):
    """Clips and finished outputs in an S3 bucket through dagster-aws's S3Resource (the production profile).

    `root` is the local cache of verified copies that ffmpeg reads; the bucket holds the permanent ones."""

    s3: S3Resource
    bucket: str = Field(description="VIDEO_PIPELINE_S3_BUCKET: the bucket for clips and outputs")
    prefix: str = Field(default="video-pipeline", description="VIDEO_PIPELINE_S3_PREFIX: key prefix in the bucket")
    multipart_threshold_mib: int = Field(default=16, description="files this large or larger go up in parts")
    part_mib: int = Field(default=8, description="multipart part size (S3's minimum is 5 MiB)")
    link_seconds: int = Field(default=7 * 24 * 3600, description="lifetime of presigned links in metadata")

    def store(self, settings: Settings) -> ClipStore:
        from video_pipeline.storage.s3store import MIB, S3ClipStore

        cache = Path(self.root) if self.root else settings.data_dir / "clip-cache"
        return S3ClipStore(self.s3.get_client(), self.bucket, self.prefix, cache,
                           multipart_threshold=self.multipart_threshold_mib * MIB, part_bytes=self.part_mib * MIB,
                           link_seconds=self.link_seconds, policy=DownloadPolicy.from_settings(settings))


def clip_storage_for(settings: Settings) -> ClipStorage:
    """The clip storage the profile asks for: local files, or S3 (VIDEO_PIPELINE_S3_*; credentials come from the
    usual AWS chain, never from this project's configuration)."""
    if settings.profile != "production":
        return ClipStorage()
    if not settings.s3_bucket:
        raise ValueError("VIDEO_PIPELINE_PROFILE=production keeps clips in S3: set VIDEO_PIPELINE_S3_BUCKET "
                         "(and VIDEO_PIPELINE_S3_ENDPOINT_URL for an S3-compatible service)")
    return S3ClipStorage(s3=S3Resource(endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region),
                         bucket=settings.s3_bucket, prefix=settings.s3_prefix)

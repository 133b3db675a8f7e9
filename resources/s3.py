"""The production profile's storage: clips, outputs and the stage tables in one S3 bucket, through dagster-aws's
S3Resource (credentials from the usual AWS chain, never from this project's configuration)."""

from pathlib import Path

from dagster_aws.s3 import S3Resource
from pydantic import Field

from video_pipeline.config import Settings
from video_pipeline.storage.store import ClipStore

from .io import ParquetTableIOManager
from .pipeline import PipelineConfig
from .storage import ClipStorage


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
        from video_pipeline.storage.netguard import DownloadPolicy
        from video_pipeline.storage.s3store import MIB, S3ClipStore

        cache = Path(self.root) if self.root else settings.data_dir / "clip-cache"
        return S3ClipStore(self.s3.get_client(), self.bucket, self.prefix, cache,
                           multipart_threshold=self.multipart_threshold_mib * MIB, part_bytes=self.part_mib * MIB,
                           link_seconds=self.link_seconds, policy=DownloadPolicy.from_settings(settings))

    def tables(self, pipeline: PipelineConfig) -> "S3TableIOManager":
        """The stage tables beside the clips, in the bucket."""
        return S3TableIOManager(pipeline=pipeline, s3=self.s3, bucket=self.bucket, prefix=self.prefix)


class S3TableIOManager(ParquetTableIOManager):
    """The same objects in the bucket (production profile): s3://<bucket>/<prefix>/tables/<asset>/<partition>...,
    through dagster-aws's S3Resource (credentials from the usual AWS chain)."""

    s3: S3Resource
    bucket: str = Field(description="VIDEO_PIPELINE_S3_BUCKET")
    prefix: str = Field(default="video-pipeline", description="VIDEO_PIPELINE_S3_PREFIX")

    def _object(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/tables/{key}" if self.prefix.strip("/") else f"tables/{key}"

    def _put(self, key: str, data: bytes) -> str:
        self.s3.get_client().put_object(Bucket=self.bucket, Key=self._object(key), Body=data)
        return f"s3://{self.bucket}/{self._object(key)}"

    def _get(self, key: str) -> bytes | None:
        client = self.s3.get_client()
        try:
            return client.get_object(Bucket=self.bucket, Key=self._object(key))["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

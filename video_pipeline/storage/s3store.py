"""Clips and finished outputs in an S3 bucket: content-addressed keys, multipart uploads verified by checksum.

Works with any boto3 S3 client (AWS, MinIO, moto); the caller builds it (in Dagster, from dagster-aws's
S3Resource). A local cache beside the data directory keeps a verified copy of each clip, because ffmpeg joins files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from boto3.s3.transfer import TransferConfig
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from video_pipeline.atomic import temp_prefix
from video_pipeline.errors import MediaError
from video_pipeline.media.probe import probe
from video_pipeline.storage.store import ClipStore, StoredClip, file_sha256

MIB = 1 << 20
#: files above this go up in parts of `PART_BYTES` (S3's minimum part is 5 MiB)
MULTIPART_THRESHOLD = 16 * MIB
PART_BYTES = 8 * MIB
#: presigned links in metadata and reports last this long (S3's maximum for SigV4 is 7 days)
LINK_SECONDS = 7 * 24 * 3600
#: an output file's suffix and its content type (what a browser needs to play or show a presigned link)
CONTENT_TYPES = {".mp4": "video/mp4", ".srt": "application/x-subrip", ".vtt": "text/vtt", ".png": "image/png",
                 ".m4a": "audio/mp4", ".json": "application/json", ".html": "text/html"}
#: outputs-table columns that name files to publish beside the video
OUTPUT_FILE_COLUMNS = ("output_path", "subtitles_srt", "subtitles_vtt", "poster", "contact_sheet",
                       "credentials_sidecar")


class StorageIntegrityError(MediaError):
    """What S3 holds is not what was uploaded (or not what its key says)."""


class StorageUnavailableError(MediaError):
    """S3 refused or failed a request (after the client's own retries): this clip is not kept; a rerun stores it."""


def _unavailable(action: str, uri: str, exc: Exception) -> StorageUnavailableError:
    detail = exc.response.get("Error", {}) if isinstance(exc, ClientError) else {}
    why = f"{detail.get('Code')}: {detail.get('Message')}" if detail else f"{type(exc).__name__}: {exc}"
    return StorageUnavailableError(f"S3 {action} {uri} failed ({why}); the clip is not kept, a rerun stores it")


@dataclass(frozen=True)
class UploadedObject:
    key: str
    sha256: str
    size_bytes: int
    parts: int


def s3_checksum(path: Path, part_bytes: int, threshold: int) -> tuple[str, int]:
    """The ChecksumSHA256 S3 reports for `path` uploaded with these part sizes, and the part count: the object's
    SHA-256 for a single PUT, or for a multipart upload the SHA-256 of the parts' digests suffixed `-<parts>`."""
    size = path.stat().st_size
    if size < threshold:
        return base64.b64encode(bytes.fromhex(file_sha256(path))).decode(), 1
    digests = []
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(part_bytes), b""):
            digests.append(hashlib.sha256(block).digest())
    combined = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    return f"{combined}-{len(digests)}", len(digests)


def _sigv4(signature_version=None, **_kwargs):
    return "s3v4" if signature_version in (None, "s3") else signature_version


class S3ClipStore(ClipStore):
    """ClipStore whose permanent copy is `s3://bucket/prefix/clips/sha256/ab/<sha256>.mp4`.

    `root` is the local cache (verified copies ffmpeg can read); `uri` of every clip is its s3:// URI."""

    def __init__(self, client, bucket: str, prefix: str = "video-pipeline", cache_dir: Path | None = None,
                 multipart_threshold: int = MULTIPART_THRESHOLD, part_bytes: int = PART_BYTES,
                 link_seconds: int = LINK_SECONDS, policy=None):
        super().__init__(cache_dir or Path(tempfile.gettempdir()) / "video-pipeline-clip-cache", policy)
        self.client = client
        # presigned links in SigV4 (expiry capped at 7 days, no key id in the clear), whatever the client defaulted to
        client.meta.events.register("choose-signer.s3.*", _sigv4, unique_id="video-pipeline-sigv4")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.link_seconds = link_seconds
        self.multipart_threshold = max(multipart_threshold, 5 * MIB)
        self.part_bytes = max(part_bytes, 5 * MIB)
        self.transfer = TransferConfig(multipart_threshold=self.multipart_threshold,
                                       multipart_chunksize=self.part_bytes, use_threads=True, max_concurrency=4)

    # --- keys ---------------------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key_for(self, sha256: str, suffix: str = ".mp4") -> str:
        return f"{self.prefix}/clips/sha256/{sha256[:2]}/{sha256}{suffix}"

    def uri_for_key(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, uri: str) -> str | None:
        """The key an s3:// URI names when it is in this bucket under this prefix, else None."""
        parsed = urlparse(uri)
        key = parsed.path.lstrip("/")
        if parsed.scheme != "s3" or parsed.netloc != self.bucket or not key.startswith(self.prefix + "/"):
            return None
        return key

    # --- uploads ------------------------------------------------------------------------------------------

    def upload(self, path: Path, key: str, content_type: str = "application/octet-stream") -> UploadedObject:
        """Upload `path` (in parts above the threshold) and check S3's SHA-256 checksum against the local file's."""
        sha = file_sha256(path)
        expected, parts = s3_checksum(path, self.part_bytes, self.multipart_threshold)
        self.client.upload_file(str(path), self.bucket, key, Config=self.transfer, ExtraArgs={
            "ChecksumAlgorithm": "SHA256", "ContentType": content_type, "Metadata": {"sha256": sha}})
        head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        reported = head.get("ChecksumSHA256") or ""
        # AWS suffixes a multipart checksum with `-<parts>`; some S3-compatible servers leave the suffix off
        if parts > 1 and "-" not in reported:
            reported = f"{reported}-{parts}"
        if reported != expected or head.get("ContentLength") != path.stat().st_size:
            raise StorageIntegrityError(
                f"s3://{self.bucket}/{key}: S3 reports checksum {reported} and {head.get('ContentLength')} bytes, "
                f"expected {expected} and {path.stat().st_size} bytes; the upload was not kept as sent")
        return UploadedObject(key=key, sha256=sha, size_bytes=path.stat().st_size, parts=parts)

    def _present(self, key: str, sha256: str) -> bool:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return head.get("Metadata", {}).get("sha256") == sha256

    def put_file(self, src: Path, expected_seconds: float | None = None, tolerance: float = 0.5) -> StoredClip:
        """Verify `src` (decodes, duration), keep it in the cache, and upload it unless the bucket has it already."""
        local = super().put_file(src, expected_seconds, tolerance)
        key = self.key_for(local.sha256, local.path.suffix)
        try:
            if not self._present(key, local.sha256):
                self.upload(local.path, key, CONTENT_TYPES.get(local.path.suffix, "video/mp4"))
        except (ClientError, BotoCoreError, Boto3Error) as exc:   # S3 down, throttling past retries, denied
            raise _unavailable("upload to", self.uri_for_key(key), exc) from exc
        return StoredClip(uri=self.uri_for_key(key), path=local.path, sha256=local.sha256,
                          size_bytes=local.size_bytes, info=local.info)

    # --- reads --------------------------------------------------------------------------------------------

    def local_copy(self, uri: str) -> Path:
        """A verified local copy of the clip an s3:// URI names (downloaded once into the cache)."""
        key = self.key_of(uri)
        if key is None:
            raise StorageIntegrityError(f"{uri}: not a clip of {self.location}")
        name = Path(key).name
        sha = Path(name).stem
        path = self.path_for(sha, Path(name).suffix or ".mp4")
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix("download-"), suffix=path.suffix, dir=path.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, key, tmp, Config=self.transfer)
            actual = file_sha256(Path(tmp))
            if actual != sha:
                raise StorageIntegrityError(f"{uri}: the object's SHA-256 is {actual}, not the {sha} its key names")
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return path

    def held(self, url: str) -> StoredClip | None:
        """The stored clip an s3:// URI of this store points at (a reused job's clip), fetched into the cache."""
        if self.key_of(url) is None:
            return None
        try:
            path = self.local_copy(url)
        except ClientError:
            return None
        return StoredClip(uri=url, path=path, sha256=path.stem, size_bytes=path.stat().st_size, info=probe(path))

    def link(self, key: str, seconds: int | None = None) -> str:
        """A presigned GET URL for `key` (what metadata and reports link to; no credentials in it beyond a signature)."""
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                  ExpiresIn=seconds or self.link_seconds)

    # --- tables between stages ----------------------------------------------------------------------------

    def localize(self, clips: pd.DataFrame) -> pd.DataFrame:
        """The stored-clips table with each clip_path pointing at a verified local copy (for a worker on
        another machine, whose cache does not have them yet)."""
        clips = clips.copy()
        for i, row in clips.iterrows():
            if row.get("state") == "stored" and isinstance(row.get("clip_uri"), str) and self.key_of(row["clip_uri"]):
                clips.at[i, "clip_path"] = str(self.local_copy(row["clip_uri"]))
        return clips

    def output_key(self, campaign: str, path: Path) -> str:
        return f"{self.prefix}/outputs/{campaign}/{path.name}"

    def link_for(self, path: Path) -> str:
        """The report's link to a published output file (`data/outputs/<campaign>/<name>`): a presigned URL, so a
        report opened away from the machine that made it still plays and shows everything."""
        return self.link(self.output_key(path.parent.name, path))

    def publish_outputs(self, outputs: pd.DataFrame) -> pd.DataFrame:
        """Upload each finished video and its side files to `<prefix>/outputs/<campaign>/`; the table's
        output_uri becomes the video's s3:// URI and `output_link` a presigned URL to it."""
        outputs = outputs.copy()
        outputs["output_link"] = None
        if "output_uri" not in outputs:
            outputs["output_uri"] = None
        for i, row in outputs.iterrows():
            if row.get("state") != "assembled":
                continue
            for column in OUTPUT_FILE_COLUMNS:
                value = row.get(column)
                if not isinstance(value, str) or not value:
                    continue
                path = Path(value)
                key = self.output_key(row["campaign"], path)
                self.upload(path, key, CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
                if column == "output_path":
                    outputs.at[i, "output_uri"] = self.uri_for_key(key)
                    outputs.at[i, "output_link"] = self.link(key)
        return outputs

"""The S3 clip store against moto's S3 server over HTTP: content-addressed keys, multipart uploads whose checksum
S3 reports back, verified downloads, presigned links a plain HTTP client can fetch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from video_pipeline.media.render import ClipSpec, render_clip
from video_pipeline.storage.s3store import MIB, S3ClipStore, StorageIntegrityError
from video_pipeline.storage.store import file_sha256

pytestmark = pytest.mark.production


def small_clip(path: Path, text: str = "harbour at dawn", seconds: float = 2) -> Path:
    return render_clip(ClipSpec(text=text, label="test", seconds=seconds, width=160, height=90, preset="ultrafast"),
                       path)


def test_a_clip_is_kept_under_its_sha256_and_a_worker_with_an_empty_cache_gets_it_back_verified(
        s3_client, bucket, tmp_path):
    store = S3ClipStore(s3_client, bucket, "studio", tmp_path / "cache-a")
    clip = store.put_file(small_clip(tmp_path / "incoming.mp4"), expected_seconds=2)

    sha = file_sha256(clip.path)
    assert clip.uri == f"s3://{bucket}/studio/clips/sha256/{sha[:2]}/{sha}.mp4"
    listed = {o["Key"]: o["Size"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {f"studio/clips/sha256/{sha[:2]}/{sha}.mp4": clip.size_bytes}

    other_machine = S3ClipStore(s3_client, bucket, "studio", tmp_path / "cache-b")
    held = other_machine.held(clip.uri)
    assert held is not None and held.path.is_relative_to(tmp_path / "cache-b")
    assert file_sha256(held.path) == sha and held.info.video_codec == "h264"


def test_an_object_changed_in_the_bucket_is_refused_when_fetched(s3_client, bucket, tmp_path):
    store = S3ClipStore(s3_client, bucket, "studio", tmp_path / "cache-a")
    clip = store.put_file(small_clip(tmp_path / "incoming.mp4"))
    key = store.key_of(clip.uri)
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"not the clip")

    fresh = S3ClipStore(s3_client, bucket, "studio", tmp_path / "cache-b")
    with pytest.raises(StorageIntegrityError, match=clip.sha256):
        fresh.local_copy(clip.uri)
    assert not list((tmp_path / "cache-b").rglob("*.mp4"))   # nothing unverified is kept


def test_a_large_file_goes_up_in_parts_and_s3_reports_the_checksum_of_what_was_sent(s3_client, bucket, tmp_path):
    store = S3ClipStore(s3_client, bucket, "studio", tmp_path / "cache", multipart_threshold=5 * MIB,
                        part_bytes=5 * MIB)
    big = tmp_path / "master.mp4"
    big.write_bytes(os.urandom(11 * MIB + 123))

    uploaded = store.upload(big, "studio/outputs/c1/master.mp4", "video/mp4")

    assert uploaded.parts == 3
    head = s3_client.head_object(Bucket=bucket, Key=uploaded.key, PartNumber=1)
    assert head["PartsCount"] == 3
    link = store.link(uploaded.key, seconds=600)
    response = httpx.get(link, timeout=30)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == file_sha256(big) == uploaded.sha256


def test_the_reports_links_to_published_outputs_are_presigned_urls_that_fetch_the_files(s3_client, bucket, tmp_path):
    import pandas as pd

    store = S3ClipStore(s3_client, bucket, "studio", tmp_path / "cache")
    folder = tmp_path / "outputs" / "launch"
    folder.mkdir(parents=True)
    video = small_clip(folder / "teaser.mp4")
    poster = folder / "teaser.poster.png"
    poster.write_bytes(b"\x89PNG\r\n\x1a\n poster bytes")
    outputs = pd.DataFrame([{"campaign": "launch", "state": "assembled", "output_path": str(video),
                             "poster": str(poster)}])

    published = store.publish_outputs(outputs)

    for path in (video, poster):
        link = store.link_for(path)
        assert link.startswith(s3_client.meta.endpoint_url) and "Signature" in link
        assert httpx.get(link, timeout=30).content == path.read_bytes()
    assert httpx.get(published.loc[0, "output_link"], timeout=30).content == video.read_bytes()

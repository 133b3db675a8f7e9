"""Content-addressed clip storage, and downloads that verify what they fetched before keeping it."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from video_pipeline.atomic import owned_temp
from video_pipeline.errors import MediaError, ProviderError
from video_pipeline.media.probe import MediaInfo, decodes, probe
from video_pipeline.storage.netguard import DownloadPolicy

MAX_CLIP_BYTES = 2 * 1024 ** 3
MAX_REDIRECTS = 5
VIDEO_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class StoredClip:
    uri: str
    path: Path
    sha256: str
    size_bytes: int
    info: MediaInfo


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, max_bytes: int = MAX_CLIP_BYTES, timeout: float = 120.0,
          headers: dict[str, str] | None = None, allow_file: bool = True, policy: DownloadPolicy | None = None) -> int:
    """Stream `url` (https, http or file) to `dest` with a size cap; returns the byte count.

    `headers` are for providers whose output URLs need auth (Gemini): they are never logged or stored.
    http(s) URLs and each redirect must pass `policy` (default: live mode's, the strictest: https to known
    provider hosts with public addresses; a run passes its own, `DownloadPolicy.from_settings`)."""
    scheme = urlparse(url).scheme
    if scheme == "file" and not allow_file:
        raise ProviderError("a remote provider returned a file:// URL; refusing to read local files",
                            kind=ProviderError.TERMINAL)
    if scheme == "file":
        src = Path(unquote(urlparse(url).path))
        if not src.is_file():
            raise ProviderError(f"output file {src.name} is gone (the URL expired or was never written)")
        size = src.stat().st_size
        if size > max_bytes:
            raise MediaError(f"{src.name}: {size} bytes is over the {max_bytes}-byte cap")
        shutil.copyfile(src, dest)
        return size
    if scheme not in ("https", "http"):
        raise ProviderError(f"refusing to download from a {scheme or 'schemeless'} URL", kind=ProviderError.TERMINAL)
    try:
        return _fetch_http(url, dest, max_bytes, timeout, headers or {}, policy or DownloadPolicy())
    except httpx.HTTPStatusError as exc:
        raise ProviderError(f"download failed: HTTP {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise ProviderError(f"download truncated or interrupted: {exc}") from None


def _fetch_http(url: str, dest: Path, max_bytes: int, timeout: float, headers: dict[str, str],
                policy: DownloadPolicy) -> int:
    origin = urlparse(url).netloc
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            policy.check(url)   # every hop: scheme, known host, no private address (netguard)
            # Auth headers go only to the host they were given for, never along a redirect to another host.
            sent = headers if urlparse(url).netloc == origin else {}
            with client.stream("GET", url, headers=sent) as response:
                if response.is_redirect:
                    url = str(response.url.join(response.headers["location"]))
                    continue
                return _save(response, dest, max_bytes)
    raise ProviderError(f"download redirected more than {MAX_REDIRECTS} times")


def _save(response: httpx.Response, dest: Path, max_bytes: int) -> int:
    written = 0
    if response.status_code in (403, 404, 410):
        raise ProviderError(f"output URL answered {response.status_code} (expired or removed)")
    response.raise_for_status()
    ctype = response.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    if not ctype.startswith(VIDEO_CONTENT_TYPES):
        raise ProviderError(f"output URL returned content type {ctype!r}, expected a video", kind=ProviderError.TERMINAL)
    expected = response.headers.get("content-length")
    with dest.open("wb") as fh:
        for chunk in response.iter_bytes(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise MediaError(f"download exceeded the {max_bytes}-byte cap")
            fh.write(chunk)
    if expected is not None and int(expected) != written:
        raise ProviderError(f"download truncated: got {written} of {expected} bytes")
    return written


class ClipStore:
    """Clips kept under root/sha256/ab/<sha256>.mp4; the provider URL is never the permanent reference."""

    def __init__(self, root: Path, policy: DownloadPolicy | None = None):
        self.policy = policy   # where downloads may come from (see `fetch`)
        self.root = root

    def path_for(self, sha256: str, suffix: str = ".mp4") -> Path:
        return self.root / "sha256" / sha256[:2] / f"{sha256}{suffix}"

    def uri_for(self, path: Path) -> str:
        return path.resolve().as_uri()

    # Backends (s3store.S3ClipStore) keep the permanent copy elsewhere; locally these three are the identity.
    @property
    def location(self) -> str:
        """Where the permanent copies are, for metadata."""
        return str(self.root)

    def localize(self, clips):
        """The stored-clips table with every clip_path readable on this machine."""
        return clips

    def publish_outputs(self, outputs):
        """The outputs table after the finished files are kept where the store keeps things (here: in place)."""
        return outputs

    def put_file(self, src: Path, expected_seconds: float | None = None, tolerance: float = 0.5) -> StoredClip:
        """Verify `src` decodes (and lasts `expected_seconds`), then move it into the store atomically."""
        info = probe(src)
        if info.video_codec is None or not decodes(src):
            raise MediaError(f"{src.name}: no decodable video stream")
        # Longer is fine: a fallback model may only make a longer clip (Hailuo: 6 or 10 s); assembly trims it.
        if expected_seconds is not None and info.duration < expected_seconds - tolerance:
            raise MediaError(f"{src.name}: lasts {info.duration:.2f}s, expected at least {expected_seconds:g}s")
        sha = file_sha256(src)
        dest = self.path_for(sha, src.suffix or ".mp4")
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = src.stat().st_size
        if dest.exists():
            src.unlink()
        else:
            os.replace(src, dest)
        return StoredClip(uri=self.uri_for(dest), path=dest, sha256=sha, size_bytes=size, info=info)

    def held(self, url: str) -> StoredClip | None:
        """The stored clip a file:// URL points at, when it is already in this store (a reused job's clip)."""
        if urlparse(url).scheme != "file":
            return None
        path = Path(unquote(urlparse(url).path))
        root = (self.root / "sha256").resolve()
        if root not in path.resolve().parents or not path.is_file():
            return None
        return StoredClip(uri=self.uri_for(path), path=path, sha256=path.stem, size_bytes=path.stat().st_size,
                          info=probe(path))

    def store_url(self, url: str, expected_seconds: float | None = None,
                  headers: dict[str, str] | None = None, allow_file: bool = True, fetcher=None) -> StoredClip:
        """Download a provider output to a temp file beside the store (named for its writer, so a killed run's is
        swept: `atomic.sweep`), verify it, keep it content-addressed with the umask's permissions. `fetcher(url,
        dest)` writes outputs the provider must fetch itself (returns None for a URL to download as usual)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp_path = owned_temp(self.root, "incoming-", ".mp4")
        try:
            if fetcher is None or fetcher(url, tmp_path) is None:
                fetch(url, tmp_path, headers=headers, allow_file=allow_file, policy=self.policy)
            return self.put_file(tmp_path, expected_seconds)
        finally:
            tmp_path.unlink(missing_ok=True)

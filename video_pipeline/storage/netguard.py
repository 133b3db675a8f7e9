"""Where downloads may go: the policy every provider-output download is checked against, hop by hop.

In live mode an output URL is fetched only when
- its origin (scheme, host, port) is one the operator configured explicitly with a
  `VIDEO_PIPELINE_<PROVIDER>_BASE_URL` (a proxy, a region, a fake on loopback): any scheme and address, or
- it is https, its host is one of the providers' known API or result hosts (`KNOWN_HOST_SUFFIXES`, plus any
  domains listed in `VIDEO_PIPELINE_DOWNLOAD_HOSTS`), and every address that host resolves to is public (never private, loopback, link-local, reserved or multicast).
In local and fake modes, provider outputs are local files or come from fakes on loopback: only loopback hosts.
Redirects are checked at every hop (store.fetch follows them itself). Size caps are the caller's (store.fetch).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from video_pipeline.errors import ProviderError

#: registrable domains a provider's API or its result files live on (a host matches itself or any subdomain)
KNOWN_HOST_SUFFIXES: dict[str, tuple[str, ...]] = {
    "gemini": ("googleapis.com", "googleusercontent.com"),
    "vertex": ("googleapis.com",),          # {location}-aiplatform and storage.googleapis.com
    "kling": ("klingai.com",),
    "minimax": ("minimax.io", "minimaxi.com", "minimax.chat"),
    "ark": ("bytepluses.com", "byteplus.com", "volces.com"),
    "dashscope": ("aliyuncs.com",),
    "fal": ("fal.run", "fal.media", "fal.ai"),
    "replicate": ("replicate.com", "replicate.delivery"),
    "runway": ("runwayml.com", "cloudfront.net"),
    "openai": ("openai.com",),
    "elevenlabs": ("elevenlabs.io",),
}
#: comma-separated extra domains results may come from (a provider's CDN not listed above), same https/public rules
EXTRA_HOSTS_VARIABLE = "VIDEO_PIPELINE_DOWNLOAD_HOSTS"


class DownloadRefused(ProviderError):
    """A download the policy does not allow (terminal: no retry or other model changes where a URL points)."""

    def __init__(self, message: str):
        super().__init__(message, kind=ProviderError.TERMINAL)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise DownloadRefused(f"refusing a download with an invalid port in {redacted(url)}") from None
    return scheme, (parts.hostname or "").lower().rstrip("."), port or {"http": 80, "https": 443}.get(scheme)


def redacted(url: str) -> str:
    """A URL without its query string or credentials (signed URLs carry secrets there): safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def _resolve(host: str, port: int | None) -> list[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})
    except (socket.gaierror, UnicodeError):
        raise DownloadRefused(f"refusing a download from {host}: the name does not resolve") from None


@dataclass(frozen=True)
class DownloadPolicy:
    """Which URLs downloads may fetch (see the module docstring); `check(url)` raises DownloadRefused otherwise."""

    mode: str = "live"
    configured: frozenset[tuple[str, str, int | None]] = field(default_factory=frozenset)
    known_suffixes: tuple[str, ...] = tuple(s for group in KNOWN_HOST_SUFFIXES.values() for s in group)
    resolve: object = _resolve

    @classmethod
    def from_settings(cls, settings) -> "DownloadPolicy":
        """The policy for a run: its mode, every `VIDEO_PIPELINE_<PROVIDER>_BASE_URL` as configured, and the extra
        result domains of `VIDEO_PIPELINE_DOWNLOAD_HOSTS`."""
        configured = set()
        for value in settings.base_urls.values():
            try:
                configured.add(_origin(value))
            except DownloadRefused:
                continue
        return cls(mode=settings.mode, configured=frozenset(configured),
                   known_suffixes=cls.known_suffixes + tuple(settings.download_hosts))

    def check(self, url: str) -> None:
        """Raise DownloadRefused unless `url` may be fetched; called for the first URL and for every redirect."""
        scheme, host, port = _origin(url)
        shown = redacted(url)
        if scheme not in ("https", "http") or not host:
            raise DownloadRefused(f"refusing to download {shown}: only http(s) URLs are fetched")
        if (scheme, host, port) in self.configured:
            return   # the operator pointed an adapter here explicitly
        addresses = self.resolve(host, port)
        if self.mode != "live":
            if all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses):
                return
            raise DownloadRefused(f"refusing to download {shown}: in {self.mode} mode outputs come only from "
                                  "loopback (the local provider or the fakes)")
        if scheme != "https":
            raise DownloadRefused(f"refusing to download {shown}: live downloads use https only")
        if not any(host == s or host.endswith("." + s) for s in self.known_suffixes):
            raise DownloadRefused(f"refusing to download {shown}: {host} is not a known provider host; add its "
                                  f"domain to {EXTRA_HOSTS_VARIABLE} (https, public addresses only) or set "
                                  "VIDEO_PIPELINE_<PROVIDER>_BASE_URL to allow a host explicitly")
        private = [a for a in addresses if not _is_public(a)]
        if private:
            raise DownloadRefused(f"refusing to download {shown}: {host} resolves to a non-public address "
                                  f"({', '.join(private)})")

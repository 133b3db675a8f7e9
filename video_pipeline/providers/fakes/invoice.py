"""What a fake provider bills: every job it created, priced by the catalog's billing rules.

`JobBook.invoice()` (served by the fleet as JSON at GET /_fake/invoice) is built by `invoice_of`, shape below."""

from __future__ import annotations

import re

import ipaddress
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from video_pipeline.planning.catalog import Catalog, ModelSpec

if TYPE_CHECKING:
    from video_pipeline.providers.fakes.jobs import FakeJob

INVOICE_PATH = "/_fake/invoice"
#: endpoint variants an adapter appends to (or swaps into) a route's model id, e.g. fal's `…/image-to-video`
VARIANTS = {"text-to-video", "image-to-video", "video-to-video", "reference-to-video"}
#: Kling's modes set the output size: std renders 720p, pro 1080p
KLING_MODES = {"std": "720p", "pro": "1080p"}
MAX_INVOICE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Quote:
    """One job priced: its catalog model, the resolution billed, the amount in USD, and what was uncertain."""

    model: str | None
    resolution: str | None
    amount_usd: float
    credits: int | None = None
    flags: tuple[str, ...] = ()


#: (job, outcome or None while the job runs) → its Quote; None asks for the price if it succeeds
Pricing = Callable[["FakeJob", "str | None"], Quote]


def outcome_of(job: "FakeJob", phase: str) -> str | None:
    """The billing outcome of a job in `phase`; None while it has not ended."""
    if phase == "failed":
        return "failed-policy" if job.fault == "fail-policy" else "failed"
    return phase if phase in ("succeeded", "canceled") else None


#: DashScope names a model's task variants with a suffix: wan2.6-t2v, wan2.6-i2v, wan2.6-r2v (and -i2v-flash)
DASH_VARIANT = re.compile(r"-(t2v|i2v|r2v|s2v|v2v)(-[a-z]+)?$")


def _family(model_id: str) -> str:
    """A model id without the endpoint variant an adapter may put at its end (fal's /text-to-video path part,
    DashScope's -t2v / -i2v / -r2v suffix)."""
    head, _, last = model_id.strip("/").rpartition("/")
    if head and last in VARIANTS:
        return head
    return DASH_VARIANT.sub("", model_id.strip("/"))


def catalog_resolution(raw: object) -> str | None:
    """A provider's resolution string ("768P", "1080p") as the catalog's ("720p", "1080p"); None when unknown."""
    text = str(raw or "").strip().lower()
    if not (text.endswith("p") and text[:-1].isdigit()):
        return text or None
    height = int(text[:-1])
    # MiniMax's 512P/768P tiers are what the catalog prices as 720p (see the hailuo-02 entry)
    return "720p" if height <= 768 else "1080p" if height <= 1080 else text


class Tariff:
    """Prices one provider's fake jobs: each route's provider model id → the catalog model's billing rule."""

    def __init__(self, provider: str, catalog: Catalog | None):
        self.provider = provider
        self.models: dict[str, ModelSpec] = {}
        for spec in (catalog.models.values() if catalog else ()):
            for route in spec.routes:
                if route.provider == provider:
                    self.models.setdefault(route.model_id.strip("/"), spec)
        self._families = {}
        for model_id, spec in self.models.items():
            self._families.setdefault(_family(model_id), spec)

    def model_for(self, provider_model: str) -> ModelSpec | None:
        key = provider_model.strip("/")
        return self.models.get(key) or self._families.get(_family(key))

    def resolution_for(self, spec: ModelSpec, meta: Mapping) -> tuple[str, tuple[str, ...]]:
        raw = meta.get("resolution")
        if raw is None and meta.get("mode") in KLING_MODES:
            raw = KLING_MODES[meta["mode"]]
        resolution = catalog_resolution(raw)
        if resolution is None:
            return spec.resolutions[0], ("resolution-assumed",)
        if resolution not in spec.resolutions:
            return spec.resolutions[-1], ("resolution-unpriced",)
        return resolution, ()

    def __call__(self, job: "FakeJob", outcome: str | None) -> Quote:
        spec = self.model_for(str(job.meta.get("model", "")))
        if spec is None:
            return Quote(None, catalog_resolution(job.meta.get("resolution")), 0.0, flags=("unknown-model",))
        resolution, flags = self.resolution_for(spec, job.meta)
        try:
            if outcome is None:
                amount = spec.cost(job.seconds, resolution)
            else:
                # a fake renders exactly the seconds asked for, so its output is as long as the request
                amount = spec.charge(job.seconds, resolution, outcome, provider=self.provider,
                                     output_seconds=job.seconds)
        except ValueError:
            return Quote(spec.id, resolution, 0.0, flags=flags + ("unpriceable",))
        return Quote(spec.id, resolution, amount, spec.billing.credits(amount), flags)


# An invoice is {provider, currency, jobs, total_usd, pending_usd, unpriced_jobs, lines}; a line is {provider, job_id,
# provider_model, model, seconds, resolution, state, fault, outcome, amount_usd, pending_usd, credits, flags}.
# `state` is the job's phase now; a finished job's charge is `amount_usd`, an unfinished one's price if it succeeds
# is `pending_usd`, kept out of `total_usd` because nothing is owed yet. Flags: unknown-model (no catalog model for
# that provider model id: billed nothing), resolution-assumed (the fake keeps no resolution for the job: the
# model's lowest is used), resolution-unpriced, unpriceable.
def _line(job: "FakeJob", pricing: Pricing | None, provider: str, now: float) -> dict:
    phase = job.phase(now)
    outcome = outcome_of(job, phase)
    quote = pricing(job, outcome) if pricing is not None else Quote(None, None, 0.0, flags=("unknown-model",))
    finished = outcome is not None
    return {"provider": provider, "job_id": job.id, "provider_model": str(job.meta.get("model", "")),
            "model": quote.model, "seconds": job.seconds, "resolution": quote.resolution, "state": phase,
            "fault": job.fault if phase == "failed" or job.fault == "stuck" else None, "outcome": outcome,
            "amount_usd": quote.amount_usd if finished else 0.0, "pending_usd": 0.0 if finished else quote.amount_usd,
            "credits": quote.credits if finished else None, "flags": list(quote.flags)}


def _totals(lines: list[dict]) -> dict:
    return {"jobs": len(lines), "total_usd": round(sum(line["amount_usd"] for line in lines), 4),
            "pending_usd": round(sum(line["pending_usd"] for line in lines), 4),
            "unpriced_jobs": sum(1 for line in lines if "unknown-model" in line["flags"])}


def invoice_of(jobs: Iterable["FakeJob"], pricing: Pricing | None, provider: str = "",
               now: float | None = None) -> dict:
    """The invoice for `jobs` as of `now`: one line per job, in creation order, and the totals."""
    at = time.time() if now is None else now
    lines = [_line(job, pricing, provider, at) for job in jobs]
    return {"provider": provider, "currency": "USD", **_totals(lines), "lines": lines}


def combine(invoices: Mapping[str, dict]) -> dict:
    """Several fakes' invoices as one: every line, the totals, and each provider's totals."""
    lines = [line for invoice in invoices.values() for line in invoice["lines"]]
    per_provider = {name: {k: invoice[k] for k in ("jobs", "total_usd", "pending_usd", "unpriced_jobs")}
                    for name, invoice in invoices.items()}
    return {"currency": "USD", **_totals(lines), "providers": per_provider, "lines": lines}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def fetch_invoice(base_url: str, timeout: float = 5.0, max_bytes: int = MAX_INVOICE_BYTES) -> dict:
    """GET a running fake's invoice (a loopback URL, e.g. from `video-pipeline fakes serve`); raises ValueError."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not is_loopback(parts.hostname or ""):
        raise ValueError(f"{base_url!r}: the fakes serve their invoices on http loopback addresses only")
    url = f"{base_url.rstrip('/')}{INVOICE_PATH}"
    body = bytearray()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise ValueError(f"GET {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise ValueError(f"GET {url}: invoice larger than {max_bytes} bytes")
    except httpx.HTTPError as exc:
        raise ValueError(f"GET {url}: {type(exc).__name__}: {exc}") from None
    try:
        invoice = json.loads(bytes(body))
    except ValueError:
        raise ValueError(f"GET {url}: not JSON") from None
    if not isinstance(invoice, dict) or not isinstance(invoice.get("lines"), list):
        raise ValueError(f"GET {url}: not an invoice")
    return invoice

"""Every video provider's fake on loopback at once, with the environment that points the live adapters at them.

`video-pipeline fakes serve` runs this for demos; tests use it to run campaigns in live mode, offline.
Every fake bills its jobs by the catalog's rules and answers GET /_fake/invoice with what it would charge.
"""

from __future__ import annotations

import importlib
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from starlette.responses import JSONResponse

from video_pipeline.planning.catalog import Catalog, CatalogError, load_catalog
from video_pipeline.config import Settings
from video_pipeline.providers.fakes.invoice import INVOICE_PATH, Tariff, combine, fetch_invoice, is_loopback
from video_pipeline.providers.fakes.jobs import JobBook
from video_pipeline.providers.fakes.server import FakeServer
from video_pipeline.providers.fakes.tls import LocalCA

KEY_FILE = "vertex-service-account.json"

#: provider → (environment variable → test value, create_app keyword for each variable)
FAKE_CREDENTIALS: dict[str, dict[str, tuple[str, str]]] = {
    "gemini": {"GEMINI_API_KEY": ("test-gemini-key", "api_key")},
    "kling": {"KLING_ACCESS_KEY": ("test-kling-access-key-0123456789ab", "access_key"),
              "KLING_SECRET_KEY": ("test-kling-secret-key-0123456789ab", "secret_key")},
    "minimax": {"MINIMAX_API_KEY": ("test-minimax-key", "api_key")},
    "ark": {"ARK_API_KEY": ("test-ark-key", "api_key")},
    "dashscope": {"DASHSCOPE_API_KEY": ("test-dashscope-key", "api_key")},
    "fal": {"FAL_KEY": ("test-fal-key", "api_key")},
    "replicate": {"REPLICATE_API_TOKEN": ("test-replicate-token", "api_token")},
    "runway": {"RUNWAYML_API_SECRET": ("test-runway-key", "api_key")},
    # the key file (GOOGLE_APPLICATION_CREDENTIALS) is written when the fake starts: see `vertex_environment`
    "vertex": {"GOOGLE_CLOUD_PROJECT": ("test-project", "project"),
               "GOOGLE_CLOUD_LOCATION": ("us-central1", "location")},
}


DEFAULT_BASE_PORT = 8710
#: fixed, public test secrets, so a receiver configured from the printed environment accepts the fakes' webhooks
FAKE_WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5YWI="


def fixed_environment(base_port: int = DEFAULT_BASE_PORT, providers: frozenset[str] | None = None) -> dict[str, str]:
    """The environment for fakes served by `video-pipeline fakes serve` on consecutive ports from `base_port`
    (the settings' `fakes_port`): every fake's URL, and the test keys of `providers` (default: all of them)."""
    base = base_port
    env: dict[str, str] = {}
    for i, name in enumerate(FAKE_CREDENTIALS):
        env[f"VIDEO_PIPELINE_{name.upper()}_BASE_URL"] = f"http://127.0.0.1:{base + i}"
        if providers is None or name in providers:
            env.update({var: value for var, (value, _) in FAKE_CREDENTIALS[name].items()})
    env.update(_webhook_environment(env["VIDEO_PIPELINE_FAL_BASE_URL"]))
    env["VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL"] = env["VIDEO_PIPELINE_FAL_BASE_URL"]   # fal's request listing
    env.update(vertex_environment(env["VIDEO_PIPELINE_VERTEX_BASE_URL"], vertex_key_file_for(base)))
    return env


def vertex_environment(url: str, key_file: Path) -> dict[str, str]:
    """The Vertex fake's service-account key file and its Cloud Storage downloads, both served by the fake."""
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(key_file), "VIDEO_PIPELINE_VERTEX_STORAGE_BASE_URL": url}


def _webhook_environment(fal_url: str) -> dict[str, str]:
    """What `video-pipeline webhooks serve` needs to verify the fakes' signed deliveries."""
    return {"REPLICATE_WEBHOOK_SECRET": FAKE_WEBHOOK_SECRET, "GEMINI_WEBHOOK_SECRET": FAKE_WEBHOOK_SECRET,
            "VIDEO_PIPELINE_FAL_JWKS_URL": f"{fal_url}/.well-known/jwks.json"}


def vertex_key_file_for(base_port: int) -> Path:
    """Where the fleet served from `base_port` keeps the Vertex fake's service-account key file (a fresh key per
    start; the file names the fake's token endpoint)."""
    return Path(tempfile.gettempdir()) / f"video-pipeline-fakes-{base_port}" / KEY_FILE


def fleet_is_up(base_port: int = DEFAULT_BASE_PORT) -> bool:
    base = base_port
    try:
        with socket.create_connection(("127.0.0.1", base), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Fleet:
    servers: dict[str, FakeServer] = field(default_factory=dict)
    books: dict[str, JobBook] = field(default_factory=dict)
    vertex_key_file: Path | None = None     # the Vertex fake's service-account key file, once it serves

    def environment(self) -> dict[str, str]:
        """Keys set to the fakes' test values and every VIDEO_PIPELINE_<PROVIDER>_BASE_URL pointed at its fake."""
        env = {"VIDEO_PIPELINE_MODE": "live"}
        for name, server in self.servers.items():
            env[f"VIDEO_PIPELINE_{name.upper()}_BASE_URL"] = server.url
            env.update({var: value for var, (value, _) in FAKE_CREDENTIALS[name].items()})
        if "fal" in self.servers:
            env.update(_webhook_environment(self.servers["fal"].url))
            env["VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL"] = self.servers["fal"].url     # fal's request listing
        if "vertex" in self.servers:
            env.update(vertex_environment(self.servers["vertex"].url, self.vertex_key_file))
        return env

    def registry(self, catalog, latency_scale: float = 0.01, wrong_key: bool = False):
        """The live adapters pointed at these fakes (fal's request listing too), with their test keys (or wrong
        ones), polling on latency profiles scaled by `latency_scale`: no environment needed."""
        from video_pipeline.providers.base import ProviderRegistry
        from video_pipeline.providers.live import build_adapter

        providers = {}
        for name, server in self.servers.items():
            keys = {var: ("wrong" if wrong_key else value) for var, (value, _) in FAKE_CREDENTIALS[name].items()}
            extra = {"platform_base_url": server.url} if name == "fal" else {}
            if name == "vertex":
                keys["GOOGLE_APPLICATION_CREDENTIALS"] = str(self.vertex_key_file)
                extra = {"storage_base_url": server.url}
            adapter = build_adapter(name, keys, base_url=server.url, **extra)
            adapter.latency_scale = latency_scale  # fake jobs finish in about a second: poll on a scaled schedule
            adapter.backoff_base = 0.01
            adapter.stuck_grace_seconds = 1.0      # a stuck fake job is given up on within seconds
            providers[name] = adapter
        return ProviderRegistry(catalog, providers)

    def duplicate_submissions(self) -> int:
        return sum(book.duplicate_submissions() for book in self.books.values())

    def invoice(self) -> dict:
        """Every fake's invoice summed: all lines, the totals, and each provider's (see fakes.invoice)."""
        return combine({name: book.invoice() for name, book in self.books.items()})

    def stop(self) -> None:
        for book in self.books.values():
            book.stop_webhooks()
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class WithInvoice:
    """A fake's ASGI app with GET /_fake/invoice answered from its book (to loopback callers); the rest passes on."""

    def __init__(self, app, book: JobBook):
        self.app, self.book = app, book

    @property
    def state(self):
        return self.app.state       # tests read what the fake saw (`server.app.state.seen`)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") != INVOICE_PATH:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("",))[0]
        if not is_loopback(str(client)):
            response = JSONResponse({"detail": "the invoice is served to loopback callers only"}, status_code=403)
        elif scope.get("method") != "GET":
            response = JSONResponse({"detail": "method not allowed"}, status_code=405, headers={"Allow": "GET"})
        else:
            response = JSONResponse(self.book.invoice())
        await response(scope, receive, send)


def default_catalog(path: Path | None = None) -> Catalog | None:
    """The catalog at `path` (default: the project's bundled one); None when it cannot be read."""
    try:
        return load_catalog(path or Settings().catalog_file)
    except (CatalogError, OSError):
        return None     # the fakes still serve; their invoices flag every job as unpriced


def fetch_fleet_invoice(base_port: int = DEFAULT_BASE_PORT, providers: list[str] | None = None) -> dict:
    """The summed invoice of a fleet served on consecutive ports (`video-pipeline fakes serve`)."""
    env = fixed_environment(base_port)
    return combine({name: fetch_invoice(env[f"VIDEO_PIPELINE_{name.upper()}_BASE_URL"])
                    for name in (providers or list(FAKE_CREDENTIALS))})


def start_fleet(latency: float = 0.5, providers: list[str] | None = None, work_dir: Path | None = None,
                base_port: int | None = None, latency_p95: float | None = None,
                catalog: Catalog | None = None, catalog_file: Path | None = None, tls: LocalCA | None = None) -> Fleet:
    """Start one fake per provider (all by default) with jobs taking `latency` seconds (the median, when a
    `latency_p95` makes them vary), billing by `catalog` (default: the one in `catalog_file`, else the bundled one;
    a catalog that cannot be read leaves every job flagged as unpriced); over https with `tls` (fakes.tls).
    The Vertex fake's service-account key file goes to `vertex_key_file_for(base_port)` (what `fixed_environment`
    names), else into its work folder."""
    fleet = Fleet()
    catalog = catalog if catalog is not None else default_catalog(catalog_file)
    for i, name in enumerate(providers or list(FAKE_CREDENTIALS)):
        module = importlib.import_module(f"video_pipeline.providers.fakes.{name}")
        book = JobBook(latency=latency, latency_p95=latency_p95, seed=i,
                       work_dir=(work_dir / name) if work_dir else None, webhook_secret=FAKE_WEBHOOK_SECRET,
                       pricing=Tariff(name, catalog), provider=name)
        kwargs = {kw: value for value, kw in FAKE_CREDENTIALS[name].values()}
        app = WithInvoice(module.create_app(book, **kwargs), book)
        server = FakeServer(app, port=(base_port + i) if base_port else None, tls=tls).start()
        fleet.servers[name], fleet.books[name] = server, book
        if name == "vertex":
            where = (vertex_key_file_for(base_port) if base_port else
                     (work_dir / name if work_dir else Path(tempfile.mkdtemp(prefix="vp-fake-vertex-"))) / KEY_FILE)
            fleet.vertex_key_file = app.state.account.write(where, f"{server.url}/token", kwargs["project"])
    return fleet

"""The one way tests and benches run a campaign: the real Dagster job, as the inbox sensor and `video-pipeline run`
do (the file accepted, its partition added, the assets materialized), with the run's settings handed in as a
`Settings` and any resource swapped for a test's own: providers that fail on cue or poll on the fakes' scale, a clip
store whose disk is full or whose S3 answers 503. Also the settings of live mode against the providers' fakes.

A swapped resource that must carry a Python object (a `Settings`, a store factory, a shared record of submissions)
carries it in its class, made by a function here: Dagster builds a run's resource again from its class and its
config fields, so an object kept on the instance would not reach the run.

Tests import it through `tests.conftest` or directly; a bench puts the project root on `sys.path` first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from pydantic import Field

from resources.pipeline import PipelineConfig
from resources.providers import VideoProviders
from resources.storage import ClipStorage
from video_pipeline.config import Settings
from video_pipeline.planning.catalog import Catalog
from video_pipeline.providers.base import ProviderRegistry
from video_pipeline.storage.store import ClipStore

#: `through=` these: a run that pays for the clips and stops there; one that also keeps them; one without the report
GENERATION, STORAGE, ASSEMBLY = "generated_segments", "stored_clips", "assembled_outputs"


# --- running the job -----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def ephemeral_instance() -> Iterator:
    """A Dagster instance whose runs and events live in memory for the block."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        yield instance


def run_campaign_job(instance, settings: Settings, spec: Path, raise_on_error: bool = True, through: str | None = None,
                     **resources):
    """Accept the campaign file, add its partition and materialize every asset of campaign_job through Dagster, with
    `settings` as the run's settings (`resources` swaps some, e.g. providers or clip_storage). `through` stops the
    run after that asset (it and everything upstream of it), as a person materializing one asset in the UI does.
    Tests read what the run made from it: `result.output_for_node(asset)`, `materialized(result, asset)`."""
    from dagster import AssetSelection, materialize

    from definitions import ASSETS, build_resources
    from video_pipeline.flow.intake import accept

    accepted = accept(spec, settings, move=False)
    if not instance.has_dynamic_partition("campaigns", accepted.campaign_id):
        instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
    selection = AssetSelection.assets(through).upstream() if through else None
    return materialize(ASSETS, partition_key=accepted.campaign_id, instance=instance, selection=selection,
                       resources=build_resources(pipeline_with(settings), **resources),
                       raise_on_error=raise_on_error)


def materialized(result, asset: str) -> dict:
    """The metadata of an asset's materialization in a run, as plain values."""
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def step_failures(result) -> dict[str, str]:
    """Each failed step of a run and what it said (a `Failure`'s description, else the error)."""
    failures = {}
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            described = data.user_failure_data.description if data.user_failure_data else None
            failures[event.step_key] = described or (data.error.message if data.error else event.message or "")
    return failures


def output(result, asset: str):
    """What `asset` made in the run, or None when its step did not run or failed."""
    from dagster import DagsterInvariantViolationError

    try:
        return result.output_for_node(asset)
    except (DagsterInvariantViolationError, KeyError):
        return None


# --- resources a test swaps ----------------------------------------------------------------------------------------

def pipeline_with(settings: Settings) -> PipelineConfig:
    """The pipeline resource with exactly these settings (nothing read from the environment)."""

    class GivenSettings(PipelineConfig):
        def _resolve(self) -> Settings:
            return settings

    return GivenSettings()


def providers_from(make: Callable[[Settings, Catalog], ProviderRegistry]) -> VideoProviders:
    """A providers resource whose registry is `make(settings, catalog)` (a scripted or counting provider)."""

    class Made(VideoProviders):
        def registry(self, settings: Settings, catalog: Catalog) -> ProviderRegistry:
            return make(settings, catalog)

    return Made()


def storage_from(make: Callable[[Settings], ClipStore]) -> ClipStorage:
    """A clip storage resource whose store is `make(settings)` (a full disk, a failing S3, a stricter policy)."""

    class Made(ClipStorage):
        def store(self, settings: Settings) -> ClipStore:
            return make(settings)

    return Made()


class TunedProviders(VideoProviders):
    """The run's own adapters (as its settings configure them), tuned for fakes whose jobs take a fraction of a
    second: polling on the catalog's latency profiles scaled down, short backoffs, a stuck job given up on within
    seconds, and a client timeout."""

    latency_scale: float | None = Field(default=0.01, description="None: the run's time_scale")
    backoff_base: float = 0.01
    stuck_grace_seconds: float = 1.0
    timeout: float | None = Field(default=None, description="the adapters' HTTP timeout in seconds (None: theirs)")

    def registry(self, settings: Settings, catalog: Catalog) -> ProviderRegistry:
        registry = super().registry(settings, catalog)
        for adapter in registry.providers.values():
            adapter.latency_scale = settings.time_scale if self.latency_scale is None else self.latency_scale
            adapter.backoff_base = self.backoff_base
            adapter.stuck_grace_seconds = self.stuck_grace_seconds
            if self.timeout is not None:
                adapter._timeout = httpx.Timeout(self.timeout)
        return registry


# --- live mode against the fakes -----------------------------------------------------------------------------------

def quick_catalog(directory: Path, factor: float = 0.01) -> Path:
    """The bundled catalog with every model's latency profile times `factor`, written into `directory`: for a
    `video-pipeline run` in live mode against fakes whose jobs take about a second (live mode polls on the
    catalog's profile in real seconds: Kling's first poll comes at 127 s). Set VIDEO_PIPELINE_CATALOG to it."""
    import re

    from video_pipeline.config import PROJECT_ROOT

    def scaled(match: re.Match) -> str:
        return f"latency: {{p50_seconds: {float(match[1]) * factor:g}, p95_seconds: {float(match[2]) * factor:g}}}"

    text = (PROJECT_ROOT / "data" / "catalog.yaml").read_text(encoding="utf-8")
    text, count = re.subn(r"latency: \{p50_seconds: ([\d.]+), p95_seconds: ([\d.]+)\}", scaled, text)
    assert count >= 10, "the catalog's latency lines changed shape"
    path = Path(directory) / "quick-catalog.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fleet_environment(fleet, providers: tuple[str, ...] | None = None) -> dict[str, str]:
    """The fleet's environment (`Fleet.environment()`: base URLs, test keys, webhook secrets) with the keys of
    providers outside `providers` left out, as for an account that has no key there."""
    from video_pipeline.providers.fakes.fleet import FAKE_CREDENTIALS

    if providers is None:
        return fleet.environment()
    return {k: v for k, v in fleet.environment().items()
            if not any(k in FAKE_CREDENTIALS[p] for p in FAKE_CREDENTIALS if p not in providers)}


def live_settings(fleet, settings: Settings, providers: tuple[str, ...] | None = None,
                  wrong_key: bool = False) -> Settings:
    """`settings` in live mode against `fleet`: every adapter's base URL pointed at its fake (the download guard
    allows exactly those), the fakes' test keys for `providers` (default: every fake) and no other key; with
    `wrong_key`, keys the fakes refuse."""
    fleet_settings = Settings.from_env(fleet_environment(fleet, providers))
    secrets = ({name: "wrong" for name in fleet_settings.secrets} if wrong_key
               else {name: value.get_secret_value() for name, value in fleet_settings.secrets.items()})
    return settings.with_overrides(mode="live", base_urls=fleet_settings.base_urls, secrets=secrets,
                                   fal_jwks_url=fleet_settings.fal_jwks_url)

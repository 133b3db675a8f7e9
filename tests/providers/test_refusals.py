"""Every fake refuses what its provider refuses, in the provider's own error shape: a model id that does not exist
(terminal: the next model in the chain is tried) and a wrong key (fatal: the campaign stops). Each case goes through
the live adapter over loopback HTTP; the fakes' SDK-facing shapes are checked in tests/sdk/."""

from __future__ import annotations

import pytest

from tests.providers.conftest import request, run
from tests.support.services import fake_fleet
from video_pipeline.errors import ProviderError
from video_pipeline.config import Settings
from video_pipeline.planning.catalog import load_catalog

#: provider → (a model id it does not have, seconds it takes, what its refusal says, a model id it has)
UNKNOWN = {
    "gemini": ("veo-9-imaginary", 4, "is not found for API version v1beta", "veo-3.1-fast-generate-preview"),
    "vertex": ("veo-9-imaginary", 4, "Publisher Model", "veo-3.1-fast-generate-001"),
    "kling": ("kling-v9", 5, "model_name is invalid", "kling-v3"),
    "minimax": ("MiniMax-Hailuo-99", 6, "is not supported", "MiniMax-Hailuo-02"),
    "ark": ("seedance-9-0", 5, "InvalidEndpointOrModel.NotFound", "dreamina-seedance-2-0-260128"),
    "dashscope": ("wan9.9-t2v", 5, "Model not exist.", "wan2.6-t2v"),
    "fal": ("fal-ai/veo9-imaginary", 4, "not found", "fal-ai/veo3.1/fast"),
    "replicate": ("google/veo-9-imaginary", 4, "Not found", "google/veo-3.1-fast"),
    "runway": ("gen9", 5, "Invalid model", "gen4.5"),
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with fake_fleet(latency=0.3, work_dir=tmp_path_factory.mktemp("fakes")) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(Settings().catalog_file)


def test_the_table_covers_every_video_provider(fleet):
    assert set(UNKNOWN) == set(fleet.servers)


@pytest.mark.parametrize("provider", sorted(UNKNOWN))
def test_an_unknown_model_is_terminal_in_the_providers_words(fleet, catalog, provider):
    model_id, seconds, says, _ = UNKNOWN[provider]
    adapter = fleet.registry(catalog).providers[provider]
    before = fleet.books[provider].total_submissions
    with pytest.raises(ProviderError) as exc:
        run(adapter.submit(request(route_model_id=model_id, seconds=seconds)))
    assert exc.value.kind == ProviderError.TERMINAL, str(exc.value)
    assert says in str(exc.value)
    assert fleet.books[provider].total_submissions == before


@pytest.mark.parametrize("provider", sorted(UNKNOWN))
def test_a_wrong_key_is_fatal(fleet, catalog, provider):
    """(Each provider's contract test checks that the key itself is never quoted.)"""
    _, seconds, _, model_id = UNKNOWN[provider]
    adapter = fleet.registry(catalog, wrong_key=True).providers[provider]
    before = fleet.books[provider].total_submissions
    with pytest.raises(ProviderError) as exc:
        run(adapter.submit(request(route_model_id=model_id, seconds=seconds)))
    assert exc.value.kind == ProviderError.FATAL, str(exc.value)
    assert fleet.books[provider].total_submissions == before

"""The fakes bill by the catalog's rules: real jobs run through the live adapters over loopback HTTP, then each fake's
GET /_fake/invoice is checked line by line, to the cent, against what the catalog says the provider charges."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.providers.conftest import poll_until_terminal, request, until_ended
from tests.support.services import fleet_on_free_ports
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.providers.base import JobState
from video_pipeline.providers.fakes import JobBook
from video_pipeline.providers.fakes.fleet import (
    FAKE_CREDENTIALS,
    WithInvoice,
    fetch_fleet_invoice,
    fetch_invoice,
    fixed_environment,
    start_fleet,
)
from video_pipeline.providers.fakes.invoice import INVOICE_PATH, Tariff
from video_pipeline.providers.fal import FalProvider
from video_pipeline.providers.kling import KlingProvider
from video_pipeline.providers.replicate import ReplicateProvider
from video_pipeline.providers.runway import RunwayProvider

CATALOG = load_catalog(PROJECT_ROOT / "data" / "catalog.yaml")
STREET = PROJECT_ROOT / "data" / "samples" / "media" / "street.mp4"
PROVIDERS = ["runway", "kling", "fal", "replicate"]
LATENCY = 0.6


def key(provider: str, index: int = 0) -> str:
    return list(FAKE_CREDENTIALS[provider].values())[index][0]


def adapters(fleet) -> dict:
    made = {"runway": RunwayProvider(key("runway"), base_url=fleet.servers["runway"].url),
            "kling": KlingProvider(key("kling"), key("kling", 1), base_url=fleet.servers["kling"].url),
            "fal": FalProvider(key("fal"), base_url=fleet.servers["fal"].url),
            "replicate": ReplicateProvider(key("replicate"), base_url=fleet.servers["replicate"].url)}
    for adapter in made.values():
        adapter.backoff_base = 0.01
    return made


@dataclass
class Billed:
    """The fleet after the scenario: its invoices (per fake over HTTP, and summed) and each named job's id."""

    fleet: object
    ids: dict[str, str]
    invoices: dict[str, dict]

    def line(self, name: str) -> dict:
        provider = name.split("-")[0]
        # fal's adapter hands out a path to the request, Kling's `family:task_id`: the provider's id is the last part
        task_id = self.ids[name].rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        matches = [line for line in self.invoices[provider]["lines"] if line["job_id"] == task_id]
        assert len(matches) == 1, (name, matches)
        return matches[0]


async def _scenario(fleet) -> dict[str, str]:
    """Submit every job in turn (a job fault goes to the next job created), then run them all to their end."""
    a = adapters(fleet)
    books = fleet.books
    ids: dict[str, str] = {}

    async def submit(name: str, adapter, req, fault: str | None = None) -> str:
        if fault:
            books[name.split("-")[0]].faults.add("job", fault)
        ids[name] = await adapter.submit(req)
        return ids[name]

    try:
        await submit("runway-ok", a["runway"], request("r1", route_model_id="veo3.1_fast", seconds=8))
        await submit("runway-policy", a["runway"], request("r2", route_model_id="veo3.1_fast", seconds=6),
                     fault="fail-policy")
        await submit("runway-aleph-policy", a["runway"],
                     replace(request("r3", route_model_id="gen4_aleph", video=STREET), category="video_to_video"),
                     fault="fail-policy")
        books["runway"].latency = 60.0      # still running when it is canceled below, however loaded the machine is
        try:
            await submit("runway-canceled", a["runway"], request("r4", route_model_id="gen4.5", seconds=5))
        finally:
            books["runway"].latency = LATENCY
        await submit("runway-deleted", a["runway"], request("r5", route_model_id="veo3.1_fast", seconds=4))
        await submit("kling-pro", a["kling"], replace(request("k1", route_model_id="kling-v3", seconds=10),
                                                      resolution="1080p"))
        await submit("kling-policy", a["kling"], request("k2", route_model_id="kling-v3", seconds=5),
                     fault="fail-policy")
        # the pipeline never hears this answer (its process died after the POST): the provider still bills it
        ids["kling-lost"] = await a["kling"].submit(request("k3", route_model_id="kling-v3", seconds=5))
        await submit("fal-clip", a["fal"], request("f1", route_model_id="fal-ai/kling-video/v3/pro/text-to-video",
                                                   seconds=7))
        await submit("fal-policy", a["fal"], request("f2", route_model_id="fal-ai/veo3.1/fast", seconds=8),
                     fault="fail-policy")
        await submit("fal-stuck", a["fal"], request("f3", route_model_id="fal-ai/veo3.1/fast", seconds=4),
                     fault="stuck")
        await submit("replicate-unknown", a["replicate"], request("p1", route_model_id="runwayml/gen4-aleph", seconds=5))
        assert await a["runway"].cancel(ids["runway-canceled"]) is True

        ending = [n for n in ids if n not in ("fal-stuck", "runway-canceled", "kling-lost")]
        adapter_of = {n: a[n.split("-")[0]] for n in ending}
        finals = await asyncio.gather(*(poll_until_terminal(adapter_of[n], ids[n]) for n in ending))
        states = {n: status.state for n, (status, _) in zip(ending, finals)}
        assert {n for n, s in states.items() if s == JobState.FAILED} == {"runway-policy", "runway-aleph-policy",
                                                                         "kling-policy", "fal-policy"}, states
        # a finished Runway task is deleted, output and all: it leaves the provider's task list, not its bill
        async with httpx.AsyncClient() as client:
            gone = await client.delete(f"{fleet.servers['runway'].url}/v1/tasks/{ids['runway-deleted']}",
                                       headers=a["runway"].auth_headers())
        assert gone.status_code == 204 and ids["runway-deleted"] not in books["runway"].jobs
        await until_ended(*books["kling"].jobs.values())    # the lost answer's job has ended too
    finally:
        for adapter in a.values():
            await adapter.aclose()
    return ids


@pytest.fixture(scope="module")
def billed(tmp_path_factory) -> Billed:
    with start_fleet(latency=LATENCY, providers=PROVIDERS, work_dir=tmp_path_factory.mktemp("fakes"),
                     catalog=CATALOG) as fleet:
        ids = asyncio.run(_scenario(fleet))
        invoices = {name: fetch_invoice(server.url) for name, server in fleet.servers.items()}
        yield Billed(fleet, ids, invoices)


def charge(model: str, seconds: float, outcome: str, provider: str, resolution: str = "720p") -> float:
    return CATALOG.get(model).charge(seconds, resolution, outcome, provider=provider)


# --- line by line -----------------------------------------------------------------------------------------------

def test_a_succeeded_job_is_billed_its_seconds_at_the_catalog_price(billed):
    line = billed.line("runway-ok")
    assert (line["provider_model"], line["model"], line["seconds"], line["state"], line["outcome"]) == \
        ("veo3.1_fast", "veo-3-1-fast", 8.0, "succeeded", "succeeded")
    assert line["amount_usd"] == charge("veo-3-1-fast", 8, "succeeded", "runway") == 0.8
    assert line["pending_usd"] == 0.0
    assert line["flags"] == []                               # the fake reads the resolution off the ratio


def test_runway_bills_a_job_failed_by_content_moderation(billed):
    line = billed.line("runway-policy")
    assert (line["state"], line["fault"], line["outcome"]) == ("failed", "fail-policy", "failed-policy")
    assert line["amount_usd"] == charge("veo-3-1-fast", 6, "failed-policy", "runway") == 0.6
    aleph = billed.line("runway-aleph-policy")
    # Aleph's create body carries no duration: its output is as long as the input video (the 4 s street clip)
    assert (aleph["model"], aleph["seconds"], aleph["outcome"]) == ("runway-aleph", 4.0, "failed-policy")
    assert aleph["amount_usd"] == charge("runway-aleph", 4, "failed-policy", "runway") == 0.6
    assert aleph["credits"] == 60


def test_other_providers_do_not_bill_a_moderated_job(billed):
    kling, fal = billed.line("kling-policy"), billed.line("fal-policy")
    assert (kling["outcome"], kling["amount_usd"]) == ("failed-policy", 0.0)
    assert (fal["model"], fal["outcome"], fal["amount_usd"]) == ("veo-3-1-fast", "failed-policy", 0.0)
    assert charge("kling-3-0", 5, "failed-policy", "kling") == charge("veo-3-1-fast", 8, "failed-policy", "fal") == 0


def test_a_canceled_job_is_not_billed(billed):
    line = billed.line("runway-canceled")
    assert (line["provider_model"], line["model"], line["state"], line["amount_usd"]) == \
        ("gen4.5", None, "canceled", 0.0)            # gen4.5 has no catalog model either: flagged below


def test_a_deleted_task_stays_on_the_bill(billed):
    line = billed.line("runway-deleted")
    assert (line["state"], line["amount_usd"]) == ("succeeded", 0.4)


def test_a_job_whose_answer_was_lost_is_still_billed(billed):
    line = billed.line("kling-lost")
    assert (line["model"], line["state"], line["resolution"]) == ("kling-3-0", "succeeded", "720p")
    assert line["amount_usd"] == charge("kling-3-0", 5, "succeeded", "kling") == 0.42


def test_kling_pro_mode_bills_at_1080p(billed):
    line = billed.line("kling-pro")
    assert (line["resolution"], line["flags"]) == ("1080p", [])
    assert line["amount_usd"] == charge("kling-3-0", 10, "succeeded", "kling", "1080p") == 1.4


def test_a_seven_second_request_on_a_five_or_ten_second_model_is_billed_as_ten_seconds(billed):
    line = billed.line("fal-clip")
    assert (line["provider_model"], line["model"], line["seconds"]) == \
        ("fal-ai/kling-video/v3/pro/text-to-video", "kling-3-0", 7.0)
    assert line["amount_usd"] == round(10 * CATALOG.get("kling-3-0").price("720p"), 4) == 0.84


def test_an_unfinished_job_is_pending_and_kept_out_of_the_total(billed):
    line = billed.line("fal-stuck")
    assert (line["state"], line["fault"], line["outcome"], line["amount_usd"]) == ("running", "stuck", None, 0.0)
    assert line["pending_usd"] == CATALOG.get("veo-3-1-fast").cost(4, "720p") == 0.4
    fal = billed.invoices["fal"]
    assert (fal["total_usd"], fal["pending_usd"]) == (0.84, 0.4)


def test_a_job_on_a_model_the_catalog_does_not_know_bills_nothing_and_is_flagged(billed):
    line = billed.line("replicate-unknown")
    assert (line["provider_model"], line["model"], line["amount_usd"], line["flags"]) == \
        ("runwayml/gen4-aleph", None, 0.0, ["unknown-model"])
    assert billed.invoices["replicate"]["unpriced_jobs"] == 1
    assert billed.invoices["runway"]["unpriced_jobs"] == 1          # the canceled gen4.5 task


# --- totals --------------------------------------------------------------------------------------------------------

def test_each_invoice_has_one_line_per_job_created_and_totals_to_the_cent(billed):
    expected = {"runway": 0.8 + 0.6 + 0.6 + 0.0 + 0.4, "kling": 1.4 + 0.0 + 0.42, "fal": 0.84 + 0.0,
                "replicate": 0.0}
    for name, invoice in billed.invoices.items():
        assert invoice["provider"] == name and invoice["currency"] == "USD"
        assert invoice["jobs"] == len(invoice["lines"]) == len(billed.fleet.books[name].created)
        assert round(invoice["total_usd"] * 100) == round(expected[name] * 100), name
        assert invoice["total_usd"] == round(sum(line["amount_usd"] for line in invoice["lines"]), 4)


def test_the_fleet_invoice_sums_every_fake(billed):
    total = billed.fleet.invoice()
    assert total["jobs"] == sum(inv["jobs"] for inv in billed.invoices.values()) == len(billed.ids)
    assert total["total_usd"] == round(sum(inv["total_usd"] for inv in billed.invoices.values()), 4) == 5.06
    assert total["pending_usd"] == 0.4
    assert {name: p["total_usd"] for name, p in total["providers"].items()} == \
        {name: inv["total_usd"] for name, inv in billed.invoices.items()}


# --- serving and reading the invoice ---------------------------------------------------------------------------------

def test_the_invoice_route_answers_loopback_gets_only_and_passes_everything_else_on(tmp_path):
    book = JobBook(latency=0.1, work_dir=tmp_path, pricing=Tariff("kling", CATALOG), provider="kling")
    inner = Starlette(routes=[Route("/v1/ping", lambda r: JSONResponse({"pong": True}))])
    inner.state.seen = {"calls": 1}
    app = WithInvoice(inner, book)
    assert app.state.seen == {"calls": 1}

    async def calls(host: str) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=(host, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
            return [await client.get("/v1/ping"), await client.get(INVOICE_PATH), await client.post(INVOICE_PATH)]

    ping, invoice, post = asyncio.run(calls("127.0.0.1"))
    assert ping.json() == {"pong": True}
    assert invoice.json()["lines"] == [] and invoice.json()["provider"] == "kling"
    assert post.status_code == 405 and post.headers["allow"] == "GET"
    _, refused, _ = asyncio.run(calls("203.0.113.7"))
    assert refused.status_code == 403
    assert book.requests == []            # reading the bill is not a provider call


def test_fetch_invoice_refuses_other_hosts_and_oversized_answers(billed):
    with pytest.raises(ValueError, match="loopback"):
        fetch_invoice("http://example.com:8710")
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        fetch_invoice(billed.fleet.servers["runway"].url, max_bytes=100)


@pytest.mark.slow
def test_a_served_fleet_invoice_is_read_back_from_its_fixed_ports(tmp_path):
    fleet, base = fleet_on_free_ports(latency=0.1, work_dir=tmp_path, catalog=CATALOG)
    with fleet:
        book = fleet.books["kling"]
        book.latency = 60.0       # still running when the invoices are read, however loaded the machine is
        book.create({"n": 1}, "a prompt", 10, model="kling-v3", mode="std")
        total = fetch_fleet_invoice(base)
    assert total["jobs"] == 1 and total["pending_usd"] == 0.84
    assert total["providers"]["kling"]["pending_usd"] == 0.84 and total["providers"]["gemini"]["jobs"] == 0


def test_the_fleet_environment_names_the_fal_platform_url(tmp_path):
    assert fixed_environment(9000)["VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL"] == "http://127.0.0.1:9005"
    with start_fleet(latency=0.1, providers=["fal"], work_dir=tmp_path, catalog=CATALOG) as fleet:
        env = fleet.environment()
    assert env["VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL"] == fleet.servers["fal"].url == env["VIDEO_PIPELINE_FAL_BASE_URL"]


def test_fakes_started_without_a_readable_catalog_flag_every_job(tmp_path):
    with start_fleet(latency=0.1, providers=["kling"], work_dir=tmp_path / "fakes",
                     catalog_file=tmp_path / "missing.yaml") as fleet:
        fleet.books["kling"].create({"n": 1}, "a prompt", 5, model="kling-v3")
        invoice = fetch_invoice(fleet.servers["kling"].url)
    assert invoice["unpriced_jobs"] == 1 and invoice["lines"][0]["flags"] == ["unknown-model"]

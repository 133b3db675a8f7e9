"""Submits whose answer is lost after the provider created the job, over real loopback HTTP.

Every fake can create the job and then lose the answer (`lost-reset`, `lost-slow`, `lost-502`). The adapters whose
provider can list or query its jobs find that job again with `find_submitted` and can adopt it; MiniMax, Gemini and
Runway have no such lookup, so their fakes only lose the answer. A submit is sent once (`max_attempts = 1`): what
the HTTP layer then does with the failure is its own business, so any exception is accepted here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import httpx
import pytest

from tests.providers.conftest import poll_until_terminal, request, run, until_ended
from tests.support.services import served
from video_pipeline.errors import ProviderError
from video_pipeline.providers.ark import ArkProvider
from video_pipeline.providers.base import GenerationRequest, JobState
from video_pipeline.providers.dashscope import DashScopeProvider
from video_pipeline.providers.fakes import FakeServer, JobBook
from video_pipeline.providers.fakes import ark, dashscope, fal, gemini, kling, minimax, replicate, runway
from video_pipeline.providers.fakes.faults import LOST_ANSWER_FAULTS
from video_pipeline.providers.fal import FalProvider
from video_pipeline.providers.gemini import GeminiProvider
from video_pipeline.providers.kling import KlingProvider
from video_pipeline.providers.minimax import MiniMaxProvider
from video_pipeline.providers.replicate import ReplicateProvider
from video_pipeline.providers.runway import RunwayProvider

#: lost-slow holds its answer 2 s, so its cases are marked slow
SLOW = pytest.mark.slow
LOST = [pytest.param(f, marks=SLOW) if f == "lost-slow" else f for f in sorted(LOST_ANSWER_FAULTS)]
#: what the client itself sees of each lost answer: the exception its transport raised, or the status
CLIENT_SEES = {"lost-reset": "RemoteProtocolError", "lost-slow": "ReadTimeout", "lost-502": 502}
CLIENT_TIMEOUT = 1.0        # the fault harness's client timeout; lost-slow holds the answer 2 s
LATENCY = 0.3
SKEW = dt.timedelta(seconds=1)
KLING_AK, KLING_SK = "test-kling-access-key-0123456789ab", "test-kling-secret-key-0123456789ab"
RUNWAY_KEY = "key_" + "0123456789abcdef" * 8


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Seen(httpx.AsyncBaseTransport):
    """A loopback transport that records what came back for each request: a status code or an exception name."""

    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport()
        self.outcomes: list[tuple[str, str, int | str]] = []

    async def handle_async_request(self, req: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(req)
        except Exception as exc:
            self.outcomes.append((req.method, req.url.path, type(exc).__name__))
            raise
        self.outcomes.append((req.method, req.url.path, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Spec:
    """One provider: its fake, an adapter on a given client, a request it serves, and the id `submit` returns
    for a job of the fake's book."""

    name: str
    app: Callable[[JobBook], object]
    adapter: Callable[[str, httpx.AsyncClient], object]
    req: Callable[..., GenerationRequest]
    job_id: Callable[[object], str] = lambda job: job.id
    #: the provider lists a job only once it has ended (fal): the lookup waits for that
    listed_once_ended: bool = False
    #: the provider's listing shows the request's input, so other input in the window is no candidate
    shows_input: bool = False


def _fal_adapter(url: str, client: httpx.AsyncClient, **kw) -> FalProvider:
    return FalProvider("test-fal-key", base_url=url, platform_base_url=url, client=client, **kw)


LOOKUPS = [
    Spec("kling", lambda book: kling.create_app(book, access_key=KLING_AK, secret_key=KLING_SK),
         lambda url, client: KlingProvider(KLING_AK, KLING_SK, base_url=url, client=client),
         partial(request, route_model_id="kling-v3", seconds=5),
         job_id=lambda job: f"{job.meta['family']}:{job.id}", shows_input=True),
    Spec("replicate", lambda book: replicate.create_app(book, api_token="test-replicate-token"),
         lambda url, client: ReplicateProvider("test-replicate-token", base_url=url, client=client),
         partial(request, route_model_id="google/veo-3.1-fast"), shows_input=True),
    Spec("fal", lambda book: fal.create_app(book, api_key="test-fal-key"), _fal_adapter,
         partial(request, route_model_id="fal-ai/veo3.1/fast"),
         job_id=lambda job: f"{job.meta['app']}/requests/{job.id}", listed_once_ended=True, shows_input=True),
    Spec("ark", lambda book: ark.create_app(book, api_key="test-ark-key"),
         lambda url, client: ArkProvider("test-ark-key", base_url=url, client=client),
         partial(request, route_model_id="seedance-2-0", seconds=4), job_id=lambda job: f"cgt-{job.id}"),
    Spec("dashscope", lambda book: dashscope.create_app(book, api_key="test-dashscope-key"),
         lambda url, client: DashScopeProvider("test-dashscope-key", base_url=url, client=client),
         partial(request, route_model_id="wan2.6-t2v", seconds=5)),
]
WITHOUT_LOOKUP = [
    Spec("minimax", lambda book: minimax.create_app(book, api_key="test-minimax-key"),
         lambda url, client: MiniMaxProvider("test-minimax-key", base_url=url, client=client),
         partial(request, route_model_id="MiniMax-Hailuo-02", seconds=6)),
    Spec("gemini", lambda book: gemini.create_app(book, api_key="test-gemini-key"),
         lambda url, client: GeminiProvider("test-gemini-key", base_url=url, client=client),
         partial(request, route_model_id="veo-3.1-fast-generate-preview", seconds=4)),
    Spec("runway", lambda book: runway.create_app(book, api_key=RUNWAY_KEY),
         lambda url, client: RunwayProvider(RUNWAY_KEY, base_url=url, client=client),
         partial(request, route_model_id="gen4.5", seconds=5)),
]
BY_NAME = {s.name: s for s in LOOKUPS + WITHOUT_LOOKUP}


@dataclass
class Rig:
    """A provider's fake on loopback with its book, and a way to open adapters on a recording client."""

    spec: Spec
    book: JobBook
    server: FakeServer

    def open(self, make: Callable | None = None) -> tuple[object, Seen]:
        seen = Seen()
        client = httpx.AsyncClient(transport=seen, timeout=CLIENT_TIMEOUT)
        adapter = (make or self.spec.adapter)(self.server.url, client)
        adapter.max_attempts = 1            # a raw submit: sent once, never again on a guess
        adapter.backoff_base = 0.01
        return adapter, seen

    @property
    def only_job(self):
        [job] = self.book.jobs.values()
        return job


@pytest.fixture
def rig(request, tmp_path):
    spec = BY_NAME[request.param]
    book = JobBook(latency=LATENCY, work_dir=tmp_path / "fake-work")
    with served(spec.app(book)) as server:
        yield Rig(spec, book, server)
    book.stop_webhooks()


def rigs(specs):
    return pytest.mark.parametrize("rig", [s.name for s in specs], indirect=True)


async def closing(adapter, scenario):
    try:
        return await scenario
    finally:
        await adapter.aclose()
        await adapter.client.aclose()


async def lose_submit(adapter, book: JobBook, req: GenerationRequest, fault: str) -> None:
    """Submit `req` once with `fault` planned for it; the submit must fail."""
    book.faults.add("submit", fault)
    with pytest.raises(Exception):
        await adapter.submit(req)
    assert book.faults.take("submit") is None          # the fault was served


async def until_listed(rig: Rig, *jobs) -> None:
    """For a provider that lists a job once it has ended: wait for those jobs to end."""
    if rig.spec.listed_once_ended:
        await until_ended(*jobs)


# ---- the adapters that can look a job up ------------------------------------------------------------------------

@rigs(LOOKUPS)
@pytest.mark.parametrize("fault", LOST)
def test_lost_submit_answer_is_found_again_by_the_providers_lookup_and_polled_to_success(rig, fault):
    req = rig.spec.req("k-lost")

    async def scenario(adapter, seen):
        since = now() - SKEW
        await lose_submit(adapter, rig.book, req, fault)
        until = now() + SKEW
        assert [o for o in seen.outcomes if o[0] == "POST"][-1][2] == CLIENT_SEES[fault]
        assert rig.book.total_submissions == 1              # the provider created exactly one job
        job = rig.only_job
        await until_listed(rig, job)
        found = await adapter.find_submitted(req, since, until)
        assert found == rig.spec.job_id(job)                # exactly as `submit` would have returned it
        status, _ = await poll_until_terminal(adapter, found)
        return status

    adapter, seen = rig.open()
    status = run(closing(adapter, scenario(adapter, seen)))
    assert status.state == JobState.SUCCEEDED and status.output_url
    assert rig.book.total_submissions == 1                  # adopted, not paid twice
    assert not [p for m, p in rig.book.requests if m == "POST"][1:]   # and nothing was created by the lookup


@rigs(LOOKUPS)
def test_a_submit_that_created_no_job_is_not_found(rig):
    req = rig.spec.req("k-none")
    # fal counts an empty listing as conclusive only a while after the window; here at once
    make = partial(_fal_adapter, listing_lag=0.0) if rig.spec.name == "fal" else None

    async def scenario(adapter):
        since = now() - SKEW
        rig.book.faults.add("submit", "503")                 # refused before anything was created
        with pytest.raises(Exception):
            await adapter.submit(req)
        until = now()
        assert rig.book.total_submissions == 0
        return await adapter.find_submitted(req, since, until)

    adapter, _ = rig.open(make)
    assert run(closing(adapter, scenario(adapter))) is None


@rigs(LOOKUPS)
@SLOW
def test_a_job_of_the_same_request_before_the_window_or_already_known_is_not_adopted(rig):
    req = rig.spec.req("k-twice")
    if rig.spec.name == "kling":
        # Kling's external ids are unique: a second task under the job key needs the first one to have failed
        rig.book.faults.add("job", "fail-retryable")

    async def scenario(adapter):
        wide = now() - SKEW
        known = await adapter.submit(req)                    # the ledger knows this one
        if rig.spec.name == "kling":
            assert (await poll_until_terminal(adapter, known))[0].state == JobState.FAILED
        await asyncio.sleep(1.1)                              # listings may give whole seconds
        since = now()
        await lose_submit(adapter, rig.book, req, "lost-502")
        until = now() + SKEW
        lost = next(j for j in rig.book.jobs.values() if rig.spec.job_id(j) != known)
        await until_listed(rig, *rig.book.jobs.values())
        in_window = await adapter.find_submitted(req, since, until)
        excluded = await adapter.find_submitted(req, wide, until, exclude=frozenset({known}))
        with pytest.raises(ProviderError, match=r"\b2\b.*ambiguous"):
            await adapter.find_submitted(req, wide, until)   # both in the window, neither known: an operator's call
        return known, rig.spec.job_id(lost), in_window, excluded

    adapter, _ = rig.open()
    known, lost, in_window, excluded = run(closing(adapter, scenario(adapter)))
    assert known != lost and in_window == lost and excluded == lost
    assert rig.book.total_submissions == 2


@rigs([s for s in LOOKUPS if not s.shows_input])
def test_several_jobs_of_the_model_in_a_window_whose_listing_shows_no_input_are_ambiguous(rig):
    async def scenario(adapter):
        since = now() - SKEW
        for n, prompt in enumerate(("a red kite", "a blue boat")):
            await lose_submit(adapter, rig.book, rig.spec.req(f"k{n}", prompt=prompt), "lost-reset")
        until = now() + SKEW
        with pytest.raises(ProviderError, match=r"2 tasks of .* ambiguous") as exc:
            await adapter.find_submitted(rig.spec.req("k0", prompt="a red kite"), since, until)
        return str(exc.value)

    adapter, _ = rig.open()
    message = run(closing(adapter, scenario(adapter)))
    assert "no prompt" in message or "no input" in message
    assert rig.book.total_submissions == 2


@rigs([s for s in LOOKUPS if s.shows_input and s.name != "kling"])
def test_a_listing_that_shows_the_input_tells_apart_lost_submits_of_the_same_model(rig):
    kite, boat = rig.spec.req("k0", prompt="a red kite"), rig.spec.req("k1", prompt="a blue boat")

    async def scenario(adapter):
        since = now() - SKEW
        await lose_submit(adapter, rig.book, kite, "lost-reset")
        await lose_submit(adapter, rig.book, boat, "lost-502")
        until = now() + SKEW
        await until_listed(rig, *rig.book.jobs.values())
        return await adapter.find_submitted(kite, since, until), await adapter.find_submitted(boat, since, until)

    adapter, _ = rig.open()
    found_kite, found_boat = run(closing(adapter, scenario(adapter)))
    by_prompt = {job.prompt: rig.spec.job_id(job) for job in rig.book.jobs.values()}
    assert (found_kite, found_boat) == (by_prompt["a red kite"], by_prompt["a blue boat"])


def _decoys(rig: Rig, count: int, running: bool = False) -> None:
    """`count` other jobs of the same model created now, straight into the fake's book; `running`: each one stuck,
    so it has not finished (and shows no input in its own record) however long a lookup takes to read them all."""
    if running:
        rig.book.faults.add("job", *["stuck"] * count)
    req = rig.spec.req("decoy", prompt="somebody else's clip")
    meta = {"replicate": dict(model="google/veo-3.1-fast", version="hidden", input={"prompt": req.prompt}),
            "fal": dict(model="fal-ai/veo3.1/fast", app="fal-ai/veo3.1", input={"prompt": req.prompt}),
            "ark": dict(model=ArkProvider.model_for("seedance-2-0"), resolution="720p", ratio="16:9", roles=[]),
            "dashscope": dict(model="wan2.6-t2v")}[rig.spec.name]
    for n in range(count):
        rig.book.create({"decoy": n}, req.prompt, req.seconds, **meta)


@rigs([s for s in LOOKUPS if s.name != "kling"])
def test_the_lookup_reads_every_page_of_a_busy_window(rig):
    req = rig.spec.req("k-busy")

    async def scenario(adapter):
        since = now() - SKEW
        await lose_submit(adapter, rig.book, req, "lost-reset")
        _decoys(rig, 150, running=not rig.spec.shows_input)   # newer than ours: ours is on the second page of 100
        until = now() + SKEW
        await until_listed(rig, *rig.book.jobs.values())
        if rig.spec.shows_input:
            return await adapter.find_submitted(req, since, until)
        with pytest.raises(ProviderError, match="151 tasks"):
            await adapter.find_submitted(req, since, until)  # no input shown: every one is a candidate
        return await adapter.find_submitted(req, since, until, exclude=frozenset(
            rig.spec.job_id(j) for j in rig.book.jobs.values() if j.prompt != req.prompt))

    adapter, _ = rig.open()
    found = run(closing(adapter, scenario(adapter)))
    [ours] = [j for j in rig.book.jobs.values() if j.prompt == req.prompt]
    assert found == rig.spec.job_id(ours)


@rigs([s for s in LOOKUPS if s.name != "kling"])
def test_a_window_longer_than_the_page_bound_is_an_error_not_a_miss(rig):
    req = rig.spec.req("k-flood")

    async def scenario(adapter):
        since = now() - SKEW
        _decoys(rig, 1001)         # more than 10 pages of 100
        until = now() + SKEW
        await until_listed(rig, *rig.book.jobs.values())
        with pytest.raises(ProviderError, match="more than 10 pages"):
            await adapter.find_submitted(req, since, until)

    adapter, _ = rig.open()
    run(closing(adapter, scenario(adapter)))


@rigs([BY_NAME["kling"]])
@pytest.mark.slow
def test_lost_submit_answer_is_found_again_by_external_task_id(rig):
    req = rig.spec.req("k-ext")

    async def scenario(adapter):
        since = now() - SKEW
        await lose_submit(adapter, rig.book, req, "lost-slow")
        found = await adapter.find_submitted(req, since, now() + SKEW)
        again = await adapter.submit(req)       # a resend under the same external id adopts, it does not pay
        return found, again

    adapter, _ = rig.open()
    found, again = run(closing(adapter, scenario(adapter)))
    job = rig.only_job
    assert found == again == f"text2video:{job.id}" and job.meta["external_task_id"] == "k-ext"
    assert ("GET", "/v1/videos/text2video/k-ext") in rig.book.requests     # queried by its external id
    assert ("GET", "/v1/videos/text2video/k-ext-2") in rig.book.requests      # free: so no later suffix is taken
    assert ("GET", "/v1/videos/text2video/k-ext-3") not in rig.book.requests


@rigs([BY_NAME["fal"]])
def test_fal_does_not_call_a_request_missing_while_its_listing_cannot_show_it_yet(rig):
    req = rig.spec.req("k-running")

    async def scenario(adapter):
        since = now() - SKEW
        rig.book.faults.add("job", "stuck")              # queued, then running, never ending
        await lose_submit(adapter, rig.book, req, "lost-reset")
        until = now() + SKEW
        with pytest.raises(ProviderError, match="only once it has ended"):
            await adapter.find_submitted(req, since, until)
        return rig.book.requests

    adapter, _ = rig.open()
    requests = run(closing(adapter, scenario(adapter)))
    assert ("GET", "/v1/models/requests/by-endpoint") in requests
    assert rig.book.total_submissions == 1


@rigs([BY_NAME["fal"]])
def test_fal_lists_a_request_with_its_input_once_it_has_ended(rig):
    req = rig.spec.req("k-shape")

    async def scenario(adapter):
        job_id = await adapter.submit(req)
        rid = job_id.rsplit("/", 1)[-1]
        listing = f"{rig.server.url}/v1/models/requests/by-endpoint"
        query = {"endpoint_id": "fal-ai/veo3.1/fast", "expand": "payloads"}
        before = (await adapter.request("GET", listing, params=query)).json()
        await poll_until_terminal(adapter, job_id)
        after = (await adapter.request("GET", listing, params=query)).json()
        bare = (await adapter.request("GET", listing, params={"endpoint_id": "fal-ai/veo3.1/fast"})).json()
        return rid, before, after, bare

    adapter, _ = rig.open()
    rid, before, after, bare = run(closing(adapter, scenario(adapter)))
    assert before == {"items": [], "has_more": False, "next_cursor": None}
    [item] = after["items"]
    assert item["request_id"] == rid and item["endpoint_id"] == "fal-ai/veo3.1/fast" and item["status_code"] == 200
    assert item["sent_at"] < item["started_at"] < item["ended_at"]
    assert item["json_input"]["prompt"] == req.prompt and item["json_output"]["video"]["url"]
    assert "json_input" not in bare["items"][0]           # payloads only when expanded


def test_fal_request_listing_is_served_on_its_own_app_too(tmp_path):
    book = JobBook(latency=LATENCY, work_dir=tmp_path / "fake-work")
    with served(fal.create_platform_app(book, api_key="test-fal-key")) as server:
        denied = httpx.get(f"{server.url}/v1/models/requests/by-endpoint", params={"endpoint_id": "a/b"})
        missing = httpx.get(f"{server.url}/v1/models/requests/by-endpoint",
                            headers={"Authorization": "Key test-fal-key"})
        empty = httpx.get(f"{server.url}/v1/models/requests/by-endpoint", params={"endpoint_id": "a/b"},
                          headers={"Authorization": "Key test-fal-key"})
    assert denied.status_code == 401 and missing.status_code == 422
    assert empty.json() == {"items": [], "has_more": False, "next_cursor": None}


def test_fal_platform_base_url_is_fals_own_unless_the_environment_points_it_elsewhere():
    from video_pipeline.config import Settings
    from video_pipeline.providers.live import configured_providers

    assert FalProvider("k").platform_base_url == "https://api.fal.ai"
    settings = Settings.from_env({"FAL_KEY": "k", "VIDEO_PIPELINE_FAL_PLATFORM_BASE_URL": "http://127.0.0.1:8715/"})
    assert configured_providers(settings)["fal"].platform_base_url == "http://127.0.0.1:8715"
    assert FalProvider("k", platform_base_url="http://127.0.0.1:9").platform_base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize("spec", LOOKUPS, ids=lambda s: s.name)
def test_every_lookup_names_itself_for_the_ledger(spec):
    adapter = spec.adapter("http://127.0.0.1:9", None)      # no client is opened: nothing is sent
    assert isinstance(adapter.lookup, str) and adapter.lookup
    assert callable(adapter.find_submitted)


# ---- the providers without a lookup ------------------------------------------------------------------------------

@rigs(WITHOUT_LOOKUP)
@pytest.mark.parametrize("fault", LOST)
def test_lost_answers_create_exactly_one_job_on_fakes_of_providers_without_a_lookup(rig, fault):
    async def scenario(adapter, seen):
        await lose_submit(adapter, rig.book, rig.spec.req("k-nolookup"), fault)
        return seen.outcomes

    adapter, seen = rig.open()
    assert not hasattr(adapter, "find_submitted")          # the engine cannot reconcile these: no lookup exists
    outcomes = run(closing(adapter, scenario(adapter, seen)))
    assert [o[2] for o in outcomes if o[0] == "POST"] == [CLIENT_SEES[fault]]
    assert rig.book.total_submissions == 1


@pytest.mark.parametrize("fault", LOST)
def test_a_plain_client_sees_each_lost_answer_as_a_reset_a_timeout_or_a_proxys_502_page(fault, tmp_path):
    book = JobBook(latency=LATENCY, work_dir=tmp_path / "fake-work")
    body = {"model": "gen4.5", "promptText": "a cat", "ratio": "1280:720", "duration": 5}
    headers = {"Authorization": f"Bearer {RUNWAY_KEY}", "X-Runway-Version": "2024-11-06"}
    with served(runway.create_app(book, api_key=RUNWAY_KEY)) as server:
        book.faults.add("submit", fault)
        try:
            answer = httpx.post(f"{server.url}/v1/text_to_video", json=body, headers=headers, timeout=CLIENT_TIMEOUT)
            outcome = (answer.status_code, answer.headers["content-type"], answer.text)
        except httpx.HTTPError as exc:
            outcome = (type(exc).__name__,)
        after = httpx.post(f"{server.url}/v1/text_to_video", json=body, headers=headers, timeout=CLIENT_TIMEOUT)
    if fault == "lost-502":
        assert outcome[:2] == (502, "text/html") and "502 Bad Gateway" in outcome[2]
    else:
        assert outcome == (CLIENT_SEES[fault],)
    assert after.status_code == 200                        # the fault struck once; the server serves on
    assert book.total_submissions == 2


# ---- the HTTP layer never resends a job-creating request on a guess --------------------------------------------

@rigs(LOOKUPS + WITHOUT_LOOKUP)
@pytest.mark.parametrize("fault, created", [("lost-reset", 1), pytest.param("lost-slow", 1, marks=SLOW),
                                            ("lost-502", 1), ("500", 0), ("503", 0), ("reset", 0)])
def test_a_submit_whose_answer_is_lost_is_uncertain_and_sent_once_even_with_retries_on(rig, fault, created):
    from video_pipeline.errors import SubmitUncertain

    async def scenario(adapter, seen):
        rig.book.faults.add("submit", fault)
        before = now()
        with pytest.raises(SubmitUncertain) as raised:
            await adapter.submit(rig.spec.req("k-guess"))
        return raised.value, before, [o for o in seen.outcomes if o[0] == "POST"]

    adapter, seen = rig.open()
    adapter.max_attempts = 5                     # retries on: the layer still must not resend this one
    error, before, posts = run(closing(adapter, scenario(adapter, seen)))
    assert len(posts) == 1                       # one request left; none followed it
    assert rig.book.total_submissions == created
    assert error.kind == ProviderError.UNCERTAIN and "may have created the job" in str(error)
    assert before <= error.sent_at <= error.failed_at and len(error.fingerprint) == 64


@rigs(LOOKUPS + WITHOUT_LOOKUP)
@pytest.mark.parametrize("fault", [pytest.param("429", marks=SLOW), "429-no-retry-after"])
def test_a_throttled_submit_created_nothing_and_is_sent_again(rig, fault):
    async def scenario(adapter, seen):
        rig.book.faults.add("submit", fault)
        return await adapter.submit(rig.spec.req("k-throttled"))

    adapter, seen = rig.open()
    adapter.max_attempts = 3
    job_id = run(closing(adapter, scenario(adapter, seen)))
    assert rig.only_job.id in job_id                       # the one job the provider created
    # two requests, one job: the throttled one (HTTP 429, or MiniMax's base_resp 1002 in a 200) created nothing
    assert len([o for o in seen.outcomes if o[0] == "POST"]) == 2 and rig.book.total_submissions == 1


def test_an_accepted_submit_whose_answer_names_no_job_is_uncertain_not_a_failure_to_fall_back_from(tmp_path):
    """A 2xx to a job-creating request means the provider took it: an answer we cannot read (no id) must not send
    the segment to a fallback model, which would pay for it a second time."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from video_pipeline.errors import SubmitUncertain

    taken = []

    async def create(request):
        taken.append(await request.json())
        return JSONResponse({"status": "PENDING"})          # accepted, but the id is missing

    app = Starlette(routes=[Route("/v1/text_to_video", create, methods=["POST"])])
    with served(app) as server:
        adapter = RunwayProvider(RUNWAY_KEY, base_url=server.url)

        async def scenario():
            try:
                with pytest.raises(SubmitUncertain) as raised:
                    await adapter.submit(partial(request, route_model_id="gen4.5", seconds=5)("k-noid"))
                return raised.value
            finally:
                await adapter.aclose()

        error = run(scenario())
    assert len(taken) == 1 and error.kind == ProviderError.UNCERTAIN and "KeyError" in str(error)

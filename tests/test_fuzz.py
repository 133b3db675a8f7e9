"""Fuzzing with hypothesis: whatever bytes a campaign file holds and whatever JSON a provider answers, the only
exceptions that escape are the project's own (CampaignError, ProviderError), each with a message.
Example counts are kept small for CI; raise HYPOTHESIS_PROFILE=long locally for a deeper search."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from video_pipeline.spec.campaign import parse_campaign
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.errors import CampaignError, ProviderError
from video_pipeline.providers.base import GenerationRequest, JobStatus
from video_pipeline.providers.live import ADAPTERS, adapter_class

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("long", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SAMPLES = sorted((PROJECT_ROOT / "data" / "samples").glob("*.*"))
SUFFIXES = [".yaml", ".json", ".csv", ".jsonl"]

# --- the campaign parser ---------------------------------------------------------------------------------------

#: words the format uses, so random documents reach the model's validators, not only the YAML scanner
WORDS = ["campaign", "videos", "shots", "prompt", "id", "target_seconds", "budget_usd", "defaults", "quality_tier",
         "social", "premium", "model", "image", "video", "transform", "music", "audio", "narration", "version",
         "aspect_ratio", "16:9", "resolution", "continuity", "chained", "transition", "crossfade", "schedule",
         "batch", "style", "veo-3-1-fast", "NaN", "Infinity", "-1", "1e309", "media/bottle.png", "../x.png"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.sampled_from(WORDS), st.text(max_size=20))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=25)


def _refused_clearly(raw: bytes, name: str) -> None:
    try:
        parse_campaign(raw, name)
    except CampaignError as exc:
        assert exc.problems and all(p.message and p.file == name for p in exc.problems)


@given(raw=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_are_a_campaign_or_a_campaign_error(raw, suffix):
    _refused_clearly(raw, f"fuzz{suffix}")


@given(doc=documents, as_json=st.booleans())
def test_random_documents_are_a_campaign_or_a_campaign_error(doc, as_json):
    import yaml

    text = json.dumps(doc, allow_nan=True) if as_json else yaml.safe_dump(doc, allow_unicode=True)
    _refused_clearly(text.encode(), "fuzz.json" if as_json else "fuzz.yaml")


@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_mutated_sample_campaigns_are_a_campaign_or_a_campaign_error(sample, data):
    raw = bytearray(sample.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "duplicate"]))
        if action == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del raw[at:at + data.draw(st.integers(1, 20))]
        elif action == "insert":
            raw[at:at] = data.draw(st.sampled_from([b":", b"- ", b"{", b"]", b'"', b"\n  ", b"\t", b",", b"\x00",
                                                    b"\xef\xbb\xbf", b"&a", b"*a", b"!!python/object:os.system"]))
        else:
            raw[at:at] = raw[at:at + data.draw(st.integers(1, 60))]
    _refused_clearly(bytes(raw), sample.name)


# --- every adapter's response parser ---------------------------------------------------------------------------

#: keys the adapters read, so random answers reach deep into each parser
KEYS = ["name", "done", "error", "code", "message", "status", "response", "generateVideoResponse",
        "generatedSamples", "video", "uri", "url", "videos", "raiMediaFilteredCount", "raiMediaFilteredReasons",
        "data", "task_id", "task_status", "task_status_msg", "task_result", "base_resp", "status_code", "file",
        "file_id", "download_url", "id", "output", "output_url", "content", "video_url", "task_status",
        "output", "task_id", "request_id", "response_url", "status_url", "cancel_url", "queue_position",
        "error_type", "failure", "failureCode", "progress", "createdAt", "metrics", "predict_time", "urls",
        "get", "logs", "usage", "details", "reason", "resp", "expires_at", "created_at", "completed_at"]
STATUS_WORDS = ["succeeded", "SUCCEEDED", "SUCCEED", "Success", "COMPLETED", "failed", "FAILED", "Fail", "running",
                "RUNNING", "IN_PROGRESS", "IN_QUEUE", "queued", "Queueing", "Processing", "PENDING", "THROTTLED",
                "canceled", "CANCELLED", "starting", "processing", "succeed", "submitted", "unknown", ""]
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                         st.sampled_from(STATUS_WORDS), st.sampled_from(["https://x.example/v.mp4", "0", "-1"]),
                         st.text(max_size=12))
answers = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)), max_leaves=30)
bodies = st.one_of(answers.map(lambda a: json.dumps(a).encode()),
                   st.binary(max_size=60),
                   answers.map(lambda a: json.dumps(a).encode()[:-1]))     # cut short: invalid JSON
statuses = st.sampled_from([200, 200, 200, 201, 202, 400, 401, 404, 409, 422, 429, 500, 503])

REQUEST = GenerationRequest(job_key="k" * 64, model="m", route_model_id="model-id", category="text_to_video",
                            prompt="A kite", seconds=5, resolution="720p", aspect_ratio="16:9")
#: job ids in each adapter's own format (fal's is its response path; gemini's an operation name)
JOB_IDS = {"gemini": "models/veo/operations/op-1", "fal": "fal-ai/veo3/requests/req-1", "kling": "text2video:task-1"}


class _FixedToken:
    """Vertex's credentials as the adapter uses them: a bearer token on demand."""

    def token(self) -> str:
        return "fuzz-token"


def _adapter(name: str, answers_: list[tuple[int, bytes]]):
    queue = list(answers_)

    def answer(request: httpx.Request) -> httpx.Response:
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    cls = adapter_class(name)
    if name == "vertex":   # a project and a region, and an OAuth token from google-auth (here a fixed one)
        adapter = cls("fuzz-project", location="us-central1", credentials=_FixedToken(),
                      base_url="https://fuzz.invalid", client=client)
    else:
        keys = [f"fuzz-key-{i}-" + "0123456789abcdef" * 3 for i in range(len(cls.env_keys))]
        adapter = cls(*keys, base_url="https://fuzz.invalid", client=client)
    adapter.max_attempts = 1            # one answer per call: the retry policy is not what is fuzzed here
    return adapter


def _only_own_errors(coro) -> object:
    try:
        return asyncio.run(coro)
    except ProviderError as exc:
        assert str(exc).strip()
        return exc


@pytest.mark.parametrize("name", sorted(ADAPTERS))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(replies=st.lists(st.tuples(statuses, bodies), min_size=1, max_size=3))
def test_any_answer_to_submit_or_poll_is_a_status_or_a_provider_error(name, replies):
    adapter = _adapter(name, replies)
    submitted = _only_own_errors(adapter.submit(REQUEST))
    assert isinstance(submitted, (str, ProviderError))
    for method in ("poll", "refresh_output_url"):
        if hasattr(adapter, method):
            outcome = _only_own_errors(getattr(_adapter(name, replies), method)(JOB_IDS.get(name, "job-1")))
            assert isinstance(outcome, (JobStatus, ProviderError))

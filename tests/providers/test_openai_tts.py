"""OpenAI speech adapter against its fake over real loopback HTTP: real audio, probed."""

from __future__ import annotations

import re
from functools import partial

import httpx
import pytest

from tests.providers.conftest import request as video_request
from tests.providers.contract import (
    TRANSIENT_SUBMIT_FAULTS,
    assert_transient_tts_fault_retried,
    assert_unknown_voice_is_terminal,
    assert_video_job_protocol_refused,
    assert_wrong_key_is_fatal,
    fake_and_adapter,
    synthesize_once,
    using,
)
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.fakes.openai_tts import create_app, spoken_seconds
from video_pipeline.providers.openai_tts import MAX_INPUT_CHARS, OpenAISpeechProvider, split_text
from video_pipeline.providers.tts import TtsProvider, TtsRequest

KEY = "sk-test-openai-key"
TEXT = "A lighthouse at dusk. The waves come in, 100% \"real\"; the gulls answer."
SPEECH = "/v1/audio/speech"


app, adapter = fake_and_adapter(create_app, OpenAISpeechProvider, KEY)


def tts(text: str = TEXT, **kw) -> TtsRequest:
    return TtsRequest(text=text, voice=kw.pop("voice", "coral"), model_id=kw.pop("model_id", "gpt-4o-mini-tts"), **kw)


def test_synthesize_writes_real_mp3_whose_probed_length_is_the_duration(connect, book, tmp_path):
    dest = tmp_path / "narration" / "v1.mp3"
    result = synthesize_once(connect, tts(), dest)
    assert result.path == dest and dest.is_file()
    info = probe(dest)
    assert info.audio_codec is not None and info.width is None
    assert result.duration_seconds == pytest.approx(info.duration)
    assert result.duration_seconds == pytest.approx(spoken_seconds(TEXT), abs=0.1)
    assert result.timings == [] and result.characters == len(TEXT)
    [job] = book.jobs.values()
    assert job.prompt == TEXT and job.meta == {"model": "gpt-4o-mini-tts", "voice": "coral", "response_format": "mp3"}
    assert book.requests == [("POST", SPEECH)]
    assert [p.name for p in dest.parent.iterdir()] == ["v1.mp3"]     # no parts left behind


def test_request_body_follows_the_speech_create_params():
    a = OpenAISpeechProvider("k")
    assert a.body(tts(speed=1.25, response_format="wav"), "Hi.") == {
        "model": "gpt-4o-mini-tts", "input": "Hi.", "voice": "coral", "response_format": "wav", "speed": 1.25}
    assert a.body(tts(voice="voice_abc123"), "Hi.")["voice"] == {"id": "voice_abc123"}
    assert "speed" not in a.body(tts(), "Hi.")
    assert isinstance(a, TtsProvider)


def test_text_past_the_input_limit_is_split_at_sentences_and_joined_into_one_file(connect, book, tmp_path):
    sentences = [f"Sentence number {i} tells the viewer something new about the product." for i in range(8)]
    text = " ".join(sentences)

    async def scenario(a):
        a.max_input_chars = 150
        return await a.synthesize(tts(text), tmp_path / "long.mp3")

    result = using(connect, scenario)
    parts = [job.prompt for job in book.jobs.values()]
    assert len(parts) == len(book.requests) == 4
    assert all(len(p) <= 150 and p.endswith("product.") for p in parts)
    assert " ".join(parts) == text
    expected = sum(spoken_seconds(p) for p in parts)
    assert probe(tmp_path / "long.mp3").duration == pytest.approx(expected, abs=0.25)
    assert result.duration_seconds == pytest.approx(expected, abs=0.25)
    assert result.characters == len(text)


def test_split_text_keeps_every_chunk_within_4096_and_loses_nothing():
    sentences = [f"This is sentence {i}, and it is about as long as a narrator's sentence gets!" for i in range(140)]
    text = " ".join(sentences)
    chunks = split_text(text)
    assert len(text) > 2 * MAX_INPUT_CHARS and len(chunks) == 3
    assert all(len(c) <= MAX_INPUT_CHARS for c in chunks)
    assert all(c.endswith("gets!") for c in chunks)
    assert " ".join(chunks) == text
    assert split_text("短句。另一句。", limit=4) == ["短句。", "另一句。"]
    assert split_text("x" * 10, limit=4) == ["xxxx", "xxxx", "xx"]     # no boundary at all: cut anyway


@pytest.mark.parametrize("fmt", ["wav", "opus", "pcm"])
def test_other_response_formats_are_measured_too(connect, book, tmp_path, fmt):
    result = synthesize_once(connect, tts(response_format=fmt), tmp_path / f"n.{fmt}")
    assert result.duration_seconds == pytest.approx(spoken_seconds(TEXT), abs=0.1)
    if fmt != "pcm":
        assert probe(result.path).duration == pytest.approx(result.duration_seconds)


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_faults_are_retried_and_synthesize_once(connect, book, tmp_path, fault):
    assert_transient_tts_fault_retried(connect, tts(), book, tmp_path / "n.mp3", fault, path=SPEECH)


def test_wrong_key_is_fatal_and_neither_the_key_nor_its_masked_echo_appears(connect, book, tmp_path):
    wrong = partial(connect, key="sk-wrong-secret")
    assert_wrong_key_is_fatal(lambda: synthesize_once(wrong, tts(), tmp_path / "n.mp3"), book,
                              secrets=["sk-wrong-secret", "sk***et"], says=["401", "invalid_api_key"])
    assert not (tmp_path / "n.mp3").exists()


def test_an_unknown_voice_is_terminal_and_not_retried(connect, book, tmp_path):
    message = assert_unknown_voice_is_terminal(connect, tts(voice="narrator-9000"), tmp_path / "n.mp3")
    assert re.search(r"HTTP 400: .*narrator-9000", message)
    assert book.requests == [("POST", SPEECH)]


def test_empty_text_and_unknown_formats_are_refused_before_any_request(connect, book, tmp_path):
    for req in (tts("   "), tts(response_format="mp4")):
        with pytest.raises(ProviderError) as exc:
            synthesize_once(connect, req, tmp_path / "n.mp3")
        assert exc.value.kind == ProviderError.TERMINAL
    assert book.requests == []


def test_the_video_job_protocol_is_refused():
    assert_video_job_protocol_refused(OpenAISpeechProvider("k"), video_request())


@pytest.mark.parametrize("status, error, kind", [
    (429, {"message": "You exceeded your current quota, please check your plan and billing details.",
           "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}, ProviderError.FATAL),
    (429, {"message": "Rate limit reached for requests", "type": "requests", "param": None,
           "code": "rate_limit_exceeded"}, ProviderError.RETRYABLE),
    (400, {"message": "String should have at most 4096 characters", "type": "invalid_request_error",
           "param": "input", "code": "string_above_max_length"}, ProviderError.TERMINAL),
    (401, {"message": "Incorrect API key provided: sk-ab***cd.", "type": "invalid_request_error", "param": None,
           "code": "invalid_api_key"}, ProviderError.FATAL),
    (500, {"message": "The server had an error while processing your request.", "type": "server_error",
           "param": None, "code": None}, ProviderError.RETRYABLE),
])
def test_errors_are_classified_from_documented_envelopes(status, error, kind):
    a = OpenAISpeechProvider("sk-abcd")
    response = httpx.Response(status, json={"error": error})
    assert a.error_kind(response) == kind
    message = a.error_message(response)
    assert (error["code"] or error["type"]) in message and "sk-ab" not in message

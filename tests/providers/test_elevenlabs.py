"""ElevenLabs adapter against its fake over real loopback HTTP: real audio, probed, with word timings."""

from __future__ import annotations

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
)
from video_pipeline.errors import ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.elevenlabs import ElevenLabsProvider, word_timings
from video_pipeline.providers.fakes.elevenlabs import create_app
from video_pipeline.providers.fakes.openai_tts import spoken_seconds
from video_pipeline.providers.tts import TtsProvider, TtsRequest, WordTiming

KEY = "test-elevenlabs-secret"
VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "A lighthouse at dusk:  100% \"real\" waves,\nand the gulls answer."
PATH = f"/v1/text-to-speech/{VOICE}/with-timestamps"


app, adapter = fake_and_adapter(create_app, ElevenLabsProvider, KEY)


def tts(text: str = TEXT, **kw) -> TtsRequest:
    return TtsRequest(text=text, voice=kw.pop("voice", VOICE), model_id=kw.pop("model_id", "eleven_multilingual_v2"),
                      **kw)


def assert_monotonic(timings: list[WordTiming]) -> None:
    for before, after in zip(timings, timings[1:]):
        assert before.start_seconds <= before.end_seconds <= after.start_seconds <= after.end_seconds


def test_synthesize_decodes_real_mp3_and_times_every_word(connect, book, tmp_path):
    dest = tmp_path / "narration" / "v1.mp3"
    result = synthesize_once(connect, tts(), dest)
    info = probe(dest)
    assert info.audio_codec is not None and info.width is None
    assert result.path == dest and result.duration_seconds == pytest.approx(info.duration)
    assert result.duration_seconds == pytest.approx(spoken_seconds(TEXT), abs=0.1)
    assert [t.text for t in result.timings] == TEXT.split()
    assert_monotonic(result.timings)
    assert result.timings[0].start_seconds == 0.0
    assert result.timings[-1].end_seconds == pytest.approx(result.duration_seconds, abs=0.1)
    assert result.characters == len(TEXT)           # from the character-cost header
    [job] = book.jobs.values()
    assert job.meta == {"model": "eleven_multilingual_v2", "voice": VOICE, "output_format": "mp3_44100_128"}
    assert book.requests == [("POST", PATH)]
    assert [p.name for p in dest.parent.iterdir()] == ["v1.mp3"]


def test_request_body_and_output_format():
    a = ElevenLabsProvider("k")
    assert a.body(tts()) == {"text": TEXT, "model_id": "eleven_multilingual_v2"}
    # multilingual v2 rejects language_code (it detects the language); flash v2.5 enforces it
    assert "language_code" not in a.body(tts(language="de"))
    assert a.body(tts(language="de", model_id="eleven_flash_v2_5", speed=1.1)) == {
        "text": TEXT, "model_id": "eleven_flash_v2_5", "language_code": "de", "voice_settings": {"speed": 1.1}}
    assert a.output_format(tts()) == "mp3_44100_128"
    assert a.output_format(tts(response_format="mp3_22050_32")) == "mp3_22050_32"
    with pytest.raises(ProviderError, match="pcm") as exc:
        a.output_format(tts(response_format="pcm"))
    assert exc.value.kind == ProviderError.TERMINAL
    assert isinstance(a, TtsProvider)


def test_language_and_opus_reach_the_api_in_a_form_it_accepts(connect, book, tmp_path):
    result = synthesize_once(connect, tts("Guten Abend, Hamburg.", language="de", response_format="opus"),
                             tmp_path / "de.ogg")
    assert probe(result.path).audio_codec == "opus"
    assert [t.text for t in result.timings] == ["Guten", "Abend,", "Hamburg."]
    [job] = book.jobs.values()
    assert job.meta["output_format"] == "opus_48000_128"


def test_word_timings_follow_the_character_alignment_and_stay_monotonic():
    chars = list("Hi  there,\nyou.")
    starts = [0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.65, 0.8, 0.9]
    ends = [0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.9, 1.0]
    starts[11] = 0.58     # "you" starts before "there," ended: clamp it
    timings = word_timings(chars, starts, ends)
    assert [(t.text, t.start_seconds, t.end_seconds) for t in timings] == [
        ("Hi", 0.0, 0.2), ("there,", 0.3, 0.6), ("you.", 0.6, 1.0)]
    assert_monotonic(timings)
    assert word_timings([], [], []) == []


@pytest.mark.parametrize("fault", TRANSIENT_SUBMIT_FAULTS)
def test_transient_faults_are_retried_and_synthesize_once(connect, book, tmp_path, fault):
    result = assert_transient_tts_fault_retried(connect, tts(), book, tmp_path / "n.mp3", fault, path=PATH)
    assert len(result.timings) == len(TEXT.split())


def test_wrong_key_is_fatal_and_the_key_never_appears(connect, book, tmp_path):
    wrong = partial(connect, key="wrong-eleven-secret")
    assert_wrong_key_is_fatal(lambda: synthesize_once(wrong, tts(), tmp_path / "n.mp3"), book,
                              secrets=["wrong-eleven-secret"], says=["401", "invalid_api_key"])
    assert not (tmp_path / "n.mp3").exists()


def test_an_unknown_voice_is_terminal_and_not_retried(connect, book, tmp_path):
    message = assert_unknown_voice_is_terminal(connect, tts(voice="no-such-voice"), tmp_path / "n.mp3")
    assert "voice_not_found" in message
    assert book.requests == [("POST", "/v1/text-to-speech/no-such-voice/with-timestamps")]


def test_the_video_job_protocol_is_refused():
    assert_video_job_protocol_refused(ElevenLabsProvider("k"), video_request())


@pytest.mark.parametrize("status, body, kind, text", [
    (401, {"detail": {"status": "quota_exceeded", "message": "This request exceeds your quota."}},
     ProviderError.FATAL, "quota_exceeded: This request exceeds your quota."),
    (401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, ProviderError.FATAL,
     "invalid_api_key: Invalid API key"),
    (429, {"detail": {"status": "too_many_concurrent_requests", "message": "Too many concurrent requests"}},
     ProviderError.RETRYABLE, "too_many_concurrent_requests: Too many concurrent requests"),
    (429, {"detail": {"status": "system_busy", "message": "The system is busy"}}, ProviderError.RETRYABLE,
     "system_busy: The system is busy"),
    (400, {"detail": {"status": "text_too_long", "message": "Text is too long."}}, ProviderError.TERMINAL,
     "text_too_long: Text is too long."),
    (422, {"detail": [{"loc": ["body", "text"], "msg": "field required", "type": "value_error.missing"}]},
     ProviderError.TERMINAL, "body.text: field required"),
])
def test_errors_are_classified_from_documented_envelopes(status, body, kind, text):
    a = ElevenLabsProvider("k")
    response = httpx.Response(status, json=body)
    assert (a.error_kind(response), a.error_message(response)) == (kind, text)

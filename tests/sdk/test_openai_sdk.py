"""openai-python's speech endpoint against the fake (`OpenAI(base_url=.../v1)`)."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.sdk.conftest import assert_audio, serving
from video_pipeline.providers.fakes.openai_tts import create_app, spoken_seconds

KEY = "test-openai-key"
TEXT = "A lighthouse keeps its watch at dusk."


@pytest.fixture
def fake(book):
    with serving(create_app(book, api_key=KEY)) as server:
        yield server


def client(fake, key: str = KEY) -> OpenAI:
    return OpenAI(api_key=key, base_url=f"{fake.url}/v1", max_retries=0)


@pytest.mark.parametrize("voice", ["coral", {"id": "voice_0123456789abcdef"}])
def test_speech_is_real_audio_for_a_built_in_and_a_custom_voice(fake, book, tmp_path, voice):
    """A custom voice is `{"id": "voice_..."}` (the fake answered it with a 500 before)."""
    speech = client(fake).audio.speech.create(model="gpt-4o-mini-tts", voice=voice, input=TEXT,
                                              response_format="mp3", instructions="Calm.")
    speech.write_to_file(tmp_path / "speech.mp3")
    assert assert_audio(tmp_path / "speech.mp3") == pytest.approx(spoken_seconds(TEXT), abs=0.1)
    [job] = book.jobs.values()
    assert job.meta["voice"] == voice


def test_an_unknown_model_is_a_404_model_not_found(fake, book):
    with pytest.raises(openai.NotFoundError) as exc:
        client(fake).audio.speech.create(model="tts-9", voice="coral", input=TEXT)
    assert exc.value.code == "model_not_found" and "tts-9" in exc.value.message
    assert book.total_submissions == 0


def test_a_bad_speed_is_a_400_naming_the_parameter(fake, book):
    with pytest.raises(openai.BadRequestError) as exc:
        client(fake).audio.speech.create(model="tts-1", voice="coral", input=TEXT, speed=9)
    assert exc.value.param == "speed"


def test_a_wrong_key_is_an_authentication_error_that_masks_the_key(fake, book):
    with pytest.raises(openai.AuthenticationError) as exc:
        client(fake, key="sk-wrong-0123456789").audio.speech.create(model="tts-1", voice="coral", input=TEXT)
    assert exc.value.code == "invalid_api_key" and "sk-wrong-0123456789" not in str(exc.value)
    assert book.total_submissions == 0

"""elevenlabs-python's text-to-speech with timestamps against the fake (`ElevenLabs(base_url=...)`)."""

from __future__ import annotations

import base64

import pytest
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

from tests.sdk.conftest import assert_audio, serving
from video_pipeline.providers.fakes.elevenlabs import create_app

KEY = "test-elevenlabs-key"
VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "A lighthouse keeps its watch."


@pytest.fixture
def fake(book):
    with serving(create_app(book, api_key=KEY)) as server:
        yield server


def client(fake, key: str = KEY) -> ElevenLabs:
    return ElevenLabs(api_key=key, base_url=fake.url)


def test_speech_with_timestamps_is_real_audio_with_one_timing_per_character(fake, book, tmp_path):
    result = client(fake).text_to_speech.convert_with_timestamps(voice_id=VOICE, text=TEXT,
                                                                  model_id="eleven_multilingual_v2",
                                                                  output_format="mp3_44100_128")
    (tmp_path / "speech.mp3").write_bytes(base64.b64decode(result.audio_base_64))
    seconds = assert_audio(tmp_path / "speech.mp3")
    assert "".join(result.alignment.characters) == TEXT
    assert result.alignment.character_end_times_seconds[-1] == pytest.approx(seconds, abs=0.15)


def test_an_unknown_model_is_a_400_model_not_found(fake, book):
    with pytest.raises(ApiError) as exc:
        client(fake).text_to_speech.convert_with_timestamps(voice_id=VOICE, text=TEXT, model_id="eleven_v9")
    assert exc.value.status_code == 400 and exc.value.body["detail"]["status"] == "model_not_found"
    assert book.total_submissions == 0


def test_a_wrong_key_is_a_401_invalid_api_key(fake, book):
    with pytest.raises(ApiError) as exc:
        client(fake, key="wrong").text_to_speech.convert_with_timestamps(voice_id=VOICE, text=TEXT,
                                                                        model_id="eleven_multilingual_v2")
    assert exc.value.status_code == 401 and exc.value.body["detail"]["status"] == "invalid_api_key"
    assert book.total_submissions == 0

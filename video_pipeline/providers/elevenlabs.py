"""ElevenLabs speech with timestamps: `POST /v1/text-to-speech/{voice_id}/with-timestamps?output_format=mp3_44100_128`.

Auth header `xi-api-key: $ELEVENLABS_API_KEY`; body `{text, model_id, language_code?, voice_settings?}`; the answer is
JSON `{audio_base64, alignment{characters[], character_start_times_seconds[], character_end_times_seconds[]},
normalized_alignment}` (elevenlabs-python client; api.elevenlabs.io docs). Errors are `{"detail": {status, message}}`
(422: `{"detail": [{loc, msg}]}`); `quota_exceeded` and `invalid_api_key` come as 401.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx

from video_pipeline.atomic import temp_prefix
from video_pipeline.errors import MediaError, ProviderError
from video_pipeline.media.probe import probe
from video_pipeline.providers.http import HttpProvider, classify_status
from video_pipeline.providers.tts import SynchronousSpeech, TtsRequest, TtsResult, WordTiming

OUTPUT_FORMATS = {"mp3": "mp3_44100_128", "opus": "opus_48000_128"}
FATAL_STATUSES = {"invalid_api_key", "quota_exceeded", "payment_required"}
RETRYABLE_STATUSES = {"too_many_concurrent_requests", "system_busy", "rate_limit_exceeded"}
#: models that accept `language_code`; the others reject it and detect the language from the text
LANGUAGE_MODELS = ("eleven_turbo_v2_5", "eleven_flash_v2_5", "eleven_v3")


def word_timings(characters: list[str], starts: list[float], ends: list[float]) -> list[WordTiming]:
    """Words (runs of non-space characters) with the start of their first and the end of their last character,
    made monotonic: a word never starts before the previous one ended."""
    words: list[WordTiming] = []
    run: list[tuple[str, float, float]] = []

    def flush() -> None:
        if not run:
            return
        previous_end = words[-1].end_seconds if words else 0.0
        start = max(float(run[0][1]), previous_end)
        end = max(max(float(e) for _, _, e in run), start)
        words.append(WordTiming("".join(c for c, _, _ in run), start, end))
        run.clear()

    for char, start, end in zip(characters, starts, ends):
        if char.isspace():
            flush()
        else:
            run.append((char, start, end))
    flush()
    return words


class ElevenLabsProvider(SynchronousSpeech, HttpProvider):
    name = "elevenlabs"
    default_base_url = "https://api.elevenlabs.io"
    env_keys = ("ELEVENLABS_API_KEY",)

    def __init__(self, api_key: str, **kw):
        super().__init__(**kw)
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"xi-api-key": self._api_key}

    @staticmethod
    def _detail(response: httpx.Response):
        try:
            body = response.json()
        except ValueError:
            return None
        return body.get("detail") if isinstance(body, dict) else None

    def error_message(self, response: httpx.Response) -> str:
        detail = self._detail(response)
        if isinstance(detail, dict):
            return f"{detail.get('status', '')}: {detail.get('message', '')}".strip(": ")
        if isinstance(detail, list):
            return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
                             for d in detail if isinstance(d, dict))
        return super().error_message(response)

    def error_kind(self, response: httpx.Response) -> str:
        detail = self._detail(response)
        status = detail.get("status") if isinstance(detail, dict) else None
        if status in FATAL_STATUSES:
            return ProviderError.FATAL
        if status in RETRYABLE_STATUSES:
            return ProviderError.RETRYABLE
        return classify_status(response.status_code)

    def output_format(self, request: TtsRequest) -> str:
        fmt = request.response_format
        if fmt in OUTPUT_FORMATS:
            return OUTPUT_FORMATS[fmt]
        if fmt.startswith(("mp3_", "opus_")):
            return fmt
        # pcm/ulaw/alaw come without a header, so the result could not be probed or mixed like the rest
        raise ProviderError(f"response_format {fmt!r} is not supported here; use mp3 or opus (or an mp3_*/opus_* "
                            "output_format)", kind=ProviderError.TERMINAL, provider=self.name)

    def body(self, request: TtsRequest) -> dict:
        body: dict = {"text": request.text, "model_id": request.model_id}
        if request.language and request.model_id.startswith(LANGUAGE_MODELS):
            body["language_code"] = request.language
        if request.speed is not None:
            body["voice_settings"] = {"speed": request.speed}
        return body

    async def synthesize(self, request: TtsRequest, dest: Path) -> TtsResult:
        """Speak `request.text` into `dest`, with word timings from ElevenLabs' character alignment."""
        if not request.text.strip():
            raise ProviderError("narration text is empty", kind=ProviderError.TERMINAL, provider=self.name)
        path = f"/v1/text-to-speech/{quote(request.voice, safe='')}/with-timestamps"
        response = await self.request("POST", path, params={"output_format": self.output_format(request)},
                                      json=self.body(request))
        try:
            payload = response.json()
            audio = base64.b64decode(payload["audio_base64"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ProviderError(f"POST {path}: the answer has no decodable audio_base64", provider=self.name) from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=temp_prefix(f".{dest.name}."), delete=False) as fh:
            fh.write(audio)
        try:
            duration = probe(fh.name).duration
        except MediaError as exc:
            os.unlink(fh.name)
            raise ProviderError(f"the speech audio cannot be decoded: {exc}", provider=self.name) from None
        os.replace(fh.name, dest)
        alignment = payload.get("alignment") or {}
        timings = word_timings(alignment.get("characters", []), alignment.get("character_start_times_seconds", []),
                               alignment.get("character_end_times_seconds", []))
        return TtsResult(dest, duration, timings, characters=self._billed(response, request.text))

    @staticmethod
    def _billed(response: httpx.Response, text: str) -> int:
        try:
            return int(response.headers["character-cost"])
        except (KeyError, ValueError):
            return len(text)

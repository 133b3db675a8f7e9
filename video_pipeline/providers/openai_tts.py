"""OpenAI speech: `POST /v1/audio/speech`, synchronous, the audio bytes in the response body.

Auth `Authorization: Bearer $OPENAI_API_KEY`. Body `{model, input (<= 4096 chars), voice (name or {"id": "voice_..."}),
response_format mp3|opus|aac|flac|wav|pcm, speed 0.25-4.0}` (openai/openai-python
`types/audio/speech_create_params.py`). Errors are `{"error": {message, type, param, code}}`; `insufficient_quota` is a
429 that no retry fixes. OpenAI returns no timings, so results carry none; longer text is split on sentence
boundaries and the parts joined with ffmpeg.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

import ffmpeg as ffmpeg_python
import httpx

from video_pipeline.atomic import temp_prefix
from video_pipeline.errors import MediaError, ProviderError
from video_pipeline.media.ffmpeg import run_graph
from video_pipeline.media.probe import probe
from video_pipeline.providers.http import HttpProvider, classify_status
from video_pipeline.providers.tts import SynchronousSpeech, TtsRequest, TtsResult

MAX_INPUT_CHARS = 4096
#: response_format → (ffmpeg encoder, muxer) for joining parts; pcm is headerless and joined byte-wise
FORMATS = {"mp3": ("libmp3lame", "mp3"), "opus": ("libopus", "ogg"), "aac": ("aac", "adts"),
           "flac": ("flac", "flac"), "wav": ("pcm_s16le", "wav"), "pcm": (None, None)}
#: OpenAI's pcm is 24 kHz, 16-bit signed little-endian, mono
PCM_BYTES_PER_SECOND = 24_000 * 2
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])")


def split_text(text: str, limit: int = MAX_INPUT_CHARS) -> list[str]:
    """Chunks of at most `limit` characters, cut at sentence ends, else at spaces, else anywhere."""
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text.strip(), limit):
        candidate = f"{current} {piece}" if current and not _joins_without_space(current) else current + piece
        if len(candidate) <= limit:
            current = candidate
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, limit: int):
    for sentence in (s for s in _SENTENCE_END.split(text) if s):
        if len(sentence) <= limit:
            yield sentence
            continue
        for word in sentence.split():
            yield from (word[i:i + limit] for i in range(0, len(word), limit))


def _joins_without_space(chunk: str) -> bool:
    return chunk.endswith(("。", "！", "？"))


def concat_audio(parts: list[Path], dest: Path, response_format: str) -> None:
    """Join audio files end to end into `dest`, re-encoded in `response_format`."""
    codec, muxer = FORMATS[response_format]
    joined = ffmpeg_python.concat(*(ffmpeg_python.input(str(p)).audio for p in parts), v=0, a=1)
    run_graph(joined.output(str(dest), acodec=codec, f=muxer), what=f"joining {len(parts)} narration parts")


class OpenAISpeechProvider(SynchronousSpeech, HttpProvider):
    name = "openai"
    default_base_url = "https://api.openai.com"
    env_keys = ("OPENAI_API_KEY",)
    max_input_chars = MAX_INPUT_CHARS

    def __init__(self, api_key: str, **kw):
        super().__init__(**kw)
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    @staticmethod
    def _error(response: httpx.Response) -> dict:
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            return {}
        return error if isinstance(error, dict) else {}

    def error_message(self, response: httpx.Response) -> str:
        error = self._error(response)
        if not error:
            return super().error_message(response)
        code = error.get("code") or error.get("type") or ""
        if code == "invalid_api_key":
            return "invalid_api_key: the API key was rejected"     # OpenAI's text echoes part of the key
        message = str(error.get("message", ""))
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return f"{code}: {message}".strip(": ")

    def error_kind(self, response: httpx.Response) -> str:
        error = self._error(response)
        if "insufficient_quota" in (error.get("code"), error.get("type")):
            return ProviderError.FATAL
        return classify_status(response.status_code)

    def body(self, request: TtsRequest, text: str) -> dict:
        voice: str | dict = {"id": request.voice} if request.voice.startswith("voice_") else request.voice
        body = {"model": request.model_id, "input": text, "voice": voice, "response_format": request.response_format}
        if request.speed is not None:
            body["speed"] = request.speed
        return body

    async def _speech(self, request: TtsRequest, text: str) -> bytes:
        response = await self.request("POST", "/v1/audio/speech", json=self.body(request, text))
        if not response.content or response.headers.get("content-type", "").startswith("application/json"):
            raise ProviderError("POST /v1/audio/speech answered 200 without audio", provider=self.name)
        return response.content

    async def synthesize(self, request: TtsRequest, dest: Path) -> TtsResult:
        """Speak `request.text` into `dest` (split into several requests past 4096 characters)."""
        if not request.text.strip():
            raise ProviderError("narration text is empty", kind=ProviderError.TERMINAL, provider=self.name)
        if request.response_format not in FORMATS:
            raise ProviderError(f"response_format {request.response_format!r} is not one of {', '.join(FORMATS)}",
                                kind=ProviderError.TERMINAL, provider=self.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        chunks = split_text(request.text, self.max_input_chars)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=temp_prefix(".tts-")) as tmp:
            parts = []
            for i, chunk in enumerate(chunks):
                part = Path(tmp) / f"part{i:03d}.{request.response_format}"
                part.write_bytes(await self._speech(request, chunk))
                parts.append(part)
            staged = Path(tmp) / f"joined.{request.response_format}"
            if len(parts) == 1:
                staged = parts[0]
            elif request.response_format == "pcm":
                staged.write_bytes(b"".join(p.read_bytes() for p in parts))
            else:
                await asyncio.to_thread(concat_audio, parts, staged, request.response_format)
            os.replace(staged, dest)
        return TtsResult(dest, self._duration(dest, request.response_format), [], characters=len(request.text))

    def _duration(self, path: Path, response_format: str) -> float:
        if response_format == "pcm":
            return path.stat().st_size / PCM_BYTES_PER_SECOND
        try:
            return probe(path).duration
        except MediaError as exc:
            raise ProviderError(f"the speech audio cannot be decoded: {exc}", provider=self.name) from None

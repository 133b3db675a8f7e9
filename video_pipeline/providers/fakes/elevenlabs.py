"""A fake ElevenLabs text-to-speech-with-timestamps endpoint: real audio as base64 plus a character alignment spread
evenly over it, ElevenLabs' `{"detail": {status, message}}` errors, its `xi-api-key` check and injected faults."""

from __future__ import annotations

import asyncio
import base64

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.providers.fakes.faults import injected
from video_pipeline.providers.fakes.jobs import JobBook
from video_pipeline.providers.fakes.openai_tts import spoken_seconds, tone

VOICES = {"21m00Tcm4TlvDq8ikWAM", "JBFqnCBsd6RMkjVDRZzb"}
MODELS = {"eleven_multilingual_v2", "eleven_v3", "eleven_flash_v2_5", "eleven_turbo_v2_5"}
#: output_format → (the fake's encoding of it, sample rate)
OUTPUT_FORMATS = {"mp3_44100_128": ("mp3", 44_100), "mp3_22050_32": ("mp3", 22_050), "opus_48000_128": ("opus", 48_000)}
MAX_TEXT = 10_000


def _error(status: int, message: str) -> dict:
    code = {401: "invalid_api_key", 429: "too_many_concurrent_requests", 400: "invalid_request"}.get(status,
                                                                                                   "system_busy")
    return {"detail": {"status": code, "message": message}}


def alignment(text: str, seconds: float) -> dict:
    """One slot per character, evenly over the audio, as the endpoint's `alignment` object."""
    step = seconds / max(1, len(text))
    return {"characters": list(text),
            "character_start_times_seconds": [round(i * step, 3) for i in range(len(text))],
            "character_end_times_seconds": [round((i + 1) * step, 3) for i in range(len(text))]}


def create_app(book: JobBook, api_key: str = "test-elevenlabs-key") -> Starlette:
    def refuse(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"detail": {"status": code, "message": message}}, status_code=status)

    async def speech(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        if request.headers.get("xi-api-key") != api_key:
            return refuse(401, "invalid_api_key", "Invalid API key")
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        voice = request.path_params["voice_id"]
        fmt = request.query_params.get("output_format", "mp3_44100_128")
        body = await request.json()
        text, model = body.get("text", ""), body.get("model_id", "eleven_multilingual_v2")
        if fmt not in OUTPUT_FORMATS:
            return JSONResponse({"detail": [{"loc": ["query", "output_format"], "msg": f"Invalid output format {fmt}",
                                             "type": "value_error"}]}, status_code=422)
        if voice not in VOICES:
            return refuse(400, "voice_not_found", f"A voice with voice_id {voice} was not found.")
        if model not in MODELS:
            return refuse(400, "model_not_found", f"A model with model ID {model} does not exist.")
        if not text.strip():
            return refuse(400, "invalid_text", "Text must not be empty.")
        if len(text) > MAX_TEXT:
            return refuse(400, "text_too_long", f"Text is too long. Maximum text length is {MAX_TEXT} characters.")
        if "language_code" in body and model == "eleven_multilingual_v2":
            return refuse(400, "unsupported_language_code", "Model does not support language_code.")
        seconds = spoken_seconds(text)
        book.create(body, text, seconds, model=model, voice=voice, output_format=fmt)
        encoding, rate = OUTPUT_FORMATS[fmt]
        audio = await asyncio.to_thread(tone, seconds, encoding, rate)
        timing = alignment(text, seconds)
        return JSONResponse({"audio_base64": base64.b64encode(audio).decode("ascii"), "alignment": timing,
                             "normalized_alignment": timing}, headers={"character-cost": str(len(text))})

    return Starlette(routes=[Route("/v1/text-to-speech/{voice_id}/with-timestamps", speech, methods=["POST"])])

"""A fake OpenAI speech endpoint: `POST /v1/audio/speech` answering real audio (a tone as long as the text would
take to read), with OpenAI's error envelope, its auth check and injected faults.

It checks what openai-python's `speech_create_params.py` declares: `model` one of the speech models (another id is
a 404 `model_not_found`, as OpenAI answers an unknown model), `input` a non-empty string of at most 4096
characters, `voice` a built-in name or a custom voice `{"id": "voice_..."}`, `response_format`, `speed` a number
from 0.25 to 4.0, `instructions` a string; JSON `null` counts as unset."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

import ffmpeg as ffmpeg_python
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.media.ffmpeg import run_graph
from video_pipeline.providers.fakes.faults import injected, json_body
from video_pipeline.providers.fakes.jobs import JobBook

VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin",
          "cedar"}
#: response_format → (encoder, muxer, content type) of what the fake sends
FORMATS = {"mp3": ("libmp3lame", "mp3", "audio/mpeg"), "opus": ("libopus", "ogg", "audio/opus"),
           "aac": ("aac", "adts", "audio/aac"), "flac": ("flac", "flac", "audio/flac"),
           "wav": ("pcm_s16le", "wav", "audio/wav"), "pcm": ("pcm_s16le", "s16le", "audio/pcm")}
MODELS = {"tts-1", "tts-1-hd", "tts-1-1106", "tts-1-hd-1106", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"}
CHARS_PER_SECOND = 15.0

_tones: dict[tuple[float, str], bytes] = {}
_tones_lock = threading.Lock()


def spoken_seconds(text: str) -> float:
    """How long the fake's speech for `text` lasts: about 15 characters a second, at least half a second."""
    return max(0.5, round(len(text) / CHARS_PER_SECOND, 1))


def tone(seconds: float, response_format: str = "mp3", sample_rate: int = 24_000) -> bytes:
    """Real encoded audio: a 440 Hz sine of `seconds`, rendered once per (length, format) with ffmpeg."""
    key = (round(seconds, 2), f"{response_format}@{sample_rate}")
    with _tones_lock:
        if key in _tones:
            return _tones[key]
    codec, muxer, _ = FORMATS[response_format]
    with tempfile.TemporaryDirectory(prefix="vp-fake-tts-") as tmp:
        out = Path(tmp) / f"tone.{response_format}"
        source = ffmpeg_python.input(f"sine=frequency=440:sample_rate={sample_rate}:duration={seconds:.2f}", f="lavfi")
        run_graph(source.output(str(out), acodec=codec, f=muxer, ac=1, ar=sample_rate), what="fake speech tone")
        data = out.read_bytes()
    with _tones_lock:
        _tones[key] = data
    return data


def _error(status: int, message: str) -> dict:
    kind, code = {429: ("requests", "rate_limit_exceeded"), 400: ("invalid_request_error", None),
                  401: ("invalid_request_error", "invalid_api_key"),
                  404: ("invalid_request_error", "model_not_found")}.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _voice_ok(voice: object) -> bool:
    """A built-in voice's name, or a custom voice as openai-python sends it: `{"id": "voice_..."}`."""
    if isinstance(voice, str):
        return voice in VOICES
    return isinstance(voice, dict) and isinstance(voice.get("id"), str) and voice["id"].startswith("voice_")


def problem_with(body: object) -> tuple[int, str, str] | None:
    """Why OpenAI would refuse this speech body: (HTTP status, param, message), or None."""
    if not isinstance(body, dict):
        return 400, "", "We could not parse the JSON body of your request."
    given = {k: v for k, v in body.items() if v is not None}      # the SDK may send null for unset fields
    text, voice, fmt = given.get("input"), given.get("voice"), given.get("response_format", "mp3")
    speed = given.get("speed", 1.0)
    if not given.get("model"):
        return 400, "model", "you must provide a model parameter"
    if given["model"] not in MODELS:
        return 404, "model", f"The model `{given['model']}` does not exist or you do not have access to it."
    if not isinstance(text, str) or not text:
        return 400, "input", "input must be a non-empty string"
    if len(text) > 4096:
        return 400, "input", "String should have at most 4096 characters"
    if not _voice_ok(voice):
        return 400, "voice", f"Invalid value: {voice!r}. Supported values are: {', '.join(sorted(VOICES))}."
    if fmt not in FORMATS:
        return 400, "response_format", f"Invalid value: {fmt!r}."
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
        return 400, "speed", f"Invalid value: {speed!r}. Expected a number from 0.25 to 4.0."
    if not isinstance(given.get("instructions", ""), str):
        return 400, "instructions", "instructions must be a string"
    return None


def create_app(book: JobBook, api_key: str = "test-openai-key") -> Starlette:
    async def speech(request: Request) -> Response:
        book.requests.append(("POST", request.url.path))
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != api_key:
            masked = f"{sent[:2]}***{sent[-2:]}" if len(sent) > 4 else "***"
            return JSONResponse(_error(401, f"Incorrect API key provided: {masked}. You can find your API key at "
                                            "https://platform.openai.com/account/api-keys."), status_code=401)
        if (fault := await injected(book, "submit", _error)) is not None:
            return fault
        body = await json_body(request)
        if (problem := problem_with(body)) is not None:
            status, param, message = problem
            error = _error(status, message)
            error["error"]["param"] = param or None
            return JSONResponse(error, status_code=status)
        text, voice, fmt = body["input"], body["voice"], body.get("response_format") or "mp3"
        seconds = spoken_seconds(text)
        book.create(body, text, seconds, model=body["model"], voice=voice, response_format=fmt)
        return Response(await asyncio.to_thread(tone, seconds, fmt), media_type=FORMATS[fmt][2])

    return Starlette(routes=[Route("/v1/audio/speech", speech, methods=["POST"])])

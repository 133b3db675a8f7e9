"""A fake OpenAI speech endpoint: `POST /v1/audio/speech` answering real audio (a tone as long as the text would
take to read), with OpenAI's error envelope, its auth check and injected faults."""

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
from video_pipeline.providers.fakes.faults import injected
from video_pipeline.providers.fakes.jobs import JobBook

VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin",
          "cedar"}
#: response_format → (encoder, muxer, content type) of what the fake sends
FORMATS = {"mp3": ("libmp3lame", "mp3", "audio/mpeg"), "opus": ("libopus", "ogg", "audio/opus"),
           "aac": ("aac", "adts", "audio/aac"), "flac": ("flac", "flac", "audio/flac"),
           "wav": ("pcm_s16le", "wav", "audio/wav"), "pcm": ("pcm_s16le", "s16le", "audio/pcm")}
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
                  401: ("invalid_request_error", "invalid_api_key")}.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


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
        body = await request.json()
        text, voice, fmt = body.get("input", ""), body.get("voice"), body.get("response_format", "mp3")
        problem = None
        if not body.get("model"):
            problem = ("model", "you must provide a model parameter")
        elif not text:
            problem = ("input", "input must not be empty")
        elif len(text) > 4096:
            problem = ("input", "String should have at most 4096 characters")
        elif not (voice in VOICES or (isinstance(voice, dict) and str(voice.get("id", "")).startswith("voice_"))):
            problem = ("voice", f"Invalid value: {voice!r}. Supported values are: {', '.join(sorted(VOICES))}.")
        elif fmt not in FORMATS:
            problem = ("response_format", f"Invalid value: {fmt!r}.")
        if problem is not None:
            error = _error(400, problem[1])
            error["error"]["param"] = problem[0]
            return JSONResponse(error, status_code=400)
        seconds = spoken_seconds(text)
        book.create(body, text, seconds, model=body["model"], voice=voice, response_format=fmt)
        return Response(await asyncio.to_thread(tone, seconds, fmt), media_type=FORMATS[fmt][2])

    return Starlette(routes=[Route("/v1/audio/speech", speech, methods=["POST"])])

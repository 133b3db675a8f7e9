"""The narration protocol: synthesize text to an audio file, with word timings when the provider gives them.

TTS APIs answer synchronously (one request, the audio in the response), so they share the HTTP layer of the
video adapters (retries, error classification) but not the submit/poll job protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from video_pipeline.errors import ProviderError
from video_pipeline.media.subtitles import WordTiming
from video_pipeline.providers.base import GenerationRequest, JobStatus


@dataclass(frozen=True)
class TtsRequest:
    text: str
    voice: str                      # a provider voice name (OpenAI) or voice id (ElevenLabs)
    model_id: str                   # the provider's own model id, from the catalog's tts entry
    response_format: str = "mp3"
    language: str | None = None     # ISO 639-1; providers without a language field ignore it
    speed: float | None = None


Timing = WordTiming


@dataclass(frozen=True)
class TtsResult:
    path: Path
    duration_seconds: float
    timings: list[WordTiming] = field(default_factory=list)   # empty when the provider gives none
    characters: int = 0                                         # what the provider billed, in characters


@runtime_checkable
class TtsProvider(Protocol):
    name: str

    async def synthesize(self, request: TtsRequest, dest: Path) -> TtsResult: ...

    async def aclose(self) -> None: ...


class SynchronousSpeech:
    """Mixin for TTS adapters on `HttpProvider`: its job protocol does not apply to a synchronous API."""

    name = "tts"

    async def submit(self, request: GenerationRequest) -> str:
        raise ProviderError("TTS providers are used through synthesize(), not submit()",
                            kind=ProviderError.TERMINAL, provider=self.name)

    async def poll(self, job_id: str) -> JobStatus:
        raise ProviderError("TTS providers are used through synthesize(); they have no jobs to poll",
                            kind=ProviderError.TERMINAL, provider=self.name, job_id=job_id)

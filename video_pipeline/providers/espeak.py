"""The offline narration voice: espeak-ng, one sentence at a time, so every sentence's timing is exact.

The text reaches espeak-ng through a file (`-f`), never an argument a shell could read; the sentences' WAVs are
joined with the standard library's `wave` and encoded once with ffmpeg.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import ffmpeg

from video_pipeline.atomic import temp_prefix
from video_pipeline.errors import ProviderError
from video_pipeline.media.ffmpeg import run_graph
from video_pipeline.media.probe import probe
from video_pipeline.providers.tts import TtsRequest, TtsResult, WordTiming

SENTENCE = re.compile(r"(?<=[.!?…。！？])\s+|\n{2,}")
GAP_SECONDS = 0.25   # a breath between sentences


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text.strip()) if s and s.strip()]


class EspeakProvider:
    """Speaks with the espeak-ng binary (Debian/Ubuntu: `apt-get install espeak-ng`; the set-up scripts do it
    when they run as root)."""

    name = "local"

    def __init__(self, binary: str | None = None, words_per_minute: int = 165):
        self.binary = binary or shutil.which("espeak-ng")
        self.words_per_minute = words_per_minute

    async def synthesize(self, request: TtsRequest, dest: Path) -> TtsResult:
        if not self.binary:
            raise ProviderError("narration needs espeak-ng for offline speech (apt-get install espeak-ng), or set "
                                "OPENAI_API_KEY or ELEVENLABS_API_KEY and VIDEO_PIPELINE_MODE=live",
                                kind=ProviderError.FATAL, provider=self.name)
        return await asyncio.to_thread(self._synthesize, request, dest)

    def _synthesize(self, request: TtsRequest, dest: Path) -> TtsResult:
        sentences = split_sentences(request.text)
        if not sentences:
            raise ProviderError("narration text is empty", kind=ProviderError.TERMINAL, provider=self.name)
        timings: list[WordTiming] = []
        with tempfile.TemporaryDirectory(prefix=temp_prefix("vp-espeak-")) as tmp:
            joined = Path(tmp) / "narration.wav"
            cursor = 0.0
            with wave.open(str(joined), "wb") as out:
                for i, sentence in enumerate(sentences):
                    text_file = Path(tmp) / f"{i}.txt"
                    text_file.write_text(sentence, encoding="utf-8")
                    part = Path(tmp) / f"{i}.wav"
                    speed = int(self.words_per_minute * (request.speed or 1.0))
                    proc = subprocess.run([self.binary, "-v", request.voice or "en", "-s", str(speed), "-w", str(part),
                                           "-f", str(text_file)], capture_output=True, timeout=120, check=False)
                    if proc.returncode != 0 or not part.exists():
                        raise ProviderError(f"espeak-ng failed: {proc.stderr.decode('utf-8', 'replace')[-300:]}",
                                            kind=ProviderError.TERMINAL, provider=self.name)
                    with wave.open(str(part), "rb") as src:
                        if i == 0:
                            out.setparams(src.getparams())
                        frames = src.readframes(src.getnframes())
                        rate, width, channels = src.getframerate(), src.getsampwidth(), src.getnchannels()
                    length = len(frames) / (rate * width * channels)
                    out.writeframes(frames)
                    timings.append(WordTiming(sentence, round(cursor, 3), round(cursor + length, 3)))
                    gap = int(GAP_SECONDS * rate) * width * channels
                    out.writeframes(b"\0" * gap)
                    cursor += length + GAP_SECONDS
            dest.parent.mkdir(parents=True, exist_ok=True)
            sound = ffmpeg.input(str(joined)).audio.filter("aformat", sample_rates=48000, channel_layouts="stereo")
            run_graph(ffmpeg.output(sound, str(dest), acodec="aac", audio_bitrate="128k"), what="encode narration")
        return TtsResult(path=dest, duration_seconds=probe(dest).duration, timings=timings,
                         characters=len(request.text))

    async def aclose(self) -> None:
        return None

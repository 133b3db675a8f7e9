"""The sound of a finished video: native audio, narration, a music bed ducked under the voice, fades, and
two-pass loudness normalisation. The picture is stream-copied; only the audio is re-encoded."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from ..errors import MediaError
from .ffmpeg import ffmpeg_binary
from .measure import run_for_stderr
from .render import AUDIO_RATE


@dataclass(frozen=True)
class MixSpec:
    duration: float
    narration: Path | None = None
    narration_offset: float = 0.5
    music: Path | None = None
    keep_native: bool = True
    music_gain_db: float = -12.0
    fade_seconds: float = 1.0
    target_lufs: float = -14.0
    true_peak_db: float = -1.0
    loudness_range: float = 11.0


def _graph(video: Path, spec: MixSpec):
    """The audio graph without loudness normalisation, and the video stream to copy."""
    source = ffmpeg.input(str(video))
    d = f"{spec.duration:.3f}"
    layers = []
    if spec.keep_native:
        layers.append(source.audio.filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo"))
    voice = None
    if spec.narration is not None:
        voice = (ffmpeg.input(str(spec.narration)).audio
                 .filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo")
                 .filter("adelay", delays=int(spec.narration_offset * 1000), all=1)
                 .filter("apad").filter("atrim", duration=d))
    if spec.music is not None:
        bed = (ffmpeg.input(str(spec.music), stream_loop=-1).audio
               .filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo")
               .filter("atrim", duration=d).filter("volume", f"{spec.music_gain_db}dB"))
        if voice is not None:
            # duck the music whenever the voice speaks: the voice drives the compressor's side chain
            split = voice.filter_multi_output("asplit", 2)
            voice, key = split[0], split[1]
            bed = ffmpeg.filter([bed, key], "sidechaincompress", threshold=0.02, ratio=8, attack=20, release=400)
        bed = (bed.filter("afade", t="in", st=0, d=spec.fade_seconds)
               .filter("afade", t="out", st=max(spec.duration - spec.fade_seconds, 0), d=spec.fade_seconds))
        layers.append(bed)
    if voice is not None:
        layers.append(voice)
    if not layers:
        layers.append(ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi").audio)
    mixed = layers[0] if len(layers) == 1 else ffmpeg.filter(layers, "amix", inputs=len(layers), normalize=0,
                                                               duration="first" if spec.keep_native else "longest")
    return source.video, mixed.filter("atrim", duration=d)


def mix(video: Path, out: Path, spec: MixSpec) -> dict:
    """Write `video` with its new sound to `out` (atomically); returns loudnorm's measurements of pass one."""
    # the AAC encoder overshoots peaks a little: aim 1 dB under the true-peak ceiling so the file stays below it
    target = f"I={spec.target_lufs}:TP={spec.true_peak_db - 1.0}:LRA={spec.loudness_range}"
    _, audio = _graph(video, spec)
    analysis = ffmpeg.output(audio.filter("loudnorm", **_kv(target), print_format="json"), "-", f="null")
    stderr = run_for_stderr(ffmpeg.compile(analysis, cmd=ffmpeg_binary(), overwrite_output=True)[1:],
                            what="measure loudness")
    found = re.findall(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if not found:
        raise MediaError("measure loudness: loudnorm printed no measurement")
    measured = json.loads(found[-1])
    picture, audio = _graph(video, spec)
    if _finite(measured["input_i"]) and float(measured["input_i"]) > -70:   # silence stays silence
        audio = audio.filter("loudnorm", **_kv(target), measured_I=measured["input_i"],
                             measured_TP=measured["input_tp"], measured_LRA=measured["input_lra"],
                             measured_thresh=measured["input_thresh"], offset=measured["target_offset"],
                             linear="true").filter("aresample", AUDIO_RATE)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mix-", suffix=".mp4", dir=out.parent)
    os.close(fd)
    try:
        final = ffmpeg.output(picture, audio, tmp, vcodec="copy", acodec="aac", audio_bitrate="160k", ar=AUDIO_RATE,
                              ac=2, movflags="+faststart")
        run_for_stderr(ffmpeg.compile(final, cmd=ffmpeg_binary(), overwrite_output=True)[1:], what=f"mix {out.name}")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return measured


def _finite(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return number == number and abs(number) != float("inf")


def _kv(spec: str) -> dict:
    return dict(part.split("=", 1) for part in spec.split(":"))

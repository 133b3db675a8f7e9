"""The sound of a finished video: native audio (or the audio that drove the picture), narration, a music bed ducked
under the voice, fades, and two-pass loudness normalisation. The picture is stream-copied; only the audio is
re-encoded.

Loudness, two passes: pass one runs the mix graph once, writing it to a lossless WAV while ebur128 measures it
(integrated loudness and true peak, EBU R128); pass two reads that file and applies the one linear gain that brings
it to the target (loudnorm's linear mode, without its 192 kHz
resampling, which cost more than the rest of the assembly), with a true-peak limiter only when the gain would
push peaks past the ceiling. What the limiter takes off is measured on a lossless copy and given back (a little
more gain, limited again) until the mix is within 0.1 LU of the target, at most three times: the finished file
lands within the asset check's ±0.5 LU (a narrated spot's limited mix used to measure −15.0 for −14)."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from video_pipeline.atomic import private_sibling, temp_prefix
from video_pipeline.media.ffmpeg import ffmpeg_binary
from video_pipeline.media.measure import ebur128_summary, run_for_stderr
from video_pipeline.media.render import AUDIO_RATE


LIMITER_MS = 5
#: ffmpeg's native AAC encoder with its constant-quantizer search: 2.6x less CPU than its default (twoloop) at the
#: same 160 kbit/s and bandwidth, and closer to the lossless mix by SI-SDR and band SNR (BENCHMARKS.md, Assembly D)
AAC_CODER = "fast"
#: how close a limited mix is brought to the target before it is encoded, and in how many rounds at most
SETTLE_LU, SETTLE_ROUNDS = 0.1, 3


@dataclass(frozen=True)
class MixSpec:
    duration: float
    narration: Path | None = None
    narration_offset: float = 0.5
    driving_audio: Path | None = None   # the audio the picture was generated to (Seedance's @Audio): from 0 s
    music: Path | None = None
    keep_native: bool = True
    music_gain_db: float = -12.0
    fade_seconds: float = 1.0
    target_lufs: float = -14.0
    true_peak_db: float = -1.0
    loudness_range: float = 11.0


def _graph(video: Path, spec: MixSpec, native=None):
    """The audio graph without loudness normalisation, and the video stream to copy; `native` stands for the
    video's own sound when given (a stream of another graph)."""
    source = ffmpeg.input(str(video))
    d = f"{spec.duration:.3f}"
    layers = []
    if spec.driving_audio is not None:
        # segment k was generated to the audio from its start in the video, so the track lines up from 0 s; the
        # clips' own sound is dropped (silence from Seedance, or this same audio from the local renderer)
        layers.append(ffmpeg.input(str(spec.driving_audio)).audio
                      .filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo")
                      .filter("apad").filter("atrim", duration=d))
    elif spec.keep_native:
        layers.append((source.audio if native is None else native)
                      .filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo"))
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
                                                               duration="longest")
    return source.video, mixed.filter("atrim", duration=d)


def mix(video: Path, out: Path, spec: MixSpec) -> dict:
    """Write `video` with its new sound to `out` (atomically); returns pass one's measurement and the gain applied
    (`input_i` LUFS, `input_tp` dBTP, `gain_db`, `limited`)."""
    with tempfile.TemporaryDirectory(prefix=temp_prefix("vp-mix-")) as work:
        picture, audio, report = final_sound(video, spec, Path(work))
        _encode(picture, audio, out)
    return report


def final_sound(video: Path, spec: MixSpec, work: Path):
    """The picture to copy and the finished sound, lossless, at the target loudness (what `mix` encodes), and the
    report. The mix graph runs once: its output is measured while it is written to a WAV in `work` (decoding the
    clips' sound, the narration and the music, and ducking, once), and the gain is applied to that file."""
    # the AAC encoder overshoots peaks a little: aim 1 dB under the true-peak ceiling so the file stays below it
    ceiling = spec.true_peak_db - 1.0
    picture, graph = _graph(video, spec)
    mixed = work / "mix.wav"
    measured_i, measured_tp = _measure_into(graph, mixed)
    audio = ffmpeg.input(str(mixed)).audio
    gain, limited = 0.0, False
    if math.isfinite(measured_i) and measured_i > -70:   # silence stays silence
        gain = spec.target_lufs - measured_i
        audio = audio.filter("volume", f"{gain:.2f}dB")
        if math.isfinite(measured_tp) and measured_tp + gain > ceiling:
            limited = True
            audio = _limit(audio, ceiling, spec.duration)
    if limited:
        audio, gain = _settle(audio, work, spec, ceiling, gain)
    return picture, audio, {"input_i": measured_i, "input_tp": measured_tp, "gain_db": round(gain, 2),
                            "limited": limited}


def _measure(audio) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of an audio stream, by ebur128."""
    analysis = ffmpeg.output(audio.filter("ebur128", peak="true", framelog="quiet"), "-", f="null")
    return ebur128_summary(run_for_stderr(ffmpeg.compile(analysis, cmd=ffmpeg_binary(), overwrite_output=True)[1:],
                                          what="measure loudness"), "measure loudness")


def _measure_into(audio, path: Path) -> tuple[float, float]:
    """Write `audio` to the WAV `path` (laid by its timestamps, as `_write_wav`) and measure what was written:
    (integrated LUFS, true peak dBTP), by ebur128, which passes the sound through on its way to the file."""
    laid = _laid(audio).filter("ebur128", peak="true", framelog="quiet")
    wav = ffmpeg.output(laid, str(path), acodec="pcm_f32le", ar=AUDIO_RATE, ac=2)
    return ebur128_summary(run_for_stderr(ffmpeg.compile(wav, cmd=ffmpeg_binary(), overwrite_output=True)[1:],
                                          what=f"mix {path.name}"), "measure loudness")


def _limit(audio, ceiling: float, duration: float):
    # The limiter looks ahead `attack` ms and so delays the sound by that much: cut it from the start (its own
    # `latency` option drifts where the input's timestamps jump, as at stream-copied joins).
    return (audio.filter("alimiter", limit=f"{10 ** (ceiling / 20):.4f}", level="false", attack=LIMITER_MS,
                         release=50)
            .filter("atrim", start_sample=AUDIO_RATE * LIMITER_MS // 1000).filter("asetpts", "PTS-STARTPTS")
            .filter("apad").filter("atrim", duration=f"{duration:.3f}"))


def _settle(audio, work: Path, spec: MixSpec, ceiling: float, gain: float):
    """A limited mix written losslessly, measured, and given back what the limiter took (more gain, limited
    again) until it is within SETTLE_LU of the target; returns the stream to encode and the total gain."""
    current = work / "limited-0.wav"
    _write_wav(audio, current)
    for n in range(1, SETTLE_ROUNDS + 1):
        level, _ = _measure(ffmpeg.input(str(current)).audio)
        if not math.isfinite(level) or abs(spec.target_lufs - level) <= SETTLE_LU:
            break
        more = spec.target_lufs - level
        gain += more
        nxt = work / f"limited-{n}.wav"
        _write_wav(_limit(ffmpeg.input(str(current)).audio.filter("volume", f"{more:.2f}dB"), ceiling,
                          spec.duration), nxt)
        current = nxt
    return ffmpeg.input(str(current)).audio, gain


def _laid(audio):
    # a WAV file has no timestamps: samples are laid where the stream's timestamps put them (a stream-copied join
    # overlaps or leaves gaps by the AAC priming), so the sound stays on the picture
    return audio.filter("aresample", **{"async": 1, "min_hard_comp": 0.001})


def _write_wav(audio, path: Path) -> None:
    wav = ffmpeg.output(_laid(audio), str(path), acodec="pcm_f32le", ar=AUDIO_RATE, ac=2)
    run_for_stderr(ffmpeg.compile(wav, cmd=ffmpeg_binary(), overwrite_output=True)[1:], what=f"limit {path.name}")


def _encode(picture, audio, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(private_sibling(out, "mix"))       # ffmpeg creates it: the umask's permissions, like the stills
    try:
        final = ffmpeg.output(picture, audio, tmp, vcodec="copy", acodec="aac", aac_coder=AAC_CODER,
                              audio_bitrate="160k", ar=AUDIO_RATE, ac=2, movflags="+faststart")
        run_for_stderr(ffmpeg.compile(final, cmd=ffmpeg_binary(), overwrite_output=True)[1:], what=f"mix {out.name}")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)

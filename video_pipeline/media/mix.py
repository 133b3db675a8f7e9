"""The sound of a finished video: native audio (or the audio that drove the picture), narration, a music bed ducked
under the voice, fades, and two-pass loudness normalisation. The picture is stream-copied; only the audio is
re-encoded.

Loudness, two passes: pass one runs the mix graph once, writing it to a lossless WAV while ebur128 measures it
(integrated loudness, EBU R128, and the sample peak); pass two reads that file and applies the one linear gain that
brings it to the target (loudnorm's linear mode, without its 192 kHz resampling, which cost more than the rest of
the assembly), with a peak limiter only when the gain would push samples past the ceiling. The ceiling sits 1 dB
under the true-peak target, for the peaks between samples and the AAC encoder's overshoot; the limiter works on
samples, so the mix's true peak would not change what it does, and is not measured (ebur128's true peak, 4x
oversampled, was a fifth of pass one's CPU: BENCHMARKS.md, "Issue 20, fourth pass"). A limited mix is quieter
than its gain says: each settling round limits the same lossless mix at a new gain and measures the result as it
is written (one ffmpeg run a round), the gain found by the secant through the rounds so far, until the mix is
within 0.1 LU of the target (at most four rounds, the closest kept), or until more gain buys hardly any loudness
(a mix whose peaks leave the limiter no room stays quieter than the target rather than squashed).
`final_sound` hands back the finished sound as a stream without encoding it, so a caller can make it while the
picture is being made and `encode` it where that costs least: on its own, to mux later by stream copy, or in the
run that copies the picture."""

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
#: how close a limited mix is brought to the target before it is encoded, in how many rounds at most, and how much
#: gain past the plain one the limiter may be given (a mix that needs more is left quieter than the target)
SETTLE_LU, SETTLE_ROUNDS, SETTLE_MAX_EXTRA_DB = 0.1, 4, 12.0
#: a round that bought less than this much loudness per dB of gain ends the settling: past that point the
#: limiter only squashes (measured on the bench's edit: +2.4 dB of gain, -0.2 LU), and the closest round is kept
SETTLE_MIN_SLOPE = 0.2
#: estimated peak memory of one sound run (MB of RSS), by the layers it mixes: measured 96-101 MB for the mix of
#: 12 clips with narration and music, 178-190 MB for 80, 62 MB for a WAV's gain and encode (BENCHMARKS.md, Assembly)
SOUND_BASE_MB, SOUND_PER_INPUT_MB = 80.0, 1.25


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


def _graph(spec: MixSpec, native=None):
    """The audio graph without loudness normalisation; `native` is the clips' own sound (a stream: a video's audio,
    or the clips' sound joined by another graph), used when `spec.keep_native`."""
    d = f"{spec.duration:.3f}"
    layers = []
    if spec.driving_audio is not None:
        # segment k was generated to the audio from its start in the video, so the track lines up from 0 s; the
        # clips' own sound is dropped (silence from Seedance, or this same audio from the local renderer)
        layers.append(ffmpeg.input(str(spec.driving_audio)).audio
                      .filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo")
                      .filter("apad").filter("atrim", duration=d))
    elif spec.keep_native and native is not None:
        layers.append(native.filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo"))
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
    return mixed.filter("atrim", duration=d)


def mix(video: Path, out: Path, spec: MixSpec) -> dict:
    """Write `video` with its new sound to `out` (atomically); returns pass one's measurement and the gain applied
    (`input_i` LUFS, `input_peak` dBFS (the sample peak), `gain_db`, `limited`)."""
    source = ffmpeg.input(str(video))
    with tempfile.TemporaryDirectory(prefix=temp_prefix("vp-mix-")) as work:
        audio, report = final_sound(spec, Path(work), native=source.audio)
        encode(source.video, audio, out)
    return report


def final_sound(spec: MixSpec, work: Path, native=None):
    """The finished sound, lossless, at the target loudness (what `mix` encodes), and the report. The mix graph
    runs once: its output is measured while it is written to a WAV in `work` (decoding the clips' sound, the
    narration and the music, and ducking, once), and the gain is applied to that file."""
    # peaks between samples and the AAC encoder's overshoot: aim 1 dB under the true-peak target
    ceiling = spec.true_peak_db - 1.0
    mixed = work / "mix.wav"
    measured_i, peak = _measure_into(_graph(spec, native), mixed)
    audio = ffmpeg.input(str(mixed)).audio
    gain, limited = 0.0, False
    if math.isfinite(measured_i) and measured_i > -70:   # silence stays silence
        gain = spec.target_lufs - measured_i
        if math.isfinite(peak) and peak + gain > ceiling:   # below the ceiling the limiter would change nothing
            limited = True
            audio, gain = _settle(mixed, work, spec, ceiling, gain)
        else:
            audio = audio.filter("volume", f"{gain:.2f}dB")
    return audio, {"input_i": measured_i, "input_peak": peak, "gain_db": round(gain, 2), "limited": limited}


def _measure(audio) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of an audio stream, by ebur128."""
    analysis = ffmpeg.output(audio.filter("ebur128", peak="true", framelog="quiet"), "-", f="null")
    return ebur128_summary(_run(analysis, "measure loudness"), "measure loudness")


def _measure_into(audio, path: Path) -> tuple[float, float]:
    """Write `audio` to the WAV `path` (laid by its timestamps: see `_laid`) and measure what was written:
    (integrated LUFS, sample peak dBFS), by ebur128, which passes the sound through on its way to the file."""
    laid = _laid(audio).filter("ebur128", peak="sample", framelog="quiet")
    wav = ffmpeg.output(laid, str(path), acodec="pcm_f32le", ar=AUDIO_RATE, ac=2)
    return ebur128_summary(_run(wav, f"mix {path.name}"), "measure loudness", true_peak=False)


def _run(stream, what: str) -> str:
    """Run an output stream of this module's graphs (inside a budget, by its estimate); returns ffmpeg's stderr."""
    args = ffmpeg.compile(stream, cmd=ffmpeg_binary(), overwrite_output=True)[1:]
    # the sound's layers: each input opened, and each clip laid (`atrim`: a clip used twice is split, and its
    # second use buffered until the join reaches it)
    layers = max(args.count("-i"), sum(a.count("atrim") for a in args))
    return run_for_stderr(args, what=what, memory_mb=SOUND_BASE_MB + SOUND_PER_INPUT_MB * layers)


def _limit(audio, ceiling: float, duration: float):
    # The limiter looks ahead `attack` ms and so delays the sound by that much: cut it from the start (its own
    # `latency` option drifts where the input's timestamps jump, as at stream-copied joins).
    return (audio.filter("alimiter", limit=f"{10 ** (ceiling / 20):.4f}", level="false", attack=LIMITER_MS,
                         release=50)
            .filter("atrim", start_sample=AUDIO_RATE * LIMITER_MS // 1000).filter("asetpts", "PTS-STARTPTS")
            .filter("apad").filter("atrim", duration=f"{duration:.3f}"))


def _settle(mixed: Path, work: Path, spec: MixSpec, ceiling: float, gain: float):
    """The lossless mix at `gain`, limited, written and measured in one run; then again at the gain the secant
    through the rounds so far puts at the target, until one lands within SETTLE_LU of it. Every round limits the
    original mix (never a limited copy again); the round closest to the target is kept. Returns the stream to
    encode and its gain."""
    rounds: list[tuple[float, float]] = []              # (gain, level reached)
    best: tuple[float, float, Path] | None = None        # the round closest to the target; the others are deleted
    lowest, highest = gain, gain + SETTLE_MAX_EXTRA_DB
    for n in range(SETTLE_ROUNDS):
        path = work / f"limited-{n}.wav"
        limited = _limit(ffmpeg.input(str(mixed)).audio.filter("volume", f"{gain:.3f}dB"), ceiling, spec.duration)
        level, _ = _measure_into(limited, path)
        rounds.append((gain, level))
        miss = abs(spec.target_lufs - level) if math.isfinite(level) else math.inf
        if best is None or miss < abs(spec.target_lufs - best[1]):
            if best is not None:
                best[2].unlink(missing_ok=True)
            best = (gain, level, path)
        else:
            path.unlink(missing_ok=True)
        if miss <= SETTLE_LU or not math.isfinite(level):
            break
        slope = 1.0                                      # a limiter gives back at most what it is given
        if len(rounds) > 1:
            (g0, l0), (g1, l1) = rounds[-2], rounds[-1]
            slope = (l1 - l0) / (g1 - g0) if g1 != g0 and math.isfinite(l0) else 0.0
            if slope < SETTLE_MIN_SLOPE:    # the limiter turns more gain into hardly any loudness: stop here
                break
            slope = min(slope, 1.0)
        following = min(max(gain + (spec.target_lufs - level) / slope, lowest), highest)
        if abs(following - gain) < 0.005:                # at the cap: the limiter is given no more gain
            break
        gain = following
    gain, _, path = best
    return ffmpeg.input(str(path)).audio, gain


def _laid(audio):
    # a WAV file has no timestamps: samples are laid where the stream's timestamps put them (a stream-copied join
    # overlaps or leaves gaps by the AAC priming), from 0 s (the concat demuxer hands the first clip's priming
    # samples at negative times: dropped), so the sound stays on the picture
    return audio.filter("aresample", **{"async": 1, "min_hard_comp": 0.001, "first_pts": 0})


def encode(picture, audio, out: Path) -> None:
    """AAC-encode `audio` (the finished sound: `final_sound`) into `out` (atomically), with `picture` (a video
    stream) stream-copied beside it when given."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(private_sibling(out, "mix"))       # ffmpeg creates it: the umask's permissions, like the stills
    try:
        sound = {"acodec": "aac", "aac_coder": AAC_CODER, "audio_bitrate": "160k", "ar": AUDIO_RATE, "ac": 2}
        final = (ffmpeg.output(picture, audio, tmp, vcodec="copy", **sound, movflags="+faststart")
                 if picture is not None else ffmpeg.output(audio, tmp, **sound, f="mp4"))
        _run(final, f"mix {out.name}")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)

"""Subtitles, stills and measurements on real media: small clips rendered and audio synthesised by ffmpeg."""

from __future__ import annotations

import html
import re
from pathlib import Path

import av
import ffmpeg
import numpy as np
import pytest

from video_pipeline.errors import MediaError
from video_pipeline.media.ffmpeg import run_graph
from video_pipeline.media.measure import black_runs, integrated_loudness, silence_runs
from video_pipeline.media.probe import probe
from video_pipeline.media.render import ClipSpec, render_clip
from video_pipeline.media.stills import contact_sheet, poster
from video_pipeline.media.subtitles import (
    Cue,
    add_soft_subtitles,
    burn_subtitles,
    cues_from_timings,
    write_srt,
    write_vtt,
)
from video_pipeline.providers.tts import WordTiming

W, H, SECONDS = 320, 180, 4.0

# Text a campaign prompt could hold that breaks naive subtitle writers: quotes, an SRT/VTT arrow, markup,
# entities, percent signs (printf-style formatting), right-to-left scripts and blank lines.
HOSTILE = [
    Cue(0.5, 1.5, 'She said "go" --> now'),
    Cue(1.5, 2.5, "<b>bold</b> & 100% sure"),
    Cue(2.5, 3.5, "שלום עולם مرحبا"),
    Cue(3.5, 3.9, "first line\n\n\nsecond line"),
    Cue(3.9, 4.0, " \n\t "),      # nothing to show: must not become an empty cue
]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(media: Path) -> Path:
    """One small real H.264/AAC clip shared by the video tests (rendering is the slow part)."""
    return render_clip(ClipSpec(text="A calm sea at dawn", label="shot 1", seconds=SECONDS, width=W, height=H,
                                seed="media-tools", preset="ultrafast"), media / "clip.mp4")


def lavfi_audio(out: Path, graph: str, seconds: float) -> Path:
    """Synthesise a WAV from a lavfi source graph through the project's ffmpeg runner."""
    run_graph(ffmpeg.output(ffmpeg.input(graph, f="lavfi", t=seconds), str(out), acodec="pcm_s16le"),
              what=f"make {out.name}")
    return out


def frame_at(path: Path, seconds: float) -> np.ndarray:
    """The decoded RGB frame whose timestamp is closest to `seconds`."""
    with av.open(str(path)) as container:
        frames = [(abs(float(f.time) - seconds), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return min(frames, key=lambda pair: pair[0])[1]


def image(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """A strict SubRip reader: numbered blocks 1..n, one timing line each, non-empty text lines."""
    cues = []
    for number, block in enumerate(text.strip("\n").split("\n\n"), start=1):
        index, timing, *lines = block.split("\n")
        assert index == str(number)
        m = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})", timing)
        assert m, timing
        assert lines and all(line.strip() for line in lines)
        cues.append((_seconds(*m.groups()[:4]), _seconds(*m.groups()[4:]), "\n".join(lines)))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """A strict WebVTT reader: the header, then blocks of a timing line and text with entities decoded."""
    header, *blocks = text.strip("\n").split("\n\n")
    assert header == "WEBVTT"
    cues = []
    for block in blocks:
        timing, *lines = block.split("\n")
        m = re.fullmatch(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})", timing)
        assert m, timing
        # Raw '<' or '&' would be read as a tag or an entity by a WebVTT player.
        assert lines and all(line.strip() and not re.search(r"<|&(?!amp;|lt;|gt;)", line) for line in lines)
        cues.append((_seconds(*m.groups()[:4]), _seconds(*m.groups()[4:]), html.unescape("\n".join(lines))))
    return cues


def words(*items: tuple[str, float, float]) -> list[WordTiming]:
    return [WordTiming(text=t, start_seconds=s, end_seconds=e) for t, s, e in items]


def test_cues_break_at_sentence_end_then_length_then_duration():
    timings = words(("Hello", 0.0, 0.4), ("world.", 0.4, 0.9),
                    ("This", 1.0, 1.2), ("sentence", 1.2, 1.6), ("runs", 1.6, 1.8), ("long", 1.8, 2.0),
                    ("enough", 2.0, 2.3), ("to", 2.3, 2.4), ("wrap!", 2.4, 2.8),
                    ("Slow", 3.0, 5.0), ("words", 5.0, 7.0), ("drag", 7.0, 9.0), ("on", 9.0, 10.0))
    cues = cues_from_timings(timings, max_chars=20, max_seconds=4.0)
    # "This sentence runs long" would be 23 characters, so the cue breaks before "long";
    # "Slow words drag" would last 6 s, over the 4 s limit.
    assert [(c.start, c.end, c.text) for c in cues] == [
        (0.0, 0.9, "Hello world."),
        (1.0, 1.8, "This sentence runs"),
        (1.8, 2.8, "long enough to wrap!"),
        (3.0, 7.0, "Slow words"),
        (7.0, 10.0, "drag on"),
    ]


def test_sentence_level_timings_pass_through_and_blank_words_vanish():
    timings = words(("Intro", 0.0, 0.5), ("A whole sentence, timed as one.", 0.5, 3.0), ("  ", 3.0, 3.1),
                    ("Bye", 3.2, 3.2))
    cues = cues_from_timings(timings)
    assert [c.text for c in cues] == ["Intro", "A whole sentence, timed as one.", "Bye"]
    assert (cues[1].start, cues[1].end) == (0.5, 3.0)
    # A zero-length word still gets a cue that exists on screen.
    assert cues[2].end > cues[2].start == 3.2
    with pytest.raises(ValueError):
        Cue(2.0, 1.0, "backwards")


def test_srt_round_trips_hostile_text_with_exact_timestamps(tmp_path: Path):
    path = write_srt([*HOSTILE, Cue(3661.25, 3662.0, "an hour in")], tmp_path / "captions.srt")
    raw = path.read_text(encoding="utf-8")
    assert "01:01:01,250 --> 01:01:02,000" in raw
    # The arrow may only appear on timing lines, or a reader would take a text line for one.
    assert all(" --> " not in line or re.fullmatch(r"[\d:,]+ --> [\d:,]+", line) for line in raw.splitlines())
    assert parse_srt(raw) == [
        (0.5, 1.5, 'She said "go" \u2192 now'),
        (1.5, 2.5, "<b>bold</b> & 100% sure"),     # SRT has no escapes: markup is left for the player
        (2.5, 3.5, "שלום עולם مرحبا"),
        (3.5, 3.9, "first line\nsecond line"),
        (3661.25, 3662.0, "an hour in"),
    ]


def test_vtt_round_trips_hostile_text_with_entities(tmp_path: Path):
    path = write_vtt(HOSTILE, tmp_path / "captions.vtt")
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.500\n")
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; 100% sure" in raw
    # Escaping '>' turns the prompt's arrow into text, so the original survives a round trip.
    assert parse_vtt(raw) == [
        (0.5, 1.5, 'She said "go" --> now'),
        (1.5, 2.5, "<b>bold</b> & 100% sure"),
        (2.5, 3.5, "שלום עולם مرحبا"),
        (3.5, 3.9, "first line\nsecond line"),
    ]


def test_soft_subtitles_add_a_mov_text_track_and_copy_the_rest(clip: Path, tmp_path: Path):
    srt = write_srt(HOSTILE, tmp_path / "captions.srt")
    out = add_soft_subtitles(clip, srt, tmp_path / "soft.mp4", language="heb")

    def video_packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as container:
            return [bytes(p) for p in container.demux(video=0) if p.size]

    # Stream copy: the picture is the same bytes, not a re-encode.
    assert video_packets(out) == video_packets(clip)
    assert probe(out).audio_codec == "aac"
    with av.open(str(out)) as container:
        stream = container.streams.subtitles[0]
        assert stream.codec_context.name == "mov_text"
        assert stream.metadata.get("language") == "heb"
        shown = []
        for packet in container.demux(stream):
            data = bytes(packet)
            text = data[2:2 + int.from_bytes(data[:2], "big")].decode("utf-8") if packet.size else ""
            if text:   # mov_text fills gaps with empty samples
                shown.append((round(float(packet.pts * stream.time_base), 3), text))
    # ffmpeg's SRT reader turns <b> into a bold style record, so only the words remain as text.
    assert shown == [(0.5, 'She said "go" \u2192 now'), (1.5, "bold & 100% sure"), (2.5, "שלום עולם مرحبا"),
                     (3.5, "first line\nsecond line")]


def test_burned_subtitles_draw_in_the_lower_third(clip: Path, tmp_path: Path):
    # Quotes, brackets, commas, semicolons, colons and % in the path all mean something in a filtergraph.
    awkward = tmp_path / "it's [a], b; c: 100%"
    srt = write_srt([Cue(0.0, SECONDS, "WIDE CAPTION TEXT HERE"), Cue(0.0, SECONDS, "שלום עולם مرحبا")],
                    awkward / "o'clock.srt")
    out = burn_subtitles(clip, srt, tmp_path / "burned.mp4", preset="ultrafast")
    info = probe(out)
    assert (info.width, info.height, info.audio_codec) == (W, H, "aac")
    before, after = frame_at(clip, 2.0).astype(int), frame_at(out, 2.0).astype(int)
    changed = np.abs(after - before).max(axis=2) > 48
    # Re-encoding alone shifts pixels by a few levels; caption glyphs change them by far more, and only low down.
    assert changed[2 * H // 3:].mean() > 0.01, changed[2 * H // 3:].mean()
    assert changed[:H // 2].mean() < 0.001, changed[:H // 2].mean()


def test_poster_is_a_full_size_frame_near_the_start(clip: Path, tmp_path: Path):
    png = poster(clip, tmp_path / "poster.png")
    picture = image(png)
    assert picture.shape == (H, W, 3)
    # A 4 s clip is under 10 s, so the poster is 10 % in (0.4 s): closer to that frame than to a late one.
    near = np.abs(picture.astype(int) - frame_at(clip, 0.4).astype(int)).mean()
    late = np.abs(picture.astype(int) - frame_at(clip, 3.5).astype(int)).mean()
    assert near < 2 and near < late, (near, late)
    assert image(poster(clip, tmp_path / "late.png", at_seconds=3.5)).shape == (H, W, 3)


def test_the_same_shot_renders_the_same_clip_and_another_seed_another(tmp_path: Path):
    """The local provider's animatic is a function of its spec: rendered twice, the same spec decodes to the same
    frames and the same sound (ffmpeg's `gradients` and `anoisesrc` are random unless seeded); another seed gives
    another plate."""
    def decoded(seed: str, name: str) -> tuple[bytes, bytes]:
        out = render_clip(ClipSpec(text="A calm sea at dawn", label="shot 1", seconds=1.0, width=160, height=90,
                                   seed=seed, native_audio=True, preset="ultrafast"), tmp_path / name)
        with av.open(str(out)) as container:
            picture = b"".join(f.to_ndarray().tobytes() for f in container.decode(video=0))
        with av.open(str(out)) as container:
            sound = b"".join(f.to_ndarray().tobytes() for f in container.decode(audio=0))
        return picture, sound

    first, again = decoded("take-1", "a.mp4"), decoded("take-1", "b.mp4")
    assert first[0] == again[0] and first[1] == again[1]
    assert decoded("take-2", "c.mp4")[0] != first[0]


def test_contact_sheet_tiles_every_cell(clip: Path, tmp_path: Path):
    sheet = image(contact_sheet(clip, tmp_path / "sheet.png", columns=4, rows=3, width=160))
    assert sheet.shape == (3 * 90, 4 * 160, 3)
    cells = [sheet[r * 90:(r + 1) * 90, c * 160:(c + 1) * 160] for r in range(3) for c in range(4)]
    # Each cell should be the first frame at or after the middle of its twelfth of the clip: compare every cell
    # with every decoded frame (scaled the same way) and check the best match sits where it should.
    with av.open(str(clip)) as container:
        frames = [(float(f.time), f.reformat(width=160, height=90, format="rgb24").to_ndarray().astype(int))
                  for f in container.decode(video=0)]
    for k, cell in enumerate(cells):
        target = (k + 0.5) * probe(clip).duration / 12
        best = min(frames, key=lambda tf: np.abs(cell.astype(int) - tf[1]).mean())[0]
        assert target - 1e-3 <= best < target + 1 / 24 + 1e-3, (k, target, best)


def test_a_mix_whose_peaks_fall_between_samples_is_brought_to_the_target_and_stays_under_the_true_peak(tmp_path):
    """A low tone with short 12 kHz bursts sampled 45 degrees off their crests: after the gain its samples stay
    under the limiter's ceiling (-2 dBFS) while its true peak rises above it. The limiter would change nothing
    there, so none runs; the finished file is on target and under the -1 dBTP ceiling, as ffmpeg measures it."""
    import subprocess

    from video_pipeline.media.ffmpeg import ffmpeg_binary
    from video_pipeline.media.measure import integrated_loudness
    from video_pipeline.media.mix import MixSpec, mix

    def tone(path, burst: float):
        wave = (f"0.2*sin(2*PI*200*t)*lt(mod(t\\,1)\\,0.99)"
                f"+{burst}*sin(2*PI*12000*t+PI/4)*gte(mod(t\\,1)\\,0.995)")
        subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"aevalsrc={wave}|{wave}:s=48000:d=6", "-f", "lavfi", "-i", "color=black:s=64x64:r=24:d=6",
                        "-c:a", "aac", "-b:a", "320k",
                        "-c:v", "libx264", "-preset", "ultrafast", "-shortest", str(path)], check=True)
        return path

    video = tone(tmp_path / "bursts.mp4", 0.82)
    report = mix(video, tmp_path / "mixed.mp4", MixSpec(duration=6.0))
    lufs, true_peak = integrated_loudness(tmp_path / "mixed.mp4")
    assert report["input_peak"] + report["gain_db"] <= -2.0 and not report["limited"], report
    assert true_peak > report["input_peak"] + report["gain_db"] + 1.5, (true_peak, report)   # the peak between samples
    assert abs(lufs + 14) <= 0.5 and true_peak <= -1.0, (lufs, true_peak)


def test_integrated_loudness_matches_ebu_reference_and_tracks_gain(media: Path):
    # EBU Tech 3341 case 1: a 1 kHz stereo sine at -23 dBFS measures -23 LUFS, its true peak -23 dBTP.
    amplitude = 10 ** (-23 / 20)
    tone = f"{amplitude:.6f}*sin(2*PI*1000*t)"
    reference = lavfi_audio(media / "ref.wav", f"aevalsrc={tone}|{tone}:s=48000", 3)
    lufs, peak = integrated_loudness(reference)
    assert abs(lufs + 23) <= 1 and abs(peak + 23) <= 0.5, (lufs, peak)
    louder = lavfi_audio(media / "louder.wav", f"aevalsrc={tone}|{tone}:s=48000,volume=6dB", 3)
    lufs6, peak6 = integrated_loudness(louder)
    assert abs(lufs6 - lufs - 6) <= 0.5 and abs(peak6 - peak - 6) <= 0.5, (lufs6, peak6)


def test_black_runs_find_the_black_stretches(media: Path):
    video = media / "black.mp4"
    black = ffmpeg.input(f"color=black:s={W}x{H}:r=24:d=1.5", f="lavfi")
    bars = ffmpeg.input(f"testsrc=s={W}x{H}:r=24:d=1", f="lavfi")
    tail = ffmpeg.input(f"color=black:s={W}x{H}:r=24:d=1", f="lavfi")
    run_graph(ffmpeg.output(ffmpeg.concat(black, bars, tail), str(video), vcodec="libx264", preset="ultrafast",
                            pix_fmt="yuv420p"), what="make black.mp4")
    runs = black_runs(video, min_seconds=0.5)
    # The trailing run ends at the last frame's timestamp, one frame (1/24 s) before the end.
    assert len(runs) == 2, runs
    assert runs[0][0] == pytest.approx(0.0, abs=0.05) and runs[0][1] == pytest.approx(1.5, abs=0.05)
    assert runs[1][0] == pytest.approx(2.5, abs=0.05) and runs[1][1] == pytest.approx(3.5, abs=0.1)
    assert black_runs(video, min_seconds=1.2) == [runs[0]]
    with pytest.raises(MediaError, match="no audio"):
        integrated_loudness(video)


def test_silence_runs_find_the_quiet_stretches(media: Path):
    audio = lavfi_audio(media / "gaps.wav", "anullsrc=r=48000:cl=mono,atrim=0:1[a];"
                        "sine=frequency=440:sample_rate=48000,atrim=0:1[b];"
                        "anullsrc=r=48000:cl=mono,atrim=0:1.5[c];[a][b][c]concat=n=3:v=0:a=1", 3.5)
    runs = silence_runs(audio, min_seconds=0.5)
    assert len(runs) == 2, runs
    assert runs[0] == pytest.approx((0.0, 1.0), abs=0.05)
    assert runs[1] == pytest.approx((2.0, 3.5), abs=0.05)
    assert silence_runs(audio, min_seconds=1.2) == [runs[1]]


def test_one_review_decode_finds_what_each_check_finds_on_its_own(media: Path, tmp_path: Path):
    """The finished video's checks share one decode: black and silent stretches, loudness and the contact sheet
    come out as each separate measurement reports them."""
    from video_pipeline.media.measure import review

    video = media / "review.mp4"
    picture = ffmpeg.concat(ffmpeg.input(f"testsrc=s={W}x{H}:r=24:d=2.5", f="lavfi"),     # moves: a poster a frame
                            ffmpeg.input(f"color=black:s={W}x{H}:r=24:d=1.5", f="lavfi"))  # off would differ
    sound = ffmpeg.input("sine=frequency=440:sample_rate=48000:d=4,volume=enable='between(t,1,2.5)':volume=0",
                         f="lavfi")
    run_graph(ffmpeg.output(picture, sound, str(video), vcodec="libx264", preset="ultrafast", pix_fmt="yuv420p",
                            acodec="aac"), what="make review.mp4")
    checked = review(video, tmp_path / "sheet.png", black_seconds=0.5, silence_seconds=1.0,
                     poster_png=tmp_path / "poster.png")
    assert checked.black_runs == black_runs(video, min_seconds=0.5) and len(checked.black_runs) == 1
    assert checked.silent_runs == silence_runs(video, min_seconds=1.0) and len(checked.silent_runs) == 1
    assert (checked.loudness_lufs, checked.true_peak_db) == integrated_loudness(video)
    assert np.array_equal(image(checked.contact_sheet), image(contact_sheet(video, tmp_path / "alone.png")))
    assert np.array_equal(image(checked.poster), image(poster(video, tmp_path / "poster-alone.png")))
    assert not list(tmp_path.glob(".*"))             # written atomically: no partial file left


def test_runs_sharing_a_budget_never_hold_more_than_it_together(tmp_path: Path):
    """Five real ffmpeg runs from five threads, each estimated at 60 MB, under a 100 MB budget with three slots:
    they run one at a time (the estimate, not the slots, is what binds), in the order they asked."""
    import threading
    import time

    from video_pipeline.media.ffmpeg import Budget, budgeted, side_by_side

    spans, lock = [], threading.Lock()

    def run(k: int):
        def job():
            time.sleep(0.02 * k)                     # ask in order 0..4
            out = tmp_path / f"{k}.wav"
            began = time.monotonic()
            run_graph(ffmpeg.output(ffmpeg.input("sine=d=0.3,arealtime", f="lavfi"), str(out)), what="tone",
                      memory_mb=60)
            with lock:
                spans.append((began, time.monotonic(), k))
        return job

    with budgeted(Budget(100, 3)):
        side_by_side([run(k) for k in range(5)], 5)
    spans.sort(key=lambda s: s[1])
    assert [k for _, _, k in spans] == [0, 1, 2, 3, 4]
    assert all(b[1] - a[1] >= 0.25 for a, b in zip(spans, spans[1:])), spans   # each ran 0.3 s after the last ended

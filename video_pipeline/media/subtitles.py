"""Subtitles: group narration word timings into cues, write SRT/WebVTT, and mux or burn them into a video; and the
visible label a campaign may ask for ("AI-generated" in a corner of the picture).

Text reaches ffmpeg only through files (subtitle files, the label's text file); every filter value that names a
file escapes it for both levels of ffmpeg's filtergraph syntax. ffmpeg runs through `run_args` with an argument list,
never a shell.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.atomic import private_sibling
from video_pipeline.errors import MediaError
from video_pipeline.media.ffmpeg import ffmpeg_binary, run_args
from video_pipeline.media.probe import probe, video_time_base
from video_pipeline.media.render import BUNDLED_FONT

MIN_CUE_SECONDS = 0.2            # a zero-length timing still gets a cue long enough to exist
BUNDLED_FONT_NAME = "DejaVu Sans"
SOFT_SUBTITLE_SUFFIXES = {".mp4", ".m4v", ".mov"}   # containers that carry mov_text

_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f\u061f\u06d4][\"'\u201d\u2019)\]\u00bb]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class WordTiming:
    """One spoken word (or sentence) and when it is heard: what a narration voice returns and cues are made of."""

    text: str
    start_seconds: float
    end_seconds: float


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from `start` to `end` seconds."""

    start: float
    end: float
    text: str

    def __post_init__(self) -> None:
        if self.start < 0 or self.end <= self.start:
            raise ValueError(f"cue {self.text[:30]!r}: needs 0 <= start < end, got {self.start}..{self.end}")


def cues_from_timings(timings: Sequence[WordTiming], max_chars: int = 42, max_seconds: float = 6.0) -> list[Cue]:
    """Group word timings into cues, breaking at sentence ends, then before `max_chars` or `max_seconds`.

    A timing whose text already holds several words (a sentence-level timing) becomes a cue of its own.
    """
    cues: list[Cue] = []
    group: list[WordTiming] = []

    def flush() -> None:
        if group:
            cues.append(_cue(group[0].start_seconds, group[-1].end_seconds, " ".join(w.text.strip() for w in group)))
            group.clear()

    for timing in sorted(timings, key=lambda t: t.start_seconds):
        word = timing.text.strip()
        if not word:
            continue
        if len(word.split()) > 1:
            flush()
            cues.append(_cue(timing.start_seconds, timing.end_seconds, word))
            continue
        if group:
            length = sum(len(w.text.strip()) + 1 for w in group) + len(word)
            if length > max_chars or timing.end_seconds - group[0].start_seconds > max_seconds:
                flush()
        group.append(timing)
        if _SENTENCE_END.search(word):
            flush()
    flush()
    return cues


def _cue(start: float, end: float, text: str) -> Cue:
    start = max(0.0, start)
    return Cue(start, max(end, start + MIN_CUE_SECONDS), text)


def _clean_lines(text: str) -> list[str]:
    """Cue text as non-empty lines: control characters dropped, so no blank line can end a cue early."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    return [line.strip() for line in text.split("\n") if line.strip()]


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def srt_text(text: str) -> str:
    """Cue text made safe for SRT: no blank lines, and `-->` (a timing line's arrow) written as `→`.

    SRT has no escape syntax, so `<b>`-style tags pass through and players may treat them as markup.
    """
    return "\n".join(re.sub("-->", "\u2192", line) for line in _clean_lines(text))


def vtt_text(text: str) -> str:
    """Cue text made safe for WebVTT: `&`, `<`, `>` as entities (which also breaks any `-->`), no blank lines."""
    lines = _clean_lines(text)
    return "\n".join(line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in lines)


def write_srt(cues: Iterable[Cue], path: Path) -> Path:
    """Write cues as UTF-8 SubRip (`00:00:01,250 --> ...`), numbered from 1; cues with no text are left out."""
    blocks = []
    for cue in cues:
        text = srt_text(cue.text)
        if text:
            blocks.append(f"{len(blocks) + 1}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n{text}\n")
    return _write_atomic(path, "\n".join(blocks))


def write_vtt(cues: Iterable[Cue], path: Path) -> Path:
    """Write cues as UTF-8 WebVTT (`WEBVTT` header, `00:00:01.250 --> ...`); cues with no text are left out."""
    blocks = ["WEBVTT\n"]
    for cue in cues:
        text = vtt_text(cue.text)
        if text:
            blocks.append(f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{text}\n")
    return _write_atomic(path, "\n".join(blocks))


def _write_atomic(path: Path, content: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = private_sibling(path)
    partial.write_text(content, encoding="utf-8", newline="\n")
    os.replace(partial, path)
    return path


def filter_value(value: str) -> str:
    """Escape an option value for an ffmpeg filtergraph: quoted for the option parser, then backslash-escaped
    for the graph parser (`\\ ' [ ] , ;`), so any path or text arrives unchanged."""
    quoted = "'" + value.replace("'", "'\\''") + "'"
    return re.sub(r"([\\'\[\],;])", r"\\\1", quoted)


def _partial(out: Path) -> Path:
    """A sibling temporary name with the same suffix, so ffmpeg picks the same muxer."""
    return private_sibling(out)


def _run_to(out: Path, args: list[str], what: str) -> Path:
    """Run ffmpeg writing to a temporary sibling of `out`, then move it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(out)
    try:
        run_args([ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(partial)],
                 what=what)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def add_soft_subtitles(video: Path, srt: Path, out: Path, language: str = "eng") -> Path:
    """Mux `srt` into `out` as a mov_text track (ISO 639-2 `language`), copying video and audio unchanged."""
    video, srt, out = Path(video).resolve(), Path(srt).resolve(), Path(out).resolve()
    if out.suffix.lower() not in SOFT_SUBTITLE_SUFFIXES:
        suffixes = ", ".join(sorted(SOFT_SUBTITLE_SUFFIXES))
        raise MediaError(f"{out.name}: soft subtitles need an MP4/MOV output ({suffixes})")
    if not re.fullmatch(r"[a-z]{3}", language):
        raise MediaError(f"{out.name}: subtitle language must be an ISO 639-2 code such as 'eng', got {language!r}")
    audio = ["-map", "0:a"] if probe(video).has_audio else []
    args = ["-i", str(video), "-f", "srt", "-i", str(srt), "-map", "0:v", *audio, "-map", "1:0",
            "-c:v", "copy", "-c:a", "copy", "-c:s", "mov_text", "-metadata:s:s:0", f"language={language}",
            "-movflags", "+faststart"]
    return _run_to(out, args, what=f"soft subtitles {out.name}")


def burn_subtitles(video: Path, srt: Path, out: Path, font_dir: Path | None = None, *,
                   font_name: str | None = None, preset: str = "veryfast") -> Path:
    """Draw `srt` onto the picture with libass (video re-encoded as H.264, audio copied).

    Without `font_dir` the bundled DejaVu Sans is used; with one, name its font in `font_name`.
    """
    video, srt, out = Path(video).resolve(), Path(srt).resolve(), Path(out).resolve()
    if font_dir is None:
        font_dir, font_name = BUNDLED_FONT.parent, font_name or BUNDLED_FONT_NAME
    options = [f"filename={filter_value(str(srt))}", f"fontsdir={filter_value(str(Path(font_dir).resolve()))}"]
    if font_name:
        if re.search(r"[,=\n]", font_name):
            raise MediaError(f"{out.name}: font name {font_name!r} cannot hold ',', '=' or a line break")
        options.append(f"force_style={filter_value(f'FontName={font_name}')}")
    return _run_to(out, _redraw(video, "subtitles=" + ":".join(options), preset),
                   what=f"burn subtitles {out.name}")


def _redraw(video: Path, picture_filter: str, preset: str, keep_subtitles: bool = False) -> list[str]:
    """ffmpeg arguments that re-encode the picture through `picture_filter` (H.264, CRF 20) and copy the sound
    (and, with `keep_subtitles`, the subtitle tracks)."""
    audio = ["-map", "0:a", "-c:a", "copy"] if probe(video).has_audio else []
    subtitles = ["-map", "0:s?", "-c:s", "copy"] if keep_subtitles else []
    # The encoder keeps the input's time base: with its default (1/fps) a picture that starts 21 ms in (where a
    # stream-copied AAC track's priming put it) is rounded to start a whole frame (42 ms) in, 20 ms after its sound.
    return ["-i", str(video), "-map", "0:v:0", *audio, *subtitles, "-vf", picture_filter,
            "-c:v", "libx264", "-preset", preset, "-crf", "20", "-pix_fmt", "yuv420p",
            "-enc_time_base:v", video_time_base(video), "-movflags", "+faststart"]


#: where a visible label sits: drawtext x and y, with a margin of a thirtieth of the picture's height
LABEL_PLACES = {"top-left": ("h/30", "h/30"), "top-right": ("w-tw-h/30", "h/30"),
                "bottom-left": ("h/30", "h-th-h/30"), "bottom-right": ("w-tw-h/30", "h-th-h/30")}


def burn_label(video: Path, out: Path, text: str, position: str = "bottom-right", *, font: Path | None = None,
               preset: str = "veryfast") -> Path:
    """Draw a small visible disclosure (e.g. "AI-generated") in a corner of the picture for the whole video, white
    on a translucent box; sound and subtitle tracks are copied. The text reaches drawtext through a file."""
    video, out = Path(video).resolve(), Path(out).resolve()
    if position not in LABEL_PLACES:
        raise MediaError(f"{out.name}: label position {position!r}; expected one of {', '.join(LABEL_PLACES)}")
    x, y = LABEL_PLACES[position]
    size = max(12, (probe(video).height or 720) // 24)
    text_file = private_sibling(out.with_suffix(".txt"), "label")
    text_file.write_text(text, encoding="utf-8")
    options = [f"textfile={filter_value(str(text_file))}", "expansion=none",
               f"fontfile={filter_value(str(Path(font or BUNDLED_FONT).resolve()))}", f"fontsize={size}",
               "fontcolor=white", "box=1", "boxcolor=black@0.55", f"boxborderw={size // 3}",
               f"x={filter_value(x)}", f"y={filter_value(y)}"]
    try:
        return _run_to(out, _redraw(video, "drawtext=" + ":".join(options), preset, keep_subtitles=True),
                       what=f"draw the label on {out.name}")
    finally:
        text_file.unlink(missing_ok=True)

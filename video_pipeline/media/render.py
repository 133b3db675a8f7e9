"""Render a real H.264 clip for the local provider: an animatic shot, the preview a director checks before paying
for generation (a shot card over the reference image or a quiet plate, moved as the prompt suggests).

Text reaches ffmpeg only through files (drawtext `textfile` with `expansion=none`), never a shell or a filter string.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from video_pipeline.atomic import temp_prefix
from video_pipeline.media.ffmpeg import run_graph

FPS = 24
AUDIO_RATE = 48000
BUNDLED_FONT = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"
RESOLUTIONS = {"720p": 720, "1080p": 1080}
#: the local provider starts an IDR frame every half second, so a join's transition window (cut at the nearest
#: keyframes) is the only part of a clip assembly has to re-encode; the rest is stream-copied
KEYFRAME_INTERVAL = 0.5


def h264_options(preset: str, crf: int, keyframes: tuple[float, ...] | float = ()) -> dict:
    """ffmpeg output options for every H.264 encode of the pipeline (renders, normalised segments, transition
    windows). `stitchable` keeps x264's SPS/PPS identical whatever the content and CRF, so pieces from different
    encodes can be stream-copied into one file; forced keyframes are IDR frames (closed GOPs) so a piece can start
    at one. `keyframes`: the times to put them at, or an interval in seconds."""
    options = {"vcodec": "libx264", "preset": preset, "crf": crf, "pix_fmt": "yuv420p",
               "x264-params": "stitchable=1", "forced-idr": 1}
    if isinstance(keyframes, (int, float)):
        options["force_key_frames"] = f"expr:gte(t,n_forced*{keyframes:g})"
    elif keyframes:
        options["force_key_frames"] = ",".join(f"{t:.6f}" for t in keyframes)
    return options


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixel size for a resolution name and aspect ratio (720p 16:9 → 1280x720, 9:16 → 720x1280)."""
    short = RESOLUTIONS[resolution]
    w, h = (int(x) for x in aspect_ratio.split(":"))
    if w >= h:
        return _even(short * w / h), short
    return short, _even(short * h / w)


def _even(x: float) -> int:
    return int(round(x / 2)) * 2


@dataclass(frozen=True)
class ClipSpec:
    text: str
    label: str
    seconds: float
    width: int
    height: int
    seed: str = ""
    image: Path | None = None
    video: Path | None = None
    transform: str | None = None
    audio: Path | None = None
    audio_offset: float = 0.0
    native_audio: bool = False
    preset: str = "veryfast"
    font: Path = BUNDLED_FONT
    keyframe_interval: float = KEYFRAME_INTERVAL


# --- the shot card: what a director reads on each segment of the animatic ---------------------------------------

#: the engine's label of a segment: "<model> | <video> <n>/<count>"
_LABEL = re.compile(r"^(?P<model>[^|]+?)\s*\|\s*(?P<video>.+?)\s+(?P<n>\d+)/(?P<count>\d+)$")
#: the planner's prompt: the shot's own words, "(continuous shot, part n of m)" when split, "Style: ..." when set
_PROMPT = re.compile(r"^(?P<prompt>.*?)(?:\s*\(continuous shot, part (?P<part>\d+) of (?P<parts>\d+)\))?"
                     r"(?:\s*Style:\s*(?P<style>.*))?$", re.S)
#: camera moves a prompt (then its style) may name, first match wins: (words, move)
_MOVES = [(("zoom out", "pull back", "pull-back", "pulls back", "dolly out", "reveal"), "pull back"),
          (("pan left",), "pan left"), (("tilt down",), "tilt down"), (("tilt", "crane up", "rises"), "tilt up"),
          (("zoom in", "push-in", "push in", "dolly in", "dolly", "close-up", "closeup"), "push in"),
          (("pan", "sweep", "orbit", "turns", "tracking", "drone", "walks"), "pan right"),
          (("handheld", "hand-held"), "handheld")]
#: overlays leave the picture this long before a clip ends, so its last frame (a chained segment's first) is clean
CLEAN_TAIL = 0.3


@dataclass(frozen=True)
class ShotCard:
    heading: str          # "teaser · shot 1 of 2"
    detail: str           # "6 s · veo-3-1-fast · push in"
    prompt: str           # the shot's own words
    style: str            # the campaign's style, on its own line ("" when none)
    move: str             # the camera move the animatic makes


def shot_card(text: str, label: str, seconds: float) -> ShotCard:
    """Read the segment's label and prompt back into a shot card's parts."""
    words = _PROMPT.match(" ".join(text.split()))
    prompt = words.group("prompt").strip() if words else text.strip()
    style = (words.group("style") or "").strip() if words else ""
    move = camera_move(prompt, style)
    named = _LABEL.match(label.strip())
    length = f"{seconds:g} s"
    if named:
        heading = f"{named['video']} · shot {named['n']} of {named['count']}"
        detail = f"{length} · {named['model'].strip()} · {move}"
    else:
        heading, detail = label.strip(), f"{length} · {move}"
    if words and words.group("part"):
        detail += f" · part {words.group('part')} of {words.group('parts')}"
    return ShotCard(heading, detail, prompt, style, move)


def camera_move(prompt: str, style: str = "") -> str:
    """The move the prompt suggests (then the style), else a slow push-in."""
    for source in (prompt.lower(), style.lower()):
        for words, move in _MOVES:
            if any(re.search(rf"\b{re.escape(w)}", source) for w in words):
                return move
    return "push in"


#: the plate's hue when the words name a light or a place (else one drawn from the seed)
_HUES = [(("sunrise", "sunset", "golden", "amber", "warm", "dawn", "coffee", "cafe"), 0.07),
         (("night", "neon", "moon", "rain"), 0.68), (("forest", "green", "trail", "leaf", "garden"), 0.3),
         (("ocean", "sea", "wave", "water", "sky", "ice"), 0.55), (("fog", "overcast", "mist", "steel"), 0.6)]


def _seed_number(seed: str) -> int:
    """A number drawn from the seed, for ffmpeg's sources that are random unless seeded (`gradients`,
    `anoisesrc`): the same spec renders the same clip."""
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:3], "big")


def _plate_colours(seed: str, words: str = "") -> tuple[str, str]:
    """Two quiet colours of one hue (light and deep) for a scene without a reference image."""
    import colorsys

    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    lowered = words.lower()
    hue = next((h for names, h in _HUES if any(re.search(rf"\b{n}", lowered) for n in names)), digest[0] / 255)
    light = colorsys.hsv_to_rgb(hue, 0.35 + digest[1] / 255 * 0.2, 0.62)
    deep = colorsys.hsv_to_rgb((hue + 0.07) % 1, 0.55, 0.2)
    return tuple("0x%02x%02x%02x" % tuple(int(c * 255) for c in rgb) for rgb in (light, deep))


def _camera(still, width: int, height: int, seconds: float, move: str):
    """A slow Ken Burns move over a still: scaled to cover twice the frame (smooth sub-pixel steps), then zoompan
    makes every frame of the clip from that one picture."""
    frames = max(1, round(seconds * FPS))
    big_w, big_h = width * 2, height * 2
    still = (still.filter("scale", big_w, big_h, force_original_aspect_ratio="increase")
             .filter("crop", big_w, big_h).filter("setsar", 1))
    p = f"(on/{max(frames - 1, 1)})"                       # 0 → 1 over the clip
    centre_x, centre_y = "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"
    zoom, x, y = {
        "push in": (f"1+0.12*{p}", centre_x, centre_y),
        "pull back": (f"1.12-0.12*{p}", centre_x, centre_y),
        "pan right": ("1.12", f"(iw-iw/zoom)*{p}", centre_y),
        "pan left": ("1.12", f"(iw-iw/zoom)*(1-{p})", centre_y),
        "tilt up": ("1.12", centre_x, f"(ih-ih/zoom)*(1-{p})"),
        "tilt down": ("1.12", centre_x, f"(ih-ih/zoom)*{p}"),
        "handheld": ("1.06", f"(iw-iw/zoom)/2*(1+0.35*sin(on/19))", f"(ih-ih/zoom)/2*(1+0.35*cos(on/23))"),
    }[move]
    # a frame more than the clip holds: the output's -t cuts it to the exact count (the fps filter drops the last)
    return still.filter("zoompan", z=zoom, x=x, y=y, d=frames + 1, s=f"{width}x{height}", fps=FPS)


def _whole(still, width: int, height: int):
    """A reference image as an image-to-video model takes it: the whole picture as the first frame, fitted to the
    frame's shape over a blurred, darkened copy of itself where the shapes differ."""
    big_w, big_h = width * 2, height * 2
    copies = still.filter_multi_output("split", 2)
    back = (copies[0].filter("scale", big_w // 8, big_h // 8, force_original_aspect_ratio="increase")
            .filter("crop", big_w // 8, big_h // 8).filter("boxblur", 6).filter("eq", brightness=-0.12)
            .filter("scale", big_w, big_h))
    front = copies[1].filter("scale", big_w, big_h, force_original_aspect_ratio="decrease")
    return ffmpeg.overlay(back, front, x="(W-w)/2", y="(H-h)/2").filter("format", "rgb24")


def _cover(stream, width: int, height: int):
    """Scale to cover the frame and crop the middle."""
    stream = stream.filter("scale", width, height, force_original_aspect_ratio="increase")
    return stream.filter("crop", width, height, x="(iw-ow)/2", y="(ih-oh)/2")


def _wrap(text: str, columns: int, lines: int) -> list[str]:
    wrapped = textwrap.wrap(text, columns) or [" "]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = textwrap.shorten(wrapped[-1] + " …", columns, placeholder=" …")
    return wrapped


def _card(picture, card: ShotCard, tmp: Path, w: int, h: int, secs: float, font: Path):
    """The shot card over the picture: a header bar (video, shot, length, model, move) and a lower panel (the
    prompt, then the style on its own line), each line a textfile; all of it leaves CLEAN_TAIL before the end."""
    size = max(12, min(w, h) // 24)             # the same letters on 16:9, 9:16 and square frames
    small = max(10, size * 3 // 4)
    pad = size * 2 // 3
    # a heading too long for the frame's width is set smaller rather than cut (~0.62 em a character)
    heading_size = max(10, min(size, int((w - 2 * pad) / (0.62 * max(len(card.heading), 1)))))
    shown = f"lt(t,{max(secs - CLEAN_TAIL, 0.1):.3f})"
    columns = max(20, int((w - 4 * pad) / (size * 0.56)))
    prompt_lines = _wrap(card.prompt, columns, 4)
    style_lines = _wrap(f"Style: {card.style}", int(columns * size / small), 2) if card.style else []
    files = {}
    for name, value in (("heading", card.heading), ("detail", card.detail),
                        ("prompt", "\n".join(prompt_lines)), ("style", "\n".join(style_lines))):
        files[name] = tmp / f"{name}.txt"
        files[name].write_text(value, encoding="utf-8")
    # heading left and detail right on one line when both fit (DejaVu Sans averages ~0.6 em a character), else the
    # detail on a line of its own under the heading
    one_line = (len(card.heading) * heading_size + len(card.detail) * small) * 0.62 + 4 * pad <= w
    header = size + 2 * pad if one_line else size + small + 3 * pad
    picture = picture.drawbox(0, 0, "iw", header, color="black@0.55", thickness="fill", enable=shown)
    picture = picture.drawtext(textfile=str(files["heading"]), expansion="none", fontfile=str(font),
                               fontsize=heading_size, fontcolor="white", x=pad, y=pad + (size - heading_size) // 2,
                               enable=shown)
    picture = picture.drawtext(textfile=str(files["detail"]), expansion="none", fontfile=str(font), fontsize=small,
                               fontcolor="0xd8d8d8", enable=shown,
                               x=f"w-text_w-{pad}" if one_line else pad,
                               y=pad + (size - small) // 2 if one_line else size + 2 * pad)
    spacing = size // 3
    body = len(prompt_lines) * (size + spacing) + len(style_lines) * (small + spacing) + (pad if style_lines else 0)
    top = h - body - 2 * pad
    picture = picture.drawbox(0, top, "iw", h - top, color="black@0.55", thickness="fill", enable=shown)
    picture = picture.drawtext(textfile=str(files["prompt"]), expansion="none", fontfile=str(font), fontsize=size,
                               fontcolor="white", line_spacing=spacing, x=2 * pad, y=top + pad, enable=shown)
    if style_lines:
        picture = picture.drawtext(
            textfile=str(files["style"]), expansion="none", fontfile=str(font), fontsize=small,
            fontcolor="0xf2c46d", line_spacing=spacing, enable=shown, x=2 * pad,
            y=top + pad + len(prompt_lines) * (size + spacing) + pad)
    return picture


def _bed(secs: float, seed: str):
    """A soft neutral bed for a model that makes its own sound: pink noise, low-passed like distant room tone, with
    a slow swell (never a steady tone); the mix brings it to the video's loudness like any native sound."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    swell = 0.1 + digest[2] / 255 * 0.1
    noise = ffmpeg.input(f"anoisesrc=color=pink:amplitude=0.25:sample_rate={AUDIO_RATE}:duration={secs:.3f}"
                         f":seed={_seed_number(seed)}", f="lavfi").audio
    return (noise.filter("highpass", f=90).filter("lowpass", f=900)
            .filter("tremolo", f=f"{swell:.3f}", d=0.45).filter("volume", 0.5))


def render_clip(spec: ClipSpec, out: Path) -> Path:
    """Render `spec` to `out` (MP4: H.264 yuv420p at 24 fps, AAC stereo) as an animatic shot: the reference image
    (or, without one, a quiet plate of the seed's colours) under a slow camera move the prompt suggests, or the
    source video restyled; the shot card on top; returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    w, h, secs = spec.width, spec.height, spec.seconds
    card = shot_card(spec.text, spec.label, secs)
    with tempfile.TemporaryDirectory(prefix=temp_prefix("vp-text-")) as tmp:
        if spec.video is not None:
            picture = ffmpeg.input(str(spec.video), stream_loop=-1, t=secs).video
            picture = _cover(picture, w, h)
            picture = (picture.filter("hue", h=120, s=1.6) if spec.transform == "style"
                       else picture.filter("unsharp", 5, 5, 1.0))
        else:
            if spec.image is not None:
                still = _whole(ffmpeg.input(str(spec.image)).video.filter("trim", end_frame=1), w, h)
            else:
                seed = spec.seed or spec.text
                light, deep = _plate_colours(seed, card.prompt + " " + card.style)
                still = (ffmpeg.input(f"gradients=s={w}x{h}:c0={light}:c1={deep}:x0=0:y0=0:x1={w}:y1={h}"
                                      f":nb_colors=2:r={FPS}:d=1:seed={_seed_number(seed)}", f="lavfi").video
                         .filter("trim", end_frame=1).filter("vignette", angle="PI/5"))
            picture = _camera(still, w, h, secs, card.move)
        picture = picture.filter("fps", FPS).filter("format", "yuv420p").filter("setsar", 1)

        if spec.audio is not None:
            sound = ffmpeg.input(str(spec.audio), ss=f"{spec.audio_offset:.3f}", t=secs).audio
            waves = sound.filter("showwaves", s=f"{w}x{h // 6}", mode="cline", colors="white@0.7", rate=FPS)
            picture = ffmpeg.overlay(picture, waves, x=0, y=h // 2 - h // 12, eof_action="pass",
                                     enable=f"lt(t,{max(secs - CLEAN_TAIL, 0.1):.3f})")
            sound = ffmpeg.input(str(spec.audio), ss=f"{spec.audio_offset:.3f}", t=secs).audio
        elif spec.native_audio:
            sound = _bed(secs, spec.seed or spec.text)
        else:
            sound = ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi", t=secs).audio
        sound = sound.filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo").filter("apad")

        picture = _card(picture, card, Path(tmp), w, h, secs, spec.font)
        stream = ffmpeg.output(
            picture, sound, str(out), t=f"{secs:.3f}", r=FPS, **h264_options(spec.preset, 23, spec.keyframe_interval),
            acodec="aac", audio_bitrate="128k", ar=AUDIO_RATE, ac=2, movflags="+faststart",
        )
        run_graph(stream, what=f"render {out.name}")
    return out


def extract_last_frame(video: Path, out: Path) -> Path:
    """Write the last frame of `video` as a PNG (the seed image of a chained segment)."""
    stream = ffmpeg.input(str(video), sseof=-0.1).video
    run_graph(ffmpeg.output(stream, str(out), vframes=1, update=1), what=f"last frame of {video.name}")
    return out

"""Make the sample campaigns' media (data/samples/media/) with the project's own tools: ffmpeg graphs, espeak-ng
(the offline narration voice) and Pillow. Run from the repository root: `.venv/bin/python scripts/make_sample_media.py`.

- street.mp4: a rainy street at night, 4 s (lit windows, passing headlights, rain, a city hum): the source of the
  `restyle` sample's video-to-video shot
- voice.m4a: the talking head's line, spoken by espeak-ng (about 6 s)
- beat.m4a: a 10 s music bed (a soft pad over four chords and a light pulse), never one steady tone
- bottle.png, presenter.png: a shaded steel bottle on a counter, a presenter's portrait, drawn
"""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ffmpeg  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from video_pipeline.media.ffmpeg import run_graph  # noqa: E402
from video_pipeline.providers.espeak import EspeakProvider  # noqa: E402
from video_pipeline.providers.tts import TtsRequest  # noqa: E402

OUT = ROOT / "data" / "samples" / "media"
W, H, FPS = 640, 360, 24


def _box(picture, x, y, w, h, color):
    return picture.filter("drawbox", x=x, y=y, w=w, h=h, color=color, t="fill")


def street(out: Path) -> None:
    sky = ffmpeg.input(f"gradients=s={W}x{H}:c0=0x0b1026:c1=0x25163a:x0=0:y0=0:x1=0:y1={H}:nb_colors=2:r={FPS}:d=4",
                       f="lavfi").video
    picture = sky
    # buildings, their lit windows, the wet road and its reflections
    for x, w, h, shade in ((0, 120, 250, "0x111522"), (110, 90, 300, "0x0d111c"), (190, 140, 220, "0x151a29"),
                           (420, 110, 280, "0x10141f"), (520, 120, 240, "0x131827")):
        picture = _box(picture, x, H - 70 - h, w, h, shade)
        for row in range(H - 60 - h, H - 90, 22):
            for col in range(x + 10, x + w - 14, 18):
                if (row * 7 + col * 13) % 5 < 2:
                    picture = _box(picture, col, row, 8, 10, "0xf5c66b@0.85")
    picture = _box(picture, 0, H - 70, W, 70, "0x1a1d24")
    picture = _box(picture, 0, H - 38, W, 3, "0xe8e2c0@0.5")
    # headlights passing left to right, their glow on the road; shop signs in neon
    picture = _box(picture, "mod(t*180,900)-160", H - 52, 26, 8, "0xfff4d0")
    picture = _box(picture, "mod(t*180,900)-110", H - 52, 26, 8, "0xfff4d0")
    picture = _box(picture, "mod(t*180,900)-170", H - 30, 110, 14, "0xfff4d0@0.25")
    picture = _box(picture, "iw-mod(t*120,800)", H - 62, 16, 6, "0xff4a3a")
    picture = _box(picture, 210, H - 160, 70, 18, "0xff3fa4@0.9")
    picture = _box(picture, 440, H - 180, 18, 70, "0x3fe0ff@0.9")
    # rain: noise drawn as streaks, and a little film grain
    rain = (ffmpeg.input(f"nullsrc=s={W}x{H}:r={FPS}:d=4", f="lavfi").video
            .filter("geq", lum="if(lt(random(1),0.004),255,0)", cb=128, cr=128)
            .filter("avgblur", sizeX=1, sizeY=6).filter("format", "yuva420p")
            .filter("colorchannelmixer", aa=0.5))
    picture = ffmpeg.overlay(picture, rain).filter("noise", alls=6, allf="t").filter("gblur", sigma=0.6)
    hum = (ffmpeg.input("anoisesrc=color=brown:amplitude=0.3:sample_rate=48000:duration=4", f="lavfi").audio
           .filter("lowpass", f=400).filter("volume", 0.6))
    run_graph(ffmpeg.output(picture.filter("format", "yuv420p"), hum, str(out), vcodec="libx264", preset="slow",
                            crf=24, acodec="aac", audio_bitrate="64k", t=4, r=FPS, movflags="+faststart"),
              what="sample street.mp4")


def beat(out: Path) -> None:
    # A minor, F, C, G: 2.5 s each, three soft partials per chord, and a light pulse on every half second
    chords = [(220.0, 261.63, 329.63), (174.61, 220.0, 261.63), (130.81, 196.0, 261.63), (196.0, 246.94, 293.66)]
    pad = "+".join(
        f"if(between(t,{i * 2.5},{i * 2.5 + 2.5}),"
        + "+".join(f"0.09*sin(2*PI*{f}*t)" for f in chord) + ",0)" for i, chord in enumerate(chords))
    swell = "(0.6+0.4*sin(2*PI*t/2.5-PI/2))"
    # a soft kick every half second: its pitch falls from 150 Hz to 45 Hz (a sweep, not a held note)
    pulse = "0.35*sin(2*PI*(45*mod(t,0.5)+105/25*(1-exp(-25*mod(t,0.5)))))*exp(-12*mod(t,0.5))"
    tick = "0.04*(random(0)-0.5)*exp(-60*mod(t+0.25,0.5))"
    expression = f"({pad})*{swell}+{pulse}+{tick}".replace(",", "\\,")      # commas would split the graph
    sound = ffmpeg.input(f"aevalsrc={expression}:s=48000:d=10", f="lavfi").audio
    # exactly 10 s (the echo's tail cut): tests/bad_inputs stretches this file's header to a known length
    run_graph(ffmpeg.output(sound.filter("aecho", 0.8, 0.5, 60, 0.25).filter("atrim", duration=10), str(out),
                            acodec="aac", audio_bitrate="96k", ac=2), what="sample beat.m4a")


def voice(out: Path) -> None:
    line = "Welcome to the trail guide. Today we walk from the forest to the ridge, and watch the fog lift."
    asyncio.run(EspeakProvider().synthesize(TtsRequest(text=line, voice="en", model_id="espeak-ng"), out))


def bottle(out: Path) -> None:
    size = 800
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):                              # a warm wall, lighter towards the window
        t = y / size
        draw.line([(0, y), (size, y)], fill=(int(232 - 40 * t), int(190 - 50 * t), int(140 - 40 * t)))
    draw.rectangle([0, 600, size, size], fill=(96, 72, 58))            # the counter
    draw.rectangle([0, 596, size, 606], fill=(140, 110, 90))
    shadow = Image.new("L", (size, size), 0)
    ImageDraw.Draw(shadow).ellipse([300, 585, 560, 630], fill=150)
    image.paste((40, 28, 22), mask=shadow.filter(ImageFilter.GaussianBlur(14)))
    body = Image.new("RGB", (220, 400))
    for x in range(220):                               # brushed steel: a highlight left of centre
        light = 0.35 + 0.6 * math.exp(-((x - 70) / 38) ** 2) + 0.15 * math.exp(-((x - 190) / 12) ** 2)
        tone = tuple(int(min(255, c * light)) for c in (190, 200, 212))
        ImageDraw.Draw(body).line([(x, 0), (x, 400)], fill=tone)
    mask = Image.new("L", (220, 400), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 40, 219, 399], radius=34, fill=255)
    ImageDraw.Draw(mask).rounded_rectangle([60, 0, 160, 60], radius=12, fill=255)
    image.paste(body, (290, 200), mask)
    draw.rounded_rectangle([290, 330, 509, 450], radius=6, fill=(22, 58, 92))          # the label
    draw.text((318, 372), "COLD BREW  ·  STEEL", fill=(236, 226, 200))
    image.filter(ImageFilter.GaussianBlur(0.8)).save(out, optimize=True)


def presenter(out: Path) -> None:
    size = 720
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):                              # a soft studio backdrop
        v = int(70 + 40 * math.cos(y / size * math.pi))
        draw.line([(0, y), (size, y)], fill=(v, v + 12, v + 20))
    draw.ellipse([150, 470, 570, 900], fill=(44, 66, 96))                 # shoulders in a jacket
    draw.polygon([(330, 480), (390, 480), (360, 560)], fill=(235, 235, 230))   # the collar
    draw.rectangle([325, 380, 395, 480], fill=(201, 150, 118))            # the neck
    draw.ellipse([255, 170, 465, 420], fill=(214, 164, 130))              # the face
    draw.chord([245, 140, 475, 330], 180, 360, fill=(58, 40, 30))         # the hair
    for x in (318, 402):
        draw.ellipse([x - 12, 275, x + 12, 291], fill=(250, 248, 240))
        draw.ellipse([x - 6, 277, x + 6, 289], fill=(60, 42, 30))
    draw.arc([320, 330, 400, 380], 20, 160, fill=(150, 80, 70), width=5)  # a smile
    image.filter(ImageFilter.GaussianBlur(1.2)).save(out, optimize=True)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for make, name in ((street, "street.mp4"), (beat, "beat.m4a"), (voice, "voice.m4a"), (bottle, "bottle.png"),
                       (presenter, "presenter.png")):
        make(OUT / name)
        print(f"wrote {(OUT / name).relative_to(ROOT)}")

"""The bad-input corpus: every file in this folder (but this module, `cases.yaml` and `media/`) is a campaign file
that must be refused, with the problem each must name listed in `cases.yaml`.

`prepare(data_dir)` lays out what the files refer to: real media from the samples, the fake media in `media/`
(text posing as an image, audio, video), `media/escape.png` (a symlink under data/ to an image outside it), and the
hostile media made at test time (a 16000×16000 PNG, a TIFF and an SVG saved as .png, an MP4 and an M4A whose sample
tables claim hours, a 4200 px wide and a 1000 fps H.264 video, PNG frames in a MOV, a FIFO, a directory, an empty
file). `materialize(folder)` writes the cases git cannot hold (`make:` in cases.yaml): files of megabytes, names
with control characters or bytes that are not UTF-8, FIFOs and symbolic links to /proc/self/environ, /etc/passwd
and /dev/zero. `place(src, dest)` copies a case as what it is (a link as a link, a FIFO as a FIFO).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from video_pipeline.config import PROJECT_ROOT
from video_pipeline.spec.campaign import MAX_FILE_BYTES, MAX_ROWS
from video_pipeline.untrusted import printable

HERE = Path(__file__).resolve().parent
SAMPLE_MEDIA = PROJECT_ROOT / "data" / "samples" / "media"


@dataclass(frozen=True)
class BadInput:
    name: str          # file name as errors print it (printable; `fs_name` is the name on disk)
    kind: str          # what is wrong, as the table says it
    field: str         # the field the error must name ("" for whole-file problems)
    line: int | None   # the line it must name (None when the problem has no line)
    expect: str        # words the message must contain: what was expected
    make: str | None = None   # how the file is made at test time: generated, fifo, or link:<target>

    @property
    def path(self) -> Path:
        return HERE / self.name

    @property
    def fs_name(self) -> str:
        """The name on disk: the escapes of `name` (\\x1b, \\n, \\xe9, \\u202e) as the bytes or characters they stand
        for; a byte that is not UTF-8 becomes what os.fsdecode makes of it."""
        if "\\" not in self.name:
            return self.name
        text = self.name.encode("ascii").decode("unicode_escape")
        raw = b"".join(c.encode("latin-1") if ord(c) < 0x100 else c.encode("utf-8") for c in text)
        return os.fsdecode(raw)


def cases() -> list[BadInput]:
    raw = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
    return [BadInput(name=name, kind=c["kind"], field=c.get("field", ""), line=c.get("line"), expect=c["expect"],
                     make=c.get("make")) for name, c in raw.items()]


# --- hostile media ------------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@lru_cache(maxsize=None)
def png(width: int, height: int) -> bytes:
    """A complete grayscale PNG of zeros (a 16000×16000 one is 1 MB, and 256 MB once decoded)."""
    squeeze = zlib.compressobj(1)
    row = b"\0" * (1 + width)
    rows = 100 if height % 100 == 0 else 1
    body = b"".join(squeeze.compress(row * rows) for _ in range(height // rows)) + squeeze.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))


def png_header(width: int, height: int) -> bytes:
    """Only a PNG's signature and header, claiming `width`×`height` (what a decoder sizes its frame by)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IEND", b""))


def tiff() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="TIFF")
    return out.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>\n'


def _boxes(data: bytearray, start: int, end: int):
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if size < 8:
            return
        yield at, size, kind
        if kind in (b"moov", b"trak", b"edts", b"mdia", b"minf", b"stbl"):
            yield from _boxes(data, at + 8, at + size)
        at += size


def stretched(source: Path, factor: int) -> bytes:
    """An MP4/M4A whose header claims `factor` times its length: every sample's duration in `stts`, the track and
    movie durations and the edit list all multiplied, the media itself unchanged."""
    data = bytearray(source.read_bytes())
    movie_scale = 1000
    for at, _, kind in _boxes(data, 0, len(data)):
        if kind in (b"mvhd", b"mdhd"):            # version 0: timescale, then duration
            scale, duration = struct.unpack(">II", data[at + 20:at + 28])
            movie_scale = scale if kind == b"mvhd" else movie_scale
            struct.pack_into(">I", data, at + 24, duration * factor)
        elif kind == b"tkhd":
            struct.pack_into(">I", data, at + 28, struct.unpack(">I", data[at + 28:at + 32])[0] * factor)
        elif kind == b"elst":
            for entry in range(struct.unpack(">I", data[at + 12:at + 16])[0]):
                offset = at + 16 + 12 * entry
                struct.pack_into(">I", data, offset, struct.unpack(">I", data[offset:offset + 4])[0] * factor)
        elif kind == b"stts":
            for entry in range(struct.unpack(">I", data[at + 12:at + 16])[0]):
                offset = at + 16 + 8 * entry + 4
                struct.pack_into(">I", data, offset, struct.unpack(">I", data[offset:offset + 4])[0] * factor)
    return bytes(data)


@lru_cache(maxsize=None)
def encoded(suffix: str, *args: str) -> bytes:
    """A short clip made by ffmpeg from a test source (`args` between the input and the output)."""
    import tempfile

    from video_pipeline.media.ffmpeg import ffmpeg_binary

    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        out = Path(tmp) / f"clip{suffix}"
        subprocess.run([ffmpeg_binary(), "-v", "error", "-y", *args, str(out)], check=True, timeout=60,
                       stdin=subprocess.DEVNULL)
        return out.read_bytes()


def hostile_media(media: Path) -> None:
    """The media the hostile cases refer to, under data/media."""
    files = {
        "huge.png": png(16000, 16000),
        "wide.png": png(9000, 16),
        "scan.png": tiff(),
        "vector.png": SVG,
        "empty.png": b"",
        "day.mp4": stretched(SAMPLE_MEDIA / "street.mp4", 8000),
        "day.m4a": stretched(SAMPLE_MEDIA / "beat.m4a", 8000),
        "wide.mp4": encoded(".mp4", "-f", "lavfi", "-i", "testsrc2=s=4200x64:r=24:d=0.25", "-c:v", "libx264",
                            "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        "fast.mp4": encoded(".mp4", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=1000:d=0.05", "-c:v", "libx264",
                            "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        "frames.mov": encoded(".mov", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=24:d=0.25", "-c:v", "png"),
    }
    for name, data in files.items():
        (media / name).write_bytes(data)
    if not (media / "pipe.png").exists():
        os.mkfifo(media / "pipe.png")
    (media / "folder.png").mkdir(exist_ok=True)


def prepare(data_dir: Path, outside: Path) -> None:
    """Referenced media under data_dir/media (and a symlink escaping to `outside`), plus the hostile media."""
    media = data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    for name in ("bottle.png", "street.mp4"):
        shutil.copy(SAMPLE_MEDIA / name, media / name)
    for fake in (HERE / "media").iterdir():
        shutil.copy(fake, media / fake.name)
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.png"
    shutil.copy(SAMPLE_MEDIA / "bottle.png", secret)
    escape = media / "escape.png"
    if not escape.is_symlink():
        escape.symlink_to(secret)
    hostile_media(media)


# --- campaign files made at test time -----------------------------------------------------------------------------

MIB = 1024 * 1024


def huge_file(folder: Path) -> Path:
    """A YAML campaign one byte over the size limit (a long comment), written to `folder`."""
    path = folder / "huge.yaml"
    head = b"campaign: huge\nvideos:\n  - id: one\n    shots: [{prompt: \"Big\"}]\n# "
    path.write_bytes(head + b"x" * (MAX_FILE_BYTES + 1 - len(head)))
    return path


GENERATED = {
    "huge.yaml": lambda: b"",    # written by huge_file
    "deep.json": lambda: b'{"campaign": "deep", "videos": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    "million-rows.csv": lambda: b"prompt\n" + b"a\n" * 1_000_000,
    "rows-limit.jsonl": lambda: b'{"prompt": "p"}\n' * (MAX_ROWS + 1),
    "long-prompt.yaml": lambda: (b"campaign: long-prompt\nvideos:\n  - id: one\n    shots:\n      - prompt: "
                                 + b"A" * MIB + b"\n"),
    "long-prompt.csv": lambda: b"prompt\n" + b"A" * MIB + b"\n",
    "long-prompt.jsonl": lambda: b'{"prompt": "' + b"A" * MIB + b'"}\n',
    "many-problems.jsonl": lambda: b'{"prompt": "p", "target_seconds": -1}\n' * MAX_ROWS,
    "wide-header.csv": lambda: ",".join(f"c{i}" for i in range(100_000)).encode() + b"\nx\n",
    "bigint.json": lambda: (b'{\n  "campaign": "bigint",\n  "budget_usd": ' + b"9" * 5000
                            + b',\n  "videos": [{"id": "one", "shots": [{"prompt": "p"}]}]\n}\n'),
    "bigint.yaml": lambda: (b"campaign: bigint\nbudget_usd: " + b"9" * 5000
                            + b"\nvideos: [{id: one, shots: [{prompt: p}]}]\n"),
    "sexagesimal.yaml": lambda: (b"campaign: sexagesimal\nbudget_usd: 1" + b":59" * 2000
                                 + b"\nvideos: [{id: one, shots: [{prompt: p}]}]\n"),
    "evil\\x1b[31m\\x0aname.yaml": lambda: b"",
    "caf\\xe9.yaml": lambda: b"- a list\n",
    "invoice\\u202eyaml.csv": lambda: b"prompt\na\n",
}


def materialize(folder: Path, case: BadInput) -> Path:
    """The case's file in `folder`: copied from this folder, or made (`case.make`)."""
    path = folder / case.fs_name
    if case.make is None:
        shutil.copy(case.path, path)
    elif case.make == "generated" and case.name == "huge.yaml":
        huge_file(folder)
    elif case.make == "generated":
        path.write_bytes(GENERATED[case.name]())
    elif case.make == "fifo":
        os.mkfifo(path)
    elif case.make.startswith("link:"):
        os.symlink(case.make.removeprefix("link:"), path)
    else:
        raise ValueError(f"{case.name}: unknown make {case.make!r}")
    return path


def place(src: Path, dest: Path) -> Path:
    """Copy a case as what it is: a symbolic link as the same link, a FIFO as a new FIFO, a file's bytes."""
    mode = os.lstat(src).st_mode
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dest)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dest)
    else:
        shutil.copyfile(src, dest)
    return dest


def kept_as(path: Path) -> str:
    """What a case's file is, to see it unchanged: a link's target, a FIFO, or the hash of its bytes."""
    import hashlib

    if path.is_symlink():
        return "-> " + os.readlink(path)
    if path.is_fifo():
        return "fifo"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settle(path: Path, seconds_ago: float = 60) -> None:
    """Make an inbox entry look settled, never touching what a link points at."""
    import time

    past = time.time() - seconds_ago
    os.utime(path, (past, past), follow_symlinks=False)


def shown(case: BadInput) -> str:
    """The case's name as any output prints it."""
    return printable(case.fs_name)

"""The bad-input corpus: every file in this folder (but this module, `cases.yaml` and `media/`) is a campaign file
that must be refused, with the problem each must name listed in `cases.yaml`.

`prepare(data_dir)` lays out what the files refer to: real media from the samples, the fake media in `media/`
(text posing as an image, audio, video), and `media/escape.png`, a symlink under data/ to an image outside it.
`huge.yaml` (over the 5 MB limit) is written at test time rather than kept in git.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from video_pipeline.spec.campaign import MAX_FILE_BYTES
from video_pipeline.config import PROJECT_ROOT

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BadInput:
    name: str          # file name in this folder
    kind: str          # what is wrong, as the table says it
    field: str         # the field the error must name ("" for whole-file problems)
    line: int | None   # the line it must name (None when the problem has no line)
    expect: str        # words the message must contain: what was expected

    @property
    def path(self) -> Path:
        return HERE / self.name


def cases() -> list[BadInput]:
    raw = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
    return [BadInput(name=name, kind=c["kind"], field=c.get("field", ""), line=c.get("line"), expect=c["expect"])
            for name, c in raw.items()]


def prepare(data_dir: Path, outside: Path) -> None:
    """Referenced media under data_dir/media (and a symlink escaping to `outside`), plus the generated huge file."""
    media = data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    for name in ("bottle.png", "street.mp4"):
        shutil.copy(PROJECT_ROOT / "data" / "samples" / "media" / name, media / name)
    for fake in (HERE / "media").iterdir():
        shutil.copy(fake, media / fake.name)
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.png"
    shutil.copy(PROJECT_ROOT / "data" / "samples" / "media" / "bottle.png", secret)
    escape = media / "escape.png"
    if not escape.is_symlink():
        escape.symlink_to(secret)


def huge_file(folder: Path) -> Path:
    """A YAML campaign one byte over the size limit (a long comment), written to `folder`."""
    path = folder / "huge.yaml"
    head = b"campaign: huge\nvideos:\n  - id: one\n    shots: [{prompt: \"Big\"}]\n# "
    path.write_bytes(head + b"x" * (MAX_FILE_BYTES + 1 - len(head)))
    return path

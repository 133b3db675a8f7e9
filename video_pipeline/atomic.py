"""Files written whole: each writer works in a hidden sibling of its own and moves it into place with os.replace,
so a reader never sees half a file and two runs writing the same output (two runs of one campaign, a rerun
while the first still finishes) never write into one temporary file.

Every temporary name carries its owner: a tag of this machine (its host name and PID namespace, hashed) and the
writer's process id. `sweep` removes what a killed writer left behind (its process is gone from this machine, or,
written elsewhere, it has not been touched for a day) and never a file a live writer still works on. Temporary
files are created with the permissions the umask gives, so what is moved into place is an ordinary file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import time
import uuid
from functools import lru_cache
from pathlib import Path

#: a writer elsewhere (another machine or container) that has not touched its temporary file for this long is gone
STALE_SECONDS = 24 * 3600
#: `-T<machine>-<pid>-` inside a temporary name: the upper-case T never appears in a campaign or video id
_OWNED = re.compile(r"-T([0-9a-f]{8})-(\d+)-")


@lru_cache(maxsize=1)
def _machine() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid")   # containers on one host with one name differ here
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def owner() -> str:
    """This writer, as temporary names carry it: `T<machine>-<pid>`."""
    return f"T{_machine()}-{os.getpid()}"


def temp_prefix(prefix: str) -> str:
    """A `tempfile` prefix that names this writer (`incoming-` → `incoming-T1a2b3c4d-4242-`), for `sweep`."""
    return f"{prefix}{owner()}-"


def private_sibling(path: Path | str, tag: str = "partial") -> Path:
    """A hidden temporary name beside `path`, unique to this writer, with the same suffix (ffmpeg picks its muxer
    from the suffix). Only letters, digits, dots and hyphens are added, so it is safe in ffmpeg filter options."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{tag}-{owner()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def owned_temp(directory: Path, prefix: str, suffix: str = "") -> Path:
    """A fresh temporary file name in `directory` that names this writer; the file is not created (whoever writes
    it creates it, with the umask's permissions)."""
    return Path(directory) / f"{temp_prefix(prefix)}{uuid.uuid4().hex[:8]}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # another user's process
        return True
    return True


def left_behind(name: str, mtime: float, now: float | None = None) -> bool:
    """True when a temporary `name` was left by a writer that is gone (see the module's docstring)."""
    match = _OWNED.search(name)
    if match is None:
        return False
    if match.group(1) == _machine():
        pid = int(match.group(2))
        return pid != os.getpid() and not _alive(pid)
    return (now if now is not None else time.time()) - mtime > STALE_SECONDS


def sweep(directory: Path | str, prefix: str = "") -> list[Path]:
    """Remove the temporary files and folders killed writers left in `directory` (those whose names start with
    `prefix`); returns what was removed. A missing directory has nothing to sweep."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not left_behind(entry.name, st.st_mtime, now):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue                   # another run swept it first
        removed.append(Path(entry.path))
    return removed

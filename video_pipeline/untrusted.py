"""Files handed to us by people: opened once, checked before a byte is read, read within a bound, and named safely.

A campaign file or a file it refers to may be anything: a symbolic link to `/proc/self/environ` or `/dev/zero`, a
FIFO that never answers, a file still being written, a name holding a newline or bytes that are not UTF-8.
`open_regular` resolves a link (refused when links are not wanted, or when it leaves `root`), opens the file once
without following a link at its last step and without blocking, and checks with `fstat` that it is a regular file
of at most `max_bytes` before anything is read. `read_regular` then reads it with the bound enforced while reading
and refuses a file whose size or time changed meanwhile (a file of `/proc` says it is empty and is not). Reasons
are plain sentences without the path or any content: the caller names the file, and only the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Iterator

from video_pipeline.errors import PipelineError

READ_CHUNK = 1 << 20

#: what a file that is not a regular file is, in words
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}

LINK_LEAVES = "is a symbolic link to a file outside the data directory; give the file itself"


class Refused(PipelineError, ValueError):
    """A file that is not read: `reason` says why, without its path (the caller adds where it is)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def kind_of(mode: int) -> str:
    """What a file of this `st_mode` is, in words ("a FIFO (named pipe)"); "a regular file" for one."""
    return "a regular file" if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def inside(path: Path, root: Path) -> bool:
    """True when `path` (already resolved) is `root` or under it."""
    root = root.resolve()
    return path == root or root in path.parents


def _target(path: Path, root: Path | None, links: bool) -> Path:
    """The path to open: `path` itself, or where its link points when that is allowed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise Refused("file not found") from None
    except OSError as exc:
        raise Refused(f"cannot be read ({os.strerror(exc.errno or errno.EIO)})") from None
    if not stat.S_ISLNK(st.st_mode):
        return path
    target = path.resolve()
    if root is not None and not inside(target, root):
        raise Refused(LINK_LEAVES)
    if not links:
        raise Refused("is a symbolic link; only regular files are taken here (a link can point at any file on "
                      "the machine); copy the file itself")
    return target


@contextlib.contextmanager
def open_regular(path: Path | str, *, max_bytes: int, root: Path | None = None,
                 links: bool = True) -> Iterator[tuple[int, os.stat_result]]:
    """Open `path` once for reading and yield its descriptor and `fstat`, refusing (`Refused`) what is not a regular
    file of at most `max_bytes`. A symbolic link is refused when `links` is False, and when it leads out of `root`;
    the last step is opened with O_NOFOLLOW, so a link swapped in meanwhile is refused too."""
    target = _target(Path(path), root, links)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        raise Refused("file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("is a symbolic link (it appeared while the file was opened); copy the file itself") from None
        if exc.errno == errno.ENXIO:
            raise Refused("is a socket; expected a regular file") from None
        raise Refused(f"cannot be read ({os.strerror(exc.errno or errno.EIO)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"is {kind_of(st.st_mode)}; expected a regular file")
        if st.st_size > max_bytes:
            raise Refused(f"file is {st.st_size} bytes; the limit is {max_bytes}")
        yield fd, st
    finally:
        os.close(fd)


def read_open(fd: int, st: os.stat_result, max_bytes: int) -> bytes:
    """Read an open regular file to its end, never more than `max_bytes` (+1 to notice more), and refuse it when it
    is not what `fstat` said before (it grew, shrank or was rewritten while being read)."""
    want = min(st.st_size, max_bytes) + 1
    chunks: list[bytes] = []
    total = 0
    while total < want:
        chunk = os.read(fd, min(READ_CHUNK, want - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise Refused(f"file is over {max_bytes} bytes; the limit is {max_bytes}")
    after = os.fstat(fd)
    if total != st.st_size or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        raise Refused(f"the file changed while it was read (its size said {st.st_size} bytes), or it is not an "
                      "ordinary file; copy it again once it is complete")
    return b"".join(chunks)


def read_regular(path: Path | str, *, max_bytes: int, root: Path | None = None, links: bool = True) -> bytes:
    """The bytes of a regular file, opened once and read within `max_bytes` (see `open_regular`)."""
    with open_regular(path, max_bytes=max_bytes, root=root, links=links) as (fd, st):
        return read_open(fd, st, max_bytes)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:      # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every character that is not printable (newlines, escape sequences, bidirectional controls, bytes
    that are not UTF-8) written as an escape, so a name or an excerpt is one honest line in any output."""
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def excerpt(text: str, limit: int = 80) -> str:
    """At most `limit` characters of `text`, printable, saying how long the whole was when it was cut."""
    if len(text) <= limit:
        return printable(text)
    return f"{printable(text[:limit])}… ({len(text)} characters)"


#: why a YAML file is refused for its anchors or aliases
YAML_ALIASES = "YAML anchors (&name) and aliases (*name) are not accepted; write each value out"


def yaml_overreach(text: str, loader: type, max_depth: int) -> tuple[int, str] | None:
    """Where a YAML text first goes past plain data within bounds, read as events before anything is built: (line,
    reason) for an anchor or an alias (a few hundred bytes of aliases expand to gigabytes), or for nesting deeper
    than `max_depth` mappings and lists; None when it stays within them, or when it is not valid YAML (the parse
    proper reports that, with its line). `loader` is the PyYAML loader class the text will be parsed with."""
    import yaml

    scan = loader(text)
    depth = 0
    try:
        while scan.check_event():
            event = scan.get_event()
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                return line, YAML_ALIASES
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > max_depth:
                    return line, f"nested more than {max_depth} levels deep"
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None
    finally:
        scan.dispose()
    return None

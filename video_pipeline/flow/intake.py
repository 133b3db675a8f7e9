"""Campaign intake: validate a file, archive the original, install it as the campaign's active spec, or reject it.

Nothing is ever deleted: originals move to archive/ (accepted) or rejected/ (beside an error file). A file is read
once (`spec.campaign.read_campaign_file`): what was validated is what is installed and archived. In the inbox,
`take` never raises: whatever a file is, it is accepted, or set aside in rejected/ with its error, or (when even
that fails) reported as stuck for the sensor's cursor to remember, so the files behind it are always taken.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.atomic import private_sibling
from video_pipeline.spec.campaign import (SUFFIXES, Campaign, check_references, load_campaign, parse_campaign,
                                          read_campaign_file, resolve_reference)
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.config import Settings
from video_pipeline.errors import CampaignError, PlanningError, Problem
from video_pipeline.planning.planner import CampaignPlan, plan_campaign
from video_pipeline.untrusted import Refused, inside, open_regular, printable

SETTLE_SECONDS = 2.0   # a file in the inbox modified more recently may still be being written


@dataclass(frozen=True)
class Accepted:
    campaign_id: str
    schedule: str
    sha256: str
    spec_path: Path        # data/campaigns/<id>.<ext>: what the assets read
    archived_path: Path    # the original file, kept


def display_path(path: Path, settings: Settings) -> str:
    """A path as a person reads it: relative to the data directory's parent when inside it (the file's own name is
    not followed if it is a link), else as it was given (`run` and `validate` name a file the same way), printable
    whatever bytes the name holds."""
    path = Path(path)
    try:
        shown = str(path.parent.resolve().relative_to(settings.data_dir.resolve().parent) / path.name)
    except (ValueError, OSError):
        shown = str(path)
    return printable(shown)


def _validated(path: Path, settings: Settings, display: str, *, links: bool = True, on: dt.date | None = None,
               providers: frozenset[str] | None = None) -> tuple[bytes, Campaign, CampaignPlan]:
    """The file's bytes (read once), the campaign they hold and its plan. A file given on the command line (`links`)
    finds its media in its own folder first; one from the inbox only under the data directory."""
    raw = read_campaign_file(path, display, settings.data_dir, links)
    campaign = parse_campaign(raw, path.name, display, data_dir=settings.data_dir,   # every problem at once
                              media_dir=_media_dir_of(path, settings) if links else None)
    check_references(campaign, settings.data_dir)
    plan = plan_campaign(campaign, load_catalog(settings.catalog_file), settings.data_dir, on=on, providers=providers)
    return raw, campaign, plan


def _media_dir_of(path: Path, settings: Settings) -> Path:
    """Where a campaign file's media are looked for first: an installed spec's copies (campaigns/<id>.media/),
    else the file's own folder."""
    try:
        installed = path.parent.resolve() == settings.campaigns_dir.resolve()
    except OSError:
        installed = False
    return media_folder(settings, path.stem) if installed else path.parent


def validate_file(path: Path, settings: Settings, on: dt.date | None = None,
                  display: str | None = None, providers: frozenset[str] | None = None) -> tuple[Campaign, CampaignPlan]:
    """Parse, check references and plan (model pins, budget) without spending anything.

    `providers` limits routing to configured providers (live mode); intake leaves it None, since a missing key
    is the deployment's problem, not the file's."""
    path = Path(path)
    _, campaign, plan = _validated(path, settings, printable(display or display_path(path, settings)), on=on,
                                   providers=providers)
    return campaign, plan


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _unique(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def accept(path: Path, settings: Settings, *, move: bool, inbox: bool = False) -> Accepted:
    """Validate `path` and make it its campaign's active spec; the original is moved (or, as read, copied) to
    archive/. From the `inbox`, a symbolic link is refused whatever it points at."""
    path = Path(path)
    raw, campaign, _ = _validated(path, settings, display_path(path, settings), links=not inbox)
    sha = hashlib.sha256(raw).hexdigest()
    settings.campaigns_dir.mkdir(parents=True, exist_ok=True)
    settings.archive_dir.mkdir(parents=True, exist_ok=True)
    archived = _unique(settings.archive_dir / f"{_stamp()}-{path.name}")
    spec = settings.campaigns_dir / f"{campaign.campaign}{path.suffix.lower()}"
    for other in settings.campaigns_dir.glob(f"{campaign.campaign}.*"):
        if other.suffix.lower() in SUFFIXES and other != spec:
            os.replace(other, _unique(settings.archive_dir / f"{_stamp()}-superseded-{other.name}"))
    _install_media(campaign, settings)
    tmp = private_sibling(spec, "incoming")
    tmp.write_bytes(raw)
    os.replace(tmp, spec)
    if move:
        shutil.move(str(path), archived)
    else:
        partial = private_sibling(archived, "incoming")
        partial.write_bytes(raw)                 # what was validated, not a second read of the file
        os.replace(partial, archived)
    return Accepted(campaign.campaign, campaign.schedule, sha, spec, archived)


def media_folder(settings: Settings, campaign_id: str) -> Path:
    """Where an installed campaign's copies of the files found beside its file live: campaigns/<id>.media/."""
    return settings.campaigns_dir / f"{campaign_id}.media"


def _install_media(campaign: Campaign, settings: Settings) -> None:
    """Copy the files the campaign found in its own folder (not those under the data directory) to a new
    campaigns/<id>.media/, at the paths the campaign names them by; the previous copies (another version's)
    go to archive/, so they can never stand in for a file the new version finds under the data directory.
    Runs read these copies, never the originals: the inputs a version ran with stay as they were."""
    from video_pipeline.spec.media_limits import MAX_BYTES

    found = []
    if campaign.media_dir is not None:
        folder = Path(campaign.media_dir).resolve()
        for ref in sorted(campaign.references()):
            source = resolve_reference(ref, settings.data_dir, folder)
            if inside(source, folder):
                found.append((ref, source))
    target = media_folder(settings, campaign.campaign)
    fresh = None
    if found:
        fresh = private_sibling(target, "incoming")
        try:
            for ref, source in found:
                copy = fresh / os.path.normpath(ref)
                copy.parent.mkdir(parents=True, exist_ok=True)
                # the file as checked: opened once, never through a link swapped in since, at most the size seen
                with open_regular(source, max_bytes=max(MAX_BYTES.values()), root=folder) as (fd, st), \
                        open(copy, "wb") as out:
                    left = st.st_size
                    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                        out.write(chunk)
                        left -= len(chunk)
        except Refused as refused:
            shutil.rmtree(fresh, ignore_errors=True)
            raise CampaignError([Problem(campaign.source.file, "", f"{printable(ref)}: {refused.reason}")]) from None
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
    for _ in range(5):    # another process installing the same campaign at once: the last one's copies stay
        if os.path.lexists(target):
            try:
                os.replace(target, _unique(settings.archive_dir / f"{_stamp()}-{target.name}"))
            except FileNotFoundError:
                pass
        if fresh is None:
            return
        try:
            os.rename(fresh, target)
            return
        except OSError:
            continue
    raise OSError(f"could not install {display_path(target, settings)}: another process keeps replacing it")


def reject(path: Path, error: Exception, settings: Settings) -> Path:
    """Move a bad file to rejected/ beside `<name>.error.txt` that says what is wrong; returns the error file.
    Whatever the file is (a link, a FIFO) it is moved as it is, never opened."""
    settings.rejected_dir.mkdir(parents=True, exist_ok=True)
    target = _unique(settings.rejected_dir / path.name)
    shutil.move(str(path), target)
    note = target.with_name(target.name + ".error.txt")
    note.write_text(f"{printable(path.name)} was rejected at "
                    f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}\n\n"
                    f"{error}\n\nFix the file and copy it into inbox/ again.\n", encoding="utf-8")
    return note


@dataclass(frozen=True)
class Taken:
    """What became of one inbox file: accepted, rejected (its error file `note`), or `stuck` where it lies (it
    could not even be moved: the sensor's cursor remembers it so it is not tried on every tick)."""

    name: str                         # the file's name, printable
    accepted: Accepted | None = None
    note: Path | None = None
    error: str = ""
    stuck: bool = False


def inbox_files(settings: Settings, now: float) -> list[tuple[Path, os.stat_result]]:
    """The inbox's settled entries, oldest first, with their own `lstat` (a link is not followed to look at it):
    every kind of file but directories and hidden names."""
    try:
        entries = list(os.scandir(settings.inbox_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) and now - st.st_mtime >= SETTLE_SECONDS:
            found.append((Path(entry.path), st))
    return sorted(found, key=lambda item: (item[1].st_mtime, item[0].name))


def take(path: Path, settings: Settings) -> Taken:
    """Accept an inbox file or set it aside; never raises, whatever the file is or does."""
    name = printable(path.name)
    error: Exception
    try:
        if path.suffix.lower() not in SUFFIXES:
            raise CampaignError([Problem(display_path(path, settings), "", "not a campaign file; expected one of "
                                         + ", ".join(sorted(SUFFIXES)))])
        return Taken(name, accepted=accept(path, settings, move=True, inbox=True))
    except INVALID as exc:
        error = exc
    except Exception as exc:      # the machine, or a bug: the file is still set aside, so the inbox keeps moving
        error = RuntimeError(f"{display_path(path, settings)}: could not be taken in ({type(exc).__name__}); it "
                             "was set aside so the files behind it are taken. Run `video-pipeline validate` on it.")
    try:
        return Taken(name, note=reject(path, error, settings), error=str(error))
    except Exception as exc:
        return Taken(name, error=f"{error}\n(and it could not be moved to rejected/: {type(exc).__name__})",
                     stuck=True)


def active_spec(settings: Settings, campaign_id: str) -> Path:
    """The installed spec file of a campaign; FileNotFoundError saying how to add one."""
    for path in sorted(settings.campaigns_dir.glob(f"{campaign_id}.*")):
        if path.suffix.lower() in SUFFIXES:
            return path
    raise FileNotFoundError(f"campaign {campaign_id!r} has no spec under {display_path(settings.campaigns_dir, settings)}/; "
                            "drop its file into inbox/ or run `video-pipeline run FILE`")


def load_active(settings: Settings, campaign_id: str) -> Campaign:
    spec = active_spec(settings, campaign_id)
    return load_campaign(spec, settings.data_dir, display=display_path(spec, settings),
                         media_dir=media_folder(settings, campaign_id))


INVALID = (CampaignError, PlanningError)

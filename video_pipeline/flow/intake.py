"""Campaign intake: validate a file, archive the original, install it as the campaign's active spec, or reject it.

Nothing is ever deleted: originals move to archive/ (accepted) or rejected/ (beside an error file).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.atomic import private_sibling
from video_pipeline.spec.campaign import SUFFIXES, Campaign, load_campaign
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.config import Settings
from video_pipeline.errors import CampaignError, PlanningError
from video_pipeline.planning.planner import CampaignPlan, plan_campaign


@dataclass(frozen=True)
class Accepted:
    campaign_id: str
    schedule: str
    sha256: str
    spec_path: Path        # data/campaigns/<id>.<ext>: what the assets read
    archived_path: Path    # the original file, kept


def display_path(path: Path, settings: Settings) -> str:
    """A path as a person reads it: relative to the data directory's parent when inside it."""
    try:
        return str(path.resolve().relative_to(settings.data_dir.resolve().parent))
    except ValueError:
        return path.name


def validate_file(path: Path, settings: Settings, on: dt.date | None = None,
                  display: str | None = None, providers: frozenset[str] | None = None) -> tuple[Campaign, CampaignPlan]:
    """Parse, check references and plan (model pins, budget) without spending anything.

    `providers` limits routing to configured providers (live mode); intake leaves it None, since a missing key
    is the deployment's problem, not the file's."""
    campaign = load_campaign(path, settings.data_dir, display=display or display_path(path, settings))
    plan = plan_campaign(campaign, load_catalog(settings.catalog_file), settings.data_dir, on=on, providers=providers)
    return campaign, plan


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _unique(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def accept(path: Path, settings: Settings, *, move: bool) -> Accepted:
    """Validate `path` and make it its campaign's active spec; the original is moved (or copied) to archive/."""
    campaign, _ = validate_file(path, settings)
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    settings.campaigns_dir.mkdir(parents=True, exist_ok=True)
    settings.archive_dir.mkdir(parents=True, exist_ok=True)
    archived = _unique(settings.archive_dir / f"{_stamp()}-{path.name}")
    spec = settings.campaigns_dir / f"{campaign.campaign}{path.suffix.lower()}"
    for other in settings.campaigns_dir.glob(f"{campaign.campaign}.*"):
        if other.suffix.lower() in SUFFIXES and other != spec:
            os.replace(other, _unique(settings.archive_dir / f"{_stamp()}-superseded-{other.name}"))
    tmp = private_sibling(spec, "incoming")
    tmp.write_bytes(raw)
    os.replace(tmp, spec)
    if move:
        shutil.move(str(path), archived)
    else:
        shutil.copyfile(path, archived)
    return Accepted(campaign.campaign, campaign.schedule, sha, spec, archived)


def reject(path: Path, error: Exception, settings: Settings) -> Path:
    """Move a bad file to rejected/ beside `<name>.error.txt` that says what is wrong; returns the error file."""
    settings.rejected_dir.mkdir(parents=True, exist_ok=True)
    target = _unique(settings.rejected_dir / path.name)
    shutil.move(str(path), target)
    note = target.with_name(target.name + ".error.txt")
    note.write_text(f"{path.name} was rejected at {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}\n\n"
                    f"{error}\n\nFix the file and copy it into inbox/ again.\n", encoding="utf-8")
    return note


def active_spec(settings: Settings, campaign_id: str) -> Path:
    """The installed spec file of a campaign; FileNotFoundError saying how to add one."""
    for path in sorted(settings.campaigns_dir.glob(f"{campaign_id}.*")):
        if path.suffix.lower() in SUFFIXES:
            return path
    raise FileNotFoundError(f"campaign {campaign_id!r} has no spec under {display_path(settings.campaigns_dir, settings)}/; "
                            "drop its file into inbox/ or run `video-pipeline run FILE`")


def load_active(settings: Settings, campaign_id: str) -> Campaign:
    return load_campaign(active_spec(settings, campaign_id), settings.data_dir,
                         display=display_path(active_spec(settings, campaign_id), settings))


INVALID = (CampaignError, PlanningError)

"""The words a newcomer reads match what happens: validate names every problem of a file in one pass, files are
named the same way by every command, offline progress says "would cost" from its first line, and the help counts
the assets the job really has."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from assets.jobs import STAGES
from tests.conftest import write
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.flow.intake import display_path, validate_file
from video_pipeline.spec.campaign import CampaignError

BROKEN = """version: 1
budget_usd: 5
videos:
  - id: opening
    shots:
      - prompt: "A lighthouse at dusk"
        image: samples/media/missing.png
  - id: opening
    shots:
      - prompt: "Waves break on the rocks"
"""


def test_validate_names_a_missing_field_a_duplicate_id_and_a_missing_image_in_one_pass(settings, data_dir):
    path = write(data_dir / "broken.yaml", BROKEN)
    with pytest.raises(CampaignError) as refused:
        validate_file(path, settings, display="broken.yaml")
    found = {(p.field, p.line) for p in refused.value.problems}
    assert ("campaign", 1) in found
    assert ("videos[1].id", 8) in found
    assert ("videos[0].shots[0].image", 7) in found
    assert any("no such file under the data directory" in p.message for p in refused.value.problems)


def test_a_file_outside_the_data_directory_is_named_as_given_not_by_its_base_name(settings, tmp_path):
    outside = tmp_path / "elsewhere" / "spot.yaml"
    assert display_path(outside, settings) == str(outside)
    assert display_path(settings.data_dir / "samples" / "spot.yaml", settings) == "data/samples/spot.yaml"


def test_offline_progress_says_would_cost_before_the_first_job_is_written(tmp_path):
    from video_pipeline.jobs.ledger import JobLedger
    from video_pipeline.report.progress import ledger_counts

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    JobLedger(url).dispose()                     # an empty ledger: the run has not written a job yet
    engine = sa.create_engine(url)
    try:
        first = ledger_counts(engine, "quick-clips", [("sparkle", 0, "k1"), ("restyle", 0, "k2")], 1.3, offline=True)
    finally:
        engine.dispose()
    assert first.dollars == "would cost $0.00 of $1.30 estimated"


def test_the_help_counts_the_assets_the_job_materializes():
    shown = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "--help"], capture_output=True, text=True,
                           cwd=PROJECT_ROOT, env={**os.environ, "COLUMNS": "200"}, timeout=60).stdout
    assert "five assets" not in shown
    assert f"every stage of campaign_job ({'eight' if len(STAGES) == 8 else len(STAGES)} assets" in shown

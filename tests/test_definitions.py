"""The code location loads, and shows the five stages with their lineage."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dagster import AssetKey

from video_pipeline.config import PROJECT_ROOT


def test_definitions_load_with_the_stages_in_lineage_order():
    from definitions import defs

    graph = defs().resolve_asset_graph()
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
               for k in graph.get_all_asset_keys()}
    # the campaign snapshot is the only way into a run: every stage that needs the spec reads it, never the file
    assert parents == {
        "campaign": set(),
        "prompt_batches": {"campaign"},
        "narration_tracks": {"campaign"},
        "routed_job_plans": {"campaign", "prompt_batches", "narration_tracks"},
        "generated_segments": {"campaign", "routed_job_plans"},
        "stored_clips": {"generated_segments"},
        # the segments' models, providers, jobs and prompts go into each video's Content Credentials
        "assembled_outputs": {"campaign", "stored_clips", "narration_tracks", "generated_segments",
                              "routed_job_plans"},
        "campaign_report": {"campaign", "routed_job_plans", "generated_segments", "assembled_outputs"},
    }
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == AssetKey("assembled_outputs")}
    assert "content_credentials_valid" in checks
    assert defs().resolve_job_def("campaign_job") is not None
    assert defs().resolve_sensor_def("campaign_inbox_sensor") is not None
    assert defs().resolve_schedule_def("nightly_batch_schedule").cron_schedule == "0 2 * * *"


@pytest.mark.slow
def test_workspace_yaml_validates_with_the_dagster_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
                          env={"DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_engine_package_imports_no_dagster():
    code = ("import sys, pkgutil, importlib, video_pipeline\n"
            "for m in pkgutil.walk_packages(video_pipeline.__path__, 'video_pipeline.'):\n"
            "    if not m.name.endswith('.__main__'):   # `python -m` entry points run the CLI when imported\n"
            "        importlib.import_module(m.name)\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] == 'dagster'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_readme_documents_every_variable_the_project_reads():
    import re

    from video_pipeline.config import VARIABLES

    readme = (PROJECT_ROOT / "README.md").read_text()
    code = "\n".join(p.read_text() for p in (PROJECT_ROOT / "video_pipeline").rglob("*.py"))
    read = set(re.findall(r"VIDEO_PIPELINE_[A-Z0-9_]+", code)) - {"VIDEO_PIPELINE_"}
    listed = {v for v in read if v in readme or v.replace("_FILE", "") in readme}
    missing = sorted(v for v in read - listed if not v.endswith("_BASE_URL"))
    assert missing == [], f"README does not document {missing}"
    assert set(VARIABLES) <= set(re.findall(r"VIDEO_PIPELINE_[A-Z0-9_]+", readme))


def test_only_the_settings_module_reads_the_process_environment():
    """Settings are resolved once, in video_pipeline/config.py; everything else receives them."""
    import re

    settings_module = PROJECT_ROOT / "video_pipeline" / "config.py"
    files = [PROJECT_ROOT / "definitions.py", *(p for root in ("video_pipeline", "assets", "resources", "bench")
                                                for p in (PROJECT_ROOT / root).rglob("*.py"))]
    offenders = [f"{path.relative_to(PROJECT_ROOT)}:{n}: {line.strip()}"
                 for path in files if path != settings_module
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if re.search(r"\bos\.(environ|getenv|putenv|unsetenv)\b|\bfrom os import\b.*\b(environ|getenv)\b", line)]
    assert offenders == []


def test_the_settings_read_every_key_an_adapter_needs():
    """An adapter's SDK key names must be among the variables the settings module reads (the only reader)."""
    from video_pipeline.config import SECRET_VARIABLES
    from video_pipeline.providers.live import ADAPTERS, required_keys

    needed = {key for provider in ADAPTERS for key in required_keys(provider)} | {"OPENAI_API_KEY",
                                                                                   "ELEVENLABS_API_KEY"}
    assert needed <= set(SECRET_VARIABLES), sorted(needed - set(SECRET_VARIABLES))


def test_each_stage_table_has_one_declared_schema_that_its_asset_publishes_and_its_rows_fit():
    """The Arrow schema in video_pipeline/tables.py is what the asset shows (dagster/column_schema) and what the
    IO manager writes: a frame with a column too many or too few is refused, naming the table."""
    import pandas as pd
    import pytest

    from definitions import defs
    from video_pipeline.tables import TABLES

    graph = defs().resolve_asset_graph()
    for name, table in TABLES.items():
        shown = graph.get(AssetKey(name)).metadata["dagster/column_schema"]
        assert [(c.name, c.type) for c in shown.columns] == [(n, t) for n, t, _ in table.describe()]
        empty = table.rows([])
        assert table.table(empty).schema.equals(table.schema)
        with pytest.raises(ValueError, match=name):
            table.table(empty.assign(stray=pd.Series(dtype=object)))
    plans = TABLES["routed_job_plans"]
    row = {n: None for n in plans.names} | {"campaign": "c", "video_id": "v", "segment_index": 0,
                                            "segment_count": 1, "shot_index": 0, "model": "m", "job_key": "k",
                                            "fallbacks": ["a", "b"], "options": {"shot_type": "multi"}}
    back = plans.frame(plans.table(plans.rows([row]))).iloc[0]
    assert back["fallbacks"] == ["a", "b"] and back["options"] == {"shot_type": "multi"}   # lists and maps, not text


def test_every_error_a_person_can_cause_shares_one_base():
    """A caller can catch PipelineError for any of them; each keeps its old base too (ValueError, RuntimeError)."""
    from video_pipeline.planning.catalog import CatalogError
    from video_pipeline.config import SettingsError
    from video_pipeline.jobs.engine import CampaignAborted
    from video_pipeline.errors import (BudgetExceeded, CampaignError, MediaError, PipelineError, PlanningError,
                                       ProviderError, SubmitUncertain)
    from video_pipeline.storage.netguard import DownloadRefused
    from video_pipeline.storage.s3store import StorageIntegrityError, StorageUnavailableError

    for cls in (CampaignError, PlanningError, SettingsError, CatalogError, ProviderError, SubmitUncertain,
                BudgetExceeded, DownloadRefused, MediaError, StorageIntegrityError, StorageUnavailableError,
                CampaignAborted):
        assert issubclass(cls, PipelineError), cls
    assert issubclass(CampaignError, ValueError) and issubclass(ProviderError, RuntimeError)

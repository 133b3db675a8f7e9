"""`video-pipeline run`: register a campaign partition and materialize its assets through Dagster.

The CLI (engine side, no Dagster import) reaches this through the `video_pipeline.launchers` entry point.
"""

import time
import warnings
from pathlib import Path

from video_pipeline.config import Settings
from video_pipeline.flow.intake import accept
from video_pipeline.report.page import report_path
from video_pipeline.tables import records

from .instance import prepared_instance
from .jobs import STAGES
from .partitions import campaign_partitions

#: Dagster's console log stays quiet: the CLI prints each failed step's own error in one line, and the run's event
#: log (the UI, DAGSTER_HOME) keeps the full trace
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: Dagster's wrapper around an error raised inside an op: its cause is the step's own error
_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


def step_error(error) -> str:
    """A failed step's own error in one line: the cause Dagster wrapped ("Error occurred while executing op …"),
    its lines joined; a person-causable error (PipelineError) without its class, any other with it (a bug)."""
    if error is None:
        return "failed (no error recorded)"
    while error.cls_name in _WRAPPERS and error.cause is not None:
        error = error.cause
    message = error.message.strip()
    head, _, rest = message.partition(": ")
    if rest and head.rsplit(".", 1)[-1] == error.cls_name:   # "module.Class: text" → "text"
        message = rest if _person_causable(error.cls_name) else f"{error.cls_name}: {rest}"
    # one line: a message written over several lines (a problem, then what to do) is joined, never cut
    return " ".join(line.strip() for line in message.splitlines() if line.strip()) or error.cls_name


def _person_causable(cls_name: str) -> bool:
    from video_pipeline import errors

    def names(cls) -> set[str]:
        return {cls.__name__}.union(*(names(sub) for sub in cls.__subclasses__()))

    return cls_name in names(errors.PipelineError)


def run_campaign(path: Path, settings: Settings, echo=print) -> dict:
    """Accept the file (validate, archive, install), add its partition and run `campaign_job` for it."""
    from dagster import BetaWarning, PreviewWarning

    with warnings.catch_warnings():
        # the project's choices of Dagster's beta and preview APIs (data versions, partitioned checks) are ours to
        # track, not a message for the person running a campaign
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        return _run(path, settings, echo)


def _run(path: Path, settings: Settings, echo) -> dict:
    started = time.monotonic()
    accepted = accept(path, settings, move=False)
    echo(f"campaign {accepted.campaign_id}: spec installed at {accepted.spec_path}")
    from definitions import build_definitions
    from resources import PipelineConfig

    # the run gets exactly these settings (whatever the environment says), through the one settings resource
    defs = build_definitions(PipelineConfig(
        data_dir=str(settings.data_dir), mode=settings.mode, time_scale=settings.time_scale,
        catalog_path=str(settings.catalog_path) if settings.catalog_path else None, x264_preset=settings.x264_preset))
    with prepared_instance(settings) as instance:
        if not instance.has_dynamic_partition(campaign_partitions.name, accepted.campaign_id):
            instance.add_dynamic_partitions(campaign_partitions.name, [accepted.campaign_id])
        echo(f"materializing {' → '.join(STAGES)} for partition {accepted.campaign_id}")
        result = defs.resolve_job_def("campaign_job").execute_in_process(
            partition_key=accepted.campaign_id, instance=instance, raise_on_error=False, run_config=QUIET_LOGS,
            tags={"campaign/spec_sha256": accepted.sha256, "campaign/source": path.name},
        )
        failures = [f"{event.step_key}: {step_error(event.step_failure_data.error)}"
                    for event in result.all_events if event.is_step_failure]
        run_id = result.run_id
    outputs = []
    if result.success:
        frame = result.output_for_node("assembled_outputs")   # the run's own table, wherever the profile keeps it
        outputs = records(frame, ["video_id", "state", "output_path", "duration_seconds", "target_seconds",
                                  "width", "height", "video_codec", "cost_usd", "error"])
    ok = result.success and outputs and all(o["state"] == "assembled" for o in outputs)
    spend, uncertain = _campaign_money(settings, accepted.campaign_id)
    report = report_path(settings.outputs_dir, accepted.campaign_id)
    reported = result.success or any(e.is_step_success and e.step_key == "campaign_report" for e in result.all_events)
    return {
        "campaign": accepted.campaign_id,
        "run_id": run_id,
        "status": "succeeded" if ok else "failed",
        "errors": failures,
        "outputs": outputs,
        "cost_usd": round(sum(o["cost_usd"] or 0 for o in outputs), 4),
        "spend": spend,
        "uncertain": uncertain,
        "report_path": str(report) if reported and report.exists() else None,
        "wall_seconds": round(time.monotonic() - started, 2),
    }


def _campaign_money(settings: Settings, campaign: str) -> tuple[dict, list[dict]]:
    """The campaign's bill from the ledger (every run's jobs, each once) and its uncertain segments by name."""
    from video_pipeline.jobs.ledger import JobLedger
    from video_pipeline.jobs.spend import campaign_spend, spent_words

    ledger = JobLedger(settings.ledger_url)
    try:
        spend = campaign_spend(ledger, campaign)
        uncertain = [{"job": r.id, "video_id": r.video_id, "segment_index": r.segment_index, "model": r.model,
                      "provider": r.provider,
                      "since": r.uncertain_since.isoformat() if r.uncertain_since else None,
                      "until": r.uncertain_until.isoformat() if r.uncertain_until else None}
                     for r in ledger.uncertain_rows(campaign=campaign)]
    finally:
        ledger.dispose()
    summary = {k: v for k, v in spend.as_dict().items() if k != "by_model"}
    return {**summary, "words": spent_words(spend)}, uncertain

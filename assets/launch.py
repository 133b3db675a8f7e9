"""`video-pipeline run`: register a campaign partition and materialize its assets through Dagster.

The CLI (engine side, no Dagster import) reaches this through the `video_pipeline.launchers` entry point.
"""

import json
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

from video_pipeline.config import PROJECT_ROOT, Settings

# Dagster and the engine's heavy modules are imported inside the functions: `run` starts the step processes'
# forkserver before anything else, so its imports run beside this process's own (see resources/forkserver.py)

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


def run_campaign(path: Path, settings: Settings, echo=print, submit: bool = False) -> dict:
    """Accept the file (validate, archive, install), add its partition and run `campaign_job` for it on the
    configured executor; with `submit`, hand the run to the instance's run queue instead and return its id."""
    if not submit:
        from resources.forkserver import start_step_processes

        start_step_processes(settings)   # first: the forkserver imports the steps' code while this process starts
    from dagster import BetaWarning, PreviewWarning

    with warnings.catch_warnings():
        # the project's choices of Dagster's beta and preview APIs (data versions, partitioned checks) are ours to
        # track, not a message for the person running a campaign
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        return _submit(path, settings, echo) if submit else _run(path, settings, echo)


def run_config(settings: Settings) -> dict:
    """The run's settings as the `pipeline` resource's config: run config travels with the run to every process
    that executes a step (a forked step process, a Celery worker), where a Python object would not."""
    return {**QUIET_LOGS, "resources": {"pipeline": {"config": _pipeline_fields(settings)}}}


def _pipeline_fields(settings: Settings) -> dict:
    fields = {"data_dir": str(settings.data_dir), "mode": settings.mode, "time_scale": settings.time_scale,
              "catalog_path": str(settings.catalog_path) if settings.catalog_path else None,
              "x264_preset": settings.x264_preset}
    return {k: v for k, v in fields.items() if v is not None}


def _run(path: Path, settings: Settings, echo) -> dict:
    started = time.monotonic()
    from video_pipeline.flow.intake import accept
    from video_pipeline.report.page import report_path
    from video_pipeline.tables import records

    from .instance import prepared_instance
    from .jobs import STAGES
    from .partitions import campaign_partitions

    accepted = accept(path, settings, move=False)
    echo(f"campaign {accepted.campaign_id}: spec installed at {accepted.spec_path}")
    from dagster import build_reconstructable_job, execute_job

    # the job as the UI runs it: rebuilt from `definitions` in each step's process, on the executor the settings
    # name (VIDEO_PIPELINE_EXECUTOR: a process per step, all in this one, or Celery workers)
    job = build_reconstructable_job("definitions", "campaign_job_definition",
                                    reconstructor_working_directory=str(PROJECT_ROOT))
    with prepared_instance(settings) as instance:
        if not instance.has_dynamic_partition(campaign_partitions.name, accepted.campaign_id):
            instance.add_dynamic_partitions(campaign_partitions.name, [accepted.campaign_id])
        echo(f"materializing {' → '.join(STAGES)} for partition {accepted.campaign_id}")
        result = execute_job(job, instance=instance, run_config=run_config(settings), raise_on_error=False, tags={
                "dagster/partition": accepted.campaign_id, "campaign/spec_sha256": accepted.sha256,
                "campaign/source": path.name})
        failures = [f"{event.step_key}: {step_error(event.step_failure_data.error)}"
                    for event in result.all_events if event.is_step_failure]
        run_id = result.run_id
        frame = _assembled_outputs(settings, accepted.campaign_id, instance) if result.success else None
    outputs = []
    if frame is not None:   # the run's own table, read back wherever the profile keeps it
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


def _submit(path: Path, settings: Settings, echo) -> dict:
    """The run created and submitted as the UI's Launch button does (`dagster job launch` on workspace.yaml): the
    instance's run coordinator queues it (production: the daemon starts it within the run queue's limits) or
    launches it at once; tagged with its partition and the providers its plan uses."""
    started = time.monotonic()
    from video_pipeline.flow.intake import accept
    from video_pipeline.flow.profiles import campaign_run_tags

    from .instance import prepared_instance
    from .partitions import campaign_partitions

    accepted = accept(path, settings, move=False)
    echo(f"campaign {accepted.campaign_id}: spec installed at {accepted.spec_path}")

    with prepared_instance(settings) as instance:
        if not instance.has_dynamic_partition(campaign_partitions.name, accepted.campaign_id):
            instance.add_dynamic_partitions(campaign_partitions.name, [accepted.campaign_id])
    run_id = str(uuid.uuid4())
    tags = {"dagster/partition": accepted.campaign_id, "campaign/spec_sha256": accepted.sha256,
            "campaign/source": path.name, **campaign_run_tags(accepted.spec_path, settings)}
    launch = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "launch", "-w", "workspace.yaml", "-j", "campaign_job",
         "--run-id", run_id, "--tags", json.dumps(tags), "--config-json", json.dumps(run_config(settings))],
        cwd=PROJECT_ROOT, capture_output=True, text=True)
    with prepared_instance(settings) as instance:
        run = instance.get_run_by_id(run_id)
    if launch.returncode != 0 or run is None:
        lines = [line for line in (launch.stderr or launch.stdout).splitlines() if line.strip()]
        return _submitted(accepted.campaign_id, run_id, "failed", started,
                          [f"submit: {lines[-1] if lines else f'dagster job launch exited {launch.returncode}'}"])
    echo(f"run {run_id} {run.status.value.lower()}")
    return _submitted(accepted.campaign_id, run_id, run.status.value.lower(), started, [])


def _submitted(campaign: str, run_id: str, status: str, started: float, errors: list[str]) -> dict:
    """A submitted run's --json: the run's shape with the run's status at submission (queued, starting, ...) and
    nothing it has not done yet."""
    return {"campaign": campaign, "run_id": run_id, "status": "failed" if errors else "submitted",
            "run_status": status, "errors": errors, "outputs": [], "cost_usd": 0.0, "spend": None,
            "uncertain": [], "report_path": None, "wall_seconds": round(time.monotonic() - started, 2)}


def _assembled_outputs(settings: Settings, campaign: str, instance):
    """The run's assembled_outputs table, read back through the profile's IO manager (files or the bucket)."""
    from definitions import build_definitions
    from resources import PipelineConfig

    return build_definitions(PipelineConfig(**_pipeline_fields(settings))).load_asset_value(
        "assembled_outputs", partition_key=campaign, instance=instance)


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

"""How a run executes its steps, chosen by VIDEO_PIPELINE_EXECUTOR: one process per step on this machine, all in
the run's process, or Celery workers on any machine that share the broker, the Dagster instance and the bucket.

A process per step starts by forking from a forkserver that has already imported the code every step runs
(`resources.step_process`), so a step pays a fork instead of a Python start and two seconds of imports."""

import multiprocessing
import os
import sys

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from video_pipeline.config import Settings

#: what the forkserver imports once per run process, in this order (Dagster adds its own executor module first)
PRELOAD = ["dagster._core.executor.multiprocess", "resources.step_process"]
FORKSERVER = {"forkserver": {"preload_modules": PRELOAD}}


def _forkserver_by_default(config: dict) -> dict:
    """The launchpad's executor config, with the forkserver start unless it names another start method."""
    return {**config, "start_method": config.get("start_method") or FORKSERVER}


#: Dagster's multiprocess executor, its steps forked from a preloaded forkserver (every other field as Dagster's)
multiprocess_forkserver = multiprocess_executor.configured(
    _forkserver_by_default, name="multiprocess", config_schema=multiprocess_executor.config_schema)


def executor_for(settings: Settings) -> ExecutorDefinition:
    if settings.executor == "multiprocess":
        return multiprocess_forkserver
    if settings.executor == "in_process":
        return in_process_executor
    from dagster_celery import celery_executor

    # Dagster reads a set URL from the environment when the run starts (a broker URL may carry a password:
    # never in run config); unset ones default to the local Redis
    def source(var: str, value: str | None, default: str):
        return {"env": var} if value else default

    return celery_executor.configured({
        "broker": source("VIDEO_PIPELINE_CELERY_BROKER", settings.celery_broker, "redis://127.0.0.1:6379/0"),
        "backend": source("VIDEO_PIPELINE_CELERY_BACKEND", settings.celery_backend, "redis://127.0.0.1:6379/1"),
    }, name="celery")


def start_step_processes(settings: Settings) -> None:
    """Start the forkserver of a run's step processes now, so it imports the code while the run's process does its
    own start-up (nothing to do for the other executors). Its output and its children's go to
    <data dir>/work/logs/step-processes.log: Dagster's step workers log each start at DEBUG to their stderr, and
    `video-pipeline run` keeps its terminal for progress and one-line errors (the full story is in the run's event
    log) and its stdout for --json."""
    if settings.executor != "multiprocess":
        return
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    logs = settings.work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "step-processes.log", "ab") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            forkserver.ensure_running()   # the forkserver inherits descriptors 1 and 2 as they are now
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)

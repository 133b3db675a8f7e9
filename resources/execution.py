"""How a run executes its steps, chosen by VIDEO_PIPELINE_EXECUTOR: one process per step on this machine, all in
the run's process, or Celery workers on any machine that share the broker, the Dagster instance and the bucket.

A process per step starts by forking from a forkserver that has already imported the code every step runs
(`resources.step_process`), so a step pays a fork instead of a Python start and two seconds of imports."""

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from video_pipeline.config import Settings

from .forkserver import PRELOAD, start_step_processes

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


__all__ = ["FORKSERVER", "PRELOAD", "executor_for", "multiprocess_forkserver", "start_step_processes"]

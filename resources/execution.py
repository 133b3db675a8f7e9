"""How a run executes its steps, chosen by VIDEO_PIPELINE_EXECUTOR: one process per step on this machine, all in
the run's process, or Celery workers on any machine that share the broker, the Dagster instance and the bucket."""

import os

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor


def executor_from_environment(environ: dict[str, str] | None = None) -> ExecutorDefinition:
    env = os.environ if environ is None else environ
    name = env.get("VIDEO_PIPELINE_EXECUTOR", "").strip() or "multiprocess"
    if name == "multiprocess":
        return multiprocess_executor
    if name == "in_process":
        return in_process_executor
    if name == "celery":
        from dagster_celery import celery_executor

        # read from the environment when the run starts (a broker URL may carry a password: never in run config)
        def source(var: str, default: str):
            return {"env": var} if env.get(var, "").strip() else default

        return celery_executor.configured({
            "broker": source("VIDEO_PIPELINE_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
            "backend": source("VIDEO_PIPELINE_CELERY_BACKEND", "redis://127.0.0.1:6379/1"),
        }, name="celery")
    raise ValueError(f"VIDEO_PIPELINE_EXECUTOR={name!r}: expected multiprocess, in_process or celery")

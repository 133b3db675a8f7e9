"""The forkserver a run's step processes fork from, started before the run's own process imports Dagster.

No Dagster here (nor in what this imports): `video-pipeline run` starts the forkserver first thing, so the
forkserver's imports (`resources.step_process`: Dagster, the definitions, the steps' code) run beside the run's
own start-up instead of after it, and the first step does not wait for them."""

import multiprocessing
import os
import sys

from video_pipeline.config import Settings

#: what the forkserver imports once per run process, in this order (Dagster adds its own executor module first)
PRELOAD = ["dagster._core.executor.multiprocess", "resources.step_process"]


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

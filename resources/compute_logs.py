"""Each step's stdout and stderr, kept under the Dagster home for the UI, mirrored only where someone can see it.

Dagster's `LocalComputeLogManager` copies a step's output to a file and mirrors that file back to the step
process's own stdout and stderr, with a `tail -F` and a Python watcher per stream: four processes per step. A step
forked for `video-pipeline run` writes to `<data dir>/work/logs/step-processes.log`, where a mirror only repeats
what the UI keeps (and costs about 0.1 s of CPU per step). `StepLogs` keeps the files the same way and mirrors
them only when the step's stdout or stderr is a terminal (`dagster dev` in a shell)."""

import sys
from collections.abc import Generator, Sequence
from contextlib import contextmanager

from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._utils import ensure_file, touch_file


class StepLogs(LocalComputeLogManager):
    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "StepLogs":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        if _seen(sys.stdout) or _seen(sys.stderr):
            with super().capture_logs(log_key) as context:
                yield context
            return
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        ensure_file(out)
        ensure_file(err)
        with redirect_to_file(sys.stdout, out), redirect_to_file(sys.stderr, err):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))   # as Dagster's: the capture is complete


def _seen(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):   # no stream, or a closed one
        return False

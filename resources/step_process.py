"""What the forkserver of a run's step processes imports before it forks each one (`resources.execution.PRELOAD`).

Dagster's beta and preview warnings are the project's to track, not lines on the stderr of the person running a
campaign: the forkserver inherits that stderr, and each step process inherits the forkserver's filters. Then what
every step process would otherwise import for itself (about 0.7 s of a step's start before this): the code the
steps run (`definitions.preload`), and the Dagster instance's storages, opened once here and closed again before
any step is forked (each step opens its own)."""

import warnings

from dagster import BetaWarning, PreviewWarning

warnings.simplefilter("ignore", BetaWarning)
warnings.simplefilter("ignore", PreviewWarning)

import definitions  # noqa: E402  (after the filters: importing the assets warns)

definitions.preload()


def _open_the_instance_once() -> None:
    from assets.instance import prepared_instance
    from video_pipeline.config import Settings

    try:
        with prepared_instance(Settings.from_env()):
            pass
    except Exception:   # only a head start: a step that needs the storages imports them itself
        pass


_open_the_instance_once()

"""Dagster resources: each builds engine objects from configuration and the environment.

The names below load when first used, so a module of this package that needs no Dagster (`resources.forkserver`)
imports without it."""

from importlib import import_module

_WHERE = {"ParquetTableIOManager": ".io", "PipelineConfig": ".pipeline", "VideoProviders": ".providers",
          "ClipStorage": ".storage"}

__all__ = ["ParquetTableIOManager", "PipelineConfig", "VideoProviders", "ClipStorage"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

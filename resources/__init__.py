"""Dagster resources: each builds engine objects from configuration and the environment."""

from .io import ParquetTableIOManager
from .pipeline import PipelineConfig
from .providers import VideoProviders
from .storage import ClipStorage

__all__ = ["ParquetTableIOManager", "PipelineConfig", "VideoProviders", "ClipStorage"]

"""Tables between stages are stored as Parquet, one file per asset and campaign partition."""


import os
from pathlib import Path

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from video_pipeline.atomic import private_sibling

from .pipeline import PipelineConfig


class ParquetTableIOManager(ConfigurableIOManager):
    """Reads and writes pandas tables as <tables dir>/<asset>/<partition>.parquet. Videos never pass through here."""

    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    base_dir: str | None = Field(default=None, description="default <data dir>/tables")

    def _path(self, context: InputContext | OutputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else self.pipeline.settings().tables_dir
        key = context.asset_partition_key if context.has_asset_partitions else "all"
        return base.joinpath(*context.asset_key.path) / f"{key}.parquet"

    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = private_sibling(path, "tmp")
        obj.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        context.add_output_metadata({"dagster/uri": path.resolve().as_uri()})

    def load_input(self, context: InputContext) -> pd.DataFrame:
        path = self._path(context)
        if not path.exists():
            raise FileNotFoundError(f"{path.name}: the upstream table for partition "
                                    f"{context.asset_partition_key if context.has_asset_partitions else ''} "
                                    f"has not been materialized yet")
        return pd.read_parquet(path)

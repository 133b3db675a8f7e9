"""What passes between stages: the campaign snapshot as JSON and every table as Parquet, one file per asset and
campaign partition."""


import json
import os
from pathlib import Path

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from video_pipeline.atomic import private_sibling
from video_pipeline.campaign import Campaign

from .pipeline import PipelineConfig


class ParquetTableIOManager(ConfigurableIOManager):
    """Reads and writes pandas tables as <tables dir>/<asset>/<partition>.parquet, and the validated campaign as
    <tables dir>/<asset>/<partition>.json (what later stages read instead of the campaign file). Videos never pass
    through here."""

    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    base_dir: str | None = Field(default=None, description="default <data dir>/tables")

    def _path(self, context: InputContext | OutputContext, suffix: str) -> Path:
        base = Path(self.base_dir) if self.base_dir else self.pipeline.settings().tables_dir
        key = context.asset_partition_key if context.has_asset_partitions else "all"
        return base.joinpath(*context.asset_key.path) / f"{key}{suffix}"

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | Campaign) -> None:
        path = self._path(context, ".json" if isinstance(obj, Campaign) else ".parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = private_sibling(path, "tmp")
        if isinstance(obj, Campaign):
            tmp.write_text(json.dumps(obj.snapshot(), ensure_ascii=False), encoding="utf-8")
        else:
            obj.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        context.add_output_metadata({"dagster/uri": path.resolve().as_uri()})

    def load_input(self, context: InputContext) -> pd.DataFrame | Campaign:
        snapshot = self._path(context, ".json")
        if getattr(context.dagster_type, "typing_type", None) is Campaign or snapshot.exists():
            if snapshot.exists():
                return Campaign.from_snapshot(json.loads(snapshot.read_text(encoding="utf-8")))
            path = snapshot
        else:
            path = self._path(context, ".parquet")
            if path.exists():
                return pd.read_parquet(path)
        raise FileNotFoundError(f"{path.name}: the upstream {context.asset_key.to_user_string()} for partition "
                                f"{context.asset_partition_key if context.has_asset_partitions else ''} "
                                f"has not been materialized yet")

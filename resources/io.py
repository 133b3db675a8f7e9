"""What passes between stages: the campaign snapshot (JSON) and every stage's table (Parquet of the schema declared
in video_pipeline/tables.py), one object per asset and campaign partition, under the data directory (local profile)
or in the bucket (production profile), so machines that share the bucket share the tables too."""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from video_pipeline.atomic import private_sibling
from video_pipeline.spec.campaign import Campaign
from video_pipeline.tables import TABLES

from .pipeline import PipelineConfig

if TYPE_CHECKING:
    import pandas as pd


class ParquetTableIOManager(ConfigurableIOManager):
    """Tables as <tables dir>/<asset>/<partition>.parquet and the campaign as <tables dir>/campaign/<partition>.json.
    Videos never pass through here."""

    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    base_dir: str | None = Field(default=None, description="default <data dir>/tables")

    # --- where the bytes go (the S3 subclass overrides these four) -----------------------------------------------

    def _put(self, key: str, data: bytes) -> str:
        path = self._local(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = private_sibling(path, "tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path.resolve().as_uri()

    def _get(self, key: str) -> bytes | None:
        path = self._local(key)
        return path.read_bytes() if path.is_file() else None

    def _local(self, key: str) -> Path:
        base = Path(self.base_dir) if self.base_dir else self.pipeline.settings().tables_dir
        return base / key

    # --- what is stored ------------------------------------------------------------------------------------------

    @staticmethod
    def _key(context: InputContext | OutputContext, suffix: str) -> str:
        partition = context.asset_partition_key if context.has_asset_partitions else "all"
        return "/".join([*context.asset_key.path, f"{partition}{suffix}"])

    def handle_output(self, context: OutputContext, obj: "pd.DataFrame | Campaign") -> None:
        if isinstance(obj, Campaign):
            uri = self._put(self._key(context, ".json"),
                            json.dumps(obj.snapshot(), ensure_ascii=False).encode("utf-8"))
            context.add_output_metadata({"dagster/uri": uri})
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = TABLES[context.asset_key.path[-1]]
        sink = pa.BufferOutputStream()
        pq.write_table(schema.table(obj), sink)     # refuses a frame that does not fit the declared schema
        uri = self._put(self._key(context, ".parquet"), sink.getvalue().to_pybytes())
        context.add_output_metadata({"dagster/uri": uri})

    def load_input(self, context: InputContext) -> "pd.DataFrame | Campaign":
        name = context.asset_key.path[-1]
        partition = context.asset_partition_key if context.has_asset_partitions else ""
        if name in TABLES:
            data = self._get(self._key(context, ".parquet"))
            if data is not None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = TABLES[name]
                table = pq.read_table(pa.BufferReader(data))
                if not set(schema.names) <= set(table.column_names) or any(
                        table.schema.field(f.name).type != f.type for f in schema.fields):
                    raise ValueError(f"the stored {name} table for partition {partition} was written with another "
                                     f"schema (an older version of the pipeline); materialize {name} again")
                return schema.frame(table)
        else:
            data = self._get(self._key(context, ".json"))
            if data is not None:
                return Campaign.from_snapshot(json.loads(data.decode("utf-8")))
        raise FileNotFoundError(f"the upstream {name} for partition {partition} has not been materialized yet")

"""Typed, small materialization metadata: counts, seconds, dollars, models and a short preview table; the type the
assets' tables have in Dagster.

Nothing heavy is imported here or by any asset module at import time (pandas, PyAV, the engine come when a step
runs): loading the definitions stays fast, for the UI, the daemon and every run's step processes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dagster import DagsterType, MetadataValue, TableColumn
from dagster import TableSchema as DagsterTableSchema

from video_pipeline.tables import TABLES, values

if TYPE_CHECKING:
    import pandas as pd


def _is_frame(_context, value) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


#: a stage's table as the assets pass it (Dagster checks each output is one); pandas is imported when a value is checked
DataFrame = DagsterType(name="DataFrame", type_check_fn=_is_frame, description="a pandas DataFrame: one stage table")


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return round(time.monotonic() - self.start, 3)


PREVIEW_ROWS = 20
#: who answers for the pipeline's assets (shown in the Dagster UI's owner filter)
OWNERS = ["team:media-engineering"]


def markdown_table(frame: pd.DataFrame, columns: list[str], rows: int = PREVIEW_ROWS) -> MetadataValue:
    """A markdown preview of the first rows; cells are shortened and pipes escaped."""
    import numpy as np
    import pandas as pd

    shown = frame[columns].head(rows)

    def cell(value) -> str:
        if isinstance(value, (list, tuple, np.ndarray)):
            value = ", ".join(str(v) for v in values(value))
        elif value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 80 else text[:77] + "..."

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    if len(frame) > rows:
        lines.append(f"\n{len(frame) - rows} more row(s) not shown")
    return MetadataValue.md("\n".join(lines))


def column_schema(asset: str) -> dict:
    """The asset's table schema (declared once, in video_pipeline/tables.py) as Dagster shows it in the catalog."""
    return {"dagster/column_schema": DagsterTableSchema(columns=[
        TableColumn(name, kind, description) for name, kind, description in TABLES[asset].describe()])}


def latency_by_model(frame: pd.DataFrame, column: str = "latency_seconds") -> MetadataValue:
    """Per-model count, mean and max latency in seconds, as JSON."""
    if frame.empty:
        return MetadataValue.json({})
    grouped = frame.groupby("model")[column].agg(["count", "mean", "max"]).round(3)
    return MetadataValue.json({m: {"count": int(r["count"]), "mean_seconds": float(r["mean"]),
                                   "max_seconds": float(r["max"])} for m, r in grouped.iterrows()})


def models_used(frame: pd.DataFrame) -> MetadataValue:
    return MetadataValue.text(", ".join(sorted(set(frame["model"].dropna()))) if len(frame) else "")

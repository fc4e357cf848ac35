"""Parquet tables with ablate's metadata: the searched parameters, metric and references ride along.

    write_parquet(trials, Path("report/trials.parquet"), sweep.param_info())
    read_metadata(Path("report/trials.parquet"))    # {"params": ["teacher_temp"], "metric": ...}

Written atomically (sweep_format.files): a reader never sees half a table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sweep_format.files import atomic_path

METADATA_KEY = b"ablate"  # parquet schema metadata: JSON with the searched params and their log flags


def write_parquet(df: pd.DataFrame, path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``df`` (no index) with ``metadata`` stored as JSON under the schema key ``ablate``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata is not None:
        merged = dict(table.schema.metadata or {})
        merged[METADATA_KEY] = json.dumps(metadata).encode()
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``ablate`` metadata of a parquet file written by ``write_parquet`` ({} if absent)."""
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}

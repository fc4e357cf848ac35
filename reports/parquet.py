"""Atomic writes: a reader (or a crashed writer) never sees half a file.

Every file of a report is written to a temporary file in the same folder, then renamed over the
target with ``os.replace`` (atomic on POSIX and Windows for paths on one file system).

    with atomic_path(Path("report/plot.png")) as tmp:
        fig.savefig(tmp, format="png")
    write_parquet(trials, Path("report/trials.parquet"), {"params": ["teacher_temp"]})
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"ablate"  # parquet schema metadata: JSON with the searched params and their log flags


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read by others
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


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

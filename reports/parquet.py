"""Parquet tables with ablate's metadata: the searched parameters, metric and references ride along.

    write_parquet(trials, Path("report/trials.parquet"), sweep.param_info())
    read_metadata(Path("report/trials.parquet"))    # {"params": ["teacher_temp"], "metric": ...}
    read_parquet(Path("report/trials.parquet"))     # the DataFrame; ReportError for a foreign column

Written atomically (sweep_format.files): a reader never sees half a table. Read with plain column
types only: an Arrow extension type (which ablate never writes) is refused before pandas sees it,
because a library may have registered one that unpickles its values (Ray's
``ray.data.arrow_pickled_object``, registered in any process that imported Ray Tune), and a
parquet file may come from anyone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reports.errors import ReportError
from sweep_format.files import atomic_path, loads
from sweep_format.layout import REFERENCE_KNN
from sweep_format.metrics import METRICS, MODES, is_percent
from sweep_format.records import is_search_pair
from sweep_format.text import printable

METADATA_KEY = b"ablate"  # parquet schema metadata: JSON with the searched params and their log flags


def write_parquet(df: pd.DataFrame, path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``df`` (no index) with ``metadata`` stored as JSON under the schema key ``ablate``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata is not None:
        merged = dict(table.schema.metadata or {})
        merged[METADATA_KEY] = json.dumps(metadata).encode()
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp, tmp.open("wb") as file:  # a file, not a path: Arrow takes paths as
        pq.write_table(table, file)                          # UTF-8 only, and a folder's name may not be
    return path


# What each key of the metadata must be (SweepDir.param_info writes them): a file from elsewhere
# whose metadata breaks one is refused in one line, not read as something else.
METADATA_KINDS: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("params", "log_params", "categorical_params"), (
        "a list of names", lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v))),
    **dict.fromkeys(("sweep", "algorithm"), ("a text", lambda v: isinstance(v, str))),
    "metric": (f"one of {', '.join(METRICS)}", lambda v: v in METRICS),
    "mode": (f"one of {', '.join(MODES)}", lambda v: v in MODES),
    "fixed": ("an object of trainer settings", lambda v: isinstance(v, dict)),
    "searched": ("a list of [metric, mode] pairs", lambda v: isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 2 and is_search_pair(*p) for p in v)),
    **dict.fromkeys(REFERENCE_KNN, ("a percentage from 0 to 100", is_percent)),
}


def unreadable(path: Path, exc: BaseException, what: str = "not readable as a parquet table") -> ReportError:
    """The one line for a file that is not a parquet table (empty, truncated, damaged, another format:
    Arrow's ArrowInvalid, or an OSError without errno for a damaged page), or whose pandas metadata
    pandas cannot follow (a KeyError, TypeError, ...)."""
    text = str(exc).strip().removeprefix("Could not open Parquet input source '<Buffer>': ")
    why = printable(text.splitlines()[0][:100]) if text else ""
    return ReportError(f"{path}: {what} ({exc.__class__.__name__}{': ' + why if why else ''}); expected a "
                       "table written by `ablate report`")


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``ablate`` metadata of a parquet file written by ``write_parquet`` ({} if absent);
    ReportError naming the file and key where it is not what ``write_parquet`` writes, or where the
    file is not a parquet table (``unreadable``)."""
    try:
        with path.open("rb") as file:  # a file, not a path: a folder's name may not be UTF-8 (write_parquet)
            raw = (pq.read_schema(file).metadata or {}).get(METADATA_KEY)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(path, exc) from None
    try:
        data = loads(raw) if raw else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: its ablate metadata is not a JSON object (written by `ablate report`)")
    for key, (kind, fits) in METADATA_KINDS.items():
        if data.get(key) is not None and not fits(data[key]):
            raise ReportError(f"{path}: its ablate metadata's {key} is {repr(data[key])[:60]}, not {kind}")
    return data


def read_parquet(path: Path) -> pd.DataFrame:
    """The table of a parquet file; ReportError naming the file and column if a column (or a field
    inside one) has an Arrow extension type, or naming the file if it is not a parquet table."""
    try:
        with path.open("rb") as file:  # a file, not a path (write_parquet)
            table = pq.read_table(file)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(path, exc) from None
    for field in table.schema:
        foreign = extension_in(field.type)
        if foreign is not None:
            raise ReportError(f"{path}: column {field.name!r} has the Arrow extension type {foreign} "
                              "(ablate's tables hold plain columns only); not read")
        if pa.types.is_nested(field.type):  # a list, struct or map: ablate writes one as its JSON text
            raise ReportError(f"{path}: column {field.name!r} is of type {field.type} (ablate's tables "
                              "hold plain columns only); not read")
    try:
        return table.to_pandas()
    except (pa.ArrowException, KeyError, TypeError, ValueError, IndexError) as exc:
        raise unreadable(path, exc, "its pandas metadata is not as pandas writes it") from None


def extension_in(dtype: pa.DataType) -> str | None:
    """The name of the first extension type in ``dtype`` or inside it (lists, structs, maps,
    dictionaries), else None."""
    if isinstance(dtype, pa.ExtensionType):
        return str(dtype.extension_name)
    if isinstance(dtype, pa.DictionaryType):
        return extension_in(dtype.value_type)
    for i in range(dtype.num_fields):
        found = extension_in(dtype.field(i).type)
        if found is not None:
            return found
    return None

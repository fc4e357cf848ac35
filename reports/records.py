"""Reading ablate's trial records: ``<sweep>/trials/<trial_id>.json`` (format: docs/CONTRACTS.md).

The records are the sweep's source of truth (status, reason, seed, repeat, point, baseline, every
epoch's metrics); Ray's own files are left to Ray. A record that cannot be read is returned as a
trial with status ``damaged`` and a reason naming the file, so a report says so instead of guessing.

    for rec in read_records(Path("runs/temps")): rec["status"], rec["epochs"][-1]["knn_top1"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDS_DIR = "trials"
FORMAT = "ablate.trial"
VERSIONS = (1,)  # record versions this reader understands


def read_records(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every trial record of the sweep, in file-name order; damaged ones as ``damaged`` stubs."""
    return [read_record(f) for f in sorted((Path(sweep_dir) / RECORDS_DIR).glob("*.json"))]


def read_record(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        return damaged(file, f"not readable as JSON ({exc.__class__.__name__}: {str(exc)[:80]})")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return damaged(file, f"not an ablate trial record (expected \"format\": \"{FORMAT}\")")
    if data.get("version") not in VERSIONS:
        return damaged(file, f"record version {data.get('version')!r}, this ablate reads {list(VERSIONS)}")
    if not isinstance(data.get("epochs"), list) or not data.get("trial_id"):
        return damaged(file, "record without trial_id or epochs")
    return data


def damaged(file: Path, why: str) -> dict[str, Any]:
    return {"trial_id": file.stem, "status": "damaged", "reason": f"{file.parent.name}/{file.name}: {why}",
            "collapsed": False, "epochs": [], "params": {}}

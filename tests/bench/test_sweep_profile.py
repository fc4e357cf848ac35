"""bench/sweep_profile.py: where a finished sweep's core-seconds went, from its own records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from sweep_format.files import write_json
from sweep_format.records import FORMAT, VERSION

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sweep_profile.py"


def load_script():
    spec = importlib.util.spec_from_file_location("sweep_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_split_adds_up_from_the_records(tmp_path: Path):
    """Two 1-CPU trials of 2 epochs (10 s each, 1 s of it waiting for batches), 25 s of trial wall
    each of which 3 s kNN, in a 30 s driver run on 2 CPUs: 60 core-seconds."""
    sweep = tmp_path / "temps"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "spec.yaml").write_text("name: temps\nresources: {cpu: 1}\n")
    (sweep / "history.jsonl").write_text(
        json.dumps({"event": "start", "at": 100.0, "started_at": 99.0, "command": "run", "cpus": 2.0}) + "\n"
        + json.dumps({"event": "end", "at": 129.0}) + "\n")
    for name in ("a", "b"):
        rows = [{"epoch": 0, "knn_eval_s": 1.0, "time_total_s": 1.0}]
        rows += [{"epoch": e, "epoch_time_s": 10.0, "data_wait_s": 1.0, "knn_eval_s": 1.0,
                  "time_total_s": 1.0 + 12.0 * e} for e in (1, 2)]
        rows[-1]["time_total_s"] = 25.0
        write_json(sweep / "trials" / f"{name}.json", {"format": FORMAT, "version": VERSION, "trial_id": name,
                                                        "status": "completed", "epochs": rows})
    result = load_script().profile(sweep)
    assert result["trials"] == 2 and result["core_seconds"] == 60.0
    assert [round(r["core_s"], 6) for r in result["rows"]] == [36.0, 4.0, 10.0, 10.0]
    assert result["knn_eval_core_s"] == 6.0
    table = load_script().table(result)
    assert "| training steps (forward, backward, update) | 36 | 60.0 % |" in table  # reports.cost.SPLIT's
    assert "of which kNN evaluation: 6 core-seconds (10.0 %)" in table


def test_a_start_with_fields_that_are_no_number_counts_them_as_absent() -> None:
    runs = load_script().driver_runs([{"event": "start", "at": 10.0, "cpus": "two", "started_at": "soon"},
                                      {"event": "end", "at": 25.0}])
    assert runs == [{"command": None, "cpus": 0.0, "wall_s": 15.0}]

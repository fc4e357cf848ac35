"""The Python API: the README's notebook example, run as written on copies of the session's tiny sweep."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.errors import UserError
from reports.ranking import best_point

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_blocks(section: str) -> list[str]:
    text = README.read_text().split(f"### {section}", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_notebook_example(real_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture) -> None:
    run_block, explore = readme_blocks("Python API (notebooks)")
    assert 'ablate.run("search_spaces/temps.yaml", set={"trainer.epochs": 2})' in run_block  # see test_run_*
    shutil.copytree(real_sweep, tmp_path / "runs" / "temps")
    shutil.copytree(real_sweep, tmp_path / "runs" / "temps-cifar10")  # README's CIFAR-10 run's name
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(explore, "README.md", "exec"), scope)
    sweep, best = scope["sweep"], scope["best"]
    trials = pd.read_parquet(tmp_path / "runs/temps/report/trials.parquet")
    assert len(sweep.trials) == len(trials) == 4 and sweep.epochs["epoch"].max() == 2
    assert scope["curves"].shape == (3, 4)  # epochs 0..2 x 4 trials
    point, _ = best_point(trials, ["teacher_temp", "student_temp", "warmup_teacher_temp_epochs"])
    same = trials[trials["point"] == point["point"]]  # the best configuration, as the report ranks
    assert best["point"] == point["point"] and best["knn_top1"] == same["knn_top1"].max()
    assert best["device_seconds"] > 0
    report_dir = scope["report_dir"]
    assert report_dir == tmp_path / "runs/temps/report" and (report_dir / "report.html").is_file()
    assert (tmp_path / "runs/compare/report.html").is_file()
    assert best["trial_id"] in capsys.readouterr().out


def test_load_reads_the_records_not_a_stale_report_and_rejects_other_folders(real_sweep: Path,
                                                                             tmp_path: Path) -> None:
    """The tables came from report/trials.parquet whenever one existed: written only with a report,
    so during or after `ablate resume` they showed the sweep as it was."""
    copy = tmp_path / "tiny"
    shutil.copytree(real_sweep, copy)
    sweep = ablate.load(copy)
    assert len(sweep.trials) == 4 and not (copy / "report").exists()  # reading writes nothing
    sweep.report()
    gone = sweep.trials["trial_id"].iloc[0]
    (copy / "trials" / f"{gone}.json").unlink()
    assert len(sweep.reload().trials) == 3 and gone not in set(ablate.load(copy).trials["trial_id"])
    assert sweep.spec["name"] == "tiny" and sweep.name == "tiny"
    with pytest.raises(UserError, match="not a sweep folder"):
        ablate.load(tmp_path)
    with pytest.raises(UserError, match="compare needs two or more sweeps"):
        ablate.compare(copy, out=tmp_path / "cmp")


def test_run_through_the_api_with_set_overrides(tracked_sweep: tuple[Path, str]) -> None:
    sweep = ablate.load(tracked_sweep[0])
    assert sweep.spec["trainer"]["epochs"] == 2 and sweep.spec["loggers"] == ["tensorboard", "mlflow"]
    assert sorted(sweep.trials["status"]) == ["completed", "completed"]


def test_run_rejects_a_bad_override_before_ray(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "search_spaces/temps.yaml"
    with pytest.raises(UserError, match="trainer.epochs"):
        ablate.run(spec, set={"trainer.epochs": -1}, storage=tmp_path)
    assert not any(tmp_path.iterdir())


def test_run_takes_every_option_of_the_command(tmp_path: Path) -> None:
    """README: `ablate.run` takes the `ablate run` options as arguments; it had no `connect_timeout`
    (`--connect-timeout`): `ablate.run(spec, address=..., connect_timeout=60)` was a TypeError."""
    import argparse
    import inspect

    from ablate.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = {a.dest for a in sub.choices["run"]._actions if a.dest not in ("help", "spec")}
    renamed = {"sets": "set"}
    assert {renamed.get(o, o) for o in options} <= set(inspect.signature(ablate.run).parameters)
    spec = Path(__file__).resolve().parents[2] / "search_spaces/temps.yaml"
    with pytest.raises(UserError, match="--connect-timeout 0"):  # passed on, checked before Ray starts
        ablate.run(spec, set={"trainer.epochs": 1}, storage=tmp_path, connect_timeout=0)
    assert not any(tmp_path.iterdir())


def test_a_parquet_column_that_would_unpickle_is_refused(real_sweep: Path, tmp_path: Path) -> None:
    """A shared sweep whose report table holds Ray's pickled-object column: in a process that imported
    Ray Tune (as ``ablate.run`` does), pandas would unpickle it; it is refused and nothing runs."""
    import os
    import pickle

    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.tune  # noqa: F401  (registers ray.data.arrow_pickled_object)
    from ray.data._internal.object_extensions.arrow import ArrowPythonObjectType

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return os.system, (f"touch {marker}",)

    copy = tmp_path / "shared"
    shutil.copytree(real_sweep, copy)
    ablate.load(copy).report()
    table = pq.read_table(copy / "report/trials.parquet")
    values = pa.array([pickle.dumps(Payload())] * table.num_rows, type=pa.large_binary())
    pq.write_table(table.append_column("notes", ArrowPythonObjectType().wrap_array(values)),
                   copy / "report/trials.parquet")
    assert len(ablate.load(copy).trials) == 4  # built from the records: the table is never read
    with pytest.raises(UserError, match="column 'notes' has the Arrow extension type ray.data.arrow_pickled"):
        ablate.compare(copy / "report/trials.parquet", real_sweep, out=tmp_path / "cmp")
    assert not marker.exists() and not (tmp_path / "cmp").exists()


def test_the_api_passes_small_floats_as_numbers() -> None:
    """ablate.run(spec, set={"trainer.lr": 1e-5}) wrote 'trainer.lr=1e-05' (JSON), which YAML 1.1 read
    back as the text '1e-05': the spec was refused ('expected a number') for a plain Python float."""
    from ablate.api import set_items
    from ablate.overrides import parse_sets

    values = {"trainer.lr": 1e-5, "trainer.weight_decay": 0.04, "trainer.teacher_temp": 1e-20}
    assert parse_sets(set_items(values)) == list(values.items())

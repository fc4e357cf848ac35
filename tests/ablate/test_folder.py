"""The sweep folder's reference kNN: the runs' own values, written once, a failure only warns; the
write probe's folders, taken away again when a run stops before its sweep folder."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from ablate.folder import check_writable, create, record_reference_knn, remove_made
from ablate.sweep_spec import load_spec
from sweep_format.layout import REFERENCE_FILE
from tests.helpers import OPTUNA_SPEC, write_spec
from trainables.baselines import reference_knn
from trainables.config import ConfigError


@pytest.fixture
def sweep(tmp_path: Path):
    spec = load_spec(write_spec(tmp_path, OPTUNA_SPEC))
    create(spec, tmp_path / "runs" / spec.name)
    return spec, tmp_path / "runs" / spec.name


def test_a_spec_that_cannot_be_resolved_makes_no_folder(tmp_path: Path, monkeypatch):
    spec = load_spec(write_spec(tmp_path, OPTUNA_SPEC))

    def unresolvable(self):
        raise ConfigError("trainer.seed=2147483648: Input should be less than or equal to 2147483647")

    monkeypatch.setattr(type(spec), "trainer_config", unresolvable)
    with pytest.raises(ConfigError):
        create(spec, tmp_path / "runs" / spec.name)
    assert not (tmp_path / "runs" / spec.name).exists()  # `ablate run` again is not told it exists


def test_the_reference_is_written_with_what_it_was_computed_on(sweep):
    spec, folder = sweep
    record_reference_knn(spec, folder)
    written = json.loads((folder / REFERENCE_FILE).read_text())
    expected = reference_knn(spec.trainer_config())
    assert {k: written[k] for k in expected} == expected
    assert (written["dataset"], written["arch"], written["seed"]) == ("synthetic", "test_vit", 0)


def test_a_folder_that_has_it_is_not_recomputed(sweep, monkeypatch):
    """`ablate resume` asks for it: only a sweep stopped before it was written computes it again."""
    spec, folder = sweep
    (folder / REFERENCE_FILE).write_text('{"pixel_knn_top1": 12.5, "untrained_knn_top1": 20.0}')
    monkeypatch.setattr("trainables.baselines.reference_knn",
                        lambda cfg: pytest.fail("reference kNN computed again"))
    record_reference_knn(spec, folder)
    assert json.loads((folder / REFERENCE_FILE).read_text()) == {"pixel_knn_top1": 12.5,
                                                                 "untrained_knn_top1": 20.0}


@pytest.mark.parametrize("damaged", ['{"pixel_knn_top1": "12.5", "untrained_knn_top1": 20.0}',
                                     '{"pixel_knn_top1": 12.5}', "{cut sho", "[]"])
def test_a_damaged_reference_is_computed_again(sweep, monkeypatch, damaged):
    """A reference_knn.json damaged or edited elsewhere was kept for ever: the report left its values
    out, and `ablate resume` never wrote them again."""
    spec, folder = sweep
    (folder / REFERENCE_FILE).write_text(damaged)
    monkeypatch.setattr("trainables.baselines.reference_knn",
                        lambda cfg: {"pixel_knn_top1": 22.87, "untrained_knn_top1": 30.4})
    record_reference_knn(spec, folder)
    written = json.loads((folder / REFERENCE_FILE).read_text())
    assert (written["pixel_knn_top1"], written["untrained_knn_top1"]) == (22.87, 30.4)


def test_a_failure_warns_and_writes_nothing(sweep, monkeypatch, capsys):
    spec, folder = sweep

    def broken(cfg):
        raise RuntimeError("no data on this machine")

    monkeypatch.setattr("trainables.baselines.reference_knn", broken)
    record_reference_knn(spec, folder)
    assert not (folder / REFERENCE_FILE).exists()
    assert "warning: reference kNN (raw pixels, untrained network) not computed: no data on this machine" \
        in capsys.readouterr().err


def test_the_write_probe_names_what_it_created_and_remove_made_takes_exactly_that(tmp_path: Path):
    existing = tmp_path / "mine"
    existing.mkdir()
    assert check_writable(existing, "--storage") is None  # nothing made: nothing to undo
    storage = existing / "a" / "b" / "runs"
    made = check_writable(storage, "--storage")
    assert made == existing / "a" and storage.is_dir() and list(storage.iterdir()) == []  # probe gone
    remove_made(made, storage)
    assert not (existing / "a").exists() and existing.is_dir()  # the user's own folder stays


def test_a_storage_below_a_file_is_named_not_called_a_full_disk(tmp_path: Path):
    """--storage notes.txt/runs said 'cannot write there (EEXIST: File exists) ... Free space'."""
    from ablate.errors import UserError

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=rf"--storage {tmp_path}/notes.txt/runs: {tmp_path}/notes.txt is a "
                                        "file, not a folder; give a folder"):
        check_writable(tmp_path / "notes.txt" / "runs", "--storage")


def test_remove_made_keeps_a_folder_another_run_wrote_into(tmp_path: Path):
    storage = tmp_path / "shared" / "runs"
    made = check_writable(storage, "--storage")
    (storage / "other-sweep").mkdir()  # a second `ablate run` on the same storage, meanwhile
    remove_made(made, storage)
    assert (storage / "other-sweep").is_dir()


@pytest.mark.parametrize(("code", "advice"), [(errno.ENOSPC, "Free space, or give another folder"),
                                              (errno.EDQUOT, "Free space, or give another folder"),
                                              (errno.ENOENT, "Give a writable folder"),
                                              (errno.EACCES, "Give a writable folder")])
def test_the_write_probes_advice_fits_its_errno(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int,
                                                advice: str):
    """--storage /proc/nope (ENOENT) and a folder of another user (EACCES) were told to free space."""
    from ablate.errors import UserError

    def fails(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "mkdir", fails)
    with pytest.raises(UserError) as raised:
        check_writable(tmp_path / "runs", "--storage")
    assert str(raised.value).endswith(f"; nothing was started. {advice}")
    assert f"({errno.errorcode[code]}: {os.strerror(code)})" in str(raised.value)

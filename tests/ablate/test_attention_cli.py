"""``ablate attention`` on a real tiny run, its trial-folder and checkpoint-file forms; bad sources."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from ablate.attention_plot import attention_figure, comparison_figure, render_comparison_panel
from ablate.cli import main
from tests.helpers import EPS, ghostscript_on_path
from trainables.attention import cls_attention_maps, held_out_images, load_teacher
from trainables.config import DINOConfig

TINY_SETS = ["arch=test_vit", "patch_size=4", "global_crops_size=16", "local_crops_size=8",
             "local_crops_number=1", "dataset=synthetic", "epochs=1", "batch_size=32", "out_dim=16",
             "head_hidden_dim=16", "head_bottleneck_dim=8", "eval_every=0", "device=cpu"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real one-epoch `ablate train` run of a tiny ViT (test_vit: 2 heads, patch 4, 16 px)."""
    run = tmp_path_factory.mktemp("attention") / "run"
    assert main(["train", "--out", str(run), "--no-progress", *sets(TINY_SETS)]) == 0
    return run


@pytest.fixture(scope="module")
def trial_dir(run_dir) -> Path:
    """A sweep-trial-like folder: params.json and checkpoint_000001/checkpoint.pt."""
    trial = run_dir.parent / "tune" / "train_abc_00000"
    (trial / "checkpoint_000001").mkdir(parents=True)
    shutil.copy(run_dir / "checkpoint.pt", trial / "checkpoint_000001" / "checkpoint.pt")
    params = load_teacher(run_dir, "cpu").config.model_dump(mode="json")
    (trial / "params.json").write_text(json.dumps({**params, "repeat": 0, "_stop": {}}))
    return trial


@pytest.fixture(scope="module")
def cnn_checkpoint(tmp_path_factory) -> Path:
    cfg = DINOConfig(arch="resnet10t", dataset="synthetic", device="cpu")
    path = tmp_path_factory.mktemp("cnn") / "checkpoint.pt"
    torch.save({"teacher": {}, "config": cfg.model_dump(mode="json"), "epoch": 1}, path)
    return path


def test_run_folder_writes_a_png(run_dir, tmp_path, capsys):
    out = tmp_path / "figs" / "attention.png"
    assert main(["attention", str(run_dir), "--images", "3", "--threshold", "0.6", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {out} (3 images x 2 heads)" in capsys.readouterr().err
    width, height = Image.open(out).size
    assert width > height  # 5 columns (image, 2 heads, mean, mask) by 3 rows


def test_a_run_and_image_named_in_other_bytes_are_drawn(run_dir, tmp_path, capsys):
    """A run folder or image named b"caf\xe9" (as Python keeps it, a lone surrogate) went into the
    figure's title and labels, and matplotlib ended in a TypeError traceback."""
    run = tmp_path / "caf\udce9"
    shutil.copytree(run_dir, run)
    picture = tmp_path / "photo\udce9.png"
    Image.new("RGB", (20, 20), (200, 10, 10)).save(picture, format="PNG")
    out = tmp_path / "a\udce9.png"
    assert main(["attention", str(run), "--image", str(picture), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {tmp_path}/a\\xe9.png (1 image x 2 heads)" in capsys.readouterr().err  # not "1 images"


def test_an_image_that_is_a_postscript_program_is_refused_without_running_ghostscript(
        run_dir, tmp_path, capsys, monkeypatch):
    """--image x.png holding EPS content went to Ghostscript (Pillow renders EPS with gs)."""
    marker = ghostscript_on_path(tmp_path, monkeypatch)
    picture = tmp_path / "x.png"
    picture.write_bytes(EPS)
    out = tmp_path / "a.png"
    assert main(["attention", str(run_dir), "--image", str(picture), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"ablate attention: error: --image {picture}: not a readable image (cannot identify" in err
    assert "as one of the formats ablate reads" in err and "Traceback" not in err
    assert not marker.exists() and not out.exists()


def test_an_image_this_user_may_not_read_is_said_so_with_the_chmod(run_dir, tmp_path, capsys, monkeypatch):
    """--image of a file this user may not read was "not a readable image ([Errno 13] Permission denied:
    'PATH')": the path twice, and no word that it wants a chmod (the machine's tests run as root, where
    chmod 000 changes nothing: the open is refused as the kernel refuses it)."""
    import trainables.attention as attention

    picture = tmp_path / "photo.png"
    Image.new("RGB", (20, 20), (200, 10, 10)).save(picture)

    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(attention, "open_image", refused)
    out = tmp_path / "a.png"
    assert main(["attention", str(run_dir), "--image", str(picture), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"ablate attention: error: --image {picture}: cannot be read (Permission denied); make it "
                   "readable by this user (its owner can: chmod -R a+rX)\n")
    assert not out.exists()


def test_trial_folder_and_checkpoint_file_sources(run_dir, trial_dir, tmp_path, capsys):
    picture = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(picture)
    for i, source in enumerate([trial_dir, run_dir / "checkpoint.pt"]):
        out = tmp_path / f"a{i}.png"
        code = main(["attention", str(source), "--images", "1", "--image", str(picture), "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        assert out.read_bytes()[:8] == PNG_MAGIC
        assert "(2 images x 2 heads)" in capsys.readouterr().err


def test_figure_has_labelled_columns(run_dir):
    teacher = load_teacher(run_dir, "cpu")
    images, names = held_out_images(teacher.config, 2)
    fig = attention_figure(images, cls_attention_maps(teacher.backbone, images), names, threshold=0.6)
    titles = [ax.get_title() for ax in fig.axes[:5]]
    assert titles == ["image", "head 1", "head 2", "mean", "mask 60%"]
    assert len(fig.axes) == 2 * 5
    assert fig.axes[5].get_ylabel() == names[1]


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file or folder"),
    ("empty", "no checkpoint.pt"),
    ("cnn", "arch 'resnet10t' has no self-attention: attention maps need a ViT "
            "(e.g. --set arch=vit_tiny_patch16_224)"),
    ("text", "not a readable PyTorch checkpoint"),
])
def test_bad_sources_exit_2_with_a_clear_message(case, message, cnn_checkpoint, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    source = {"missing": tmp_path / "nope", "empty": tmp_path, "cnn": cnn_checkpoint, "text": text}[case]
    out = tmp_path / "a.png"
    assert main(["attention", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate attention: error:") and message in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("where", ["pipe", "run/checkpoint.pt", "trial/checkpoint_000002/checkpoint.pt"])
def test_a_fifo_for_a_checkpoint_is_named_not_a_regular_file_and_not_opened(tmp_path, capsys, where):
    """A FIFO (or a device such as /dev/null) given as SOURCE, or in a run or trial folder's place of its
    checkpoint.pt, was reported as 'no checkpoint.pt' (or an older trial checkpoint was drawn). Now it is
    named as not a regular file, found by stat alone: opening it would wait for a writer for ever (the
    alarm only turns such a hang into a failure)."""
    import os
    import signal

    (tmp_path / "trial" / "checkpoint_000001").mkdir(parents=True)
    (tmp_path / "trial" / "checkpoint_000001" / "checkpoint.pt").write_bytes(b"")  # older: not drawn
    fifo = tmp_path / where
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    source = fifo if where == "pipe" else tmp_path / where.split("/")[0]

    def hung(*_: object) -> None:
        raise AssertionError("opened the FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        assert main(["attention", str(source), "--out", str(tmp_path / "a.png")]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ablate attention: error: {fifo}: not a regular file (a FIFO, socket or device); give a run folder "
        "of `ablate train`, a sweep trial folder or a checkpoint.pt file"]
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--threshold", "1.5"], "--threshold 1.5"),
    (["--images", "0"], "--images 0"),
    (["--out", "a.jpg"], "must be a .png file"),
    (["--image", "missing.png"], "--image missing.png: no such file"),
    (["--image", "."], "--image .: a folder; give image files"),
    (["--out", "notes.txt/a.png"], "--out notes.txt/a.png: notes.txt is a file, not a folder"),
    (["--out", "shown.png"], "--out shown.png: a folder; give the .png file to write"),
    # a device torch does not know was a RuntimeError traceback; an image side of 20000 px was killed for
    # memory; /dev/null was 'no such file'
    (["--device", "tpu"], "--device tpu: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["--device", "cuda:\u0661"], "--device cuda:\u0661: must be auto, cpu, cuda or cuda:N"),
    (["--image-size", "20000"], "--image-size 20000: must be a number of pixels from 1 to 4096"),
    (["--image", "/dev/null"], "--image /dev/null: not a regular file"),
])
def test_bad_arguments_exit_2(args, message, run_dir, tmp_path, capsys, monkeypatch):
    """An --out below a file ended in a FileExistsError traceback after the maps were computed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "shown.png").mkdir()
    argv = ["attention", str(run_dir), *args]
    if "--out" not in args:
        argv += ["--out", "a.png"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_comparison_panel_rows_are_sources_plus_untrained(run_dir, trial_dir, cnn_checkpoint, tmp_path):
    sources = {"best: teacher_temp=0.04": trial_dir, "baseline": run_dir, "cnn": cnn_checkpoint}
    fig = comparison_figure(sources, n_images=2)
    labels = [ax.get_ylabel().replace("\n", " ") for ax in fig.axes[::2]]  # first column of each row
    assert labels == ["image", "best: teacher_temp=0.04 (epoch 1)", "baseline (epoch 1)",
                      "untrained (random init)"]  # the CNN source is skipped
    assert len(fig.axes) == 4 * 2
    out = render_comparison_panel(sources, tmp_path / "report" / "attention.png", n_images=2,
                                  include_untrained=False)
    assert out == tmp_path / "report" / "attention.png" and out.read_bytes()[:8] == PNG_MAGIC


def test_comparison_panel_of_cnns_does_nothing(cnn_checkpoint, tmp_path):
    out = tmp_path / "attention.png"
    assert render_comparison_panel({"baseline": cnn_checkpoint}, out) is None
    assert not out.exists()


def test_an_out_folder_that_cannot_be_written_is_refused_before_the_teacher_is_loaded(
        run_dir, tmp_path, capsys, monkeypatch):
    """--out on a read-only disk (or /proc/x.png) loaded and ran the teacher, then ended in a traceback."""
    import errno

    import ablate.folder
    import trainables.attention

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    def never(*args, **kwargs):
        raise AssertionError("the teacher was loaded before --out was checked")

    monkeypatch.setattr(ablate.folder.tempfile, "NamedTemporaryFile", read_only)
    monkeypatch.setattr(trainables.attention, "load_teacher", never)
    out = tmp_path / "figs" / "a.png"
    assert main(["attention", str(run_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out.parent}: cannot write there (EROFS: Read-only file system)" in err
    assert "Traceback" not in err and not out.parent.exists()


@pytest.mark.parametrize("params, message", [
    (b"{not json", "not a readable trial config (JSONDecodeError: Expecting property name"),
    (b"\x80 binary", "not a readable trial config (UnicodeDecodeError"),
    (b"[1, 2]", "expected the trial's config (a JSON object), found list"),
])
def test_a_trial_folder_with_an_unreadable_params_json_exits_2_naming_it(params, message, tmp_path, capsys):
    """A Ray trial checkpoint has no 'config': its trial's params.json says the configuration."""
    trial = tmp_path / "trial_abc"
    (trial / "checkpoint_000001").mkdir(parents=True)
    torch.save({"teacher": {}, "epoch": 1}, trial / "checkpoint_000001" / "checkpoint.pt")
    (trial / "params.json").write_bytes(params)
    assert main(["attention", str(trial), "--out", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate attention: error: {trial / 'params.json'}: {message}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("folder", ["empty", "absent"])
def test_a_checkpoint_that_asks_for_a_download_gets_none(run_dir, tmp_path, capsys, monkeypatch, folder):
    """A checkpoint's config is not the user: one saying dataset=cifar10, download=true, data_path=X made
    `ablate attention --images N` download CIFAR-10 into X. Now nothing is fetched or written there, and
    the one line names the dataset, the folder and what attention's own options can do."""
    import urllib.request

    import torchvision

    from trainables.checkpoint import load_pt

    def no_network(*args, **kwargs):
        pytest.fail("ablate attention tried to download")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    data = tmp_path / "chosen by the file"
    if folder == "empty":
        data.mkdir()
    state = load_pt(run_dir / "checkpoint.pt", "checkpoint")
    state["config"] = {**state["config"], "dataset": "cifar10", "download": True, "data_path": str(data)}
    checkpoint = tmp_path / "theirs" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    torch.save(state, checkpoint)
    out = tmp_path / "figs" / "a.png"
    assert main(["attention", str(checkpoint), "--images", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    what = "no such folder" if folder == "absent" else \
        f"no {data}/cifar-10-batches-py/data_batch_1 and 6 more"
    assert err == [f"ablate attention: error: dataset 'cifar10' of the checkpoint: its files are not under "
                   f"data_path='{data}' ({what}), and ablate attention downloads nothing (the checkpoint's "
                   "download=true is not followed): draw images of your own with --image FILE (without "
                   "--images), or download the cifar10 files there first with `ablate train --set "
                   f"dataset=cifar10 --set 'data_path={data}' --set download=true --out DIR`"], err
    assert (sorted(data.iterdir()) == []) if folder == "empty" else not data.exists()
    assert not out.parent.exists()


def test_a_disk_that_fills_while_the_picture_is_saved_keeps_the_earlier_one(tmp_path, monkeypatch):
    """savefig wrote straight into the report's attention.png (or --out): a full disk left it
    truncated, where every other file of a sweep folder is replaced only once fully written."""
    import errno
    import os

    from matplotlib.figure import Figure

    from ablate.attention_plot import _save

    out = tmp_path / "attention.png"
    out.write_bytes(b"the earlier picture")

    def full(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", full)
    with pytest.raises(OSError) as caught:
        _save(Figure(), out)
    assert caught.value.filename == str(out)
    assert out.read_bytes() == b"the earlier picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attention.png"]

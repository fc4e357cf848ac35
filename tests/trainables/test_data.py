"""Datasets: the embedded digits split, and clear errors for missing data."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import EPS, ghostscript_on_path, write_image_folder
from trainables.config import ConfigError, DINOConfig, make_config
from trainables.data import build_datasets, load_digits_split


def test_digits_fixed_stratified_split():
    train, test = load_digits_split()
    assert (len(train), len(test)) == (1437, 360)
    assert train.images[0].size == (32, 32) and train.images[0].mode == "RGB"
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class
    again, _ = load_digits_split()
    assert np.array_equal(again.labels, train.labels)


def test_missing_torchvision_data_says_how_to_get_it(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"cifar10.*download=true"):
        build_datasets(DINOConfig(dataset="cifar10", data_path=str(tmp_path)))


@pytest.mark.parametrize(("dataset", "first", "count"), [
    ("cifar10", "cifar-10-batches-py/data_batch_1", 7), ("cifar100", "cifar-100-python/train", 3),
    ("stl10", "stl10_binary/train_X.bin", 5)])
def test_torchvision_files_are_looked_for_before_anything_runs(tmp_path: Path, dataset: str, first: str,
                                                               count: int):
    """A folder without the dataset's files is refused by the input check (before Ray), naming the
    first missing file, not by every trial at its start; with the files there the check passes."""
    from trainables.data import torchvision_missing
    from trainables.inputs import check_inputs

    cfg = DINOConfig(dataset=dataset, data_path=str(tmp_path))
    more = f" and {count - 1} more" if count > 1 else ""
    with pytest.raises(ConfigError, match=rf"the {dataset} files are not there \(no {tmp_path}/{first}"
                                          rf"{more}\); pass --set data_path=FOLDER with the {dataset} files"):
        check_inputs(cfg)
    missing = torchvision_missing(cfg)
    assert len(missing) == count
    for name in missing:
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_bytes(b"")
    check_inputs(cfg)  # present: reading them is the trainer's (a damaged file ends its trials at once)


def test_a_download_that_fails_is_one_clear_error_and_leaves_no_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """No network (this machine's case): torchvision's URLError used to end `ablate train` in a traceback."""
    import urllib.error

    from trainables.inputs import check_inputs

    calls: list[tuple[Path, bool]] = []

    def offline(root: Path, train: bool = True, download: bool = False) -> None:
        calls.append((Path(root), download))
        Path(root).mkdir(parents=True, exist_ok=True)  # as torchvision does before it fetches
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr("torchvision.datasets.CIFAR10", offline)
    root = tmp_path / "data"
    cfg = DINOConfig(dataset="cifar10", data_path=str(root), download=True)
    with pytest.raises(ConfigError, match=r"download=true: the download to data_path=.* failed \(.*Name or "
                                          r"service not known\); check this machine's network"):
        check_inputs(cfg)  # before Ray: once, in the driver, instead of in every trial at once
    assert calls == [(root, True)] and not root.exists()


def test_a_torchvision_data_path_that_is_a_file_is_said_so(tmp_path: Path):
    """It was 'no such folder', and with download=true 'the download failed (File exists); check this
    machine's network'."""
    from trainables.inputs import check_inputs

    file = tmp_path / "notes.txt"
    file.write_text("")
    with pytest.raises(ConfigError, match=rf"data_path='{file}': a file, not a folder for dataset 'cifar10'; "
                                          "pass --set data_path=FOLDER"):
        check_inputs(DINOConfig(dataset="cifar10", data_path=str(file)))
    with pytest.raises(ConfigError, match=rf"data_path='{file}': a file, not a folder; dataset 'stl10' is "
                                          r"read from \(and download=true writes it to\) a folder"):
        check_inputs(DINOConfig(dataset="stl10", data_path=str(file), download=True))
    assert file.read_text() == ""


@pytest.mark.parametrize(("make", "reason"), [
    ("fifo", "not a regular file (a FIFO, socket or device), not a folder"),
    ("dangling", "a link to nothing")])
def test_a_data_path_that_is_no_folder_is_worded_as_a_sweep_folder_is(tmp_path: Path, make: str, reason: str):
    """data.py worded its own folder check: a FIFO at data_path was 'a file, not a folder' and a link to
    nothing 'no such folder'; the reason is sweep_format.layout's, as for a sweep or storage folder."""
    from sweep_format.layout import not_a_folder

    path = tmp_path / "data"
    os.mkfifo(path) if make == "fifo" else path.symlink_to(tmp_path / "gone")
    assert not_a_folder(path, "x") == f"{path}: {reason} (expected x)"
    expected = re.escape(f"data_path='{path}': {reason}; dataset 'imagefolder' needs")
    with pytest.raises(ConfigError, match=expected):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(path)))


def test_imagefolder_needs_train_and_val(tmp_path: Path):
    """A data_path that is not there is said so (it was 'missing: ['train', 'val']', as if the folder
    existed); one without val/ names that sub-folder."""
    with pytest.raises(ConfigError, match=r"data_path='[^']*nope': no such folder; dataset 'imagefolder' "
                                          r"needs"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(tmp_path / "nope")))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"notes.txt': a file, not a folder; dataset 'imagefolder' needs"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(tmp_path / "notes.txt")))
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"train/ and val/ \(one folder per class inside each\); "
                                          r"missing: val/$"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(tmp_path)))


@pytest.mark.parametrize("dataset", ["digit_scenes", "digits", "synthetic"])
def test_a_data_path_a_built_in_dataset_would_ignore_is_refused(tmp_path: Path, dataset: str):
    """`--set data_path=my_images` without dataset imagefolder trained on the built-in set in silence."""
    write_image_folder(tmp_path, n=4)
    given = re.escape(str(tmp_path))
    with pytest.raises(ConfigError, match=rf"data_path '{given}' is not read by dataset '{dataset}', which "
                                          r"is built in: for your own images set dataset: imagefolder"):
        make_config({"dataset": dataset, "data_path": str(tmp_path)})
    for reads in ("imagefolder", "cifar10", "stl10"):
        assert make_config({"dataset": reads, "data_path": str(tmp_path)}).data_path == str(tmp_path)


def test_unreadable_images_are_named_before_training_or_skipped_and_counted(tmp_path: Path, capsys):
    root = write_image_folder(tmp_path / "data")
    good = root / "train" / "a" / "0.png"
    (root / "train" / "a" / "truncated.png").write_bytes(good.read_bytes()[:60])
    (root / "train" / "b" / "notes.jpg").write_text("not an image")
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root))
    with pytest.raises(ConfigError, match=r"truncated\.png: not a readable image .* \(and 1 more\); .*"
                                          r"skip_bad_images=true; in a sweep spec, trainer\.skip_bad_images"):
        build_datasets(cfg)
    train, test = build_datasets(cfg.model_copy(update={"skip_bad_images": True}))
    assert (len(train), len(test)) == (80, 80)
    assert "skipped 2 unreadable image files" in capsys.readouterr().err


def test_a_postscript_file_named_as_an_image_is_refused_without_running_ghostscript(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Pillow tells a format by a file's content: an EPS file named 0.png in a data folder someone
    else wrote was handed to Ghostscript to render (a PostScript program, run by ``gs -dSAFER``), and
    Ghostscript's failure ended the run in a CalledProcessError traceback. Raster formats only."""
    marker = ghostscript_on_path(tmp_path, monkeypatch)
    root = write_image_folder(tmp_path / "data", n=4)
    (root / "train" / "a" / "0.png").write_bytes(EPS)
    with pytest.raises(ConfigError, match=r"a/0\.png: not a readable image \(cannot identify image file .* "
                                          r"as one of the formats ablate reads \(JPEG, PNG, BMP, PPM"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))
    assert not marker.exists()
    train, _ = build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root), skip_bad_images=True))
    assert len(train) == 7 and not marker.exists()  # 2 classes x 4 images, one skipped


def test_a_fifo_named_as_an_image_is_refused_not_waited_on(tmp_path: Path):
    """torchvision lists every non-folder entry with an image extension: a named pipe ``pipe.jpg``
    (a tar or a data tool left it) was opened by the decode check, which waited for a writer for ever:
    ``ablate run`` hung before printing a line."""
    import signal

    class Hung(BaseException):  # no OSError, which the check takes as an unreadable image
        pass

    def hung(*_: object) -> None:
        raise Hung("waited on a FIFO")

    root = write_image_folder(tmp_path / "data", n=4)
    os.mkfifo(root / "train" / "a" / "pipe.jpg")
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root))
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(ConfigError, match=r"a/pipe\.jpg: not a readable image \(not a regular file "
                                              r"\(a FIFO, socket or device\)\); remove it, or skip"):
            build_datasets(cfg)
        train, _ = build_datasets(cfg.model_copy(update={"skip_bad_images": True}))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(train) == 8  # 2 classes x 4 images, the FIFO skipped


def test_files_that_are_not_images_by_their_extension_are_counted_and_named(tmp_path: Path, capsys):
    """torchvision lists only image extensions: an animated .gif or a .heic photo was left out of the
    dataset without a word (dot files, such as .DS_Store, are not worth one)."""
    root = write_image_folder(tmp_path / "data")
    good = root / "train" / "a" / "0.png"
    (root / "train" / "a" / "clip.gif").write_bytes(good.read_bytes())
    (root / "train" / "b" / "photo.HEIC").write_bytes(b"x")
    (root / "train" / "b" / ".DS_Store").write_bytes(b"x")
    train, test = build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))
    assert (len(train), len(test)) == (80, 80)
    err = capsys.readouterr().err
    assert "left out 2 files of" in err and "(.gif, .heic; e.g." in err and ".DS_Store" not in err
    assert err.count("left out") == 1  # val/ has none
    build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))  # the reference kNN's build
    assert "left out" not in capsys.readouterr().err  # said once: the driver built it 2-3 times a run


def test_a_folder_checked_once_is_decoded_again_only_when_its_files_changed(tmp_path: Path, monkeypatch):
    """The driver's input check, its reference kNN and every trial process on the machine build the
    same folder: its images are decoded once (the verdict kept in the process and in the cache
    folder), and again once a file is added, removed or rewritten."""
    from trainables import image_check

    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))
    root = write_image_folder(tmp_path / "data", n=3)
    bad = root / "train" / "a" / "bad.png"
    bad.write_text("not an image")
    decoded: list[str] = []
    real = image_check.image_problem
    monkeypatch.setattr(image_check, "image_problem", lambda path: decoded.append(path) or real(path))
    new_process = image_check._VERDICTS.clear
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root))
    for again in (None, new_process):
        if again:
            again()
        with pytest.raises(ConfigError, match=r"bad\.png: not a readable image"):
            build_datasets(cfg)
        assert len(decoded) == 7  # train's 6 images and bad.png, once; val is not reached
    good = (root / "train" / "a" / "0.png").read_bytes()  # the user mends bad.png in place, its size and
    before = bad.stat()                                  # modification time as they were (rsync -t, NFS)
    bad.write_bytes(good[:before.st_size].ljust(before.st_size, b"\0"))
    os.utime(bad, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (bad.stat().st_size, bad.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    decoded.clear()
    with pytest.raises(ConfigError, match=r"bad\.png: not a readable image"):  # still truncated: decoded
        build_datasets(cfg)
    assert len(decoded) == 7
    bad.write_bytes(good)  # a whole image now
    decoded.clear()
    train, test = build_datasets(cfg)
    assert (len(train), len(test)) == (7, 6) and len(decoded) == 13
    decoded.clear()
    new_process()
    build_datasets(cfg)
    assert decoded == []


def test_a_kept_verdict_that_is_not_this_folders_is_ignored(tmp_path: Path, monkeypatch):
    """The verdict file is JSON read with checks: damaged, crafted for another folder or another set of
    files, it only costs a decode; an unwritable cache folder too."""
    from trainables import image_check

    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))
    root = write_image_folder(tmp_path / "data", n=2)
    (root / "train" / "b" / "bad.png").write_text("not an image")
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root))
    with pytest.raises(ConfigError, match=r"bad\.png"):
        build_datasets(cfg)
    file = image_check.verdict_file(str((root / "train").resolve()))
    kept = json.loads(file.read_text())
    assert kept["unreadable"][0][0].endswith("bad.png")
    for crafted in ("{not json", json.dumps({**kept, "unreadable": []}).replace(kept["digest"], "0" * 32),
                    json.dumps({**kept, "unreadable": [], "folder": "/elsewhere"}),
                    json.dumps({**kept, "unreadable": [["x"]]}), json.dumps([1, 2])):
        file.write_text(crafted)
        image_check._VERDICTS.clear()
        with pytest.raises(ConfigError, match=r"bad\.png"):  # decoded again: still named
            build_datasets(cfg)
    (tmp_path / "not-a-folder").write_text("")  # a cache folder that cannot be made
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "not-a-folder"))
    image_check._VERDICTS.clear()
    with pytest.raises(ConfigError, match=r"bad\.png"):
        build_datasets(cfg)


def test_val_images_carry_the_label_train_gives_their_class(tmp_path: Path):
    """Each folder numbers its own classes: a val/ without one of train/'s classes would label its fox
    images as train's dog (silently wrong kNN); a val class that train/ lacks is an error."""
    import shutil

    root = write_image_folder(tmp_path / "data", n=2)  # classes a, b
    for split in ("train", "val"):
        shutil.copytree(root / split / "b", root / split / "c")
    shutil.rmtree(root / "val" / "b")  # val: a, c
    train, test = build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))
    assert train.class_to_idx == {"a": 0, "b": 1, "c": 2}
    assert sorted({(Path(p).parent.name, y) for p, y in test.samples}) == [("a", 0), ("c", 2)]
    assert [y for _, y in test] == [0, 0, 2, 2] and test.targets == [0, 0, 2, 2]
    (root / "val" / ".ipynb_checkpoints").mkdir()  # a folder without images is no class
    assert build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))[1].targets == [0, 0, 2, 2]
    shutil.copytree(root / "val" / "c", root / "val" / "owl")
    with pytest.raises(ConfigError, match=r"val: class folders owl have no folder of the same name with "
                                          r"images in "):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))
    shutil.rmtree(root / "val" / "owl")
    for image in (root / "train" / "c").iterdir():  # train/c without images: val's c could never be right
        image.unlink()
    with pytest.raises(ConfigError, match=r"val: class folders c have no folder of the same name with "
                                          r"images in .*train; the kNN"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))


def test_a_one_class_image_folder_says_its_knn_measures_nothing(tmp_path: Path, capsys):
    """Unlabelled images in one class folder train, but kNN top-1 is 100 % at every epoch: a sweep
    ranked by it ranked ties, without a word. Said once, where the folder is checked before the run."""
    import shutil

    from trainables.inputs import check_data

    root = write_image_folder(tmp_path / "data", n=4)
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root), batch_size=2)
    check_data(cfg)
    assert "holds one class" not in capsys.readouterr().err
    for split in ("train", "val"):
        shutil.rmtree(root / split / "b")
    check_data(cfg)
    said = (f"{root / 'train'} holds one class (a): the kNN evaluation labels every val image with it, so "
            "kNN top-1 is 100 % whatever the network learned; rank by the loss (a sweep's metric: loss)")
    assert capsys.readouterr().err.count(said) == 1


def test_an_empty_image_folder_is_an_error(tmp_path: Path):
    root = write_image_folder(tmp_path / "data", n=0)
    with pytest.raises(ConfigError, match=r"train: no image files"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))
    for folder in (root / "train").iterdir():
        folder.rmdir()
    with pytest.raises(ConfigError, match=r"train: no image files"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))


def test_in_memory_datasets_become_one_uint8_tensor():
    import types

    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import Subset

    from trainables.data import ImageList, in_memory, make_synthetic

    train, _ = make_synthetic(n_train=6, size=12)
    images, labels = in_memory(train)
    assert images.shape == (6, 3, 12, 12) and images.dtype == torch.uint8
    assert torch.equal(images[2].permute(1, 2, 0), torch.from_numpy(np.array(train.images[2])))
    assert torch.equal(labels, torch.as_tensor(train.labels))
    sub_images, sub_labels = in_memory(Subset(train, [4, 1]))
    assert torch.equal(sub_images, images[[4, 1]]) and torch.equal(sub_labels, labels[[4, 1]])
    cifar_like = types.SimpleNamespace(data=np.zeros((5, 32, 32, 3), np.uint8), targets=[0, 1, 2, 3, 4])
    assert in_memory(cifar_like)[0].shape == (5, 3, 32, 32)
    stl_like = types.SimpleNamespace(data=np.zeros((5, 3, 96, 96), np.uint8), labels=np.arange(5))
    assert in_memory(stl_like)[0].shape == (5, 3, 96, 96)
    mixed = ImageList([Image.new("RGB", (8, 8)), Image.new("RGB", (9, 8))], np.array([0, 1]))
    assert in_memory(mixed) is None  # different sizes: the per-image path


@pytest.mark.parametrize("dataset", ["synthetic", "digits", "digit_scenes", "imagefolder"])
def test_the_datasets_that_read_num_workers_are_those_not_held_in_memory(tmp_path: Path, dataset: str):
    """DATASET_KEYS says which datasets read num_workers (a warning names the others): those the trainer
    cannot hold in memory, whose images DataLoader workers read (trainables.dino.trainer._make_loader)."""
    from trainables.config import DATASET_KEYS
    from trainables.data import in_memory

    path = str(write_image_folder(tmp_path / "f", n=2)) if dataset == "imagefolder" else None
    train, test = build_datasets(make_config({"dataset": dataset, "data_path": path}))
    held = in_memory(train) is not None and in_memory(test) is not None
    assert held == (dataset not in DATASET_KEYS["num_workers"])


def test_a_16_bit_image_is_scaled_to_8_bits_not_clipped(tmp_path: Path):
    """PIL's convert('RGB') clipped 16-bit greyscale at 255: a 16-bit PNG trained as a white picture."""
    from PIL import Image

    root = write_image_folder(tmp_path / "data", n=4)
    wide = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257)  # 0..65535 in 256 steps
    Image.fromarray(wide).save(root / "train" / "a" / "wide.png")
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root), global_crops_size=16, local_crops_size=8)
    train, _ = build_datasets(cfg)
    (i,) = [i for i, (path, _) in enumerate(train.samples) if path.endswith("wide.png")]
    pixels = np.asarray(train[i][0])
    assert pixels.shape == (16, 16, 3) and (pixels[..., 0] == np.arange(256).reshape(16, 16)).all()


READABLE = r"; make it readable by this user \(its owner can: chmod -R a\+rX\)"


@pytest.mark.parametrize(("folder", "expected"), [
    ("train/a", r"train/a: cannot be listed \(Permission denied\) \(expected \.jpg, .* files of the class a\)"
                rf"{READABLE}, or move it out of \S*/train$"),
    ("train", r"train: cannot be listed \(Permission denied\) \(expected one sub-folder per class holding "
              rf"\.jpg, .* files\){READABLE}$")])
def test_a_folder_that_cannot_be_listed_is_named_not_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              folder: str, expected: str):
    """torchvision's walk skipped a class folder it could not list (no permission): its class trained
    empty; an unlistable train/ was reported as a disk that refused a write. The two are said in one
    wording (sweep_format.layout.unlisted), with what to do: a class folder read 'train/a: cannot be read
    (Permission denied); its images would be left out ...', train/ 'cannot be listed' and no remedy."""
    root = write_image_folder(tmp_path / "data", n=4)
    scandir = os.scandir

    def denied(path):  # as for a user without read permission on the folder
        if str(path).endswith(os.path.join(*folder.split("/"))):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root), global_crops_size=16, local_crops_size=8)
    with pytest.raises(ConfigError, match=expected):
        build_datasets(cfg)


@pytest.mark.skipif(os.geteuid() == 0, reason="chmod 000 does not stop root")
def test_a_class_folder_chmod_000_is_named_as_an_unlistable_train_folder_is(tmp_path: Path):
    """The same fault as above, made with chmod rather than a refusing os.scandir."""
    root = write_image_folder(tmp_path / "data", n=4)
    locked = root / "train" / "b"
    locked.chmod(0)
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root), global_crops_size=16, local_crops_size=8)
    try:
        expected = (rf"^data_path='{re.escape(str(root))}': train/b: cannot be listed \(Permission "
                    rf"denied\) \(expected .* class b\){READABLE}, or move ")
        with pytest.raises(ConfigError, match=expected):
            build_datasets(cfg)
    finally:
        locked.chmod(0o755)


IMAGE_DENIED = r": cannot be read \(Permission denied\)" + READABLE


def test_an_image_this_user_may_not_read_is_named_so_not_called_a_bad_image(tmp_path: Path, monkeypatch):
    """A chmod 000 image was refused as "not a readable image ([Errno 13] Permission denied: PATH); remove
    it, or skip ...": the path twice, and the advice to delete a good image. It says what a class folder
    this user may not list says. The verdict kept in the cache stands only while the file is refused
    still (joining its group changes no metadata that the digest sees), and one kept by an older
    version, with the old advice, is not reused."""
    from PIL import Image

    from trainables import image_check

    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))
    root = write_image_folder(tmp_path / "data", n=3)
    locked = root / "train" / "a" / "0.png"
    real_open = Image.open

    def refusing(file: object, *args: object, **kwargs: object) -> Image.Image:
        if str(file) == str(locked):  # as builtins.open refuses it for a user without read permission
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(Image, "open", refusing)
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root))
    expected = (rf"^data_path='{re.escape(str(root))}': train/a/0\.png{IMAGE_DENIED}, or skip unreadable "
                "files with skip_bad")
    for process in ("first", "next"):  # decoded, then the kept verdict
        image_check._VERDICTS.clear()
        with pytest.raises(ConfigError, match=expected) as refused:
            build_datasets(cfg)
        assert "not a readable image" not in str(refused.value) and "remove it" not in str(refused.value)
        assert str(refused.value).count("0.png") == 1, process
    file = image_check.verdict_file(str((root / "train").resolve()))
    kept = json.loads(file.read_text())
    old = [[str(locked), f"[Errno 13] Permission denied: '{locked}'"]]
    file.write_text(json.dumps({**kept, "unreadable": old}))
    image_check._VERDICTS.clear()  # an older version's verdict: decoded anew, said anew
    with pytest.raises(ConfigError, match=expected):
        build_datasets(cfg)
    monkeypatch.setattr(Image, "open", real_open)  # now readable (the user joined the file's group)
    image_check._VERDICTS.clear()
    train, _ = build_datasets(cfg)
    assert len(train) == 6


@pytest.mark.skipif(os.geteuid() == 0, reason="chmod 000 does not stop root")
def test_an_image_chmod_000_is_named_as_refused_and_read_once_made_readable(tmp_path: Path, monkeypatch):
    """The same fault as above, made with chmod rather than a refusing open."""
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))
    root = write_image_folder(tmp_path / "data", n=3)
    locked = root / "train" / "a" / "0.png"
    locked.chmod(0)
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root))
    try:
        with pytest.raises(ConfigError, match=rf"^{re.escape(str(locked))}{IMAGE_DENIED}"):
            build_datasets(cfg)
    finally:
        locked.chmod(0o644)
    train, _ = build_datasets(cfg)
    assert len(train) == 6


@pytest.mark.parametrize("target", ["..", ".", "/"])
def test_a_link_to_a_folder_holding_it_is_refused_not_walked(tmp_path: Path, target: str):
    """A class folder holding a symbolic link to itself or a folder above it (``ln -s .. loop``): torchvision
    follows links, so it read the images again under each turn of the loop until the kernel's limit (40
    copies of every image, the other classes' under this class's label), or walked the disk for ``/``."""
    root = write_image_folder(tmp_path / "data", n=4)
    (root / "train" / "a" / "loop").symlink_to(target)
    cfg = DINOConfig(dataset="imagefolder", data_path=str(root), global_crops_size=16, local_crops_size=8)
    with pytest.raises(ConfigError, match=r"train/a/loop: a symbolic link to .*, a folder that holds it"):
        build_datasets(cfg)
    (root / "train" / "a" / "loop").unlink()
    (root / "train" / "a" / "more").symlink_to(root / "val" / "a")  # images elsewhere: read once, as they are
    train, _ = build_datasets(cfg)
    assert len(train) == 12


def test_a_step_larger_than_a_bundled_dataset_is_refused_by_the_input_check():
    """`ablate train --workers 3 --set batch_size=1500` started Ray and its workers, which each refused
    the 4,500-image step of digit_scenes (4,311 images); the input check sizes it before anything runs."""
    from trainables.data import known_train_size
    from trainables.inputs import check_data

    cfg = DINOConfig(batch_size=1500)
    n_train = known_train_size(cfg)
    assert n_train is not None and 1500 * 2 <= n_train < 1500 * 3
    check_data(cfg, workers=2)
    with pytest.raises(ConfigError, match=rf"batch_size=1500 x grad_accum_steps=1 x 3 workers: larger than "
                                          rf"the {n_train} training images of 'digit_scenes'"):
        check_data(cfg, workers=3)


def test_a_step_larger_than_cifar_is_refused_once_its_files_are_there(tmp_path: Path):
    """`ablate train --workers 2 --set dataset=cifar10 --set batch_size=30000`: the bundled datasets were
    sized before Ray, CIFAR only by each worker once Ray and the workers had started. Its files are
    looked for first; then the step is sized by the split torchvision reads (no file is read)."""
    from trainables.data import torchvision_missing
    from trainables.inputs import check_data

    cfg = DINOConfig(dataset="cifar10", data_path=str(tmp_path), batch_size=30000)
    with pytest.raises(ConfigError, match="the cifar10 files are not there"):
        check_data(cfg, workers=2)
    for name in torchvision_missing(cfg):  # placeholders: their names are all the check looks at
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(b"")
    check_data(cfg, workers=1)
    with pytest.raises(ConfigError, match=r"^batch_size=30000 x grad_accum_steps=1 x 2 workers: larger than "
                                          r"the 50000 training images of 'cifar10'$"):
        check_data(cfg, workers=2)


def test_images_above_pillows_bomb_limit_are_said_in_one_line(tmp_path: Path, monkeypatch, capsys):
    """An image above Pillow's decompression-bomb warning limit (89,478,485 pixels: a scan, a slide)
    printed Pillow's two-line DecompressionBombWarning, naming Pillow's own source line, and nothing
    of what it means for the run. One line now, once: how many, the largest, why it matters. Pillow's
    limit is lowered here to a 24 x 24 image's 576 pixels (twice it, 1,152, would not decode)."""
    import warnings

    from PIL import Image

    from trainables import data, image_check

    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    monkeypatch.setattr(data, "_WARNED", set())
    root = write_image_folder(tmp_path / "data", n=3, size=20)  # 400 pixels: below
    big = root / "train" / "b" / "big.png"
    Image.new("RGB", (24, 24), (9, 9, 9)).save(big)
    Image.new("RGB", (23, 23), (9, 9, 9)).save(root / "train" / "a" / "big.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's own warning would fail the build
        ds = build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))[0]
        image_check._VERDICTS.clear()  # a second process: the kept verdict, no decode, no second line
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))
    assert len(ds) == 8  # large images are trained on
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"ablate: warning: 2 images in {root / 'train'} have more than 500 pixels (largest: {big}, 576): ")

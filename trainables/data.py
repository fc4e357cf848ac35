"""Datasets: ``digit_scenes`` (default) and ``digits`` (bundled, offline), ``synthetic`` (tests),
torchvision sets, image folders.

Each dataset is a pair of (train, test) sequences of ``(PIL image, label)``. Labels are used
only by the kNN evaluation, never by DINO training.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from sweep_format.files import user_path
from sweep_format.layout import folder_problem, unlisted
from sweep_format.text import plural
from trainables.config import MAX_STEPS, TORCHVISION, TORCHVISION_ROOT, ConfigError, DINOConfig
from trainables.data_workers import bad_image
from trainables.digit_scenes import SceneDesign, make_digit_scenes, source_split
from trainables.image_check import denied, large_images, unreadable_images
from trainables.image_files import open_image
from trainables.images import ImageList
from trainables.warning import warn

DIGITS_SIZE = 32  # the 8x8 digits are upsampled once, bicubic, to this side
SYNTHETIC_TRAIN = 160  # training images of ``synthetic``
# Training images of the torchvision datasets as _torchvision reads them (STL-10: train+unlabeled);
# torchvision checks each file's MD5 before it reads one, so these are the only sizes they have.
TORCHVISION_TRAIN = {"cifar10": 50_000, "cifar100": 50_000, "stl10": 105_000}


WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit greyscale (PNG, TIFF), as PIL opens it


def to_rgb(image: Image.Image) -> Image.Image:
    """An image as 8-bit RGB. A 16-bit greyscale image is scaled from 0-65535 (PIL's own
    ``convert("RGB")`` clips it at 255: a 16-bit PNG trained as an almost white picture)."""
    if image.mode in WIDE_GREY:
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def open_rgb(path: str) -> Image.Image:
    """An image file as 8-bit RGB (``to_rgb``); torchvision's loader converts it with PIL alone, and
    lets PIL open any format it knows (``open_image`` allows raster formats only). A file that does not
    read (the folder changed since ``checked_image_folder`` decoded it) is a ``BadImageFile`` naming it:
    PIL's error, raised in a DataLoader worker, named no file."""
    try:
        with open(path, "rb") as f:
            return to_rgb(open_image(f))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise bad_image(path, exc) from None


class Transformed(Dataset):
    """Any (image, label) dataset with a transform applied on access."""

    def __init__(self, base: Dataset, transform: Callable) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img, label = self.base[i]
        return self.transform(to_rgb(img)), int(label)


def load_digits_split(seed: int = 0) -> tuple[ImageList, ImageList]:
    """scikit-learn's bundled 8x8 digits (1797 images), a fixed stratified 80/20 split: the source
    split of ``digit_scenes``."""
    from trainables.bundled_digits import load_digits

    digits, target = load_digits()
    pixels = (digits / 16.0 * 255.0).round().clip(0, 255).astype(np.uint8)
    bicubic = Image.Resampling.BICUBIC
    images = [Image.fromarray(p, mode="L").resize((DIGITS_SIZE, DIGITS_SIZE), bicubic).convert("RGB")
              for p in pixels]
    idx_train, idx_test = source_split(seed)
    pick = lambda idx: ImageList([images[i] for i in idx], target[idx])
    return pick(idx_train), pick(idx_test)


def make_synthetic(n_train: int = SYNTHETIC_TRAIN, n_test: int = 80, num_classes: int = 4, size: int = 16,
                   seed: int = 0) -> tuple[ImageList, ImageList]:
    """Tiny, learnable images for tests: each class a colour and an oriented bar, plus noise."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(40, 215, size=(num_classes, 3))

    def sample(n: int) -> ImageList:
        labels = np.arange(n) % num_classes
        images = []
        for c in labels:
            img = rng.normal(0, 20, size=(size, size, 3)) + palette[c] * 0.5
            pos = rng.integers(size // 4, 3 * size // 4)
            if c % 2 == 0:
                img[pos - 1:pos + 2, :, :] += palette[c]
            else:
                img[:, pos - 1:pos + 2, :] += palette[c]
            images.append(Image.fromarray(img.clip(0, 255).astype(np.uint8), mode="RGB"))
        return ImageList(images, labels)

    return sample(n_train), sample(n_test)


def torchvision_class(dataset: str) -> Any:
    """torchvision's class of ``dataset`` (a key of ``TORCHVISION``)."""
    from torchvision import datasets

    return getattr(datasets, TORCHVISION[dataset])


def torchvision_root(cfg: DINOConfig) -> Path:
    return user_path(cfg.data_path or TORCHVISION_ROOT)


def in_spec(*keys: str) -> str:
    """Where ``keys``, named as ``ablate train --set`` takes them, are in a sweep spec (``ablate run``
    takes ``--set data_path=...`` as an unknown spec key): ``" (in a sweep spec: trainer.data_path)"``."""
    return f" (in a sweep spec: {', '.join(f'trainer.{key}' for key in keys)})"


def fetch_hint(dataset: str) -> str:
    """What to do when a torchvision dataset's files are not where the config says."""
    return (f"pass --set data_path=FOLDER with the {dataset} files, or --set download=true to let "
            f"torchvision download it there{in_spec('data_path', 'download')}")


def torchvision_missing(cfg: DINOConfig) -> list[str]:
    """The files of a torchvision dataset that are not under its ``data_path`` (torchvision's own file
    lists), found without reading them."""
    cls = torchvision_class(cfg.dataset)
    folder = torchvision_root(cfg) / cls.base_folder
    names = [name for name, _ in cls.train_list + cls.test_list]
    names += [cls.meta["filename"]] if isinstance(getattr(cls, "meta", None), dict) else []
    return [str(folder / name) for name in names if not (folder / name).is_file()]


def _torchvision(cfg: DINOConfig) -> tuple[Dataset, Dataset]:
    root = torchvision_root(cfg)
    cls = torchvision_class(cfg.dataset)
    existed = root.exists()
    if existed and (problem := folder_problem(root)):  # the download said "File exists", blaming the network
        raise ConfigError(f"data_path={str(root)!r}: {problem}; dataset {cfg.dataset!r} is read from (and "
                          "download=true writes it to) a folder: pass --set data_path=FOLDER"
                          f"{in_spec('data_path')}")
    try:
        if cfg.dataset in ("cifar10", "cifar100"):
            return (cls(root, train=True, download=cfg.download),
                    cls(root, train=False, download=cfg.download))
        # STL-10: DINO trains on the unlabeled+train split; kNN uses train (memory) and test.
        return (cls(root, split="train+unlabeled", download=cfg.download),
                cls(root, split="test", download=cfg.download))
    except RuntimeError as exc:
        raise ConfigError(f"dataset={cfg.dataset!r}: not found under data_path={str(root)!r} ({exc}); "
                          f"{fetch_hint(cfg.dataset)}") from None
    except OSError as exc:  # no network, a refused or broken download (urllib's URLError is an OSError)
        if not cfg.download:
            raise
        if not existed:
            with contextlib.suppress(OSError):
                root.rmdir()  # the folder torchvision made for the download, if it stayed empty
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise ConfigError(f"dataset={cfg.dataset!r}: download=true: the download to data_path="
                          f"{str(root)!r} failed ({reason}); check this machine's network, or download "
                          f"the files elsewhere and pass --set data_path=FOLDER{in_spec('data_path')}"
                          ) from None


def _imagefolder(cfg: DINOConfig) -> tuple[Dataset, Dataset]:
    root = user_path(cfg.data_path or "")
    needs = "dataset 'imagefolder' needs the sub-folders train/ and val/ (one folder per class inside each)"
    if problem := folder_problem(root):  # a typo in the path, before the folders it should hold
        raise ConfigError(f"data_path={str(root)!r}: {problem}; {needs}")
    missing = [d for d in ("train", "val") if not (root / d).is_dir()]
    if missing:
        folders = " and ".join(f"{d}/" for d in missing)
        raise ConfigError(f"data_path={str(root)!r}: {needs}; missing: {folders}")
    try:  # named by the key, as the folder's other refusals: "data_path='/d': train/a/1.png: ..."
        train = checked_image_folder(root / "train", cfg.skip_bad_images)
        return train, labelled_like(checked_image_folder(root / "val", cfg.skip_bad_images), train)
    except ConfigError as exc:
        raise ConfigError(f"data_path={str(root)!r}: {exc}") from None


def one_class_note(train: Any) -> str:
    """What to say of an image folder whose train/ holds one class ("" otherwise): unlabelled images
    in one folder train DINO fine, but every val image gets that label, so the kNN scores 100 %."""
    if len({y for _, y in train.samples}) > 1:
        return ""
    return (f"{train.root} holds one class ({train.classes[train.samples[0][1]]}): the kNN evaluation labels "
            "every val image with it, so kNN top-1 is 100 % whatever the network learned; rank by the loss "
            "(a sweep's metric: loss), or give train/ and val/ a folder per class")


def labelled_like(val: Any, train: Any) -> Any:
    """``val`` (an ImageFolder) with ``train``'s label of each class name: each folder numbers its own
    classes in sorted order, so a val/ without one of train/'s classes would give its later classes
    the labels of others, and the kNN would score them against the wrong train images. A val class
    that train/ lacks, or holds no image of (an empty folder, its images skipped), is an error: the kNN
    can only answer with train's images, and would count every image of that class wrong."""
    def with_images(ds: Any) -> set[str]:
        return {ds.classes[y] for _, y in ds.samples}

    unknown = sorted(with_images(val) - with_images(train))
    if unknown:
        names = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ConfigError(f"{val.root}: class folders {names} have no folder of the same name with images in "
                          f"{train.root}; the kNN evaluation labels val images with train's classes")
    if val.classes != train.classes:
        val.samples = val.imgs = [(path, train.class_to_idx[val.classes[y]]) for path, y in val.samples]
        val.targets = [y for _, y in val.samples]
        val.classes, val.class_to_idx = list(train.classes), dict(train.class_to_idx)
    return val


def checked_image_folder(folder: Path, skip_bad: bool) -> Dataset:
    """An ImageFolder whose every file decodes: a bad one is an error naming it, or is skipped.

    Each image is decoded once here (JPEGs at reduced scale, which still reads every byte), so
    a truncated or non-image file stops the run before training instead of in the middle. Its errors
    name files relative to the folder above ``folder`` (``train/a/1.png``), which the caller names
    (``data_path=...``); its warnings name them whole.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

    images = f"{', '.join(IMG_EXTENSIONS)} files"
    expected = f"one sub-folder per class holding {images}"
    def named(path: str | Path) -> str:  # as the caller's data_path= prefix completes it
        return os.path.relpath(path, folder.parent)

    empty = ConfigError(f"{named(folder)}: no image files (expected {expected})")
    try:
        classes, _ = find_classes(folder)
    except FileNotFoundError:  # not even a class folder
        raise empty from None
    except OSError as exc:  # the folder itself cannot be listed (permissions)
        raise ConfigError(unlisted(named(folder), exc, expected, READABLE)) from None
    refused: list[OSError] = []  # torchvision walks the class folders and skips what it cannot list
    left_out: list[str] = []  # and the files whose extension is not an image's
    for name in classes:
        for top, dirs, files in os.walk(folder / name, onerror=refused.append, followlinks=True):
            left_out += [os.path.join(top, f) for f in files
                         if not f.startswith(".") and not f.lower().endswith(IMG_EXTENSIONS)]
            check_no_link_loop(top, dirs, named)
    if refused:  # its images would be left out of the dataset without a word: refused as train/ is
        first, n = Path(refused[0].filename), len(refused) - 1
        more = f"; {n} more {plural(n, 'folder')} of it cannot be listed either" if n else ""
        name = first.relative_to(folder).parts[0]
        raise ConfigError(unlisted(named(first), refused[0], f"{images} of the class {name}",
                                   f"{READABLE}, or move it out of {folder}{more}"))
    ds = ImageFolder(folder, loader=open_rgb, allow_empty=True)
    bad = unreadable_images([path for path, _ in ds.samples], str(folder.resolve()))
    if bad and not skip_bad:
        path, problem = named(bad[0][0]), bad[0][1]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        if denied(problem):  # an image all the same: it wants a chmod, not removing
            raise ConfigError(f"{path}: {problem}{more}; {READABLE}{SKIP_BAD}")
        raise ConfigError(f"{path}: not a readable image ({problem}){more}; remove it{SKIP_BAD}")
    if bad:
        skipped = {path for path, _ in bad}
        ds.samples = ds.imgs = [s for s in ds.samples if s[0] not in skipped]
        ds.targets = [label for _, label in ds.samples]
        warn_once(f"skipped {len(bad)} unreadable image files in {folder} (e.g. {bad[0][0]}: {bad[0][1]})")
    if large := large_images(str(folder.resolve())):
        path, pixels = max(large, key=lambda item: item[1])
        have = "has" if len(large) == 1 else "have"
        warn_once(f"{len(large)} {plural(len(large), 'image')} in {folder} {have} more than "
                  f"{Image.MAX_IMAGE_PIXELS:,} pixels (largest: {path}, {pixels:,}): each is decoded whole "
                  "whenever a crop is drawn from it, which slows every epoch; resized to a few times the "
                  "crop size, they give nearly the same crops, faster")
    if left_out:
        kinds = sorted({Path(f).suffix.lower() or "no extension" for f in left_out})
        warn_once(f"left out {len(left_out)} files of {folder} that are not images by their extension "
                  f"({', '.join(kinds[:5])}{', ...' if len(kinds) > 5 else ''}; e.g. {left_out[0]}); ablate "
                  f"reads {', '.join(IMG_EXTENSIONS)}")
    if not ds.samples:
        raise empty
    return ds


# what to do about a file or folder this user may not read (an image folder's, an --image of ablate attention)
READABLE = "make it readable by this user (its owner can: chmod -R a+rX)"
# how to read a folder with such files all the same (ablate.sweep words it for a resumed sweep)
SKIP_BAD = (", or skip unreadable files with skip_bad_images: true (ablate train --set skip_bad_images=true; "
            "in a sweep spec, trainer.skip_bad_images)")
_WARNED: set[str] = set()


def warn_once(text: str) -> None:
    """A warning line on stderr, once per process: a sweep's driver builds a folder's datasets for
    its input check and again for the reference kNN, and said the same thing two or three times."""
    if text not in _WARNED:
        _WARNED.add(text)
        warn(text)


def check_no_link_loop(top: str, dirs: list[str], named: Callable[[str], str] = str) -> None:
    """ConfigError when a sub-folder of ``top`` is a symbolic link to ``top`` or a folder holding it:
    torchvision follows links, so it would read the same images again under each turn of the loop (40
    deep, until the kernel's limit), all labelled with this class, or walk the whole disk for a link to /.
    ``named``: how the error names the link (``checked_image_folder``'s, relative to data_path)."""
    links = [d for d in dirs if os.path.islink(os.path.join(top, d))]
    if not links:
        return
    here = os.path.realpath(top)
    for name in links:
        target = os.path.realpath(os.path.join(top, name))
        if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
            raise ConfigError(f"{named(os.path.join(top, name))}: a symbolic link to {target}, a folder that "
                              "holds it, so its images would be read again and again; remove the link")


def build_datasets(cfg: DINOConfig) -> tuple[Dataset, Dataset]:
    """The raw (train, test) datasets of ``cfg.dataset`` as (PIL image, label) pairs."""
    if cfg.dataset == "digit_scenes":
        return make_digit_scenes()
    if cfg.dataset == "digits":
        return load_digits_split()
    if cfg.dataset == "synthetic":
        return make_synthetic(size=max(cfg.global_crops_size, 8))
    if cfg.dataset == "imagefolder":
        return _imagefolder(cfg)
    return _torchvision(cfg)


def known_train_size(cfg: DINOConfig) -> int | None:
    """Training images of the bundled and torchvision datasets, known without building them or
    reading a file (None: an image folder, whose size its files tell)."""
    if cfg.dataset == "digit_scenes":
        return len(source_split()[0]) * SceneDesign().train_copies
    if cfg.dataset == "digits":
        return len(source_split()[0])
    if cfg.dataset == "synthetic":
        return SYNTHETIC_TRAIN
    return TORCHVISION_TRAIN.get(cfg.dataset)


def check_batch(cfg: DINOConfig, n_train: int, workers: int = 1) -> None:
    """ConfigError when one optimizer step needs more than the ``n_train`` training images (an epoch
    drops its last incomplete batch, so it would have no step at all), or the run would take more
    steps than its schedules may hold (``check_steps``)."""
    step = cfg.batch_size * cfg.grad_accum_steps * workers
    if n_train < step:
        per = f" x {workers} workers" if workers > 1 else ""
        raise ConfigError(f"batch_size={cfg.batch_size} x grad_accum_steps={cfg.grad_accum_steps}{per}: "
                          f"larger than the {n_train} training images of {cfg.dataset!r}")
    check_steps(cfg, n_train // step)


def check_steps(cfg: DINOConfig, per_epoch: int) -> None:
    """ConfigError when ``epochs`` x ``per_epoch`` optimizer steps exceed ``MAX_STEPS``: the lr,
    weight-decay and momentum schedules hold 8 bytes a step each."""
    steps = cfg.epochs * per_epoch
    if steps > MAX_STEPS:
        raise ConfigError(f"epochs={cfg.epochs} x {per_epoch:,} steps per epoch = {steps:,} optimizer "
                          f"steps: at most {MAX_STEPS:,}, so that the lr, weight-decay and momentum "
                          f"schedules fit in memory ({3 * 8 * steps / 2**30:.1f} GiB asked); lower epochs or "
                          "raise batch_size")


def knn_memory_split(cfg: DINOConfig, train: Dataset) -> Dataset:
    """The labelled train images used as kNN memory (STL-10's unlabeled part has no labels)."""
    if cfg.dataset == "stl10":
        labels = np.asarray(train.labels)  # type: ignore[attr-defined]
        return Subset(train, np.flatnonzero(labels >= 0).tolist())
    return train


def with_transform(ds: Dataset, transform: Callable) -> Dataset:
    if isinstance(ds, ImageList):
        return ImageList(ds.images, ds.labels, transform, ds.pixels)
    return Transformed(ds, transform)


def in_memory(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(images as one (N, 3, H, W) uint8 tensor, labels) of a dataset held in memory, else None.

    In memory: an ``ImageList`` of equal-size images (digits, synthetic, the embedded sets),
    torchvision's CIFAR (``.data`` N x H x W x 3) and STL-10 (``.data`` N x 3 x H x W), and a
    ``Subset`` of one. Image folders are read from disk: None.
    """
    if isinstance(ds, Subset):
        base = in_memory(ds.dataset)
        if base is None:
            return None
        index = torch.as_tensor(list(ds.indices), dtype=torch.long)
        return base[0][index], base[1][index]
    if isinstance(ds, ImageList):
        if ds.pixels is not None:
            return torch.from_numpy(ds.pixels).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(ds.labels)
        if len({im.size for im in ds.images}) != 1:
            return None
        pixels = np.stack([np.asarray(to_rgb(im)) for im in ds.images])
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(ds.labels)
    data = getattr(ds, "data", None)
    labels = getattr(ds, "targets", getattr(ds, "labels", None))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 4 or labels is None:
        return None
    images = torch.from_numpy(data)
    if images.shape[-1] == 3:  # CIFAR: channels last
        images = images.permute(0, 3, 1, 2)
    return images.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.long)

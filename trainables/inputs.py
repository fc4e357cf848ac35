"""The files a training config names, checked before anything runs: pretrained weights and data.

``ablate train`` and ``ablate run`` (for the baseline and every searched value that names a file)
call ``check_inputs`` before Ray starts or anything is written, so a missing or crafted file costs
a second, not a trial started on a cluster. The checks are the trainer's own: the backbone is built
with its weights (weights-only loading, the keys must fit), an image folder is built as the
trainer builds it (its layout, every image decoded, enough images for one step), and a torchvision
dataset with ``download: true`` is downloaded (only when missing).

    check_inputs(DINOConfig(pretrained_weights="vits16.pth", arch="vit_small_patch16_224"))
"""

from __future__ import annotations

from trainables.config import ConfigError, DINOConfig
from trainables.warning import warn


def check_inputs(cfg: DINOConfig, workers: int = 1) -> None:
    """ConfigError (naming the key, the file and what to do) for a file the run could not use, or a
    model it could not run."""
    check_model(cfg)
    check_weights(cfg)
    check_data(cfg, workers)


def check_model(cfg: DINOConfig) -> None:
    """The backbone can take the crops (a ViT's are whole numbers of patches) and the student's
    drop_path_rate (a model without stochastic depth takes 0 only), and can train on a local
    crop that is alone in its forward pass (batch_size x local_crops_number = 1: the global crops are
    always two in theirs). The crops and the drop_path_rate are said together: a DenseNet's local
    crops and its rate were two refusals, one after the other."""
    from trainables.dino.backbone import check_crop_sizes, drop_path_problem, lone_crop_problem

    problems = []
    try:
        check_crop_sizes(cfg.arch, cfg.patch_size, cfg.crop_sizes())
    except ConfigError as exc:
        problems.append(str(exc))
    problem = drop_path_problem(cfg.arch, cfg.patch_size, cfg.global_crops_size, cfg.drop_path_rate)
    if problem and problem not in "; ".join(problems):  # a patch size refused is said once
        problems.append(problem)
    if problems:
        raise ConfigError("; ".join(problems))
    if cfg.batch_size * cfg.local_crops_number != 1 or cfg.local_crops_size == cfg.global_crops_size:
        return
    if problem := lone_crop_problem(cfg.arch, cfg.patch_size, cfg.global_crops_size, cfg.local_crops_size):
        raise ConfigError(f"batch_size=1 with local_crops_number=1: the student trains on each "
                          f"local_crops_size={cfg.local_crops_size} crop alone, which arch {cfg.arch!r} "
                          f"cannot ({problem}); set batch_size >= 2, or local_crops_number 0 or >= 2")


def check_weights(cfg: DINOConfig, workers: int = 1) -> None:
    """Pretrained weights, if any, loaded into the backbone the trainer would build (``workers``: the
    signature of ``check_data``); the backbone's weights the file leaves out are said once, here."""
    if cfg.pretrained_weights:
        from trainables.dino.backbone import build_backbone, load_pretrained, unloaded_note

        model = build_backbone(cfg.arch, cfg.global_crops_size, cfg.patch_size, 0.0)
        missing = load_pretrained(model, cfg.pretrained_weights)
        if note := unloaded_note(cfg.pretrained_weights, model, missing):
            warn(note)


def check_data(cfg: DINOConfig, workers: int = 1) -> None:
    """The data ``cfg`` names: an image folder is built as the trainer builds it (its layout, every
    image decoded once per machine); a torchvision dataset's files are looked for, or downloaded with
    ``download: true``; then a step of ``workers`` x the batch no larger than the training images
    (the trainer's rule, ``check_batch``), for every dataset."""
    from sweep_format.layout import folder_problem
    from trainables.config import TORCHVISION
    from trainables.data import (
        build_datasets,
        check_batch,
        fetch_hint,
        known_train_size,
        one_class_note,
        torchvision_missing,
        torchvision_root,
    )

    if cfg.dataset == "imagefolder":
        train, _ = build_datasets(cfg)
        check_batch(cfg, len(train), workers)  # type: ignore[arg-type]
        if note := one_class_note(train):  # said once, where the folder is checked before the run
            warn(note)
        return
    if cfg.dataset in TORCHVISION and cfg.download:
        build_datasets(cfg)  # the download, once and here: trials started together would race for the files
    elif cfg.dataset in TORCHVISION:
        root = torchvision_root(cfg)
        if problem := folder_problem(root):
            raise ConfigError(f"data_path={str(root)!r}: {problem} for dataset {cfg.dataset!r}; "
                              f"{fetch_hint(cfg.dataset)}")
        missing = torchvision_missing(cfg)
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ConfigError(f"data_path={str(root)!r}: the {cfg.dataset} files are not there (no "
                              f"{missing[0]}{more}); {fetch_hint(cfg.dataset)}")
    if (n_train := known_train_size(cfg)) is not None:  # its size without building it
        check_batch(cfg, n_train, workers)

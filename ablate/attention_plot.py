"""Figures of [CLS] attention maps (paper Fig. 1): one run's per-head maps, and a sweep's panel.

Drawing only; the maps come from ``trainables.attention``. Figures are built on the Agg canvas
without pyplot, so they can be drawn from any process or thread (the sweep runner included).

Example::

    teacher = load_teacher("runs/vit")
    images, names = held_out_images(teacher.config, 4)
    maps = cls_attention_maps(teacher.backbone, images.to(device))
    render_attention_figure(images, maps, names, Path("attention.png"), threshold=0.6)

    render_comparison_panel({"best: teacher_temp=0.04": best_trial, "baseline": base_trial},
                            Path("runs/temps/report/attention.png"))
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports.plots import drawn_with_defaults
from sweep_format.files import atomic_path
from trainables.attention import (
    AttentionMaps,
    Teacher,
    cls_attention_maps,
    crop_to_patches,
    held_out_images,
    load_teacher,
    patch_size_of,
    threshold_mask,
    to_display,
    untrained_teacher,
)
from trainables.config import ConfigError

log = logging.getLogger(__name__)

CMAP = "inferno"
CELL_INCHES = 1.7


def _show(ax: Axes, picture: np.ndarray, title: str | None = None, cmap: str | None = None) -> None:
    ax.imshow(picture, cmap=cmap, interpolation="nearest")  # patches stay visible as squares
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _row_label(ax: Axes, text: str) -> None:
    ax.set_ylabel(textwrap.fill(text, 22), fontsize=8, rotation=90, labelpad=4)


MASK_COLOUR = np.array([0.0, 0.85, 1.0])  # cyan: visible on dark and light images


def masked_image(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image tinted where ``mask`` keeps patches and dimmed elsewhere (DINO's display style)."""
    kept = 0.6 * image + 0.4 * MASK_COLOUR
    return np.where(mask[..., None], kept, 0.35 * image).clip(0, 1)


def _show_mask(ax: Axes, image: np.ndarray, mask: np.ndarray, title: str | None) -> None:
    _show(ax, masked_image(image, mask), title)
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=[tuple(MASK_COLOUR)], linewidths=0.8)


@drawn_with_defaults
def render_attention_figure(images: torch.Tensor, maps: AttentionMaps, names: list[str], out: Path,
                            threshold: float | None = None, title: str = "") -> Path:
    """``attention_figure`` saved as a PNG at ``out``."""
    return _save(attention_figure(images, maps, names, threshold, title), out)


def attention_figure(images: torch.Tensor, maps: AttentionMaps, names: list[str],
                     threshold: float | None = None, title: str = "") -> Figure:
    """One row per image: the image, each head's map, the head mean, and optionally the mask
    keeping ``threshold`` of the mean map's attention mass."""
    shown = to_display(crop_to_patches(images, maps.patch_size))
    per_head = maps.upsampled().cpu().numpy()
    mean = maps.upsampled(maps.mean).cpu().numpy()
    masks = None
    if threshold is not None:
        masks = maps.upsampled(threshold_mask(maps.mean, threshold).float()).cpu().numpy() > 0.5
    n_heads = per_head.shape[1]
    cols = 2 + n_heads + (masks is not None)
    fig = Figure(figsize=(CELL_INCHES * cols, CELL_INCHES * len(shown) + 0.6), layout="constrained")
    axes = fig.subplots(len(shown), cols, squeeze=False)
    for r, row in enumerate(axes):
        top = r == 0
        _show(row[0], shown[r], "image" if top else None)
        _row_label(row[0], names[r])
        for h in range(n_heads):
            _show(row[1 + h], per_head[r, h], f"head {h + 1}" if top else None, CMAP)
        _show(row[1 + n_heads], mean[r], "mean" if top else None, CMAP)
        if masks is not None:
            _show_mask(row[-1], shown[r], masks[r], f"mask {threshold:.0%}" if top else None)
    if title:
        fig.suptitle(textwrap.fill(title, int(14 * cols)), fontsize=10)
    return fig


def _save(fig: Figure, out: Path) -> Path:
    """Atomically: a disk that fills mid-way leaves the earlier picture (the report's attention.png, the
    user's --out) whole, not truncated."""
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return out


@drawn_with_defaults
def render_comparison_panel(sources: dict[str, Path], out: Path, n_images: int = 4,
                            include_untrained: bool = True, device: str = "cpu") -> Path | None:
    """``comparison_figure`` saved as a PNG at ``out``; None, writing nothing, if it has no row."""
    fig = comparison_figure(sources, n_images, include_untrained, device)
    return None if fig is None else _save(fig, out)


def comparison_figure(sources: dict[str, Path], n_images: int = 4, include_untrained: bool = True,
                      device: str = "cpu") -> Figure | None:
    """The same held-out images across labelled configurations: one row of mean-head [CLS]
    attention maps per source (run folder, trial folder or checkpoint), plus the untrained
    network (the first source's config, random init with its seed) when ``include_untrained``.

    Images come from the first source's dataset (test split, evenly spaced). A source that is
    not a ViT or has no checkpoint is skipped with a warning; returns None when no source is
    left (e.g. a sweep of CNNs) or the images cannot be loaded. ``device`` defaults to cpu: the
    maps are cheap, and the sweep driver need not initialize CUDA for them.
    """
    rows: list[tuple[str, Teacher]] = []
    for label, source in sources.items():
        try:
            rows.append((label, load_teacher(source, device)))
        except ConfigError as exc:
            log.warning("attention panel: skipping %r: %s", label, exc)
    if not rows:
        return None
    cfg = rows[0][1].config
    if include_untrained:
        rows.append(("untrained (random init)", untrained_teacher(cfg, device)))
    patch = patch_size_of(rows[0][1].backbone)
    try:
        images, names = held_out_images(cfg, n_images)
    except ConfigError as exc:  # e.g. the dataset's files are not on this machine
        log.warning("attention panel: no held-out images: %s", exc)
        return None
    images = crop_to_patches(images, patch)
    shown = to_display(images)
    fig = Figure(figsize=(CELL_INCHES * len(shown) + 0.6, CELL_INCHES * (len(rows) + 1) + 0.5),
                 layout="constrained")
    axes = fig.subplots(len(rows) + 1, len(shown), squeeze=False)
    for c, name in enumerate(names):
        _show(axes[0, c], shown[c], name)
    _row_label(axes[0, 0], "image")
    for r, (label, teacher) in enumerate(rows, start=1):
        maps = cls_attention_maps(teacher.backbone, images.to(next(teacher.backbone.parameters()).device))
        mean = maps.upsampled(maps.mean).cpu().numpy()
        for c in range(len(shown)):
            _show(axes[r, c], mean[c], cmap=CMAP)
        epoch = f" (epoch {teacher.epoch})" if teacher.checkpoint is not None else ""
        _row_label(axes[r, 0], label + epoch)
    fig.suptitle(f"last-block [CLS] attention, mean over heads ({cfg.arch}, patch {patch})",
                 fontsize=10)
    return fig

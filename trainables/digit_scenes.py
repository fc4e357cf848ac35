"""``digit_scenes``: the embedded default dataset, scikit-learn's digits composed into scenes.

Each image shows ``per_scene`` different bundled 8x8 digits of ONE class (5 by default), each
upsampled to a random size and drawn at a random position, white on black, in a small RGB
canvas. The class is the digit.

Why this design (measured in bench/SIGNAL_RESEARCH.md): DINO learns what stays the same
between two augmented views of one image. Any per-image nuisance that the augmentation does not
resample (a background colour, a texture, a tint, a polarity) is shared by both views, so DINO
learns it instead of the class: such designs gave no kNN gain at all. Here the only thing the
views share is the class: a crop sees some of the scene's digits, another crop others, different
exemplars at other positions and sizes, so matching local to global crops teaches class-level,
position- and scale-invariant features. Raw pixels (positions differ) and a random network
(no shape features) score far lower (raw pixels 22.9 %, the untrained network 29-32 %: README).
It is an offline stand-in for a natural-image benchmark,
not a claim about one.

Train and test images come from disjoint source digits (scikit-learn's 1,797 split 80/20,
stratified); each scene is built around one source digit (``copies`` scenes per source digit)
and its companions are drawn from the same split and class. Everything is
deterministic from ``seed``.

Example::

    train, test = make_digit_scenes(seed=0)
    image, label = train[0]          # a 32x32 RGB PIL image and its digit
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from trainables.bundled_digits import load_digits, stratified_split
from trainables.images import ImageList

_CHUNK = 256  # scenes converted to uint8 at a time


@dataclass(frozen=True)
class SceneDesign:
    """The generator's knobs (the shipped default is ``SceneDesign()``)."""

    size: int = 32                    # canvas side in px
    digit_min: int = 8                # smallest digit side in px
    digit_max: int = 14               # largest digit side in px
    train_copies: int = 3             # scenes per training source digit
    test_copies: int = 3              # scenes per test source digit (more: a steadier kNN)
    intensity: float = 0.0            # foreground ~ U(1 - intensity, 1), background ~ U(0, intensity)
    contrast_min: float = 0.0         # least foreground - background grey level (0-1)
    invert: float = 0.0               # probability of a dark digit on a light background
    texture: float = 0.0              # amplitude of the smooth background texture (0-1)
    texture_cells: int = 4            # the texture is random noise on a cells x cells grid, upsampled
    tint: float = 0.0                 # amplitude of a random colour shift per image (0: grey images)
    per_scene: int = 5                # digits per scene, all of the scene's class


def source_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of scikit-learn's digits used for train and for test scenes (stratified 80/20)."""
    return stratified_split(load_digits()[1], test_size=0.2, seed=seed)


@lru_cache(maxsize=1)
def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_digits()
    return (images / 16.0).astype(np.float32), labels


def _resized(glyphs: np.ndarray, sides: np.ndarray) -> list[np.ndarray]:
    """Each glyph upsampled (bilinear) to its side; one batched call per distinct side."""
    import torch
    from torch.nn import functional as F

    out: list[np.ndarray] = [np.empty(0)] * len(glyphs)
    for side in np.unique(sides):
        sel = np.flatnonzero(sides == side)
        batch = F.interpolate(torch.from_numpy(glyphs[sel])[:, None], size=(int(side), int(side)),
                              mode="bilinear", align_corners=False)[:, 0].clamp(0, 1).numpy()
        for i, mask in zip(sel, batch):
            out[i] = mask
    return out


def _grey_levels(n: int, rng: np.random.Generator, d: SceneDesign) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background grey per scene, at least ``contrast_min`` apart, maybe swapped."""
    fg, bg = 1 - d.intensity * rng.uniform(size=n), d.intensity * rng.uniform(size=n)
    while (low := fg - bg < d.contrast_min).any():  # redraw the few pairs that are too close
        m = int(low.sum())
        fg[low], bg[low] = 1 - d.intensity * rng.uniform(size=m), d.intensity * rng.uniform(size=m)
    swap = rng.uniform(size=n) < d.invert
    return np.where(swap, bg, fg), np.where(swap, fg, bg)


def _backgrounds(n: int, rng: np.random.Generator, d: SceneDesign) -> np.ndarray:
    """Smooth random textures: noise on a coarse grid, upsampled bicubic to the canvas."""
    import torch
    from torch.nn import functional as F

    cells = rng.normal(0, d.texture, (n, 1, d.texture_cells, d.texture_cells)).astype(np.float32)
    return F.interpolate(torch.from_numpy(cells), size=(d.size, d.size), mode="bicubic",
                         align_corners=False)[:, 0].numpy()


def _members(order: np.ndarray, labels: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    """(scenes, k) source indices: the scene's own digit, then k-1 random digits of its class."""
    by_label = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    cls = labels[order]
    offsets = (rng.uniform(size=(len(order), k - 1)) * counts[cls, None]).astype(int)
    others = by_label[starts[cls, None] + offsets]
    return np.concatenate((order[:, None], others), axis=1)


def _render(glyphs: np.ndarray, labels: np.ndarray, copies: int, rng: np.random.Generator,
            d: SceneDesign) -> ImageList:
    order = np.tile(np.arange(len(glyphs)), copies)
    n, k = len(order), d.per_scene
    members = _members(order, labels, rng, k)
    sides = rng.integers(d.digit_min, d.digit_max + 1, size=(n, k))
    corners = (rng.uniform(size=(n, k, 2)) * (d.size - sides + 1)[..., None]).astype(int)
    fg, bg = _grey_levels(n, rng, d)
    canvases = bg[:, None, None] + _backgrounds(n, rng, d)
    masks = _resized(glyphs[members.ravel()], sides.ravel())
    for j, (scene, digit) in enumerate(np.ndindex(n, k)):
        (y, x), side, mask = corners[scene, digit], sides[scene, digit], masks[j]
        patch = canvases[scene, y:y + side, x:x + side]
        canvases[scene, y:y + side, x:x + side] = patch * (1 - mask) + fg[scene] * mask
    tints = rng.uniform(-d.tint, d.tint, size=(n, 1, 1, 3))
    pixels = np.empty((n, d.size, d.size, 3), np.uint8)
    for start in range(0, n, _CHUNK):  # a few scenes at a time: the float64 RGB stays in the caches
        rgb = canvases[start:start + _CHUNK, ..., None] + tints[start:start + _CHUNK]
        np.clip(rgb, 0, 1, out=rgb)
        rgb *= 255
        pixels[start:start + _CHUNK] = np.round(rgb, out=rgb)  # (clip(rgb, 0, 1) * 255).round(), as uint8
    return ImageList([Image.fromarray(p, mode="RGB") for p in pixels], labels[order], pixels=pixels)


@lru_cache(maxsize=4)
def make_digit_scenes(seed: int = 0, design: SceneDesign = SceneDesign()) -> tuple[ImageList, ImageList]:
    """The (train, test) split of ``digit_scenes``: 4,311 / 1,080 images of 32x32 px by default.

    Cached in-process: the same (seed, design) returns the same two ImageLists.
    """
    glyphs, labels = _bundled_digits()
    idx_train, idx_test = source_split()
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return (_render(glyphs[idx_train], labels[idx_train], design.train_copies, rng_train, design),
            _render(glyphs[idx_test], labels[idx_test], design.test_copies, rng_test, design))

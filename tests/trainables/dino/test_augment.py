import numpy as np
import torch
from PIL import Image

from trainables.dino.augment import DataAugmentationDINO, Solarization, eval_transform


def test_multicrop_shapes_and_normalization():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    aug = DataAugmentationDINO((0.4, 1.0), (0.05, 0.4), local_crops_number=5, global_crops_size=32,
                               local_crops_size=12)
    crops = aug(img)
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 12, 12)] * 5
    assert all(c.dtype == torch.float32 for c in crops)
    assert min(c.min().item() for c in crops) < 0  # ImageNet-normalized, not in [0, 1]
    assert eval_transform(24)(img).shape == (3, 24, 24)


def test_solarization_inverts_bright_pixels():
    img = Image.fromarray(np.array([[[10, 200, 128]]], dtype=np.uint8))
    out = np.asarray(Solarization(p=1.0)(img))
    assert out.tolist() == [[[10, 55, 127]]]
    assert np.asarray(Solarization(p=0.0)(img)).tolist() == [[[10, 200, 128]]]

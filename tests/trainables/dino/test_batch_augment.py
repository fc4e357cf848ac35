"""BatchDataAugmentationDINO: the per-image pipeline's distributions, batched, seeded per image."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torchvision import transforms
from torchvision.transforms import functional as TF

from trainables.data import make_synthetic
from trainables.dino.augment import IMAGENET_MEAN, IMAGENET_STD, DataAugmentationDINO
from trainables.dino.batch_augment import (
    BatchDataAugmentationDINO,
    adjust_hue,
    blend,
    color_jitter,
    crop_boxes,
    gaussian_blur,
    jitter_stages,
    resized_crops,
    uniforms,
)

N = 2000  # samples per rate check: a rate's standard error is at most 0.011


def constant_images(rgb, n=N, side=16):
    return torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(n, 3, side, side).contiguous()


def unnormalize(x):
    return x * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)


def aug(**kw):
    return BatchDataAugmentationDINO((0.4, 1.0), (0.05, 0.4), 2, 16, 8, **kw)


def test_shapes_dtypes_and_normalization():
    images = torch.randint(0, 256, (10, 3, 20, 24), dtype=torch.uint8)
    crops = aug()(images, torch.tensor([0, 3, 9]), epoch=0)
    assert [tuple(c.shape) for c in crops] == [(3, 3, 16, 16)] * 2 + [(3, 3, 8, 8)] * 2
    assert all(c.dtype == torch.float32 for c in crops)
    assert min(c.min().item() for c in crops) < 0  # normalized, not in [0, 1]


def test_crops_depend_only_on_seed_epoch_and_index():
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    a = aug(seed=1)(images, torch.tensor([2, 5, 7]), epoch=3)
    b = aug(seed=1)(images, torch.tensor([7, 2]), epoch=3)  # another batch, another order
    for ca, cb in zip(a, b):
        torch.testing.assert_close(ca[2], cb[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(ca[0], cb[1], rtol=0, atol=1e-5)
    assert not torch.equal(a[0], aug(seed=1)(images, torch.tensor([2, 5, 7]), epoch=4)[0])
    assert not torch.equal(a[0], aug(seed=2)(images, torch.tensor([2, 5, 7]), epoch=3)[0])


def test_uniforms_are_uniform_and_independent():
    u = uniforms(0, 0, torch.arange(20000), 0, 4)
    assert u.min() >= 0 and u.max() < 1
    torch.testing.assert_close(u.mean(0), torch.full((4,), 0.5), rtol=0, atol=0.01)
    hist = torch.histc(u[:, 0], bins=10, min=0, max=1) / len(u)
    assert (hist - 0.1).abs().max() < 0.01
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03


@pytest.mark.parametrize("height,width,scale",
                         [(32, 32, (0.4, 1.0)), (32, 32, (0.05, 0.4)), (20, 40, (0.08, 1.0))])
def test_crop_scale_and_aspect_ratio_match_torchvision(height, width, scale):
    boxes = crop_boxes(uniforms(0, 0, torch.arange(N), 0, 32), height, width, scale)
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= height).all() and (left + w <= width).all()
    area, ratio = h * w / (height * width), w / h
    # Rounding to whole pixels stretches the ranges a little, as in torchvision.
    assert area.min() >= scale[0] * 0.8 and area.max() <= 1.0
    torch.manual_seed(0)
    img = torch.zeros(3, height, width)
    get_params = transforms.RandomResizedCrop.get_params
    ref = torch.tensor([get_params(img, scale, (3 / 4, 4 / 3)) for _ in range(N)], dtype=torch.float32)
    ref_area, ref_ratio = ref[:, 2] * ref[:, 3] / (height * width), ref[:, 3] / ref[:, 2]
    assert abs(area.mean() - ref_area.mean()) < 0.02
    assert abs(ratio.log().mean() - ref_ratio.log().mean()) < 0.03
    assert abs(ratio.log().std() - ref_ratio.log().std()) < 0.03


def test_flip_rate():
    ramp = torch.arange(16, dtype=torch.uint8).mul(15).view(1, 1, 1, 16).expand(N, 3, 16, 16).contiguous()
    out = BatchDataAugmentationDINO((1.0, 1.0), (1.0, 1.0), 0, 16, 8)(ramp, torch.arange(N), 0)[0]
    flipped = out[..., :8].mean(dim=(1, 2, 3)) > out[..., 8:].mean(dim=(1, 2, 3))  # gray: jitter keeps order
    assert abs(flipped.float().mean().item() - 0.5) < 0.04


def test_color_jitter_grayscale_and_solarize_rates():
    # Mid-gray: only brightness can change it, so "changed" = jitter applied (p=0.8).
    gray = unnormalize(aug()(constant_images((128, 128, 128)), torch.arange(N), 0)[0])
    changed = (gray.mean(dim=(1, 2, 3)) - 128 / 255).abs() > 1e-3
    assert abs(changed.float().mean().item() - 0.8) < 0.04
    # A saturated colour stays coloured under jitter; R = G = B only after grayscale (p=0.2).
    red = unnormalize(aug()(constant_images((200, 40, 40)), torch.arange(N), 0)[2])
    is_gray = (red.amax(1) - red.amin(1)).amax(dim=(1, 2)) < 2e-3
    assert abs(is_gray.float().mean().item() - 0.2) < 0.04
    # Bright pixels stay >= 128 under jitter; only solarization (global crop 2, p=0.2) darkens them.
    crops = aug()(constant_images((250, 250, 250)), torch.arange(N), 0)
    dark = [(unnormalize(c).mean(dim=(1, 2, 3)) < 0.5).float().mean().item() for c in crops]
    assert dark[0] == 0 and dark[2] == 0 and abs(dark[1] - 0.2) < 0.04


def test_blur_rates_and_radius():
    a = BatchDataAugmentationDINO((0.4, 1.0), (0.05, 0.4), 1, 32, 12, blur_radius_relative=True)
    params = a.crop_params([0, 1, 2], N, torch.device("cpu"))
    u = a.draws(torch.arange(N), 0, [0, 1, 2])[:, 33]
    blurred = (u < params[:, 0]).float().view(3, N).mean(1)
    torch.testing.assert_close(blurred, torch.tensor([1.0, 0.1, 0.5]), rtol=0, atol=0.03)
    torch.testing.assert_close(params[::N, 1], torch.tensor([32 / 224, 32 / 224, 12 / 96]))
    assert BatchDataAugmentationDINO((0.4, 1.0), (0.05, 0.4), 1, 32, 12, False).crop_params(
        [0, 2], 1, torch.device("cpu"))[:, 1].tolist() == [1.0, 1.0]


def test_gaussian_blur_matches_a_reference_kernel():
    x = torch.rand(2, 3, 24, 24)
    got = gaussian_blur(x, torch.tensor([0.8, 1.5]), max_sigma=2.0)
    for i, sigma in enumerate((0.8, 1.5)):
        want = TF.gaussian_blur(x[i:i + 1], kernel_size=13, sigma=sigma)  # reflect padding: compare inside
        torch.testing.assert_close(got[i, :, 6:-6, 6:-6], want[0, :, 6:-6, 6:-6], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gaussian_blur(x, torch.tensor([1e-3, 1e-3]), 2.0), x)  # not applied


def stage(x, op, f):
    matrices, means = jitter_stages(torch.full((len(x), 1), op), torch.stack([f, f, f], 1))
    return blend(x.reshape(len(x), 3, -1), matrices[:, 0], means[:, 0]).view_as(x)


def test_jitter_ops_match_torchvision():
    x = torch.rand(4, 3, 8, 8)
    f = torch.tensor([0.6, 0.9, 1.2, 1.4])
    for op, ref in ((0, TF.adjust_brightness), (1, TF.adjust_contrast), (2, TF.adjust_saturation)):
        want = torch.stack([ref(x[i], f[i].item()) for i in range(4)])
        torch.testing.assert_close(stage(x, op, f), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stage(x, 3, f), x)  # the hue slot: identity
    hue = torch.tensor([-0.1, -0.03, 0.05, 0.1])
    want = torch.stack([TF.adjust_hue(x[i], hue[i].item()) for i in range(4)])
    torch.testing.assert_close(adjust_hue(x, hue), want, rtol=1e-4, atol=1e-4)
    # Ties for the maximum channel and gray pixels take torchvision's branches too.
    ties = torch.tensor([[0.5, 0.5, 0.2], [0.3, 0.7, 0.7], [0.6, 0.2, 0.6], [0.4, 0.4, 0.4]]).view(4, 3, 1, 1)
    want = torch.stack([TF.adjust_hue(ties[i], hue[i].item()) for i in range(4)])
    torch.testing.assert_close(adjust_hue(ties, hue), want, rtol=1e-5, atol=1e-5)


def test_color_jitter_applies_each_samples_ops_in_its_own_order():
    x = torch.rand(6, 3, 8, 8)
    u = torch.rand(6, 9)
    u[:, 0] = 0.1  # applied to all
    factors = {0: 0.6 + 0.8 * u[:, 5], 1: 0.6 + 0.8 * u[:, 6], 2: 0.8 + 0.4 * u[:, 7],
               3: -0.1 + 0.2 * u[:, 8]}
    ops = {0: TF.adjust_brightness, 1: TF.adjust_contrast, 2: TF.adjust_saturation, 3: TF.adjust_hue}
    want = []
    for i in range(6):
        y = x[i]
        for op in u[i, 1:5].argsort().tolist():  # torchvision: ColorJitter's random permutation
            y = ops[op](y, factors[op][i].item())
        want.append(y)
    torch.testing.assert_close(color_jitter(x, u), torch.stack(want), rtol=1e-4, atol=1e-4)
    u[:, 0] = 0.9  # p = 0.8: not applied
    torch.testing.assert_close(color_jitter(x, u), x)


def test_resized_crops_are_bicubic_border_sampling_of_the_boxes():
    images = torch.randint(0, 256, (3, 3, 20, 24)).float()
    boxes = torch.tensor([[0.0, 0.0, 20.0, 24.0], [3.0, 5.0, 9.0, 7.0], [11.0, 2.0, 9.0, 17.0],  # crop 1
                          [1.0, 1.0, 5.0, 5.0], [0.0, 10.0, 20.0, 14.0], [6.0, 0.0, 14.0, 24.0]])  # crop 2
    flip = torch.tensor([False, True, False, True, True, False])
    for size, supersample in ((8, 1), (8, 3), (16, 2)):
        got = resized_crops(images, boxes, flip, size, supersample)
        side = size * supersample
        steps = (torch.arange(side) + 0.5) / side
        for row, (top, left, h, w) in enumerate(boxes.tolist()):
            xs = left + (1 - steps if flip[row] else steps) * w
            ys = top + steps * h
            grid = torch.stack([(xs * 2 / 24 - 1)[None].expand(side, side),
                                (ys * 2 / 20 - 1)[:, None].expand(side, side)], -1)
            image = images[row % 3:row % 3 + 1]  # crop-major rows: row c * B + b is image b
            want = F.grid_sample(image, grid[None], "bicubic", "border", align_corners=False)
            want = F.avg_pool2d(want, supersample).clamp(0, 255) / 255
            torch.testing.assert_close(got[row], want[0], rtol=0, atol=1e-5)


def image_stats(crops: list[torch.Tensor]) -> list[tuple[float, float, float]]:
    """Per crop: mean, std and mean absolute horizontal gradient of the pixels."""
    return [(c.mean().item(), c.std().item(), (c[..., 1:] - c[..., :-1]).abs().mean().item()) for c in crops]


def test_per_image_and_batched_pipelines_agree_in_distribution():
    train, _ = make_synthetic(n_train=400, size=32, seed=1)
    args = ((0.4, 1.0), (0.05, 0.4), 2, 24, 12)
    torch.manual_seed(0)
    per_image = DataAugmentationDINO(*args, blur_radius_relative=True)
    crops = [per_image(im) for im in train.images]
    reference = image_stats([torch.stack([c[i] for c in crops]) for i in range(4)])
    images = torch.from_numpy(np.stack([np.asarray(im) for im in train.images])).permute(0, 3, 1, 2)
    batched = image_stats(BatchDataAugmentationDINO(*args, blur_radius_relative=True)(
        images, torch.arange(len(images)), 0))
    for (m_ref, s_ref, g_ref), (m, s, g) in zip(reference, batched):
        assert abs(m - m_ref) < 0.08 and abs(s - s_ref) < 0.08 * s_ref and abs(g - g_ref) < 0.12 * g_ref, \
            (reference, batched)


def test_relative_blur_radius_in_the_per_image_path():
    aug_rel = DataAugmentationDINO((0.4, 1.0), (0.05, 0.4), 1, 32, 12, blur_radius_relative=True)
    blur = aug_rel.global_transfo1.transforms[2]
    assert math.isclose(blur.radius_max, 2.0 * 32 / 224) and math.isclose(blur.radius_min, 0.1 * 32 / 224)
    local_blur = aug_rel.local_transfo.transforms[2]
    assert math.isclose(local_blur.radius_max, 2.0 * 12 / 96)
    official = DataAugmentationDINO((0.4, 1.0), (0.05, 0.4), 1, 32, 12)
    assert official.global_transfo1.transforms[2].radius_max == 2.0


class _HostTraffic(TorchFunctionMode):
    """Records every call that copies host data to the device or reads a value back: on CUDA each
    one waits for all the GPU work queued before it."""

    READS = {"tensor", "as_tensor", "from_numpy", "item", "tolist", "cpu", "numpy", "nonzero",
             "__bool__", "__int__", "__float__"}

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        given = (*args[1:], *(kwargs or {}).values())
        moves = name == "to" and any(isinstance(a, (str, torch.device)) for a in given)
        if name in self.READS or moves:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def test_a_batch_is_augmented_without_host_traffic():
    """After the first call (which makes the constants on the device), a call of the GPU pipeline
    neither copies host data to the device nor reads a value back, so on CUDA the host queues the
    next batch while the GPU still runs the last step (the H200's loop waited 20 % of the time)."""
    images = torch.randint(0, 256, (12, 3, 20, 24), dtype=torch.uint8)
    augment, index = aug(), torch.tensor([1, 4, 9])
    def image_folder_path(crops, epoch):  # colour on the device, crops made by CPU workers
        augment.photometric(crops[0].clamp(0, 1), augment.photometric_draws(index, epoch, [0]),
                            augment.crop_params([0], len(index), images.device))

    image_folder_path(augment(images, index, epoch=0), 0)
    with _HostTraffic() as traffic:
        image_folder_path(augment(images, index, epoch=1), 1)
    assert traffic.calls == []

"""[CLS] attention maps: rows are distributions, one value per patch, equal to a manual computation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from trainables.attention import (
    cls_attention_maps,
    evenly_spaced,
    held_out_images,
    last_block_attention,
    load_teacher,
    require_vit,
    resolve_checkpoint,
    threshold_mask,
    untrained_teacher,
    upsample,
)
from trainables.config import ConfigError, DINOConfig
from trainables.dino.backbone import build_backbone
from trainables.dino.trainer import DINOTrainer

TINY = dict(arch="test_vit", patch_size=4, global_crops_size=16, local_crops_size=8,
            local_crops_number=1, dataset="synthetic", batch_size=32, out_dim=16, head_hidden_dim=16,
            head_bottleneck_dim=8, epochs=1, device="cpu")



@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("vit_tiny_patch16_224", img_size=16, patch_size=4, drop_path_rate=0.0).eval()


def manual_attention(backbone: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale) of the last block, from its qkv Linear on the block's normed input."""
    inputs = []
    block = backbone.blocks[-1]
    hook = block.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    with torch.no_grad():
        backbone(images)
    hook.remove()
    attn = block.attn
    x = block.norm1(inputs[0])
    b, n, _ = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


def test_cls_rows_sum_to_one_per_head_and_map_has_one_value_per_patch(vit):
    images = torch.randn(2, 3, 16, 16)
    maps = cls_attention_maps(vit, images)
    assert maps.cls_attention.shape == (2, 3, 1 + 16)  # 3 heads, [CLS] + 4x4 patches
    torch.testing.assert_close(maps.cls_attention.sum(-1), torch.ones(2, 3))
    assert maps.maps.shape == (2, 3, 4, 4)
    assert maps.mean.shape == (2, 4, 4)
    # the patch part is the [CLS] row without its first (prefix) entry, in raster order
    torch.testing.assert_close(maps.maps.flatten(2), maps.cls_attention[:, :, 1:])
    assert maps.upsampled().shape == (2, 3, 16, 16)


@pytest.mark.parametrize("fused", [True, False])
def test_equals_manual_non_fused_computation_and_restores_the_model(vit, fused):
    vit.blocks[-1].attn.fused_attn = fused
    vit.train()
    images = torch.randn(3, 3, 16, 16)
    got = last_block_attention(vit, images)
    vit.eval()
    expected = manual_attention(vit, images)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    # the maps are the [CLS] (first) query row over the patch keys
    maps = cls_attention_maps(vit, images)
    torch.testing.assert_close(maps.maps, expected[:, :, 0, 1:].reshape(3, 3, 4, 4), rtol=1e-4, atol=1e-6)
    assert vit.blocks[-1].attn.fused_attn is fused
    vit.blocks[-1].attn.fused_attn = True


def test_dynamic_image_sizes_give_the_patch_grid(vit):
    assert cls_attention_maps(vit, torch.randn(1, 3, 16, 24)).maps.shape == (1, 3, 4, 6)
    # a partial patch is cropped away, as the DINO code does
    assert cls_attention_maps(vit, torch.randn(1, 3, 18, 17)).maps.shape == (1, 3, 4, 4)


def test_register_tokens_are_dropped_with_the_cls_token():
    torch.manual_seed(0)
    model = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2,
                              reg_tokens=2, num_classes=0, dynamic_img_size=True).eval()
    maps = cls_attention_maps(model, torch.randn(2, 3, 16, 16))
    assert maps.num_prefix_tokens == 3
    assert maps.cls_attention.shape == (2, 2, 3 + 16)
    torch.testing.assert_close(maps.cls_attention.sum(-1), torch.ones(2, 2))
    torch.testing.assert_close(maps.maps.flatten(2), maps.cls_attention[:, :, 3:])


def test_upsample_is_nearest_one_square_per_patch():
    maps = torch.arange(4.0).reshape(1, 2, 2)
    up = upsample(maps, 3)
    assert up.shape == (1, 6, 6)
    assert torch.equal(up[0, :3, :3], torch.zeros(3, 3))
    assert torch.equal(up[0, 3:, 3:], torch.full((3, 3), 3.0))


def test_threshold_mask_keeps_the_top_patches_reaching_the_mass():
    maps = torch.tensor([[0.50, 0.30], [0.15, 0.05]])
    assert threshold_mask(maps, 0.6).tolist() == [[True, True], [False, False]]
    assert threshold_mask(maps, 0.5).tolist() == [[True, False], [False, False]]  # 0.5 alone reaches 50%
    assert threshold_mask(maps, 0.9).tolist() == [[True, True], [True, False]]
    assert torch.equal(threshold_mask(maps * 7, 0.6), threshold_mask(maps, 0.6))  # mass is relative
    batch = torch.stack([maps, maps.flip(-1)])
    assert threshold_mask(batch, 0.6)[1].tolist() == [[True, True], [False, False]]
    with pytest.raises(ConfigError, match="threshold"):
        threshold_mask(maps, 1.5)


def test_cnn_and_cls_free_vits_are_refused():
    cnn = build_backbone("resnet10t", img_size=16, patch_size=4, drop_path_rate=0.0)
    with pytest.raises(ConfigError) as err:
        require_vit(cnn, "resnet10t")
    assert str(err.value) == ("arch 'resnet10t' has no self-attention: attention maps need a ViT "
                              "(e.g. --set arch=vit_tiny_patch16_224)")
    gap_vit = build_backbone("test_vit2", img_size=16, patch_size=4, drop_path_rate=0.0)
    with pytest.raises(ConfigError, match=r"no \[CLS\] token"):
        require_vit(gap_vit, "test_vit2")


def test_untrained_teacher_is_the_network_the_trainer_starts_from():
    cfg = DINOConfig(**TINY, seed=3)
    trainer_state = DINOTrainer(cfg).teacher.backbone.state_dict()
    rng_before = torch.get_rng_state()
    ours = untrained_teacher(cfg, "cpu").backbone.state_dict()
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is untouched
    assert ours.keys() == trainer_state.keys()
    assert all(torch.equal(ours[k], trainer_state[k]) for k in ours)
    other = untrained_teacher(DINOConfig(**TINY, seed=4), "cpu").backbone.state_dict()
    assert not torch.equal(other["blocks.0.attn.qkv.weight"], ours["blocks.0.attn.qkv.weight"])


def test_held_out_images_are_evenly_spaced_test_images():
    cfg = DINOConfig(**TINY)
    images, names = held_out_images(cfg, 3)
    assert images.shape == (3, 3, 16, 16)
    assert names == ["synthetic test #0", "synthetic test #40", "synthetic test #79"]  # 80 test images
    assert evenly_spaced(5, 10) == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A run folder whose teacher differs from its random init (so loading is observable)."""
    trainer = DINOTrainer(DINOConfig(**TINY))
    with torch.no_grad():
        for p in trainer.teacher.backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    trainer.epoch = 1
    run = tmp_path_factory.mktemp("run")
    trainer.save_checkpoint(run / "checkpoint.pt")
    return run, {k: v.clone() for k, v in trainer.teacher.backbone.state_dict().items()}


def test_load_teacher_from_run_folder_and_checkpoint_file(saved_run):
    run, expected = saved_run
    for source in (run, run / "checkpoint.pt"):
        teacher = load_teacher(source, "cpu")
        assert teacher.epoch == 1 and teacher.config.arch == "test_vit"
        assert teacher.checkpoint == run / "checkpoint.pt"
        state = teacher.backbone.state_dict()
        assert all(torch.equal(state[k], expected[k]) for k in expected)
        assert not teacher.backbone.training


def test_trial_folder_uses_the_latest_checkpoint(saved_run, tmp_path):
    run, _ = saved_run
    trial = tmp_path / "trial"
    for name in ("checkpoint_000002", "checkpoint_000010", "checkpoint_000009"):
        (trial / name).mkdir(parents=True)
        shutil.copy(run / "checkpoint.pt", trial / name / "checkpoint.pt")
    (trial / "params.json").write_text(json.dumps({**TINY, "repeat": 0}))
    assert resolve_checkpoint(trial) == trial / "checkpoint_000010" / "checkpoint.pt"
    assert load_teacher(trial, "cpu").epoch == 1


def test_bad_sources_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="no such file or folder"):
        resolve_checkpoint(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no checkpoint.pt"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "tune").mkdir()
    with pytest.raises(ConfigError, match="a sweep folder: pass one of its trial folders"):
        resolve_checkpoint(tmp_path)
    junk = tmp_path / "notes.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable PyTorch checkpoint"):
        load_teacher(junk, "cpu")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="no 'teacher' entry"):
        load_teacher(tmp_path / "other.pt", "cpu")

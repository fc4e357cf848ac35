import re
from pathlib import Path

import pytest
import torch

from trainables.config import ConfigError
from trainables.dino.backbone import build_backbone, feature_dim, pointwise_weights_nhwc


def test_pretrained_weights_from_a_local_file_only(tmp_path: Path):
    torch.manual_seed(0)
    source = build_backbone("test_vit", img_size=16, patch_size=4, drop_path_rate=0.0)
    file = tmp_path / "weights.pth"
    # A DINO checkpoint layout: the teacher's state dict with a "backbone." prefix.
    torch.save({"teacher": {f"backbone.{k}": v for k, v in source.state_dict().items()}}, file)
    torch.manual_seed(1)
    loaded = build_backbone("test_vit", img_size=16, patch_size=4, drop_path_rate=0.1,
                            pretrained_weights=str(file))
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match="missing.pth': no such file .weights are never downloaded"):
        build_backbone("test_vit", 16, 4, 0.0, pretrained_weights=str(tmp_path / "missing.pth"))
    # there, but no file of weights: they were called 'no such file' too
    special = r"not a regular file \(a FIFO, socket or device\)"
    for there, what in ((tmp_path, "a folder"), (Path("/dev/null"), special)):
        with pytest.raises(ConfigError, match=f"pretrained_weights='{there}': {what} .weights are never"):
            build_backbone("test_vit", 16, 4, 0.0, pretrained_weights=str(there))


def test_a_damaged_safetensors_file_is_named_in_one_line(tmp_path: Path):
    """A truncated .safetensors ended in safetensors' SafetensorError traceback (ablate train, ablate run)."""
    from safetensors.torch import save_file

    good = tmp_path / "w.safetensors"
    save_file(build_backbone("test_resnet", 32, 16, 0.0).state_dict(), str(good))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConfigError, match=r"cut\.safetensors: not a readable safetensors pretrained_weights "
                                          r"file \(truncated or not a safetensors file: Error while deser"):
        build_backbone("test_resnet", 32, 16, 0.0, str(cut))
    build_backbone("test_resnet", 32, 16, 0.0, str(good))  # the whole file loads


def test_cnn_backbones_work_and_unknown_names_are_clear():
    cnn = build_backbone("resnet10t", img_size=32, patch_size=16, drop_path_rate=0.1)
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, cnn.num_features)
    with pytest.raises(ConfigError, match="not a timm model"):
        build_backbone("vit_no_such_model", 32, 4, 0.0)


@pytest.mark.parametrize("arch", ["mobilenetv3_small_050", "lcnet_050", "test_resnet", "test_vit"])
def test_the_dino_head_takes_the_features_the_backbone_returns(arch: str):
    """MobileNetV3 (and GhostNet, LCNet, HGNetV2, MobileNetV4) pool, then widen the features with a
    1x1 conv: timm's ``num_features`` (288 for mobilenetv3_small_050) is not the width they return
    (1024), and the head built on it ended `ablate train` in a shape-error traceback at its first step."""
    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.dino.trainer import DINOTrainer

    cfg = DINOConfig(**{**TINY_TRAINER, "arch": arch, "global_crops_size": 32, "local_crops_size": 32})
    student = DINOTrainer(cfg).student.eval()
    with torch.no_grad():
        feats, logits = student([torch.zeros(2, 3, 32, 32)])
    assert feats.shape == (2, feature_dim(student.backbone)) and logits.shape == (2, cfg.out_dim)


@pytest.mark.parametrize("arch", ["resnet10t", "test_vit"])  # resnet10t: BatchNorm counters everywhere
def test_pretrained_weights_matching_nothing_or_misshapen_are_errors(tmp_path: Path, arch: str):
    file = tmp_path / "w.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2), "conv.bias": torch.zeros(2)}}, file)
    with pytest.raises(ConfigError, match=r"no weight matches the backbone .*file keys: conv\.bias"):
        build_backbone(arch, 16, 4, 0.0, pretrained_weights=str(file))
    state = build_backbone(arch, 16, 4, 0.0).state_dict()
    name = next(k for k, v in state.items() if v.ndim > 1)
    torch.save({**state, name: torch.zeros(3)}, file)
    with pytest.raises(ConfigError, match=f"does not fit .*size mismatch for {name}"):
        build_backbone(arch, 16, 4, 0.0, pretrained_weights=str(file))


def test_a_crop_the_backbone_cannot_take_is_refused_up_front():
    """A ViT's (or Swin's) patch embedding needs whole patches and a ConvNeXt needs 32 px: each failed
    in the first forward pass (a traceback in `ablate train`). The rule finds them with a forward pass
    on the meta device, confirmed on the real model, and names every crop that does not fit."""
    from trainables.dino.backbone import check_crop_sizes

    check_crop_sizes("test_vit", 4, {"global_crops_size": 16, "local_crops_size": 8})
    check_crop_sizes("test_resnet", 4, {"global_crops_size": 30, "local_crops_size": 13})
    with pytest.raises(ConfigError, match=r"^local_crops_size=10 \(Input height \(10\) should be divisible "
                                          r"by patch size \(4\)\.\): arch 'test_vit' with patch_size=4 "
                                          r"cannot take this crop; set local_crops_size: 12 \(the next size "
                                          r"it takes\)$"):
        check_crop_sizes("test_vit", 4, {"global_crops_size": 16, "local_crops_size": 10})
    with pytest.raises(ConfigError, match=r"^global_crops_size=30 \(.*divisible by patch size \(16\).*\); "
                                          r"local_crops_size=20 \(.*\): arch 'swin_tiny_patch4_window7_224'"):
        check_crop_sizes("swin_tiny_patch4_window7_224", 16, {"global_crops_size": 30,
                                                              "local_crops_size": 20})
    with pytest.raises(ConfigError, match=r"^local_crops_size=16 \(Calculated padded input size.*\): arch "
                                          r"'convnext_tiny' cannot take this crop; set local_crops_size: 32 "
                                          r"\(the next size it takes\)$"):
        check_crop_sizes("convnext_tiny", 16, {"global_crops_size": 32, "local_crops_size": 16})
    vit = build_backbone("test_vit", img_size=16, patch_size=4, drop_path_rate=0.0)
    with pytest.raises(AssertionError, match="divisible by patch size"):  # what the rule spares users
        vit(torch.zeros(1, 3, 10, 10))


def test_crops_that_fit_are_checked_once_per_process(monkeypatch: pytest.MonkeyPatch):
    """A sweep's trial process builds one trainer after another: a combination that fits is not checked
    again (no model built, no forward pass); one that does not fit is refused every time."""
    from trainables.dino import backbone

    crops = {"global_crops_size": 32, "local_crops_size": 16}
    backbone.check_crop_sizes("test_resnet", 16, crops)

    def never(*args: object) -> str:
        raise AssertionError("checked again")

    monkeypatch.setattr(backbone, "crop_problem", never)
    monkeypatch.setattr(backbone, "build_backbone", never)
    backbone.check_crop_sizes("test_resnet", 16, crops)
    monkeypatch.undo()
    for _ in range(2):
        with pytest.raises(ConfigError, match="local_crops_size=10"):
            backbone.check_crop_sizes("test_vit", 4, {"global_crops_size": 16, "local_crops_size": 10})


def test_a_grid_of_crop_sizes_checks_each_size_once_per_global_size(monkeypatch: pytest.MonkeyPatch):
    """The points of a grid over crop sizes share their sizes: each (global size, crop size) pair is one
    forward pass and each global size one model, not a model and a pass per crop for every point (a
    10 x 10 grid of global and local sizes took 10 s to check)."""
    from trainables.dino import backbone

    backbone.size_problem.cache_clear()
    backbone.meta_backbone.cache_clear()
    passes: list[int] = []
    forward = backbone.crop_problem
    monkeypatch.setattr(backbone, "crop_problem", lambda model, size, device: passes.append(size) or
                        forward(model, size, device))
    for global_size in (32, 40):
        for local_size in (12, 16, 20):
            backbone.check_crop_sizes("test_resnet", 16, {"global_crops_size": global_size,
                                                          "local_crops_size": local_size})
    assert sorted(passes) == [12, 12, 16, 16, 20, 20, 32, 40]
    assert backbone.meta_backbone.cache_info().currsize == 2
    with pytest.raises(ConfigError, match="local_crops_size=10"):  # a size that does not fit: still refused
        backbone.check_crop_sizes("test_vit", 4, {"global_crops_size": 16, "local_crops_size": 10})


def test_a_cnn_under_ddp_gets_gradients_with_its_weights_strides():
    """DDP copies each gradient into a bucket view with its parameter's strides and warns when they
    differ. On a CPU, oneDNN returns the weight gradient of a 1x1 convolution with NHWC strides for
    NHWC activations; with those weights restrided (the same memory, the same values) every
    gradient matches its weight, so `workers: 2` CNN trials train without the warning."""
    torch.manual_seed(0)
    cnn = build_backbone("test_resnet", img_size=32, patch_size=16, drop_path_rate=0.0)
    before = {name: p.detach().clone() for name, p in cnn.named_parameters()}
    pointwise_weights_nhwc(cnn)
    batch = torch.randn(32, 3, 32, 32)  # the default's global crops (at 4 images oneDNN keeps NCHW)
    cnn(batch.contiguous(memory_format=torch.channels_last)).sum().backward()
    pointwise = [name for name, p in cnn.named_parameters() if p.ndim == 4 and p.shape[2:] == (1, 1)]
    assert pointwise  # test_resnet has 1x1 convolutions (bottleneck and downsample)
    assert [name for name, p in cnn.named_parameters() if p.grad.stride() != p.stride()] == []
    assert all(torch.equal(p, before[name]) for name, p in cnn.named_parameters())


def test_a_model_without_stochastic_depth_takes_drop_path_rate_0_only():
    """timm's GhostNet (DenseNet, Inception, VGG, DLA, ...) takes no drop_path_rate: `ablate train` with
    such an arch ended in a TypeError traceback, even at drop_path_rate 0 (the teacher's). It is built
    without the argument at 0, and a rate it would ignore is refused before the data is read."""
    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.inputs import check_model

    model = build_backbone("ghostnet_050", 32, 16, 0.0)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, feature_dim(model))
    cfg = {**TINY_TRAINER, "arch": "ghostnet_050", "global_crops_size": 32, "local_crops_size": 32}
    check_model(DINOConfig(**cfg, drop_path_rate=0.0))
    expected = (r"^drop_path_rate=0.1: arch 'ghostnet_050' has no stochastic depth \(timm builds it without "
                r"drop_path_rate\), so the rate would be ignored; set drop_path_rate: 0$")
    with pytest.raises(ConfigError, match=expected):
        check_model(DINOConfig(**cfg))  # the default rate, 0.1
    with pytest.raises(ConfigError, match=expected):
        build_backbone("ghostnet_050", 32, 16, 0.1)


def test_backbone_weights_a_pretrained_file_leaves_out_are_said(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture):
    """resnet18's file loaded into a resnet34 matched most of its weights, and the rest (each stage's
    later blocks) trained from random values in silence; the check before the run now says how many."""
    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.inputs import check_weights

    source = build_backbone("test_resnet", 32, 16, 0.0).state_dict()
    whole, part = tmp_path / "whole.pth", tmp_path / "part.pth"
    torch.save(source, whole)
    torch.save({k: v for k, v in source.items() if not k.startswith("layer2.")}, part)
    cfg = {**TINY_TRAINER, "arch": "test_resnet", "global_crops_size": 32, "local_crops_size": 32}
    check_weights(DINOConfig(**cfg, pretrained_weights=str(whole)))
    assert capsys.readouterr().err == ""
    check_weights(DINOConfig(**cfg, pretrained_weights=str(part)))
    missing = sorted(k for k in source if k.startswith("layer2.") and not k.endswith("num_batches_tracked"))
    total = sum(not k.endswith("num_batches_tracked") for k in source)
    assert capsys.readouterr().err.splitlines() == [
        f"ablate: warning: pretrained_weights={str(part)!r}: {len(missing)} of the {total} weights of ResNet "
        f"are not in the file and start from random values (e.g. {', '.join(missing[:3])}); is it the "
        "weights of another arch?"]


def test_an_unknown_arch_is_worded_once_whoever_refuses_it():
    """build_backbone said "Similar: vit_small_patch16_224, ..." (the first eight names of a glob), the
    input check of ablate train and ablate run "did you mean" (the closest names): one wording now."""
    from trainables.config import arch_problem

    said = arch_problem("vit_smal_patch16_224")
    assert said is not None and said.startswith("arch='vit_smal_patch16_224': not a timm model name (any of ")
    assert "; did you mean vit_small_patch16_224," in said
    with pytest.raises(ConfigError) as info:
        build_backbone("vit_smal_patch16_224", 32, 16, 0.0)
    assert str(info.value) == said
    assert arch_problem("test_vit") is None


@pytest.mark.parametrize("arch", ["test_coatnet", "test_vit_relpos"])
def test_a_model_with_a_fixed_input_size_is_built_for_the_global_crops(arch: str):
    """CoAtNet, BEiT, CaiT, LeViT, Hiera, MaxViT, ... take ``img_size`` but no dynamic size: they were
    built for timm's 224 px, so no crop but 224 px fitted (the default 32/16 crops were refused, with
    nothing to set). Built for the global crops, they train on them, with local crops of that size or
    none; a smaller local crop is refused with those two ways out."""
    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.dino.trainer import DINOTrainer
    from trainables.inputs import check_model

    cfg = {**TINY_TRAINER, "arch": arch, "global_crops_size": 32, "drop_path_rate": 0.0}
    check_model(DINOConfig(**{**cfg, "local_crops_size": 32}))
    check_model(DINOConfig(**{**cfg, "local_crops_number": 0}))
    with pytest.raises(ConfigError, match=r"^local_crops_size=16 \(.*\): arch '[a-z_]+'( with patch_size=4)? "
                                          r"cannot take this crop; it takes only crops of the size it is "
                                          r"built for, global_crops_size=32: set local_crops_size: 32, or "
                                          r"local_crops_number: 0$"):
        check_model(DINOConfig(**{**cfg, "local_crops_size": 16}))
    student = DINOTrainer(DINOConfig(**{**cfg, "local_crops_number": 0})).student
    feats, logits = student([torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)])
    logits.sum().backward()
    assert feats.shape == (4, feature_dim(student.backbone)) and torch.isfinite(logits).all()


@pytest.mark.parametrize(("arch", "patch_size", "crops", "fix"), [
    ("test_vit", 14, {"global_crops_size": 32, "local_crops_size": 16},  # a DINOv2 ViT's 14 px patches
     "set global_crops_size: 42 (the next size it takes); set local_crops_size: 28 (the next size it takes)"),
    ("test_convnext", 16, {"global_crops_size": 32, "local_crops_size": 16},  # 1 x 1 px before a 2 x 2 conv
     "set local_crops_size: 32 (the next size it takes)"),
    ("efficientformer_l1", 16, {"global_crops_size": 64},  # its attention biases are for 224 px only
     "set global_crops_size: 224 (the size timm makes efficientformer_l1 for)"),
    ("coat_lite_mini", 16, {"global_crops_size": 32},  # its stages are for 4 px patches
     "set patch_size: 4 (the patches timm makes coat_lite_mini with)"),
    ("maxvit_nano_rw_256", 16, {"global_crops_size": 32, "local_crops_size": 16},  # windows: 23 px fits too
     "set local_crops_size: 24 (the next size it takes)"),
    ("halonet26t", 16, {"global_crops_size": 32, "local_crops_size": 16},  # the local fix is for 256 px
     "set global_crops_size: 256 (the size timm makes halonet26t for); set local_crops_size: 256 (the next "
     "size it takes)"),
])
def test_a_crop_the_backbone_cannot_take_is_refused_with_what_to_set(arch: str, patch_size: int,
                                                                     crops: dict[str, int], fix: str):
    """A crop refusal named the crop and PyTorch's complaint ("Kernel size can't be greater than actual
    input size", "Expected size for first two dimensions of batch2 tensor ...") but not what would fit:
    it now says the size (or the patch size) to set, found with forward passes on the meta device. A
    model with windows (MaxViT, HaloNet) was told odd sizes (23, 223, 241 px: the first its stride
    rounds to whole windows), and when both crops were refused the local crop's fix came only after the
    global one was mended: now a size a user would write, and both fixes in one line."""
    from trainables.dino.backbone import check_crop_sizes

    with pytest.raises(ConfigError) as info:
        check_crop_sizes(arch, patch_size, crops)
    assert re.search(f"cannot take th(is crop|ese crops); {re.escape(fix)}$", str(info.value))
    for key, value in re.findall(r"set (\w+): (\d+)", fix):  # what it says to set fits
        patch_size = int(value) if key == "patch_size" else patch_size
        crops = {**crops, key: int(value)} if key != "patch_size" else crops
    check_crop_sizes(arch, patch_size, crops)


def test_a_model_that_cannot_take_the_patch_size_is_refused_naming_its_own():
    """NesT (blocks that must tile the patch grid), Twins and VitaMin (patches counted on its stem's
    feature map) take patch_size, but timm could not build them with 16 px patches at 32 px: they were
    built with their own patches in silence, and the run's patch_size (a report column) said 16. The
    refusal names the patch size they take, with the crops' fixes for it in the same line; a patch size
    they can be built with is honoured; a model timm cannot build at all is a one-line ConfigError."""
    import timm

    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.dino import backbone
    from trainables.inputs import check_model

    cfg = {**TINY_TRAINER, "arch": "nest_tiny", "patch_size": 16, "global_crops_size": 32,
           "local_crops_size": 16}
    nest = (r"^patch_size=16: arch 'nest_tiny' cannot be built with 16 px patches for global_crops_size=32 "
            r"\(AssertionError: First level blocks .*\); set patch_size: 4 \(the patches timm makes "
            r"nest_tiny with\); local_crops_size=16 \(.*\): arch 'nest_tiny' with patch_size=4 cannot "
            r"take this crop; it takes only crops of the size it is built for, global_crops_size=32: set "
            r"local_crops_size: 32, or local_crops_number: 0$")
    with pytest.raises(ConfigError, match=nest):  # drop_path_rate's check builds it too: said once
        check_model(DINOConfig(**cfg))
    check_model(DINOConfig(**{**cfg, "patch_size": 4, "local_crops_size": 32}))
    with torch.device("meta"):
        assert backbone.patches(build_backbone("nest_tiny", 32, 8, 0.0)) == 8  # it tiles: honoured
    with pytest.raises(ConfigError, match=r"^patch_size=16: arch 'vitamin_small_224' cannot be built .*; "
                                          r"set patch_size: 1 \(the patches timm makes vitamin_small_224 "
                                          r"with\)$"):
        check_model(DINOConfig(**{**cfg, "arch": "vitamin_small_224"}))

    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("feature size must be divisible by patch size")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timm, "create_model", broken)
        with pytest.raises(ConfigError, match=r"^arch='test_vit': timm cannot build it, with img_size=32 "
                                              r"\(global_crops_size\) and patch_size=16 or with its own "
                                              r"sizes \(AssertionError: feature size must be divisible by "
                                              r"patch size\); choose another arch$"):
            build_backbone("test_vit", 32, 16, 0.0)


def test_a_vit_that_pools_its_patch_tokens_returns_its_cls_token():
    """EVA-02 and BEiT pool the mean of their patch tokens (PE-core an attention pooler): the DINO head
    was fed that mean, not the [CLS] token the method trains and whose attention maps ablate shows. It
    gets the [CLS] token after the final norm, as for every other ViT."""
    torch.manual_seed(0)
    vit = build_backbone("eva02_tiny_patch14_224", img_size=28, patch_size=14, drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        tokens = vit.forward_features(x)  # (2, 1 + 4, 192): [CLS] and 2 x 2 patches
        cls = torch.nn.functional.layer_norm(tokens[:, 0], tokens.shape[-1:], eps=1e-6)
        assert torch.allclose(vit(x), cls, atol=1e-5)


def test_crops_and_drop_path_rate_a_backbone_cannot_take_are_said_at_once():
    """DenseNet (VGG, DLA, HRNet, Inception) needs larger local crops and has no stochastic depth: the
    crop was refused, and once it was changed, the rate; both are said in the first refusal now."""
    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.inputs import check_model

    cfg = {**TINY_TRAINER, "arch": "densenet121", "global_crops_size": 32, "local_crops_size": 16}
    with pytest.raises(ConfigError, match=r"^local_crops_size=16 \(.*\): arch 'densenet121' cannot take this "
                                          r"crop; set local_crops_size: \d+ \(the next size it takes\); "
                                          r"drop_path_rate=0.1: arch 'densenet121' has no stochastic depth "
                                          r".*; set drop_path_rate: 0$"):
        check_model(DINOConfig(**cfg, drop_path_rate=0.1))


@pytest.mark.parametrize("arch", ["deit_tiny_distilled_patch16_224", "pit_ti_distilled_224"])
def test_a_distilled_vit_returns_its_cls_token(arch: str):
    """A distilled DeiT (or PiT) returned the mean of its [CLS] and distillation tokens (timm's inference
    path for its two classifiers), and the DINO head was fed that mean: it returns its [CLS] token."""
    torch.manual_seed(0)
    vit = build_backbone(arch, img_size=32, patch_size=16, drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = vit.forward_features(x)  # normed; [CLS] first, the distillation token second
        assert torch.equal(vit(x), tokens[:, 0]) and not torch.allclose(tokens[:, 0], tokens[:, 1])


def test_levit_keeps_the_mean_of_its_patch_tokens():
    """LeViT is distilled too but has no [CLS] token: its two heads, the identity at num_classes=0, both
    read the mean of its patch tokens, a CNN's pooled feature, which is what it returns."""
    levit = build_backbone("levit_128s", img_size=64, patch_size=16, drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(levit(x), levit.forward_features(x).mean(dim=1))


def test_a_backbone_whose_get_classifier_raises_trains():
    """timm's get_classifier() raises on EfficientViT-M and SHViT built with num_classes=0 (their heads'
    layers are Identity); nothing in the trainer asks for a classifier, so they train and evaluate."""
    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.dino.trainer import DINOTrainer

    cfg = DINOConfig(**{**TINY_TRAINER, "arch": "efficientvit_m0", "global_crops_size": 32,
                        "local_crops_size": 32, "drop_path_rate": 0.0, "epochs": 1})
    trainer = DINOTrainer(cfg)
    with pytest.raises(AttributeError):
        trainer.student.backbone.get_classifier()
    assert torch.isfinite(torch.tensor(trainer.train_one_epoch(0)["loss"]))
    assert all(0 <= value <= 100 for value in trainer.evaluate())  # kNN top-1, top-5 (%)

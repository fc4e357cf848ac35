import math

import pytest
import torch

from trainables.config import ConfigError, DINOConfig, make_config
from trainables.dino.trainer import DINOTrainer, NonFiniteLossError, clip_gradients

TINY = dict(dataset="synthetic", arch="test_vit", patch_size=4, global_crops_size=16,
            local_crops_size=8, local_crops_number=2, batch_size=32, out_dim=64, head_hidden_dim=32,
            head_bottleneck_dim=16, device="cpu", eval_every=0, warmup_epochs=1)


def tiny(**kw) -> DINOConfig:
    return DINOConfig(**{**TINY, **kw})


HOST_ALLOC_FAILED = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                     "memory: you tried to allocate 274877906944 bytes. Error code 12")


def test_a_network_the_host_cannot_hold_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    """torch's CPU allocator raises a plain RuntimeError (here for a 2^20 x 65536 last layer): it was a
    traceback from `ablate train`, and a sweep trial Ray retried twice before recording it errored."""
    import trainables.dino.trainer as trainer_module

    def head_too_large(**kwargs):
        raise RuntimeError(HOST_ALLOC_FAILED)

    monkeypatch.setattr(trainer_module, "DINOHead", head_too_large)
    with pytest.raises(ConfigError, match=r"out_dim=64, head_hidden_dim=32, head_bottleneck_dim=16, "
                                          r"head_nlayers=3\) does not fit in this machine's memory "
                                          r"\(DefaultCPUAllocator: can't allocate memory: you tried to "
                                          r"allocate 274877906944 bytes"):
        DINOTrainer(tiny())


def test_teacher_starts_as_student_and_follows_by_ema():
    trainer = DINOTrainer(tiny(epochs=2, momentum_teacher=0.9, warmup_epochs=0))
    for s, t in zip(trainer.student_params, trainer.teacher_params):
        assert torch.equal(s, t)
    assert all(not p.requires_grad for p in trainer.teacher_params)
    crops, _ = next(iter(trainer.loader))
    teacher_before = [t.clone() for t in trainer.teacher_params]
    trainer.train_step([crops], it=0, epoch=0)
    m = float(trainer.momentum_schedule[0])
    assert m == pytest.approx(0.9)
    for t0, s, t in zip(teacher_before, trainer.student_params, trainer.teacher_params):
        torch.testing.assert_close(t, m * t0 + (1 - m) * s)
    assert any(not torch.equal(t0, t) for t0, t in zip(teacher_before, trainer.teacher_params))


def test_last_layer_frozen_in_first_epoch_and_no_decay_on_norms():
    trainer = DINOTrainer(tiny(epochs=2, freeze_last_layer=1))
    v = trainer.student.head.last_layer.parametrizations.weight.original1
    before = v.clone()
    crops, _ = next(iter(trainer.loader))
    trainer.train_step([crops], it=0, epoch=0)
    assert torch.equal(before, v)
    trainer.train_step([crops], it=1, epoch=1)
    assert not torch.equal(before, v)
    decayed, free = trainer.optimizer.param_groups
    assert free["weight_decay"] == 0 and all(p.ndim > 1 for p in decayed["params"])
    assert decayed["weight_decay"] == pytest.approx(trainer.wd_schedule[1])


def test_per_parameter_gradient_clipping():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    a.grad, b.grad = torch.tensor([30.0, 40.0, 0.0]), torch.tensor([0.3, 0.4])
    clip_gradients([a, b], 5.0)
    torch.testing.assert_close(a.grad.norm(), torch.tensor(5.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.grad, torch.tensor([0.3, 0.4]))  # under the limit: untouched


def test_resume_gives_the_same_weights_as_training_straight(tmp_path):
    cfg = tiny(epochs=4, seed=3)
    straight = DINOTrainer(cfg)
    for _ in straight.run():
        pass
    first = DINOTrainer(cfg)
    for m in first.run():
        if m["epoch"] == 2:
            break
    first.save_checkpoint(tmp_path / "checkpoint.pt")
    resumed = DINOTrainer(cfg)
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    epochs = [m["epoch"] for m in resumed.run()]
    assert epochs == [3, 4]
    for a, b in zip(straight.student.state_dict().values(), resumed.student.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(straight.teacher_params, resumed.teacher_params):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(straight.loss_fn.center, resumed.loss_fn.center, rtol=0, atol=0)


def test_gradient_accumulation_steps_and_lr_scaling():
    cfg = tiny(epochs=1, batch_size=16, grad_accum_steps=2, lr=1e-3)
    trainer = DINOTrainer(cfg)
    assert trainer.niter_per_ep == len(trainer.loader) // 2
    assert cfg.effective_lr() == pytest.approx(1e-3 * 32 / 256)
    assert cfg.effective_lr(world_size=4) == pytest.approx(1e-3 * 128 / 256)
    metrics = list(trainer.run())
    assert metrics[-1]["epoch"] == 1 and math.isfinite(metrics[-1]["loss"])


def test_non_finite_loss_stops_with_a_clear_error():
    trainer = DINOTrainer(tiny(epochs=1, lr=1e30, clip_grad=0, warmup_epochs=0))
    with pytest.raises(NonFiniteLossError, match="diverged"):
        list(trainer.run())


def test_bad_config_errors_name_key_value_and_allowed():
    with pytest.raises(ConfigError, match=r"teacher_tmp.*Did you mean teacher_temp"):
        make_config({"teacher_tmp": 0.04})
    # in the spec's words (ablate.sweep_spec), not pydantic's 'Input should be greater than 0'
    with pytest.raises(ConfigError, match=r"teacher_temp=-0.1: expected a number > 0 \(Teacher temp"):
        make_config({"teacher_temp": -0.1})
    with pytest.raises(ConfigError, match=r"teacher_temp=20000.0: expected a number <= 10000 \("):
        make_config({"teacher_temp": 20000.0})
    with pytest.raises(ConfigError, match=r"epochs=null: expected an integer \(Training epochs"):
        make_config({"epochs": None})
    with pytest.raises(ConfigError, match=r"global_crops_scale.*0 < low <= high <= 1"):
        make_config({"global_crops_scale": [0.9, 0.2]})
    with pytest.raises(ConfigError, match="not a timm model"):
        DINOTrainer(tiny(arch="no_such_net"))
    # a device index in other than ASCII digits passed str.isdigit, and torch.device raised on a GPU machine
    with pytest.raises(ConfigError, match="must be auto, cpu, cuda or cuda:N, got 'cuda:\u0661'"):
        make_config({"device": "cuda:\u0661"})
    assert make_config({"device": "cuda:1"}).device == "cuda:1"
    # what a key takes is said once: 'got 'mps' (auto, cpu, cuda or cuda:N.)' repeated its own message
    with pytest.raises(ConfigError) as bad_device:
        make_config({"device": "mps"})
    assert str(bad_device.value).count("auto, cpu, cuda or cuda:N") == 1
    with pytest.raises(ConfigError, match=r"lr=-1: expected a number > 0 \(Peak lr"):
        make_config({"lr": -1})


def test_an_arch_named_with_other_patches_than_the_default_needs_patch_size_set():
    """timm builds a ViT with the patch_size it is given: vit_small_patch8_224 with the default 16 ran
    as a ViT-S/16 without a word (the paper's ViT-S/8 is one a user asks for)."""
    with pytest.raises(ConfigError, match=r"arch 'vit_small_patch8_224' has 8-pixel patches, but "
                                          r"patch_size is 16 \(the default\).*set patch_size: 8"):
        make_config({"arch": "vit_small_patch8_224"})
    assert make_config({"arch": "vit_small_patch8_224", "patch_size": 8}).patch_size == 8
    assert make_config({"arch": "vit_small_patch8_224", "patch_size": 4}).patch_size == 4  # asked for
    assert make_config({"arch": "vit_small_patch16_224"}).patch_size == 16
    assert make_config({"arch": "resnet18"}).patch_size == 16  # a CNN ignores it


def test_settings_that_need_a_gpu_are_named_when_the_run_is_on_a_cpu():
    """One rule (DINOConfig.gpu_settings) for the trainer and for a sweep's admission."""
    with pytest.raises(ConfigError, match=r"^precision='fp16': needs a CUDA device, and this run's device "
                                          r"is cpu"):
        DINOTrainer(tiny(precision="fp16"))
    if not torch.cuda.is_available():  # device auto resolves to the CPU here
        with pytest.raises(ConfigError, match=r"^augment_device='gpu', precision='fp16': need a CUDA"):
            DINOTrainer(tiny(device="auto", augment_device="gpu", precision="fp16"))
    assert tiny(device="cuda:1").gpu_settings() == ["device='cuda:1'"] and tiny().gpu_settings() == []


@pytest.mark.slow
def test_default_recipe_runs_on_the_embedded_default():
    """digit_scenes, default recipe: kNN top-1 above epoch 0 (mostly the BatchNorm statistics of
    the augmented crops, see bench/README.md "signal"), and the teacher has not collapsed."""
    trainer = DINOTrainer(DINOConfig(epochs=3, device="cpu"))
    metrics = list(trainer.run())
    top1 = [m["knn_top1"] for m in metrics if "knn_top1" in m]
    assert metrics[0]["epoch"] == 0 and len(top1) == 4
    assert max(top1[1:]) > top1[0] + 2.0, top1
    last = metrics[-1]
    assert not last["loss_at_ln_out_dim"] and last["teacher_entropy"] < 0.98 * last["ln_out_dim"]


def test_a_cnn_on_cpu_convolves_nhwc_activations_with_nchw_weights():
    """oneDNN's fast path; NHWC weights would cost a layout copy of every weight gradient and a
    contiguous copy of every parameter in the fused AdamW step (bench/README.md)."""
    trainer = DINOTrainer(tiny(arch="test_resnet", epochs=2))
    conv = next(m for m in trainer.student.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    nhwc: list[bool] = []
    conv.register_forward_hook(
        lambda _m, _i, out: nhwc.append(out.is_contiguous(memory_format=torch.channels_last)))
    trainer.loader.set_epoch(1)
    crops, _ = next(iter(trainer.loader))
    trainer.train_step([crops], it=trainer.niter_per_ep, epoch=1)
    assert nhwc and all(nhwc)  # global and local crops
    assert all(p.is_contiguous() for p in trainer.student_params + trainer.teacher_params)
    assert all(p.grad.is_contiguous() for p in trainer.student_params if p.grad is not None)


def test_bf16_on_a_cpu_trains_a_cnn_to_the_same_weights_every_time():
    """oneDNN's bf16 weight gradient of test_resnet's stride-2 convolutions of 1 x 1 maps (16 px crops)
    held leftover memory (cpu_bf16): the same seed gave other weights, or NaN ones, run to run."""
    weights = []
    for _ in range(3):
        trainer = DINOTrainer(tiny(arch="test_resnet", precision="bf16", epochs=2))
        trainer.loader.set_epoch(1)
        crops, _ = next(iter(trainer.loader))
        trainer.train_step([crops], it=trainer.niter_per_ep, epoch=1)
        weights.append(torch.cat([p.detach().flatten() for p in trainer.student_params]))
    assert weights[0].isfinite().all() and all(torch.equal(w, weights[0]) for w in weights)


def test_the_trainer_gives_each_config_value_to_its_own_loss_argument():
    # Distinct values everywhere: a swapped pair (warmup_teacher_temp / teacher_temp, student_temp
    # / center_momentum, warmup epochs / epochs) gives other numbers below.
    cfg = tiny(warmup_teacher_temp=0.03, teacher_temp=0.06, warmup_teacher_temp_epochs=4, epochs=5,
               student_temp=0.2, center_momentum=0.8, local_crops_number=3, out_dim=24)
    trainer = DINOTrainer(cfg)
    loss_fn = trainer.loss_fn
    assert [trainer.teacher_temp(e) for e in range(5)] == pytest.approx([0.03, 0.04, 0.05, 0.06, 0.06])
    assert (loss_fn.student_temp, loss_fn.center_momentum) == (0.2, 0.8)
    assert (loss_fn.ncrops, loss_fn.out_dim) == (5, 24)
    assert loss_fn.centering == cfg.centering


def test_checkpoint_of_a_cuda_run_loads_its_rng_states_on_the_cpu(tmp_path, monkeypatch):
    # load_checkpoint must not map the file to the run's device: the RNG states would become
    # CUDA tensors and torch.set_rng_state raise TypeError. Faked here: a "cuda" run whose
    # map_location cannot be honoured on this CPU machine (today's code raises here).
    trainer = DINOTrainer(tiny(epochs=1))
    torch.manual_seed(123)
    saved = torch.get_rng_state()
    trainer.save_checkpoint(tmp_path / "checkpoint.pt")
    torch.manual_seed(0)
    trainer.device = torch.device("cuda:0")
    trainer.load_checkpoint(tmp_path / "checkpoint.pt")
    assert torch.equal(torch.get_rng_state(), saved)


def test_saving_rng_state_of_a_cpu_run_does_not_touch_cuda(monkeypatch):
    trainer = DINOTrainer(tiny(epochs=1))

    def no_cuda(*args, **kwargs):
        raise AssertionError("a CPU run created a CUDA context to save RNG states")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", no_cuda)
    monkeypatch.setattr(torch.cuda, "get_rng_state", no_cuda)
    assert trainer.state_dict()["rng"]["cuda"] is None


def test_epoch_reports_data_wait_and_the_per_image_path_trains():
    batched = DINOTrainer(tiny(epochs=1))
    per_image = DINOTrainer(tiny(epochs=1, augment_device="cpu"))
    for trainer in (batched, per_image):
        m = trainer.train_one_epoch(0)
        assert 0 <= m["data_wait_s"] <= m["epoch_time_s"] and 0 <= m["data_wait_share"] <= 1
        assert "gpu_mem_peak_gb" not in m  # CUDA only
        assert math.isfinite(m["loss"])
    crops, _ = next(iter(per_image.loader))
    assert [tuple(c.shape) for c in crops] == [(32, 3, 16, 16)] * 2 + [(32, 3, 8, 8)] * 2
    with pytest.raises(ConfigError, match="augment_device"):
        make_config({"augment_device": "gpu", "device": "cpu"})


def test_knn_memory_subsample():
    trainer = DINOTrainer(tiny(epochs=1, knn_memory_size=50))
    assert len(trainer.memory_set) == 50 and trainer.memory_data[0].shape[0] == 50
    feats, labels = trainer._features(trainer.memory_data, trainer.memory_set)
    assert feats.dtype == torch.float16 and feats.shape[0] == labels.shape[0] == 50


def test_a_sinkhorn_run_at_a_low_teacher_temp_trains():
    """Sinkhorn-Knopp took exp(logits / teacher_temp) as DINOv2's code does, which overflowed float32
    at a low temperature: the loss was NaN at teacher_temp 1e-4 and the run ended diverged."""
    trainer = DINOTrainer(tiny(epochs=1, centering="sinkhorn_knopp", teacher_temp=1e-4,
                               warmup_teacher_temp=1e-4))
    metrics = trainer.train_one_epoch(0)
    assert math.isfinite(metrics["loss"]) and metrics["loss"] > 0


def test_weights_made_non_finite_by_an_epochs_last_update_stop_as_diverged():
    """SGD at lr 1e3 without clipping: the last update of epoch 1 turned the weights NaN after every loss
    of the epoch was computed, and `ablate train` said 'done' with a chance-level kNN (25 %) of NaN
    features; a sweep ranked the trial as completed."""
    trainer = DINOTrainer(tiny(epochs=1, optimizer="sgd", lr=1e3, clip_grad=0))
    with pytest.raises(NonFiniteLossError, match=r"^weights are NaN or infinite after epoch 1 \(its loss "
                                                 r"[0-9.]+ was computed before its last update\): training "
                                                 r"diverged"):
        trainer.train_one_epoch(0)
    assert not trainer.weights_finite()

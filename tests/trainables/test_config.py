"""DINOConfig's rules between keys and the notes it gives on a run's schedule."""

from __future__ import annotations

import pytest

from tests.helpers import TINY_TRAINER
from trainables.config import ConfigError, DINOConfig, make_config


def test_koleo_with_a_batch_of_one_is_refused() -> None:
    """A lone image's nearest neighbour is itself: `ablate train` with koleo_weight 0.1 and batch_size 1
    ran, its KoLeo term a constant of about 32 added to every reported loss and no gradient."""
    with pytest.raises(ConfigError, match=r"^--set koleo_weight 0.1 with batch_size 1: KoLeo spreads the "
                                          r"images .* set batch_size >= 2, or koleo_weight: 0$"):
        make_config({**TINY_TRAINER, "koleo_weight": 0.1, "batch_size": 1}, "--set ")
    make_config({**TINY_TRAINER, "koleo_weight": 0.1, "batch_size": 2})
    make_config({**TINY_TRAINER, "koleo_weight": 0.0, "batch_size": 1})


def test_a_last_layer_frozen_for_the_whole_run_is_said() -> None:
    """freeze_last_layer 1 (the default) of a 1-epoch run: the last layer never got a gradient, so the
    prototypes stayed random and norm_last_layer true and false trained the same weights, in silence."""
    note = ("freeze_last_layer 1 >= epochs 1: the last layer never trains (the prototypes keep their "
            "initial weights, and norm_last_layer has no effect)")
    assert DINOConfig(**{**TINY_TRAINER, "epochs": 1}).unfinished_warmups() == [note]
    assert DINOConfig(**{**TINY_TRAINER, "epochs": 2}).unfinished_warmups() == []
    assert DINOConfig(**{**TINY_TRAINER, "epochs": 1, "freeze_last_layer": 0}).unfinished_warmups() == []


def test_a_min_lr_above_the_peak_is_said() -> None:
    """lr is scaled by the batch (lr x batch / 256), min_lr is not: lr 5e-6 at batch 32 peaks at 6.25e-7,
    below the default min_lr 1e-6, and the cosine 'decay' raised the learning rate in silence."""
    cfg = DINOConfig(**{**TINY_TRAINER, "lr": 5e-6})  # batch 32, epochs 2
    assert cfg.unfinished_warmups() == [
        "min_lr 1e-06 > the peak lr 6.25e-07 (lr 5e-06 x batch 32 / 256): after the warmup the learning rate "
        "rises to min_lr instead of decaying"]
    assert cfg.unfinished_warmups(world_size=2) == []  # 2 workers: a global batch of 64, a peak of 1.25e-6
    assert DINOConfig(**TINY_TRAINER).unfinished_warmups() == []


@pytest.mark.parametrize("key, unset", [("pretrained_weights", "none"),
                                        ("data_path", "the default, ./data for a torchvision dataset")])
@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_path_is_refused_not_read_as_the_key_left_out(key: str, unset: str, blank: str) -> None:
    """`pretrained_weights: ""` trained from random weights and `data_path: ""` read torchvision's ./data,
    each as if the key were not there, without a word."""
    with pytest.raises(ConfigError) as info:
        make_config({"dataset": "cifar10", key: blank}, "c.yaml: ")
    assert str(info.value).startswith(f"c.yaml: {key}={blank!r}: an empty path names no file; give one, or "
                                      f"leave the key out (or write null) for {unset} (")
    assert not info.value.cross_key
    assert getattr(make_config({"dataset": "cifar10", key: None}), key) is None
    assert getattr(make_config({"dataset": "cifar10", key: "x"}), key) == "x"


def test_a_data_key_the_dataset_does_not_read_is_said() -> None:
    """num_workers 8 with CIFAR-10 (in memory, augmented in batches on the device: no worker starts),
    download true with an image folder, skip_bad_images true with a built-in set: accepted and unused,
    without a word. Unset, 0 and false ask for nothing, and are not said."""
    cfg = make_config({"dataset": "cifar10", "num_workers": 8, "download": True, "skip_bad_images": True})
    assert cfg.unread_keys() == [
        "skip_bad_images true has no effect on dataset 'cifar10': only imagefolder reads it; leave it out",
        "num_workers 8 has no effect on dataset 'cifar10': only imagefolder reads it, or any dataset with "
        "augment_device: cpu; leave it out"]
    folder = make_config({"dataset": "imagefolder", "data_path": "x", "num_workers": 8, "download": True,
                          "skip_bad_images": True})
    assert folder.unread_keys() == [
        "download true has no effect on dataset 'imagefolder': only cifar10, cifar100, stl10 read it; leave "
        "it out"]
    assert make_config({"num_workers": 2, "augment_device": "cpu"}).unread_keys() == []  # per-image workers
    assert make_config({"num_workers": 0, "download": False, "skip_bad_images": False}).unread_keys() == []
    assert make_config({}).unread_keys() == []


def test_values_in_a_difference_and_in_the_key_listing_are_written_as_yaml_writes_them() -> None:
    """A resumed run's refusal read `pretrained_weights: None -> '/w.pt'; norm_last_layer: True -> False`
    and `ablate train --help` listed the defaults None and True, words no YAML file has (null, true)."""
    from trainables.config import config_differences, describe_keys

    before = {"pretrained_weights": None, "norm_last_layer": True, "epochs": 2}
    after = {"pretrained_weights": "/w.pt", "norm_last_layer": False, "epochs": 2}
    assert config_differences(before, after) == ["pretrained_weights: null -> '/w.pt'",
                                                 "norm_last_layer: true -> false"]
    listing = {line.split()[0]: line.split()[1] for line in describe_keys().splitlines()}
    assert listing["pretrained_weights"] == "null" and listing["norm_last_layer"] == "true"

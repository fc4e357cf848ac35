"""Trainer keys in a spec (the ``trainer`` section, space bounds, bundle sets), checked by ``DINOConfig``.

The trainer's own rules live in ``trainables.config``; this module only says where in the spec a
value broke them. An unknown backbone (``trainables.config.arch_problem``) is refused before anything
starts, not by every trial of a sweep in turn.
"""

from __future__ import annotations

import os
from typing import Any

from ablate.sweep_spec.base import spec_error
from sweep_format.files import user_path
from sweep_format.space import MEASURED_ON
from trainables.config import PATH_KEYS as PATH_KEYS  # the trainer keys that name a file or folder
from trainables.config import ConfigError, DINOConfig, arch_problem, make_config, unknown_key_message

# A relative PATH_KEYS value means relative to the folder `ablate run` runs in, where the driver checks
# it; Ray's trial processes run in other folders and `ablate resume` may run from another one, so the
# spec holds them absolute (``absolute_paths``).

SEED_RULE = ("a trial's seed is search.seed + its repeat index; set search.seed (and repeats for "
             "several seeds) instead")


def check_key(key: Any, at: str) -> None:
    """``key`` is a trainer key that a spec may set (not ``seed``: the sweep owns the seeds)."""
    if key not in DINOConfig.model_fields:
        raise spec_error(unknown_key_message(str(key)), at)
    if key == "seed":
        raise spec_error(SEED_RULE, at)


def check_searched_key(key: Any, at: str) -> None:
    """``key`` is a trainer key a space may vary: ``check_key``, and not what the sweep is measured on."""
    check_key(key, at)
    if key in MEASURED_ON:
        raise spec_error(f"a sweep is measured on one dataset (its reference kNN and every trial's kNN are "
                         f"of its images), so {key} cannot be searched: run one sweep per dataset (ablate "
                         f"run SPEC --set trainer.{key}=... --set name=...) and put them side by side with "
                         "ablate compare", at)


def check_values(values: dict[str, Any], at: str) -> DINOConfig:
    """The trainer config of ``values`` over the defaults; a broken rule is an error at ``at``."""
    try:
        config = make_config(values)
    except ConfigError as exc:
        raise spec_error(str(exc), at) from None
    if "arch" in values:
        problem = arch_problem(config.arch)
        if problem:
            raise spec_error(problem, at)
    return config


def check_trainer(trainer: dict[str, Any]) -> dict[str, Any]:
    """The ``trainer`` section: each key alone (so the error names it), then the rules between keys
    (e.g. ``dataset: imagefolder`` needs ``data_path``), which only all keys together can satisfy."""
    for key, value in trainer.items():
        check_key(key, str(key))
        try:
            make_config({key: value})
        except ConfigError as exc:
            if exc.cross_key:  # a rule tying keys together: judged below, on all keys
                continue
        check_values({key: value}, str(key))
    check_values(trainer, "")
    return trainer


def absolute(value: Any) -> Any:
    """A path as the shell that ran ``ablate`` meant it: ``~`` expanded, made absolute against the
    current folder (symbolic links kept); anything else as it is (a blank path too, which DINOConfig
    refuses: made absolute, it would name a file of blanks in the current folder)."""
    return os.path.abspath(user_path(value)) if isinstance(value, str) and value.strip() else value


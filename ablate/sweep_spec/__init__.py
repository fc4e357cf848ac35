"""The sweep spec: one YAML file saying which trainer keys to search, how, and what stays fixed.

A spec is validated completely (every key, every bound against the trainer's own rules) before
anything starts, so a typo costs a second, not a cluster. The format is documented key by key in
``search_spaces/README.md``.

Example::

    spec = load_spec("search_spaces/paper.yaml", sets=["trainer.epochs=2"])
    spec.num_trials                      # 12
    spec.points()[:2]                    # [{'teacher_temp': 0.04, ...}, {'teacher_temp': 0.02, ...}]
    spec.point_label(spec.points()[0])   # 'baseline'
    spec.point_label(spec.points()[1])   # 'teacher_temp=0.02'
    spec.trial_config(spec.points()[1])  # the DINOConfig of that trial

Modules, each importing only those above it: ``base`` (strict models, errors) <- ``trainer``
(trainer keys via DINOConfig, the arch check) <- ``space`` (distributions) and ``sections``
(search, scheduler, resources, stop) <- ``model`` (``SweepSpec``) <- ``loader`` (``load_spec``).
"""

from ablate.sweep_spec.base import SpecError
from ablate.sweep_spec.loader import load_spec
from ablate.sweep_spec.model import MAX_POINTS, METRICS, SweepSpec
from ablate.sweep_spec.sections import MAX_SAMPLES, SAMPLERS, available_samplers
from ablate.sweep_spec.space import BASELINE, BundleDist, ChoiceDist, FloatDist, IntDist

__all__ = ["BASELINE", "MAX_POINTS", "MAX_SAMPLES", "METRICS", "SAMPLERS", "BundleDist", "ChoiceDist",
           "FloatDist", "IntDist", "SpecError", "SweepSpec", "available_samplers", "load_spec"]

"""``SweepSpec``: a validated sweep, its points and their labels, and its resolved YAML.

Each section is its own model (``space``, ``sections``); this one reads the top-level keys and
checks the rules that tie sections together (space bounds under the ``trainer`` section, a grid
that needs steps, ASHA's grace period against the epochs, the metric's direction).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ablate.sweep_spec.base import SpecError, SpecModel, bad, one_of
from ablate.sweep_spec.sections import MAX_SAMPLES, TOO_MANY, Resources, Scheduler, Search, Stop, forced
from ablate.sweep_spec.space import (
    BASELINE,
    BundleDist,
    ChoiceDist,
    Dist,
    FloatDist,
    IntDist,
    check_name,
    check_no_overlap,
)
from ablate.sweep_spec.trainer import PATH_KEYS, absolute, check_trainer, check_values
from sweep_format import yamltext
from sweep_format.files import PORTABLE_CHARS
from sweep_format.metrics import DEFAULT_METRIC, DIRECTION, METRICS, wrong_way
from sweep_format.text import plural
from sweep_format.values import fmt_value, values_equal
from trainables.config import (
    DATASET_KEYS,
    MAX_SEED,
    TORCHVISION,
    TORCHVISION_ROOT,
    ConfigError,
    DINOConfig,
    make_config,
    short,
)
from trainables.inputs import check_data, check_model, check_weights

Logger = Literal["tensorboard", "mlflow", "wandb"]
NAME_PATTERN = re.compile(f"[{PORTABLE_CHARS}]+")
MAX_NAME = 100  # a sweep's folder name (file systems allow 255 bytes; its trial folders add to it)
MAX_POINTS = 10_000
# Trainer keys that set how many training images one optimizer step takes, or from which dataset.
BATCH_KEYS = {"batch_size", "grad_accum_steps", "dataset"}
# Trainer keys that name a file or change how one is read, as the input checks read them
# (trainables.inputs.check_weights, check_data): the spec checks each value of them, each file once.
WEIGHT_KEYS = {"pretrained_weights", "arch", "global_crops_size", "patch_size"}
DATA_KEYS = {"dataset", "data_path", "download", "skip_bad_images", *BATCH_KEYS}
INPUT_KEYS = WEIGHT_KEYS | (DATA_KEYS - BATCH_KEYS) | {"dataset"}
# Trainer keys that set the backbone, the crops it takes and how many share a forward pass
# (trainables.inputs.check_model).
MODEL_KEYS = {"arch", "patch_size", "global_crops_size", "local_crops_size", "local_crops_number",
              "batch_size", "drop_path_rate"}
# Trainer keys that can ask for a GPU (DINOConfig.gpu_settings).
GPU_KEYS = {"device", "augment_device", "precision"}
# Trainer keys of the schedules' notes (DINOConfig.unfinished_warmups).
WARMUP_KEYS = {"warmup_teacher_temp_epochs", "warmup_epochs", "freeze_last_layer", "epochs", "min_lr", "lr",
               "batch_size", "grad_accum_steps"}
# Trainer keys of the notes on data keys a dataset does not read (DINOConfig.unread_keys).
UNREAD_KEYS = {"dataset", "augment_device", *DATASET_KEYS}


class SweepSpec(SpecModel):
    """A validated sweep: fixed ``trainer`` overrides, the ``space`` searched, and how to search it.

    Example::

        spec = load_spec("search_spaces/paper.yaml", sets=["trainer.epochs=2"])
        spec.num_trials                      # 12
        spec.point_label(spec.points()[1])   # 'teacher_temp=0.02' (points()[0] is the baseline)
        spec.trial_config(spec.points()[1])  # the DINOConfig of that trial
    """

    name: str
    description: str = ""
    trainer: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Dist]
    search: Search = Field(default_factory=Search)
    metric: str = DEFAULT_METRIC  # one of sweep_format.metrics.METRICS
    mode: Literal["max", "min"]  # not given: the metric's better direction (_default_mode)
    repeats: int = Field(default=1, ge=1)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    resources: Resources = Field(default_factory=Resources)
    stop: Stop = Field(default_factory=Stop)
    loggers: list[Logger] = Field(default_factory=list)
    _source: Path = PrivateAttr(default=Path("<spec>"))
    _resolved: dict = PrivateAttr(default_factory=dict)  # a sweep's spec.yaml: what `ablate run` derived

    # --- validation ----------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _default_mode(cls, data: Any) -> Any:
        """No ``mode``: the metric's better direction; a metric without one (entropy) needs it set."""
        if isinstance(data, dict) and data.get("mode") is None:
            metric = data.get("metric") or DEFAULT_METRIC
            if isinstance(metric, str) and metric in DIRECTION:
                return {**data, "mode": DIRECTION[metric]}
        return data

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, metric: Any) -> str:
        return one_of(metric, METRICS)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not NAME_PATTERN.fullmatch(name) or name in (".", "..") or len(name) > MAX_NAME:
            raise bad(name, f"required: a folder name of letters, digits, '-', '_', '.', at most {MAX_NAME} "
                      "long (e.g. teacher-temps)")
        return name

    @field_validator("trainer")
    @classmethod
    def _trainer(cls, trainer: dict[str, Any]) -> dict[str, Any]:
        return check_trainer(trainer)

    @field_validator("space")
    @classmethod
    def _space(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise bad(space, "needs at least one parameter, e.g. teacher_temp: {type: choice, values: "
                      "[0.02, 0.04]}")
        return space

    @field_validator("loggers")
    @classmethod
    def _loggers_once(cls, loggers: list[str]) -> list[str]:
        for i, logger in enumerate(loggers):
            if logger in loggers[:i]:
                raise bad(logger, "each logger once", f"[{i}]")
        return loggers

    @model_validator(mode="after")
    def _sections_agree(self, info: ValidationInfo) -> SweepSpec:
        for name, dist in self.space.items():
            check_name(name, dist)
        check_no_overlap(self.space)
        absolute_paths(self.trainer, self.space)  # trials run in other folders than this command
        for name, dist in self.space.items():
            dist.check(name, self.trainer, self.search.algorithm)
        self._check_grid_size()
        for point in self.combinations():  # each value was checked alone; together they may break a rule
            check_values({**self.trainer, **self.expand(point)}, self.combination_at(point))
        if self.search.seed + self.repeats - 1 > MAX_SEED:  # the last repeat's trainer seed
            raise bad(self.repeats, f"search.seed ({self.search.seed}) + repeat is each trial's seed, at "
                      f"most {MAX_SEED}: at most {MAX_SEED - self.search.seed + 1} repeats from this seed",
                      "repeats", ("search.seed",))
        if self.repeats > 1 and self.num_trials > MAX_SAMPLES and not forced(info):
            raise bad(self.repeats, f"{self.num_trials // self.repeats} settings x {self.repeats} repeats = "
                      f"{self.num_trials} trials; {TOO_MANY}", "repeats")
        where, epochs = self.longest_epochs_at()
        if self.scheduler.type == "asha" and self.scheduler.grace_period > epochs:
            raise bad(self.scheduler.grace_period, f"must be <= the most epochs a trial runs ({where}: "
                      f"{epochs}): ASHA lets every trial run grace_period epochs", "scheduler.grace_period",
                      (where,))
        if wrong := wrong_way(self.metric, self.mode):
            raise bad(self.mode, wrong, "mode", ("metric",))
        return self

    def check_inputs(self) -> None:
        """The files the spec names (pretrained weights, data folders), for the baseline and every
        searched value that names one, and an image folder's size against every searched batch: a
        SpecError naming the key path, before anything runs."""
        configs = self.configs_of(INPUT_KEYS) + self.configs_of(BATCH_KEYS - INPUT_KEYS)[1:]
        done: set[tuple[Any, ...]] = set()  # each file checked once (a folder is decoded, a download read)
        for at, values in configs:
            cfg = make_config(values)
            try:
                for keys, check in ((WEIGHT_KEYS, check_weights), (DATA_KEYS, check_data)):
                    key = (check.__name__, *(getattr(cfg, k) for k in sorted(keys)))
                    if key not in done:
                        done.add(key)
                        check(cfg, self.resources.workers)
            except ConfigError as exc:
                raise SpecError(f"{self.source}: {at}: {exc}") from None

    def check_batches(self) -> None:
        """A step larger than a bundled or torchvision dataset's training split (``batch_size x
        grad_accum_steps x resources.workers`` images), or more steps than the schedules hold (``epochs``
        x steps per epoch), for the baseline, every searched batch and epochs value (a range: its low and
        largest values) and the ``combinations`` that set two of them (a small batch with many epochs): a
        SpecError naming the key path before Ray starts, instead of trials that all error. An image
        folder is sized by its files (``check_inputs``, where the driver sees them)."""
        from trainables.data import check_batch, known_train_size  # torch: not for a spec's other checks

        keys = BATCH_KEYS | {"epochs"}  # epochs: the steps a run takes (a small batch's, the most)
        for at, values in self.configs_of(keys) + self.together(keys):
            cfg = make_config(values)
            n_train = known_train_size(cfg)
            try:
                if n_train is not None:
                    check_batch(cfg, n_train, self.resources.workers)
            except ConfigError as exc:
                raise SpecError(f"{self.source}: {at}: {exc}") from None

    def check_models(self) -> None:
        """The crop sizes the backbone must take (``check_model``), for the baseline and every searched
        value of them (a range of more than 256 values: its low and largest values), one key at a time,
        and the ``combinations`` that set two of them: a SpecError naming the key path before Ray starts,
        on clusters too (no file is read)."""
        done: set[tuple[Any, ...]] = set()
        for at, values in self.configs_of(MODEL_KEYS, every=256) + self.together(MODEL_KEYS):
            cfg = make_config(values)
            key = tuple(getattr(cfg, k) for k in sorted(MODEL_KEYS))
            if key in done:
                continue
            done.add(key)
            try:
                check_model(cfg)
            except ConfigError as exc:
                raise SpecError(f"{self.source}: {at}: {exc}") from None

    def configs_of(self, keys: set[str], every: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """The baseline, and every searched value of ``keys`` (an integer range: its low and largest
        values, or each of its values when it has at most ``every``), as trainer values with the path
        of the spec where they come from."""
        out: list[tuple[str, dict[str, Any]]] = [("trainer", dict(self.trainer))]
        for name, dist in self.space.items():
            if isinstance(dist, BundleDist):
                out += [(f"space.{name}.values[{i}].set", {**self.trainer, **b.overrides})
                        for i, b in enumerate(dist.choices) if keys & set(b.overrides)]
            elif isinstance(dist, ChoiceDist) and name in keys:
                out += [(f"space.{name}.values[{i}]", {**self.trainer, name: v})
                        for i, v in enumerate(dist.values)]
            elif isinstance(dist, IntDist) and name in keys and len(dist.grid_values()) <= every:
                out += [(f"space.{name} ({v})", {**self.trainer, name: v}) for v in dist.grid_values()]
            elif isinstance(dist, IntDist) and name in keys:  # e.g. batch_size 1 and its largest
                at = f"space.{name}" + (".high" if dist.largest() == dist.high else "")
                out += [(f"space.{name}.low", {**self.trainer, name: dist.low}),
                        (at, {**self.trainer, name: dist.largest()})]
        return out

    def combinations(self) -> list[dict[str, Any]]:
        """The points whose searched values meet in one trial: a grid's points; with Optuna, every
        combination of its choices and its ranges' ends (a small batch with many epochs, a large batch
        with many accumulation steps) when there are at most MAX_POINTS. An ablation changes one value
        at a time (each is checked with the trainer section): none."""
        choices = {name: dist.grid_values() if isinstance(dist, (ChoiceDist, BundleDist)) else ends(dist)
                   for name, dist in self.space.items()}
        if len(self.space) < 2:
            return []
        if self.search.algorithm == "grid":
            return self.points()
        if self.search.algorithm == "ablation" or len(choices) < 2 or \
                math.prod(map(len, choices.values())) > MAX_POINTS:
            return []
        return [dict(zip(choices, combo, strict=True)) for combo in itertools.product(*choices.values())]

    def together(self, keys: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """The ``combinations`` that set more than one of ``keys`` (e.g. an arch with a crop size, a small
        batch with many epochs), as trainer values with where in the spec they meet."""
        return [(self.combination_at(p), {**self.trainer, **self.expand(p)}) for p in self.combinations()
                if len(keys & set(self.expand(p))) > 1]

    def combination_at(self, point: dict[str, Any]) -> str:
        """Where in the spec the values of ``point`` meet, for an error."""
        return f"space (the trial {self.point_label(point)})"

    def longest_epochs(self) -> int:
        """The most epochs a trial runs (Tune's stop rule and ASHA's ``max_t``; each trial ends after its
        own ``epochs``)."""
        return self.longest_epochs_at()[1]

    def longest_epochs_at(self) -> tuple[str, int]:
        """The most epochs a trial runs and the key path that sets them: a searched ``epochs`` value, or
        ``trainer.epochs`` where a trial runs the baseline's. Where every trial of a grid or Optuna sweep
        takes a searched value (``searched_by_all``), the baseline's runs nowhere: ASHA's ``max_t`` from
        it (8 over trials of 1 or 2 epochs) put its rungs past every trial's end."""
        configs = self.configs_of({"epochs"})
        if self.searched_by_all("epochs"):
            configs = configs[1:]
        epochs = [(make_config(values).epochs, -i, at) for i, (at, values) in enumerate(configs)]
        most, _, at = max(epochs)  # the first place that sets the most
        return ("trainer.epochs" if at == "trainer" else at), most

    def searched_by_all(self, key: str) -> bool:
        """Whether every trial of a grid or Optuna sweep takes trainer ``key`` from the space (an entry
        named ``key``, or a bundle each label of which sets it), so the ``trainer`` section's value runs in
        none; an ablation's baseline runs it."""
        if self.search.algorithm == "ablation":
            return False
        return any(all(key in b.overrides for b in dist.choices) if isinstance(dist, BundleDist)
                   else name == key for name, dist in self.space.items())

    def idle_scheduler(self) -> list[str]:
        """``FILE: scheduler.grace_period: ...`` when ASHA can stop no trial: its first rung is at
        ``grace_period``, the most epochs a trial runs, where every trial ends anyway (``--set
        trainer.epochs=1`` on an ASHA spec). Said, not refused: the sweep runs, as without a scheduler."""
        where, epochs = self.longest_epochs_at()
        if self.scheduler.type != "asha" or self.scheduler.grace_period < epochs:
            return []
        return [f"{self.source}: scheduler.grace_period: {self.scheduler.grace_period} = the most epochs a "
                f"trial runs ({where}: {epochs}): ASHA first judges trials at the epoch where every trial "
                "ends anyway, so it stops none; for early stopping, give trials more epochs than "
                "grace_period"]

    def unvaried(self) -> list[str]:
        """``FILE: space.NAME: ...`` for each entry of an ablation whose every value is the baseline's: an
        ablation runs a value equal to the baseline once, as the baseline, so no trial varies it
        (paper.yaml with ``--set 'space.out_dim.values=[1024]'``, the trainer's own out_dim). Said, not
        refused: the sweep runs as written."""
        if self.search.algorithm != "ablation":
            return []
        base = {name: value if isinstance(self.space[name], BundleDist) else
                f"trainer.{name} {fmt_value(value)}" for name, value in self.baseline_point().items()}
        return [f"{self.source}: space.{name}: every value is the baseline's ({base[name]}), which an "
                f"ablation runs once, as its baseline: no trial varies {name}; add other values, or change "
                "the trainer section" for name, dist in self.space.items()
                if all(self.is_baseline(name, value) for value in dist.grid_values())]

    def configurations(self) -> int | None:
        """How many configurations the space holds: the product of its entries' values (a choice's, a
        stepped range's, every integer of an integer range); None where a float range without step
        makes it endless."""
        sizes = [None if isinstance(d, FloatDist) and d.step is None else
                 int(d.high - d.low) + 1 if isinstance(d, IntDist) and d.step is None else d.count()
                 for d in self.space.values()]
        return None if None in sizes else math.prod(s for s in sizes if s is not None)

    def oversampled(self) -> list[str]:
        """``FILE: search.num_samples: ...`` where Optuna is to draw more configurations than the space
        holds: a draw of a configuration drawn before is not run again, so fewer trials run than planned
        (num_samples 3 over one value: 1 trial, then 'sweep done', with no word of the other 2). Said,
        not refused: the sweep runs as written."""
        size = self.configurations() if self.search.algorithm == "optuna" else None
        samples = int(self.search.num_samples or 0)
        if size is None or samples <= size:
            return []
        return [f"{self.source}: search.num_samples: {samples} is more than the {size} "
                f"{plural(size, 'configuration')} the space holds: at most {size * self.repeats} of the "
                f"{self.num_trials} planned trials run (a configuration Optuna draws again is not run "
                "again); algorithm: grid runs each configuration once"]

    def random_under_cmaes(self) -> list[str]:
        """``FILE: search.sampler: ...`` when the CMA-ES sampler draws choices at random: Optuna's CMA-ES
        models float and int ranges only and hands a choice (a bundle too) to its RandomSampler, with a
        warning per trial that reached no one; with no range, the sweep is a random search. Said, not
        refused: the sweep runs as written."""
        if self.search.sampler != "cmaes":
            return []
        choices = [f"space.{name}" for name, dist in self.space.items()
                   if isinstance(dist, (ChoiceDist, BundleDist))]
        if not choices:
            return []
        what = ("the ranges only" if len(choices) < len(self.space) else
                "none of this space, so the sweep is a random search (sampler: random)")
        return [f"{self.source}: search.sampler: cmaes draws {', '.join(choices)} at random: Optuna's CMA-ES "
                f"models float and int ranges, here {what}"]

    def unfinished_warmups(self) -> list[str]:
        """``FILE: PATH: KEY W > epochs E: ...`` where the baseline or a searched value has a warmup
        longer than the run (DINOConfig.unfinished_warmups), each once: said, not refused."""
        notes: dict[str, str] = {}
        for at, values in self.configs_of(WARMUP_KEYS):
            for note in make_config(values).unfinished_warmups(self.resources.workers):
                notes.setdefault(note, f"{self.source}: {at}: {note}")
        return list(notes.values())

    def unread_keys(self) -> list[str]:
        """``FILE: PATH: KEY V has no effect on dataset D: ...`` where the baseline or a searched value sets
        a data key its dataset does not read (DINOConfig.unread_keys), each once, unless another of the
        spec's configurations reads it (num_workers 4 with augment_device searched over gpu and cpu: the
        cpu trials' workers): said, not refused."""
        notes: dict[str, tuple[str, str]] = {}
        read: set[str] = set()
        for at, values in self.configs_of(UNREAD_KEYS):
            config = make_config(values)
            unread = config.unread()
            read |= {key for key in DATASET_KEYS if getattr(config, key) and key not in unread}
            for key, note in unread.items():
                notes.setdefault(note, (key, f"{self.source}: {at}: {note}"))
        return [line for key, line in notes.values() if key not in read]

    def unused_trainer_values(self) -> list[str]:
        """``FILE: trainer.KEY: ...`` for each value the ``trainer`` section fixes that a grid or Optuna
        sweep never runs: the key is searched, and every trial takes a searched value other than it (an
        ablation runs the trainer section, as its baseline). Said, not refused: the sweep runs as written."""
        if self.search.algorithm == "ablation":
            return []
        notes = []
        for name, dist in self.space.items():
            if isinstance(dist, BundleDist):
                keys = [k for k in self.trainer if all(k in b.overrides for b in dist.choices)]
                unused = [(k, name) for k in keys
                          if not any(values_equal(b.overrides[k], self.trainer[k]) for b in dist.choices)]
            elif name in self.trainer and not takes(dist, self.trainer[name]):
                unused = [(name, name)]
            else:
                unused = []
            notes += [f"{self.source}: trainer.{key}: {short(self.trainer[key])} is searched by space.{at}, "
                      f"where every trial of this {self.search.algorithm} sweep takes another value, so no "
                      "trial runs it (only an ablation runs the trainer section, as its baseline); remove it "
                      "from trainer, or add it to the searched values" for key, at in unused]
        return notes

    def _check_grid_size(self) -> None:
        if self.search.algorithm == "optuna":
            return
        sizes = [dist.count() for dist in self.space.values()]
        total = math.prod(sizes) if self.search.algorithm == "grid" else 1 + sum(sizes)
        if total > MAX_POINTS:
            raise bad(f"{total} points", f"at most {MAX_POINTS} points for {self.search.algorithm}; use "
                      "fewer values or larger steps, or algorithm optuna", "space")

    # --- trials ----------------------------------------------------------------------------
    @property
    def source(self) -> Path:
        """The file this spec was read from (errors name it)."""
        return self._source

    def trainer_config(self) -> DINOConfig:
        """The baseline: trainer defaults with this spec's ``trainer`` overrides, and the sweep's seed
        (``search.seed``; a trial's is that plus its repeat, ``trainables.trial.trial_config``)."""
        return make_config({**self.trainer, "seed": self.search.seed}, f"{self.source}: trainer.")

    def expand(self, params: dict[str, Any]) -> dict[str, Any]:
        """Searched values -> trainer overrides (a bundle label becomes the keys it sets; the reserved
        label ``baseline``, an ablation's baseline point where no label equals the trainer section,
        sets none, as the trial reads it from ``bundles``)."""
        out: dict[str, Any] = {}
        for key, value in params.items():
            dist = self.space.get(key)
            if isinstance(dist, BundleDist):
                if value != BASELINE and value not in dist.bundles:
                    raise SpecError(f"{self.source}: space.{key}: no bundle labelled {value!r}; "
                                    f"labels: {', '.join(map(repr, dist.values))}")
                out.update(dist.bundles.get(value, {}))
            elif key in DINOConfig.model_fields:
                out[key] = value
            else:
                raise SpecError(f"{self.source}: {key!r} is neither a searched parameter nor a "
                                f"trainer key; searched: {', '.join(self.space)}")
        return out

    def trial_config(self, params: dict[str, Any]) -> DINOConfig:
        """The full trainer config of one point (baseline with the point's values)."""
        return make_config({**self.trainer, **self.expand(params)}, f"{self.source}: ")

    def bundles(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Bundle parameters: name -> label -> trainer overrides (``baseline`` -> {} included)."""
        return {name: {**dist.bundles, BASELINE: {}} for name, dist in self.space.items()
                if isinstance(dist, BundleDist)}

    def choice_values(self, name: str) -> list[Any]:
        """The values a searcher chooses among for a ``choice`` parameter (labels for bundles)."""
        dist = self.space[name]
        if not isinstance(dist, (ChoiceDist, BundleDist)):
            article = "an" if dist.type == "int" else "a"
            raise SpecError(f"{self.source}: space.{name} is {article} {dist.type} range, not a choice")
        return list(dist.values)

    def baseline_point(self) -> dict[str, Any]:
        """The baseline's value of every searched parameter (a bundle: the label equal to it)."""
        base = self.trainer_config()
        point: dict[str, Any] = {}
        for name, dist in self.space.items():
            if isinstance(dist, BundleDist):
                same = [label for label in dist.values if self.is_baseline(name, label)]
                point[name] = same[0] if same else BASELINE
            else:
                point[name] = _plain(getattr(base, name))
        return point

    def is_baseline(self, name: str, value: Any) -> bool:
        """Whether setting ``name`` to ``value`` leaves the baseline config unchanged."""
        base, overrides = self.trainer_config(), self.expand({name: value})
        changed = self.trial_config({name: value})
        return all(getattr(changed, k) == getattr(base, k) for k in overrides)

    def points(self) -> list[dict[str, Any]]:
        """Every point to run, each a complete assignment of the space (grid and ablation only).

        grid: the full product of the value lists. ablation: the baseline first, then each value of
        each parameter with the others at the baseline (values equal to the baseline skipped).
        """
        names = list(self.space)
        if self.search.algorithm == "grid":
            lists = [dist.grid_values() for dist in self.space.values()]
            return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
        if self.search.algorithm == "ablation":
            base = self.baseline_point()
            points = [dict(base)]
            for name, dist in self.space.items():
                points += [{**base, name: v} for v in dist.grid_values() if not self.is_baseline(name, v)]
            return points
        raise SpecError(f"{self.source}: search.algorithm: optuna chooses its points while it runs; "
                        "points() exists for grid and ablation only")

    def point_label(self, point: dict[str, Any]) -> str:
        """A short name: ablation -> 'baseline' or what differs from it; grid/optuna -> every value."""
        if self.search.algorithm == "ablation":
            items = [(k, v) for k, v in point.items() if not self.is_baseline(k, v)]
            if not items:
                return BASELINE
        else:
            items = list(point.items())
        return ", ".join(v if isinstance(self.space.get(k), BundleDist) else f"{k}={fmt_value(v, digits=6)}"
                         for k, v in items)

    @property
    def num_trials(self) -> int:
        if self.search.algorithm == "optuna":
            return int(self.search.num_samples or 0) * self.repeats
        return len(self.points()) * self.repeats

    # --- the resolved spec ---------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """The resolved spec, every default filled in (only the keys that apply)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        search = self.search.model_dump(exclude={"max_concurrent_trials"}, exclude_none=True)
        search["max_concurrent_trials"] = self.search.max_concurrent_trials
        scheduler = self.scheduler.model_dump(include=None if self.scheduler.type == "asha" else {"type"})
        return out | {
            "trainer": _plain(self.trainer),
            "space": {name: dist.as_dict() for name, dist in self.space.items()},
            "search": search, "metric": self.metric, "mode": self.mode, "repeats": self.repeats,
            "scheduler": scheduler, "resources": self.resources.model_dump(), "stop": self.stop.as_dict(),
            "loggers": list(self.loggers),
        }

    def dump(self) -> str:
        """YAML of the resolved spec; ``load_spec`` reads it back to an equal spec."""
        return yamltext.dump(self.as_dict(), sort_keys=False, default_flow_style=None)


def absolute_paths(trainer: dict[str, Any], space: dict[str, Any]) -> None:
    """Every ``PATH_KEYS`` value of the spec made ``absolute``, in place: the trainer section's, a
    searched choice's values and a bundle's. A torchvision dataset without any ``data_path`` gets the
    trainer's default folder (``./data``) made absolute, for the same reason."""
    for key in PATH_KEYS:
        if key in trainer:
            trainer[key] = absolute(trainer[key])
    named, datasets = "data_path" in trainer, [trainer.get("dataset")]
    for name, dist in space.items():
        if isinstance(dist, BundleDist):
            for bundle in dist.choices:
                for key in PATH_KEYS:
                    if key in bundle.overrides:
                        bundle.overrides[key] = absolute(bundle.overrides[key])
                named = named or "data_path" in bundle.overrides
                datasets.append(bundle.overrides.get("dataset"))
        elif isinstance(dist, ChoiceDist) and name in PATH_KEYS:
            dist.values = [absolute(v) for v in dist.values]
        named = named or name == "data_path"
        if name == "dataset" and isinstance(dist, ChoiceDist):
            datasets += list(dist.values)
    if not named and any(d in TORCHVISION for d in datasets if isinstance(d, str)):
        trainer["data_path"] = absolute(TORCHVISION_ROOT)


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so values dump to YAML and compare equal to what YAML loads."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def takes(dist: Dist, value: Any) -> bool:
    """Whether a trial of a grid or Optuna sweep can get ``value`` from ``dist``: one of its values (a
    choice, a grid's range), or within an Optuna range."""
    if isinstance(dist, (IntDist, FloatDist)) and dist.step is None:
        return isinstance(value, (int, float)) and dist.low <= value <= dist.high
    return any(values_equal(v, value) for v in dist.grid_values())


def ends(dist: IntDist | FloatDist) -> list[Any]:
    """The values at a range's ends that a trial can get (an integer range's largest may be below high)."""
    last = dist.largest() if isinstance(dist, IntDist) else dist.high
    return [dist.low, last] if last != dist.low else [dist.low]

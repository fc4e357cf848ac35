"""Optuna's CMA-ES sampler, restoring its state from ``optuna.db`` without running code from it.

Optuna's ``CmaEsSampler`` keeps the CMA-ES optimizer as a pickle in the study's trial attributes
(``cma:optimizer:N``, hex) and unpickles it on every ``ask``. A sweep folder is a file anyone may
have written (downloaded, shared, edited): ``ablate resume`` on it must not run what a pickle says.
``CmaEsSampler`` here reads the state with an unpickler that builds only the objects a CMA-ES
state holds (the ``cmaes`` optimizers and numpy arrays); anything else is refused, the sampler
starts a new optimizer from the study's trials and one warning names the file.

    sampler = CmaEsSampler(seed=0)                # optuna.samplers.CmaEsSampler, safe to resume
    state = load_state(hex_string)                # a cmaes optimizer, or UnsafeState
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import optuna

from ablate.errors import warn

# (module, name) of every global a pickled cmaes optimizer refers to (numpy >= 2 and < 2 spellings)
ALLOWED = frozenset({
    ("cmaes._cma", "CMA"), ("cmaes._sepcma", "SepCMA"), ("cmaes._cmawm", "CMAwM"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
})


class UnsafeState(Exception):
    """The stored state is not a CMA-ES optimizer's (a foreign object, or not a pickle at all)."""


class StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise UnsafeState(f"it refers to {module}.{name}, which is not part of a CMA-ES state")
        return super().find_class(module, name)


def load_state(hex_string: str) -> Any:
    """The cmaes optimizer a ``cma:optimizer`` attribute holds; UnsafeState for anything else."""
    import cmaes

    try:
        state = StateUnpickler(io.BytesIO(bytes.fromhex(hex_string))).load()
    except UnsafeState:
        raise
    except Exception as exc:  # not hex, not a pickle, a truncated one: all just unreadable data
        raise UnsafeState(f"it is not a readable pickle ({type(exc).__name__})") from None
    if not isinstance(state, (cmaes.CMA, cmaes.SepCMA, cmaes.CMAwM)):
        raise UnsafeState(f"it holds a {type(state).__name__}, not a CMA-ES optimizer")
    return state


BASE = optuna.samplers.CmaEsSampler
# The private members this override relies on; an Optuna without them is refused, never unpickled.
HOOKS = ("_restore_optimizer", "_concat_optimizer_attrs", "_attr_key_optimizer")


class CmaEsSampler(BASE):
    """``optuna.samplers.CmaEsSampler`` whose stored optimizer is read by ``load_state``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        missing = [h for h in HOOKS if not hasattr(BASE, h)]
        if missing:
            raise RuntimeError(f"optuna {optuna.__version__}'s CmaEsSampler has no {', '.join(missing)}: "
                               "ablate cannot read its state safely; use sampler tpe, or optuna 4.x-5.x")
        super().__init__(*args, **kwargs)
        self._warned = False

    def _restore_optimizer(self, completed_trials: list[Any]) -> Any:
        prefix = self._attr_key_optimizer
        for trial in reversed(completed_trials):
            attrs = {k: v for k, v in trial.system_attrs.items() if k.startswith(prefix)}
            if not attrs:
                continue
            try:
                return load_state(self._concat_optimizer_attrs(attrs))
            except (UnsafeState, KeyError, TypeError) as exc:  # KeyError/TypeError: parts missing or not text
                if not self._warned:
                    warn(f"the study's CMA-ES state (trial {trial.number}, {prefix}) was not loaded: {exc}; "
                         "the sampler starts a new CMA-ES optimizer")
                    self._warned = True
                return None
        return None

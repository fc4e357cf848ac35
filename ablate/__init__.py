"""ablate: DINO hyperparameter ablations on Ray Tune (specs, orchestration, CLI, Python API).

    import ablate
    sweep = ablate.run("search_spaces/temps.yaml", set={"trainer.epochs": 2})
    ablate.load("runs/temps").best

The API lives in ``ablate.api``; it is imported on first use so that the CLI starts quickly.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own, without importing typing
if TYPE_CHECKING:  # not at run time: `python -m ablate` imports this before its path is mended (__main__)
    from typing import Any

__version__ = "0.1.0"
__all__ = ["Sweep", "compare", "load", "run", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Sweep", "compare", "load", "run"):
        from ablate import api

        return getattr(api, name)
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")

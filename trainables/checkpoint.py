"""Reading ``.pt`` files without running code from them: ``torch.load(weights_only=True)`` only.

A pickle can name any Python callable (``os.system``...), and ``torch.load(weights_only=False)``
calls it. Every checkpoint, monitor state and pretrained-weights file ablate reads goes through
``load_pt``, which allows tensors, numbers, strings and containers and nothing else; a file that
asks for more is refused as ``UnsafeFileError``, an unreadable one is ``DamagedFileError``.

Example::

    state = load_pt("run/checkpoint.pt", "checkpoint")   # dict of tensors, lists, numbers
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.config import ConfigError


class UnsafeFileError(ConfigError):
    """The file holds Python objects beyond tensors and plain data: loading it could run code."""


class DamagedFileError(ConfigError):
    """The file cannot be read as a PyTorch file (truncated, empty, not a .pt file)."""


def _legacy_numpy_globals() -> list[Any]:
    # Checkpoints of ablate 0.1 held numpy's RNG state (a uint32 array) and the schedules' float64
    # scalars; these rebuild numeric arrays and scalars from raw bytes and call nothing else.
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    return [_reconstruct, scalar, np.ndarray, np.dtype, type(np.dtype(np.uint32)), type(np.dtype(np.float64))]


def load_pt(path: str | os.PathLike, what: str, map_location: str | torch.device = "cpu") -> Any:
    """The content of a ``torch.save`` file, loaded weights-only; ``what`` names it in errors."""
    file = Path(path)
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            return torch.load(file, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DamagedFileError(f"{file}: no such {what} file") from None
    except Exception as exc:  # torch raises many kinds for a damaged file; all mean "unreadable"
        asks = re.search(r"GLOBAL ([\w.]+)", str(exc)) if isinstance(exc, pickle.UnpicklingError) else None
        if asks:
            raise UnsafeFileError(
                f"{file}: refused to load this {what}: it asks for {asks.group(1)}, and loading it "
                "could run code. ablate loads files weights-only (tensors, numbers, strings, lists, "
                "dicts); re-save it as a plain state dict or .safetensors") from None
        raise DamagedFileError(f"{file}: not a readable PyTorch {what} (truncated or not a torch.save "
                               f"file: {unreadable(exc)})") from None


def unreadable(exc: Exception) -> str:
    """Why torch could not read a file, in a few words: torch's weights-only message around it says
    to retry with ``weights_only=False`` (which runs the file's code), and its zip reader's goes on
    for several sentences."""
    text = str(exc)
    if found := re.search(r"WeightsUnpickler error:(.+?)(Check the documentation|$)", text, re.S):
        text = found.group(1)
    return " ".join(text.split()).split(". ")[0][:200] or type(exc).__name__

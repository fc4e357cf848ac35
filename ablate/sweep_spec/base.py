"""What every section of a sweep spec shares: strict typing, unknown keys refused, ``null`` = default.

Validators raise ``spec_error(...)``: a pydantic error whose message is already the text the user
reads; ``ablate.sweep_spec.loader`` prefixes the file and the key path (pydantic's ``loc`` plus the
error's ``at``) and blames the ``--set`` items that touched it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from ablate.errors import UserError
from sweep_format import yamltext
from sweep_format.text import did_you_mean
from trainables.config import short

SPEC_ERROR = "spec"  # pydantic error type of spec_error()
UNKNOWN_KEY = "unknown_key"  # pydantic error type of an unknown key; the loader words it


class SpecError(UserError):
    """A mistake in a sweep spec or in its ``--set`` overrides (file, key path, value, what is allowed)."""


def spec_error(message: str, at: str = "", related: Sequence[str] = ()) -> PydanticCustomError:
    """An error at the validated object's path + ``at`` (e.g. ``low``, ``values[2]``).

    ``related``: other key paths (from the same object) whose ``--set`` may have caused it.
    """
    return PydanticCustomError(SPEC_ERROR, message, {"at": at, "related": tuple(related)})


def bad(value: Any, allowed: str, at: str = "", related: Sequence[str] = ()) -> PydanticCustomError:
    return spec_error(f"got {short(value)}; {allowed}", at, related)


def one_of(value: Any, allowed: Sequence[str], at: str = "") -> str:
    """``value`` if it is one of ``allowed``, else an error listing them with a "did you mean"."""
    if isinstance(value, str) and value in allowed:
        return value
    close = did_you_mean(value, allowed)
    hint = f" (did you mean {close}?)" if close else ""
    raise bad(value, f"allowed: {', '.join(allowed)}{hint}", at)


class SpecModel(BaseModel):
    """A mapping of the spec: exact types (no "4" for 4, no 1 for true), finite numbers only."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if data is None:  # an empty section, e.g. `stop:` with nothing under it
            return {}
        if not isinstance(data, dict):
            raise bad(data, f"expected a mapping of keys to values{yamltext.colon_hint(data)}")
        allowed = cls.spec_keys()
        for key in data:
            if key not in allowed:
                raise PydanticCustomError(UNKNOWN_KEY, "unknown key {key}", {"key": key, "allowed": allowed})
        # null means "the default", so `--set search.num_samples=null` undoes a file's value
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def spec_keys(cls) -> tuple[str, ...]:
        """The keys this section accepts, as the YAML spells them."""
        return tuple(f.alias or name for name, f in cls.model_fields.items())

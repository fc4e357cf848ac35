"""``ConfigError``, the trainer's one user-facing error, in a module of its own: ``ablate``'s command line
imports it at its start, before pydantic and torch (``trainables.config`` re-exports it)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user-facing configuration error: says which key, what was given, what is allowed.

    ``cross_key``: a rule between keys broke (e.g. imagefolder without data_path), not one key's value.
    """

    def __init__(self, message: str, cross_key: bool = False) -> None:
        super().__init__(message)
        self.cross_key = cross_key

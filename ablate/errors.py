"""User-facing errors: printed as one clear message, exit code 2, never a traceback."""

from __future__ import annotations

from trainables.config import ConfigError

USAGE_EXIT = 2


class UserError(Exception):
    """A mistake of the user's (bad file, key, value, folder): message says what and what is allowed."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError, ConfigError)

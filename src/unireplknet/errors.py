"""The user-facing error types of the package.

Every layer raises these (or a built-in ``OSError``) for problems with the user's input or
environment; ``unireplknet.cli`` turns each into one ``error: ...`` line and exit code 2
(a traceback only with ``-v``). This module imports nothing from the package, so any
module may import it and ``cli/`` imports it, never the reverse.

Each class also derives from the built-in exception a caller would naturally catch
(``ValueError``, ``RuntimeError``, ``ImportError``), so library users are not forced to
know these names.
"""
from __future__ import annotations

__all__ = [
    "UserError", "ConfigError", "DataError", "BadFileError", "CheckpointError", "NonFiniteError",
    "ExportError", "RunDirError", "WeightsUnavailableError", "MissingExtraError",
]


class UserError(Exception):
    """A problem with the user's input or environment: one line, exit code 2, no traceback."""


class ConfigError(UserError, ValueError):
    """A bad configuration value, flag combination, recipe or YAML file (the message names key and file)."""


class DataError(UserError, ValueError):
    """A data set that cannot be used as given: empty, ambiguous layout, one class, wrong shape."""


class BadFileError(DataError):
    """One input file that cannot be read; ``path`` names it."""

    def __init__(self, path: str, reason: "str | None" = None) -> None:
        if reason is None:  # re-raised from a DataLoader worker with the whole traceback as the message
            last = [ln for ln in str(path).splitlines() if ln.strip()][-1:] or [str(path)]
            message = last[0].split("BadFileError: ", 1)[-1].strip()
            path, reason = message, ""
        else:
            message = f"cannot read {path}: {reason}"
        super().__init__(message)
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason) if self.reason else (str(self),))


class CheckpointError(UserError, ValueError):
    """A checkpoint that is corrupt, empty, foreign or for another architecture."""


class NonFiniteError(UserError, RuntimeError):
    """NaN or inf where a finite number is required (weights, loss, outputs)."""


class ExportError(UserError, RuntimeError):
    """An export whose result failed verification (the written file is removed)."""


class RunDirError(UserError, RuntimeError):
    """A run directory that cannot be used: locked by another run, read-only, not a directory."""


class WeightsUnavailableError(UserError, RuntimeError):
    """Released weights that cannot be downloaded (offline, no cache) or fail their hash check."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

"""Lazy imports of optional dependencies with an error that names the extra to install."""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require", "MissingExtraError"]


from .errors import MissingExtraError


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'unireplknet[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - exercised by tests with a fake module name
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"'{module}' is needed{what} but is not installed: pip install 'unireplknet[{extra}]'"
        ) from e

"""Optional dependencies (simulators, file formats): imported when needed, with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import `module`, or raise an ImportError that says which extra of lwd installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = what or module
        raise ImportError(f"{name} is not installed (import {module} failed: {err}); "
                          f"install it with: pip install -e '.[{extra}]'") from err

"""Systems the harness can test, found by name through the ``harness.systems`` entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from harness.errors import HarnessError

__all__ = ["get_system", "installed_systems"]

GROUP = "harness.systems"


def installed_systems() -> dict[str, Any]:
    """Every system registered under the ``harness.systems`` entry-point group."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def get_system(name: str, **options: Any) -> Any:
    """An instance of the named system: an installed name (its entry point is a class
    or a factory), or ``module:factory``, for an adapter not installed yet."""
    eps = installed_systems()
    if name in eps:
        factory = eps[name].load()
    elif ":" in name:
        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise HarnessError(f"cannot load system {name!r}: {e}") from None
    else:
        known = ", ".join(sorted(eps)) or "none"
        raise HarnessError(f"no system named {name!r}; installed: {known}")
    try:
        return factory(**options)
    except (TypeError, ValueError) as e:
        raise HarnessError(f"bad options for system {name!r}: {e}") from None

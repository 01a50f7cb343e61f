"""Systems the harness can test, found by name through the ``harness.systems`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from harness.errors import HarnessError

__all__ = ["get_system", "installed_systems"]

GROUP = "harness.systems"


def installed_systems() -> dict[str, Any]:
    """Every system registered under the ``harness.systems`` entry-point group."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def get_system(name: str, **options: Any) -> Any:
    """An instance of the named system (its entry point is a class or a factory)."""
    eps = installed_systems()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise HarnessError(f"no system named {name!r}; installed: {known}")
    return eps[name].load()(**options)

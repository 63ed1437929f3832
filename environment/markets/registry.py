"""Registry of clearing mechanisms, so scenarios can select one by name.

Mechanisms register themselves on import with :func:`register_clearing`. The
modules in ``BUILTIN_MODULES`` are imported lazily by :func:`get_clearing`, so a
scenario naming a built-in mechanism works without importing its module first.
A mechanism whose outcome depends on the order orders arrive in (continuous
trading) sets ``in_arrival_order = True``; callers then hand it the book in a
random order (``OrderBook.arrived``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

CLEARING: dict[str, Callable] = {}

BUILTIN_MODULES: list[str] = ["environment.markets.dayahead", "environment.markets.continuous"]


def _qualname(func: Callable) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def register_clearing(name: str) -> Callable[[Callable], Callable]:
    """Decorator adding a clearing function under ``name``.

    Re-registering the same function (e.g. after a module reload) is allowed; a
    different function under a taken name is an error, to avoid silent shadowing.
    """

    def decorator(func: Callable) -> Callable:
        existing = CLEARING.get(name)
        if existing is not None and _qualname(existing) != _qualname(func):
            raise ValueError(
                f"clearing mechanism {name!r} already registered by {_qualname(existing)}"
            )
        CLEARING[name] = func
        return func

    return decorator


def get_clearing(name: str) -> Callable:
    """Return the clearing function registered as ``name``."""
    if name not in CLEARING:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
    try:
        return CLEARING[name]
    except KeyError:
        known = ", ".join(sorted(CLEARING)) or "<none>"
        raise KeyError(f"unknown clearing mechanism {name!r}; known: {known}") from None

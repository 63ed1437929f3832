"""Registry of clearing mechanisms, so scenarios can select one by name.

Mechanisms register themselves on import with :func:`register_clearing`. The modules in
``BUILTIN_MODULES`` are imported by the registry itself the first time anybody looks a name up
or lists the names (`CLEARING` is a mapping that loads them), so every built-in mechanism is
known from every entry point, whichever of their modules happened to be imported before: a
check such as ``name in CLEARING`` sees them all. A mechanism whose outcome depends on the
order orders arrive in (continuous trading) sets ``in_arrival_order = True``; callers then
hand it the book in a random order (``OrderBook.arrived``).

The regional balance place's sharing options (how TSOs of several zones share balancing
energy, environment/markets/regional.py) are a second registry of the same kind, `SHARING`,
filled by :func:`register_sharing`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

BUILTIN_MODULES: list[str] = ["environment.markets.dayahead", "environment.markets.continuous",
                              "environment.markets.lem"]


class _Mechanisms(dict):
    """A dict of mechanisms by name whose reads first import the built-in modules (once)."""

    _loading = False
    _loaded = False

    def __init__(self, modules: list[str]):
        super().__init__()
        self.modules = modules

    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self.modules:
                importlib.import_module(module)
            self._loaded = True
        finally:
            self._loading = False

    def __contains__(self, name) -> bool:
        self._load()
        return super().__contains__(name)

    def __getitem__(self, name):
        self._load()
        return super().__getitem__(name)

    def __iter__(self):
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def keys(self):
        self._load()
        return super().keys()

    def items(self):
        self._load()
        return super().items()

    def values(self):
        self._load()
        return super().values()


CLEARING: dict[str, Callable] = _Mechanisms(BUILTIN_MODULES)
SHARING: dict[str, Callable] = _Mechanisms(["environment.markets.regional"])


def _qualname(func: Callable) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def register_clearing(name: str) -> Callable[[Callable], Callable]:
    """Decorator adding a clearing function under ``name``.

    Re-registering the same function (e.g. after a module reload) is allowed; a
    different function under a taken name is an error, to avoid silent shadowing.
    """
    return _register(CLEARING, "clearing mechanism", name)


def register_sharing(name: str) -> Callable[[Callable], Callable]:
    """Decorator adding a regional balance place's sharing option under ``name`` (the same
    rules as `register_clearing`)."""
    return _register(SHARING, "sharing option", name)


def _register(registry: dict, what: str, name: str) -> Callable[[Callable], Callable]:
    def decorator(func: Callable) -> Callable:
        existing = dict.get(registry, name)
        if existing is not None and _qualname(existing) != _qualname(func):
            raise ValueError(f"{what} {name!r} already registered by {_qualname(existing)}")
        dict.__setitem__(registry, name, func)
        return func

    return decorator


def get_clearing(name: str) -> Callable:
    """Return the clearing function registered as ``name``."""
    try:
        return CLEARING[name]
    except KeyError:
        known = ", ".join(sorted(CLEARING)) or "<none>"
        raise KeyError(f"unknown clearing mechanism {name!r}; known: {known}") from None


def get_sharing(name: str) -> Callable:
    """Return the regional sharing option registered as ``name``."""
    try:
        return SHARING[name]
    except KeyError:
        known = ", ".join(sorted(SHARING)) or "<none>"
        raise KeyError(f"unknown sharing option {name!r}; known: {known}") from None

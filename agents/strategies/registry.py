"""Strategies by role and name: an agent's decisions come from the strategy its scenario names,
so a new strategy plugs in by registering here without touching agents or the model."""

from __future__ import annotations

from collections.abc import Callable

STRATEGIES: dict[tuple[str, str], type] = {}


def register_strategy(role: str, name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        key = (role, name)
        if key in STRATEGIES:
            raise ValueError(f"strategy {name!r} for {role} registered twice")
        STRATEGIES[key] = cls
        cls.role, cls.name = role, name
        return cls

    return deco


def known(role: str) -> list[str]:
    return sorted(n for r, n in STRATEGIES if r == role)


def make_strategy(role: str, name: str, **params):
    try:
        cls = STRATEGIES[(role, name)]
    except KeyError:
        raise KeyError(f"unknown {role} strategy {name!r}; known: {known(role)}") from None
    return cls(**params)

"""Dotted paths into nested scenario data ("prosumers.0.count", "calendar.days").

One place for how a path is read and written, shared by scenario overrides, study axes and
metric lookups. Mapping keys may themselves contain dots (simbench's EV profile
"HLS_A_3.7" in `prosumers.0.ev.charger_kw`): at a mapping the longest run of path parts that
names an existing key is taken, so "prosumers.0.ev.charger_kw.HLS_A_3.7" works.
"""

from __future__ import annotations

from typing import Any


def _step(node: Any, parts: list[str], i: int) -> tuple[Any, int]:
    """The child of `node` named by parts[i:...] and the index after the parts it used."""
    if isinstance(node, dict):
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in node:
                return node[key], j
        raise KeyError(parts[i])
    if isinstance(node, list):
        if not parts[i].lstrip("-").isdigit():
            raise KeyError(parts[i])
        return node[int(parts[i])], i + 1
    raise TypeError(f"{type(node).__name__} has no fields")


def lookup(tree: Any, path: str) -> Any:
    """The value at a dotted path in nested dicts and lists; KeyError if there is none."""
    parts, node, i = path.split("."), tree, 0
    try:
        while i < len(parts):
            node, i = _step(node, parts, i)
    except (KeyError, IndexError, TypeError):
        raise KeyError(path) from None
    return node


def assign(tree: Any, path: str, value: Any, new_keys: bool = True) -> None:
    """Set the value at a dotted path in place. The parent must exist; with `new_keys` the
    last part may name a key the mapping does not have yet (the scenario schema then decides
    whether it is a field). KeyError, IndexError, ValueError or TypeError if the path names
    nothing."""
    parts = path.split(".")
    node, i = tree, 0
    while True:
        if isinstance(node, dict):
            rest = ".".join(parts[i:])
            if rest in node or (new_keys and i == len(parts) - 1):
                node[rest] = value
                return
        elif isinstance(node, list) and i == len(parts) - 1:
            node[int(parts[i])] = value
            return
        node, i = _step(node, parts, i)
        if i >= len(parts):
            raise KeyError(path)

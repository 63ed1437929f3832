"""Scenario files: where a name points, `extends`, and how a child changes its parent's lists.

One format family for both kinds of scenario (the distribution-grid default and `kind:
transmission`): a YAML mapping, optionally starting from another scenario with `extends: NAME`,
optionally naming time series in a `data:` section. This module reads the files; the schemas
(environment/scenario.py, environment/transmission/scenario.py) validate what it returns.

`extends: NAME` is looked up next to the file first (`NAME.yaml` in its folder), then among the
scenarios shipped with flexmarkets, so a user's file anywhere can start from `default`; a path
(`extends: ../base.yaml`) is relative to the file. A child's mapping merges into the parent's
key by key. For lists (documented in the README, section Scenario):

* a list of named mappings (`producers`, `aggregators`, ...) merges item by item on `name`:
  an item whose name the parent has changes that item, a new name is appended;
* any other list, and an empty list, replaces the parent's (`aggregators: []` empties it);
* `{replace: [...]}` replaces the parent's list whatever it holds;
* `{remove: [name, ...]}` drops the named items (or values, for a list of plain values), and
  may be combined with `{merge: [...]}`, merged by name as above after the removal.

Relative `data.<name>.file` paths are made absolute against the file that names them, so a
child extending a parent elsewhere reads the parent's data where the parent said.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from environment.errors import ScenarioError, did_you_mean
from environment.yamlio import read_yaml

SUFFIXES = (".yaml", ".yml")
LIST_DIRECTIVES = {"replace", "remove", "merge"}


def shipped_dir() -> Path:
    return Path(str(resources.files("experiments") / "scenarios"))


def shipped_scenarios() -> dict[str, Path]:
    """The scenarios shipped with flexmarkets, by name (file stem)."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.yaml"))}


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(SUFFIXES) or "/" in ref or "\\" in ref


def find_scenario(ref: str | Path | None, relative_to: Path | None = None,
                  default: str = "default") -> Path:
    """The file a scenario reference names: a path (relative to `relative_to` if given and
    found there), else `NAME.yaml` next to `relative_to`, else a shipped scenario. An
    `ScenarioError` with the close names if there is none."""
    ref = default if ref is None else ref
    if isinstance(ref, Path) or _looks_like_path(str(ref)):
        p = Path(ref)
        if relative_to is not None and not p.is_absolute() and (relative_to / p).exists():
            return relative_to / p
        if p.exists() or p.suffix in SUFFIXES:
            return p
    name = str(ref)
    if Path(name).exists():
        return Path(name)
    if relative_to is not None:
        for suffix in SUFFIXES:
            if (relative_to / f"{name}{suffix}").is_file():
                return relative_to / f"{name}{suffix}"
    shipped = shipped_scenarios()
    if name in shipped:
        return shipped[name]
    raise ScenarioError(f"scenario {name!r} not found: not a file, and no shipped scenario of that "
                     f"name{did_you_mean(name, shipped)}; `flexmarkets scenarios` lists them")


def merge(base: Any, child: Any, path: str = "") -> Any:
    """A child's value over its parent's (see the module docstring for lists)."""
    if isinstance(child, dict) and child and set(child) <= LIST_DIRECTIVES \
            and (isinstance(base, list) or base is None):
        return _directive(base or [], child, path)
    if isinstance(base, dict) and isinstance(child, dict):
        return {**base, **{k: merge(base[k], v, _join(path, k)) if k in base else v
                           for k, v in child.items()}}
    if isinstance(base, list) and isinstance(child, list) and child and _named(base + child):
        return _merge_named(base, child)
    return child


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _named(items: list) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def _merge_named(base: list, child: list) -> list:
    by_name = {i["name"]: i for i in child}
    out = [merge(i, by_name.pop(i["name"])) if i["name"] in by_name else i for i in base]
    return out + list(by_name.values())


def _directive(base: list, child: dict, path: str) -> list:
    if "replace" in child:
        if len(child) > 1:
            raise ScenarioError(f"{path} = {child!r}: `replace` cannot be combined with "
                             f"{sorted(set(child) - {'replace'})}")
        if not isinstance(child["replace"], list):
            raise ScenarioError(f"{path}.replace = {child['replace']!r}: expected a list")
        return child["replace"]
    out = list(base)
    remove = child.get("remove", [])
    if not isinstance(remove, list):
        raise ScenarioError(f"{path}.remove = {remove!r}: expected a list of names")
    for name in remove:
        keys = [i.get("name") if isinstance(i, dict) else i for i in out]
        if name not in keys:
            raise ScenarioError(f"{path}.remove: {name!r} is not in the parent's list; it has "
                             f"{keys}{did_you_mean(name, keys)}")
        out.pop(keys.index(name))
    add = child.get("merge", [])
    if not isinstance(add, list):
        raise ScenarioError(f"{path}.merge = {add!r}: expected a list")
    if add:
        out = _merge_named(out, add) if _named(out + add) else out + add
    return out


def _absolute_data_paths(data: Any, folder: Path) -> None:
    series = data.get("data") if isinstance(data, dict) else None
    if not isinstance(series, dict):
        return
    for spec in series.values():
        f = spec.get("file") if isinstance(spec, dict) else None
        if isinstance(f, str) and f and not Path(f).is_absolute():
            spec["file"] = str((folder / f).resolve())


def read_scenario_data(path: str | Path, chain: tuple[Path, ...] = ()) -> dict:
    """A scenario file as one mapping, its `extends` chain merged in."""
    return _read(Path(path), chain)


def _yaml(path: Path, what: str):
    """The file's YAML, parsed once per version of the file (the CLI reads a scenario to tell
    its kind, then to validate it)."""
    try:
        st = path.stat()
    except OSError:
        return read_yaml(path, what, ScenarioError)
    return copy.deepcopy(_parsed(str(path.resolve()), st.st_mtime_ns, st.st_size, what))


@lru_cache(maxsize=64)
def _parsed(path: str, _mtime: int, _size: int, what: str):
    return read_yaml(Path(path), what, ScenarioError)


def _read(path: Path, chain: tuple[Path, ...]) -> dict:
    what = "scenario" if not chain else f"scenario (extended by {chain[-1]})"
    data = _yaml(path, what)
    if not isinstance(data, dict):
        raise ScenarioError(f"invalid scenario {path}: top level must be a mapping, got "
                         f"{type(data).__name__}")
    _absolute_data_paths(data, path.parent.resolve())
    if "extends" not in data:
        return data
    ref = data.pop("extends")
    if not isinstance(ref, str) or not ref:
        raise ScenarioError(f"invalid scenario {path}: extends = {ref!r}: expected the name or "
                         "path of another scenario")
    try:
        parent = find_scenario(ref, path.parent)
    except ScenarioError as exc:
        raise ScenarioError(f"invalid scenario {path}: extends = {ref!r}: {exc}") from None
    if parent.resolve() in {p.resolve() for p in (*chain, path)}:
        raise ScenarioError(f"invalid scenario {path}: extends = {ref!r}: circular")
    return merge(_read(parent, (*chain, path)), data)


def scenario_kind(data: dict) -> str:
    """`transmission` or `distribution` (the default kind has no `kind` key)."""
    return "transmission" if data.get("kind") == "transmission" else "distribution"


def describe(path: Path) -> dict[str, str]:
    """Name, kind and the first sentence of the description of a scenario file."""
    try:
        data = read_scenario_data(path)
    except ScenarioError as exc:
        return {"name": path.stem, "kind": "?", "description": f"(unreadable: {exc})"}
    text = " ".join(str(data.get("description") or "").split())
    return {"name": path.stem, "kind": scenario_kind(data), "description": text}

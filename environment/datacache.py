"""On-disk cache of what is derived from simbench's shipped CSV files.

Reading a simbench net or its profile year takes seconds (and importing simbench pulls in all
of pandapower); the derived grid and profile arrays load in milliseconds. An entry is keyed by
the installed simbench version and by the source code that derives it: the build function and
every function or class of this project it calls (followed through their global names), so a
change to how the grid or the profiles are derived builds a new entry instead of serving the
old one. Entries are written atomically, so parallel runs can share the cache; a superseded
entry of the same name is removed when the new one is written."""

from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

PACKAGES = ("environment", "agents", "experiments")
DEPTH = 4


def cache_dir() -> Path:
    root = os.environ.get("FLEXMARKETS_CACHE") or Path.home() / ".cache" / "flexmarkets"
    return Path(root) / f"simbench-{version('simbench')}"


def code_digest(build: Callable) -> str:
    """A digest of the source of `build` and of the project's functions and classes it uses."""
    sources: list[str] = []
    seen: set[int] = set()

    def visit(obj, depth: int) -> None:
        if id(obj) in seen or depth > DEPTH:
            return
        seen.add(id(obj))
        try:
            sources.append(inspect.getsource(obj))
        except (OSError, TypeError):
            return
        obj = inspect.unwrap(obj)   # an lru_cache'd function: follow what it wraps
        code = getattr(obj, "__code__", None)
        names = set(code.co_names) if code is not None else set()
        if code is not None:
            for const in code.co_consts:          # nested functions and lambdas
                if inspect.iscode(const):
                    names |= set(const.co_names)
        scope = getattr(obj, "__globals__", None) or vars(inspect.getmodule(obj) or object)
        for name in sorted(names):
            ref = scope.get(name)
            if callable(ref) and str(getattr(ref, "__module__", "")).split(".")[0] in PACKAGES:
                visit(ref, depth + 1)

    visit(build, 0)
    return hashlib.sha256("\n".join(sources).encode()).hexdigest()[:12]


def cached[T](key: str, build: Callable[[], T]) -> T:
    folder = cache_dir()
    path = folder / f"{key}-{code_digest(build)}.pkl"
    if path.is_file():
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            path.unlink(missing_ok=True)
    value = build()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    for old in [folder / f"{key}.pkl", *folder.glob(f"{key}-*.pkl")]:
        if old != path and old.stem.removeprefix(key).lstrip("-").isalnum():
            old.unlink(missing_ok=True)
    return value

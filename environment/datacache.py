"""On-disk cache of what is derived from simbench's shipped CSV files.

Reading a simbench net or its profile year takes seconds (and importing simbench pulls in all
of pandapower); the derived grid and profile arrays load in milliseconds. Entries are keyed by
the installed simbench version and written atomically, so parallel runs can share the cache."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("FLEXMARKETS_CACHE") or Path.home() / ".cache" / "flexmarkets"
    return Path(root) / f"simbench-{version('simbench')}"


def cached[T](key: str, build: Callable[[], T]) -> T:
    path = cache_dir() / f"{key}.pkl"
    if path.is_file():
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            path.unlink(missing_ok=True)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return value

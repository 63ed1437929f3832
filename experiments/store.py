"""Where a run's results go, and how they get there without losing anything.

A run's id is `<name>-seed<S>-<N>d-<hash>`: the hash is of the resolved scenario (overrides
included) and the contents of its data files, so two runs that differ in anything have two
folders, and the same run twice has one. A folder that holds results is never replaced unless
asked (`--overwrite`); a run writes into a temporary folder beside its target and renames it
into place when complete, so a crash or a full disk leaves the old results, or nothing.

Every output path is checked before any simulation starts (`check_output_dir`): a file in the
way, a folder that cannot be written or a run folder already there stop the run at once with
the path in the message. Only the standard library is imported here, so the CLI can check
before loading the model.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from environment.errors import InputError

RESULTS = Path("results")
HASH_CHARS = 8
EXIT_RUNS_FAILED, EXIT_BAD_INPUT, EXIT_DISK_FULL, EXIT_INTERRUPTED = 1, 2, 3, 130
"""Exit status of the commands (0: done)."""


class OutputExists(InputError):
    """The results folder of a run holds results already."""


class DiskFull(OSError):
    """Writing results failed for lack of space; nothing was left half-written."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False, default=str)


def scenario_hash(resolved: dict, data_digests: dict[str, str] | None = None) -> str:
    """Short hash of a resolved scenario (a JSON mapping) and its data files' digests."""
    payload = canonical_json({"scenario": resolved, "data": data_digests or {}})
    return hashlib.sha256(payload.encode()).hexdigest()[:HASH_CHARS]


def run_id(name: str, seed: int, length: str, digest: str) -> str:
    """`<name>-seed<S>-<length>-<digest>`, e.g. default-seed42-7d-3fa2c1d0."""
    return f"{name}-seed{seed}-{length}-{digest}"


def holds_results(folder: Path) -> bool:
    """A folder that exists and is not empty."""
    return folder.is_dir() and any(folder.iterdir())


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path: str | Path, what: str = "results folder", *,
                     must_be_new: bool = False, overwrite: bool = False) -> Path:
    """A folder the run will write: no file in the way, its nearest existing ancestor a
    writable folder (tried with a probe file, which also catches read-only file systems), and,
    with `must_be_new`, no results in it unless `overwrite`. Nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path}: is a file, not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise InputError(f"{what} {path}: {base} is a file, so no folder can be made there")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".flexmarkets-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot write in {base} ({exc.strerror})") from None
    if must_be_new and not overwrite and holds_results(path):
        raise OutputExists(f"{what} {path}: holds results already ({_described(path)}); pass "
                           "--overwrite to replace them, or --out another folder")
    return path


def _described(folder: Path) -> str:
    cfg = folder / "config.yaml"
    if cfg.is_file():
        import datetime as dt

        when = dt.datetime.fromtimestamp(cfg.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        return f"a run written {when}"
    return f"{sum(1 for _ in folder.iterdir())} entries"


@contextlib.contextmanager
def writing(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside `target` to write a run into; on success it replaces
    `target` (which must hold no results unless `overwrite`), on any error it is removed and
    `target` is untouched. A full disk raises `DiskFull`."""
    target = Path(target)
    check_output_dir(target, must_be_new=True, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:6]}"
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise DiskFull(exc.errno, f"disk full while writing {target}: nothing was "
                           "written; free some space and run again") from None
        raise


def write_run(target: Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call `write(folder)` inside `writing(target)`; returns `target`."""
    with writing(target, overwrite) as tmp:
        write(tmp)
    return target

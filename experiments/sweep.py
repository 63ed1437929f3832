"""Run a study: the driver. It brings the catalog in line with the run folders, hands the runs
not done yet to a runner (experiments/sweep_runners.py: local worker processes, a Dask cluster,
or inline), records each finished run in the catalog as it comes, and shows progress.

A run that raises is recorded as failed with its traceback and the study goes on. Workers write
only their own run folder (under a temporary name, then renamed: a folder is complete or
absent); the driver alone writes the catalog. A study stopped at any point (Ctrl-C, a killed
process or machine) resumes when run again: runs with a folder are not redone; the catalog is
rebuilt from the folders where it lags behind. A full disk stops the sweep with `DiskFull`:
the run being stored leaves no folder, so the next sweep runs it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from experiments import catalog as cat
from experiments.store import DiskFull
from experiments.study import Study
from experiments.study_schema import check_metrics
from experiments.sweep_dask import DaskRunner
from experiments.sweep_runners import InlineRunner, LocalRunner, available_cpus, make_task

DEFAULT_RESULTS = Path("results")
FLUSH_EVERY_S = 1.0
__all__ = ["DaskRunner", "InlineRunner", "LocalRunner", "StudyBusy", "SweepResult",
           "available_cpus", "make_runner", "run_study", "study_lock"]


# --- the driver ------------------------------------------------------------------------------


def make_runner(engine: str = "local", workers: int | None = None,
                scheduler: str | None = None, reuse_workers: bool = False):
    """The runner of an engine: local worker processes, a Dask cluster, or inline."""
    if scheduler or engine == "dask":
        return DaskRunner(workers, scheduler, isolate=not reuse_workers)
    if engine == "inline" or workers == 0:
        return InlineRunner()
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}: local, dask or inline")
    return LocalRunner(workers, runs_per_worker=0 if reuse_workers else 1)


class StudyBusy(RuntimeError):
    """Another process is running the same study into the same results folder."""


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """One sweep per study folder at a time (released by the OS if the process dies)."""
    study_dir.mkdir(parents=True, exist_ok=True)
    path = study_dir / ".lock"
    fh = path.open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            raise StudyBusy(f"study folder {study_dir} is in use by {who}: wait for that sweep "
                            "to finish or stop it") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        yield
    finally:
        fh.close()


def is_locked(study_dir: Path) -> bool:
    path = study_dir / ".lock"
    if not path.is_file():
        return False
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


@dataclass
class SweepResult:
    study: str
    study_dir: Path
    runner: str
    workers: int
    total: int               # distinct runs in the design
    done_before: int         # of which already finished when the sweep started
    ran: int = 0             # finished by this sweep
    ok: int = 0              # ... of which ok
    failed: int = 0          # ... of which failed
    interrupted: bool = False
    elapsed_s: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)
    catalog_pending: int = 0  # rows not yet in the catalog file (it was locked); on disk
    disk_full: bool = False

    @property
    def remaining(self) -> int:
        return self.total - self.done_before - self.ran


def _design_rows(study: Study) -> list[tuple]:
    rows = []
    for r in study.runs:
        p = study.points[r.point]
        rows.append((r.point, r.seed, r.run_id, p.group, p.sample_row,
                     list(p.x) if p.x is not None else None, p.params))
    return rows


def prepare(study: Study, study_dir: Path, retry_failed: bool = False
            ) -> tuple[list[cat.FieldDef], dict[str, str], list]:
    """Write study.json, bring the catalog in line with the folders, return the runs to do."""
    describe = study.describe()
    cat.write_json_atomic(study_dir / cat.STUDY_JSON, describe)
    fields = cat.fields_of(describe)
    cat.clean_tmp(study_dir)
    with cat.connect(study_dir / cat.CATALOG) as con:
        changed = cat.ensure_schema(con, fields)
        cat.write_meta(con, "study", describe)
        cat.sync(con, study_dir, fields, study.name)
        cat.refresh(con, changed)
        cat.write_design(con, _design_rows(study))
        status = cat.statuses(con)
    if retry_failed:
        for run_id, st in list(status.items()):
            if st == "failed":
                shutil.rmtree(study_dir / cat.RUNS_DIR / run_id, ignore_errors=True)
                del status[run_id]
    todo = [r for r in study.unique_runs if r.run_id not in status]
    return fields, status, todo


def run_study(study: Study, *, results: Path | str = DEFAULT_RESULTS, runner=None,
              engine: str = "local", workers: int | None = None, scheduler: str | None = None,
              retry_failed: bool = False, progress: bool = True,
              log: Callable[[str], None] | None = None, limit: int | None = None
              ) -> SweepResult:
    """Run the study's runs that are not done yet into `results/<study>/`.

    `runner` is a started or unstarted runner (default: made from engine/workers/scheduler and
    closed at the end; a runner passed in is left open). `limit` stops after that many runs.
    Worker processes import the caller's main module (multiprocessing and Dask do): a script
    that calls this must guard its entry point with `if __name__ == "__main__":`."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    study_dir = Path(results) / study.name
    t0 = time.perf_counter()
    own = runner is None
    runner = runner or make_runner(engine, workers, scheduler)
    runner.start()          # a cluster that cannot be reached fails here, before any folder
    with disk_full_as_one_error(study_dir), study_lock(study_dir):
        fields, status, todo = prepare(study, study_dir, retry_failed)
        if limit is not None:
            todo = todo[:limit]
        total = len(study.unique_runs)
        done = sum(1 for r in study.unique_runs if r.run_id in status)
        res = SweepResult(study.name, study_dir, runner.name, getattr(runner, "workers", 1),
                          total, done)
        n_failed_before = sum(1 for r in study.unique_runs if status.get(r.run_id) == "failed")
        dup = f" ({total} distinct)" if total != len(study.runs) else ""
        log(f"study {study.name}: {len(study.points)} points x {len(study.seeds)} seeds = "
            f"{len(study.runs)} runs{dup}; {done} done ({n_failed_before} failed), "
            f"{len(todo)} to run on "
            f"{runner.name} ({res.workers} worker{'s' if res.workers != 1 else ''}); "
            f"results in {study_dir}")
        bar = None
        if progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done, unit="run", desc=study.name, smoothing=0.1,
                       dynamic_ncols=True)
            bar.set_postfix(failed=n_failed_before, refresh=False)
        pending: list[dict] = []
        last_flush = time.monotonic()
        checked = False

        def say(msg: str) -> None:
            if bar is not None:
                bar.write(msg, file=sys.stderr)
            else:
                log(msg)

        def flush(final: bool = False) -> None:
            nonlocal last_flush
            if not pending:
                return
            try:
                with cat.connect(study_dir / cat.CATALOG, timeout=10.0 if final else 0.2) as con:
                    cat.upsert(con, pending)
                pending.clear()
            except cat.CatalogBusy:
                if final:
                    say(f"catalog busy: {len(pending)} finished runs are in their folders and "
                        "join the catalog when it is next opened")
            last_flush = time.monotonic()

        tasks = (make_task(study, r, study_dir) for r in todo)
        try:
            shared_warned = False
            for rec in runner.run(tasks):
                if INTERRUPTED.is_set():
                    raise KeyboardInterrupt
                res.ran += 1
                if rec.get("isolated") is False and not shared_warned:
                    shared_warned = True
                    say("warning: the Dask workers are daemonic, so runs share worker processes "
                        "(state a run leaves in its process can reach the next); start them "
                        "with DASK_DISTRIBUTED__WORKER__DAEMON=False to isolate runs")
                if rec["status"] == "ok":
                    res.ok += 1
                    if not checked:
                        checked = True
                        res.warnings = check_metrics(study.metrics, rec.get("summary") or {})
                        for w in res.warnings:
                            say(f"warning: {w}")
                else:
                    res.failed += 1
                    say(f"run {rec['run_id']} {_fmt_params(rec.get('params'))} seed "
                        f"{rec.get('seed')} failed: {(rec.get('error') or '').splitlines()[0]}")
                pending.append(cat.row_from_record(rec, fields, study.name))
                if bar is not None:
                    bar.set_postfix(failed=n_failed_before + res.failed, refresh=False)
                    bar.update(1)
                if time.monotonic() - last_flush > FLUSH_EVERY_S or len(pending) >= 200:
                    flush()
                if INTERRUPTED.is_set():
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            res.interrupted = True
        except DiskFull:
            res.disk_full = True
            raise
        except Exception as exc:
            if _no_space(exc):
                res.disk_full = True
                raise
            if not INTERRUPTED.is_set():
                raise
            res.interrupted = True      # e.g. DuckDB's "Query interrupted" during a write
        finally:
            if bar is not None:
                bar.close()
            if own:
                runner.close()
            if res.disk_full:
                with contextlib.suppress(Exception):
                    flush(final=True)
            else:
                flush(final=True)
            res.catalog_pending = len(pending)
            with contextlib.suppress(OSError):
                cat.clean_tmp(study_dir)
        res.elapsed_s = time.perf_counter() - t0
    return res


def _no_space(exc: BaseException) -> bool:
    """An OSError or a DuckDB error saying the disk is full."""
    from experiments.store import is_disk_full

    return is_disk_full(exc) or "no space left on device" in str(exc).lower()


@contextlib.contextmanager
def disk_full_as_one_error(study_dir: Path) -> Iterator[None]:
    """A full disk anywhere in the sweep (a worker storing a run, the catalog, study.json)
    becomes one `DiskFull` naming the study folder, not a chain of tracebacks. Runs whose
    folder was not written are not recorded, so the next sweep runs them."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if _no_space(exc):
            raise DiskFull(28, f"disk full in {study_dir}: the sweep stopped; free some space and "
                           "run the same command again (runs not stored are run again)") from None
        raise


def _fmt_params(params: dict | None) -> str:
    if not params:
        return ""
    return "{" + ", ".join(f"{k}={v}" for k, v in params.items()) + "}"


INTERRUPTED = threading.Event()
"""Set by `raise_keyboard_interrupt` (the CLI's SIGINT/SIGTERM handler): DuckDB turns a
Ctrl-C that arrives during a catalog write into RuntimeError("Query interrupted"), and an
interrupt swallowed anywhere below the sweep loop must still stop it, so the loop checks
this flag too."""


def raise_keyboard_interrupt(signum, frame):
    INTERRUPTED.set()
    raise KeyboardInterrupt

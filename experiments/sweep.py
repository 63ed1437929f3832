"""Run a study: every (design point, seed) is an independent task.

Runners:

* `LocalRunner` (the default): worker processes on this machine, one run at a time each. They
  are forked from a server process that imported the model once (multiprocessing
  'forkserver'), so starting a worker costs milliseconds, and by default every run gets a
  fresh worker: a run's results depend on its scenario and seed only, never on what the
  process ran before (state a model leaves behind in its process cannot leak into the next
  run; `runs_per_worker=0` reuses workers). A worker that dies mid-run (killed, out of memory)
  is replaced and its run retried, up to `max_attempts` times in all.
* `DaskRunner`: the Dask distributed engine, on an existing cluster (`scheduler` address) or a
  local cluster of `workers` single-threaded processes. Dask retries the run of a lost worker;
  a run that keeps killing workers is recorded as failed. Each Dask worker runs every run in a
  fresh process forked from its own preloaded server, as the local runner does; this needs
  non-daemonic Dask workers (set for local clusters; on an existing cluster start the workers
  with DASK_DISTRIBUTED__WORKER__DAEMON=False, otherwise runs share the worker processes and
  the sweep says so).
* `InlineRunner`: runs in the calling process (debugging, tests).

A run that raises is recorded as failed with its traceback and the study goes on. Workers write
only their own run folder (under a temporary name, then renamed: a folder is complete or
absent); the driver alone writes the catalog. A study stopped at any point (Ctrl-C, a killed
process or machine) resumes when run again: runs with a folder are not redone; the catalog is
rebuilt from the folders where it lags behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import tracemalloc
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from experiments import catalog as cat
from experiments.study import Study, check_metrics

DEFAULT_RESULTS = Path("results")
MAX_ATTEMPTS = 3
FLUSH_EVERY_S = 1.0


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --- the task, run in a worker ---------------------------------------------------------------


def make_task(study: Study, run, study_dir: Path) -> dict:
    return {"run_id": run.run_id, "study": study.name, "study_dir": str(study_dir.resolve()),
            "seed": run.seed, "point": run.point, "params": study.points[run.point].params,
            "scenario": study.scenario_data(run), "tables": study.tables,
            "figures": study.figures}


def execute_run(task: dict) -> dict:
    """Simulate one run and write its folder; returns its record (run.json plus summary).

    An exception of the simulation makes a 'failed' record with the traceback; an exception
    while storing (disk full, ...) propagates, so that the runner retries the run."""
    root = Path(task["study_dir"]) / cat.RUNS_DIR
    final = root / task["run_id"]
    if (final / cat.RUN_JSON).is_file():      # done by an earlier attempt of this task
        return cat.read_record(final)
    t0 = time.perf_counter()
    c0 = time.process_time()
    record = {k: task[k] for k in ("run_id", "study", "seed", "point", "params", "scenario")}
    record.update(started_at=time.time(), worker=f"{socket.gethostname()}:{os.getpid()}",
                  status="ok", error=None, traceback=None)
    result = None
    tracing = tracemalloc.is_tracing()
    try:
        from environment.scenario import parse_scenario
        from experiments.run import run_scenario

        scenario = parse_scenario(task["scenario"], f"run {task['run_id']}")
        result = run_scenario(scenario, write=False, figures=False, progress=False)
        result.model = None
    except Exception as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    finally:
        if not tracing and tracemalloc.is_tracing():
            tracemalloc.stop()
    return _store(task, record, result, final, t0, c0)


def _store(task: dict, record: dict, result, final: Path, t0: float,
           c0: float | None = None) -> dict:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{cat.TMP_PREFIX}{task['run_id']}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    try:
        (tmp / cat.WRITER).write_text(f"{socket.gethostname()} {os.getpid()}")
        if result is not None:
            from experiments.run import write_results

            tables = task.get("tables", "all")
            if tables != "all":
                keep = [] if tables == "none" else tables
                result = dataclasses.replace(
                    result, tables={k: v for k, v in result.tables.items() if k in keep})
            write_results(result, tmp, figures=bool(task.get("figures")))
            record["summary"] = result.summary
        else:
            (tmp / "config.yaml").write_text(yaml.safe_dump(task["scenario"], sort_keys=False))
        record["finished_at"] = time.time()
        record["task_s"] = time.perf_counter() - t0
        record["cpu_s"] = None if c0 is None else time.process_time() - c0
        stored = {k: v for k, v in record.items() if k != "summary"}
        (tmp / cat.RUN_JSON).write_text(json.dumps(cat.clean_json(stored), indent=1))
        (tmp / cat.WRITER).unlink()
        try:
            os.rename(tmp, final)
        except OSError:
            if (final / cat.RUN_JSON).is_file():   # another attempt got there first
                shutil.rmtree(tmp, ignore_errors=True)
                return cat.read_record(final)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def failure_record(task: dict, error: str, tb: str | None = None, attempts: int = 1) -> dict:
    """A failed run whose worker never returned (it died, or storing its results failed):
    written by the driver into the run's folder, so that the store stays the truth."""
    record = {k: task[k] for k in ("run_id", "study", "seed", "point", "params", "scenario")}
    now = time.time()
    record.update(status="failed", error=error, traceback=tb, started_at=None,
                  finished_at=now, worker=None, attempts=attempts)
    final = Path(task["study_dir"]) / cat.RUNS_DIR / task["run_id"]
    if (final / cat.RUN_JSON).is_file():
        return cat.read_record(final)
    with contextlib.suppress(OSError):
        return _store(task, record, None, final, time.perf_counter())
    return record


# --- runners ---------------------------------------------------------------------------------


class InlineRunner:
    """Runs tasks one after the other in this process."""

    name = "inline"
    workers = 1

    def start(self) -> None:
        pass

    def run(self, tasks: Iterable[dict]) -> Iterator[dict]:
        for task in tasks:
            try:
                yield execute_run(task)
            except Exception as exc:
                yield failure_record(task, f"{type(exc).__name__}: {exc}",
                                     traceback.format_exc(), MAX_ATTEMPTS)

    def close(self) -> None:
        pass


def _worker_main(conn, lifeline, max_runs: int = 0) -> None:
    """A LocalRunner worker: says it is ready, then runs the tasks it is sent until told to
    stop; exits at once should the driver die (its end of `lifeline` closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the driver's to handle

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    try:
        conn.send(("ready",))
    except OSError:
        return
    done = 0
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            msg = ("ok", execute_run(task))
        except Exception as exc:
            msg = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        try:
            conn.send(msg)
        except OSError:
            return
        done += 1
        if max_runs and done >= max_runs:
            return


@dataclass
class _Worker:
    proc: mp.process.BaseProcess
    conn: multiprocessing.connection.Connection
    lifeline: multiprocessing.connection.Connection
    task: dict | None = None
    ready: bool = False


class LocalRunner:
    """Worker processes on this machine (see the module docstring)."""

    name = "local"

    def __init__(self, workers: int | None = None, max_attempts: int = MAX_ATTEMPTS,
                 runs_per_worker: int = 1):
        self.workers = max(1, workers or available_cpus())
        self.max_attempts = max_attempts
        self.runs_per_worker = runs_per_worker
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["experiments.run", "experiments.sweep"])
        self._pool: list[_Worker] = []
        self.retried = 0

    def start(self) -> None:
        while len(self._pool) < self.workers:
            self._spawn()

    def _spawn(self) -> None:
        conn, child = self._ctx.Pipe()
        life_r, life_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_worker_main,
                                 args=(child, life_r, self.runs_per_worker), daemon=True,
                                 name="flexmarkets-sweep-worker")
        proc.start()
        child.close()
        life_r.close()
        self._pool.append(_Worker(proc, conn, life_w))

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._pool]

    def busy_pids(self) -> list[int]:
        return [w.proc.pid for w in self._pool if w.task is not None]

    def run(self, tasks: Iterable[dict]) -> Iterator[dict]:
        queue = deque(tasks)
        attempts: Counter[str] = Counter()
        startup_deaths = 0
        self.start()
        while queue or any(w.task is not None for w in self._pool):
            for w in self._pool:
                if w.ready and w.task is None and queue:
                    w.task = queue.popleft()
                    attempts[w.task["run_id"]] += 1
                    try:
                        w.conn.send(w.task)
                    except OSError:
                        pass               # dead: noticed below through its sentinel
            mp.connection.wait([w.conn for w in self._pool]
                               + [w.proc.sentinel for w in self._pool])
            for w in list(self._pool):
                msg = None
                with contextlib.suppress(EOFError, OSError):
                    if w.conn.poll():
                        msg = w.conn.recv()
                if msg is not None and msg[0] == "ready":
                    w.ready = True
                elif msg is not None and w.task is not None:
                    task, w.task = w.task, None
                    if msg[0] == "ok":
                        msg[1]["attempts"] = attempts[task["run_id"]]
                        yield msg[1]
                    else:
                        yield from self._retry(task, attempts, queue, msg[1], msg[2])
                if not w.proc.is_alive():
                    self._pool.remove(w)
                    w.conn.close()
                    w.lifeline.close()
                    if not w.ready:
                        startup_deaths += 1
                        if startup_deaths > 2 * self.workers + 2:
                            raise RuntimeError(
                                f"sweep worker processes keep exiting at start-up (exit code "
                                f"{w.proc.exitcode}); if you call run_study from a script, "
                                "guard it with `if __name__ == \"__main__\":` (workers "
                                "import the main module)")
                    if w.task is not None:
                        code = w.proc.exitcode
                        why = f"worker process died (exit code {code}) while running this run"
                        yield from self._retry(w.task, attempts, queue, why, None)
                    if queue or any(x.task is not None for x in self._pool):
                        self._spawn()

    def _retry(self, task, attempts, queue, error, tb) -> Iterator[dict]:
        if attempts[task["run_id"]] < self.max_attempts:
            self.retried += 1
            queue.appendleft(task)
        else:
            yield failure_record(task, f"{error} (after {attempts[task['run_id']]} attempts)",
                                 tb, attempts[task["run_id"]])

    def close(self) -> None:
        for w in self._pool:
            with contextlib.suppress(OSError):
                if w.task is None:
                    w.conn.send(None)
        deadline = time.monotonic() + 2.0
        for w in self._pool:
            if w.task is not None:
                w.proc.terminate()
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1.0)
            w.conn.close()
            w.lifeline.close()
        self._pool.clear()


_THREAD = threading.local()


def execute_isolated(task: dict) -> dict:
    """A Dask task: the run in a fresh process forked from this Dask worker's own preloaded
    server (one per worker thread); in this process where it may not have children (a daemonic
    worker), with `isolated: False` in the record."""
    runner = getattr(_THREAD, "runner", None)
    if runner is None:
        if mp.current_process().daemon:
            record = execute_run(task)
            record["isolated"] = False
            return record
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers: glibc then hands
        # memory back at once and a run page-faults it in again (some 30% slower); the run
        # processes forked from this server do without it
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        runner = _THREAD.runner = LocalRunner(1, runs_per_worker=1)
    results = runner.run([task])
    try:
        return next(results)
    finally:
        results.close()


class DaskRunner:
    """Dask distributed: an existing cluster (`scheduler`) or a local cluster of `workers`
    single-threaded worker processes. Workers must be able to import flexmarkets and to write
    to the results folder (a shared file system for a remote cluster)."""

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 isolate: bool = True):
        self.scheduler = scheduler
        self.workers = max(1, workers or available_cpus())
        self.isolate = isolate
        self.client = None
        self.cluster = None

    def start(self) -> None:
        if self.client is not None:
            return
        import logging

        import dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            self.client = Client(self.scheduler, timeout="30s")
            info = self.client.scheduler_info(n_workers=-1)
            self.workers = max(1, len(info.get("workers", {})))
        else:
            # workers that may fork a process per run (also when a lost one is restarted)
            dask.config.set({"distributed.worker.daemon": False})
            with dask.config.set({"distributed.scheduler.allowed-failures": MAX_ATTEMPTS - 1}):
                self.cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                    preload=["experiments.run", "experiments.sweep"])
                self.client = Client(self.cluster)

    def run(self, tasks: Iterable[dict]) -> Iterator[dict]:
        from distributed import as_completed

        self.start()
        session = uuid.uuid4().hex[:8]
        futures = {}
        fn = execute_isolated if self.isolate else execute_run
        for t in tasks:
            f = self.client.submit(fn, t, key=f"flexmarkets-{t['run_id']}-{session}",
                                   pure=False, retries=MAX_ATTEMPTS - 1)
            futures[f] = t
        try:
            for fut in as_completed(futures):
                task = futures.pop(fut)
                try:
                    rec = fut.result()
                except Exception as exc:
                    rec = failure_record(task, f"{type(exc).__name__}: {exc}",
                                         "".join(traceback.format_exception(exc)), MAX_ATTEMPTS)
                fut.release()
                yield rec
        finally:
            if futures:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(futures), force=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.client is not None:
                self.client.close(timeout=5)
        with contextlib.suppress(Exception):
            if self.cluster is not None:
                self.cluster.close(timeout=5)
        self.client = self.cluster = None


def dask_setup(worker) -> None:
    """Dask preload hook (local clusters): Ctrl-C is the driver's to handle; it closes the
    cluster itself."""
    with contextlib.suppress(ValueError):      # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_runner(engine: str = "local", workers: int | None = None,
                scheduler: str | None = None, reuse_workers: bool = False):
    if scheduler or engine == "dask":
        return DaskRunner(workers, scheduler, isolate=not reuse_workers)
    if engine == "inline" or workers == 0:
        return InlineRunner()
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}: local, dask or inline")
    return LocalRunner(workers, runs_per_worker=0 if reuse_workers else 1)


# --- the driver ------------------------------------------------------------------------------


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
    with study_lock(study_dir):
        fields, status, todo = prepare(study, study_dir, retry_failed)
        if limit is not None:
            todo = todo[:limit]
        own = runner is None
        runner = runner or make_runner(engine, workers, scheduler)
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
        except Exception:
            if not INTERRUPTED.is_set():
                raise
            res.interrupted = True      # e.g. DuckDB's "Query interrupted" during a write
        finally:
            if bar is not None:
                bar.close()
            if own:
                runner.close()
            flush(final=True)
            res.catalog_pending = len(pending)
            cat.clean_tmp(study_dir)
        res.elapsed_s = time.perf_counter() - t0
    return res


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

"""Where a study's runs execute: every (design point, seed) is an independent task.

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
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import signal
import socket
import threading
import time
import traceback
import tracemalloc
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from experiments import catalog as cat
from experiments.store import DiskFull, is_disk_full
from experiments.study import Study

MAX_ATTEMPTS = 3
PRELOAD = ["experiments.run", "experiments.sweep_runners"]


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --- the dry run: the first design point for two days ------------------------------------


def dry_check(study: Study) -> tuple[list[str], dict[str, float]]:
    """Simulate the first design point for two days, as the study runs it, and check the metric
    paths against its summary; returns the warnings and the timing of the model's set-up, its
    first day and its second (a warm day: the basis of the study's time estimate)."""
    from environment.model import FlexMarketModel
    from environment.scenario import parse_scenario
    from experiments.statistics import distribution_summary
    from experiments.study_schema import check_metrics

    data = study.scenario_data(study.runs[0])
    full_days = data["calendar"]["days"]
    data["calendar"] = {**data["calendar"], "days": min(2, full_days)}
    t0 = time.perf_counter()
    model = FlexMarketModel(parse_scenario(data, "dry run"))
    marks = [time.perf_counter()]
    while model.running:
        model.step()
        marks.append(time.perf_counter())
    tables = model.tables()
    tables["ledger"] = model.ledger.frame()
    summary = distribution_summary(model, tables)
    steps = [b - a for a, b in zip(marks, marks[1:], strict=False) if b - a > 0]
    timing = {"build_s": marks[0] - t0, "first_day_s": steps[0], "day_s": steps[-1],
              "days": full_days}
    return check_metrics(study.metrics, summary), timing


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
        if is_disk_full(exc):
            raise disk_full_error(exc, task) from None
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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc) and not isinstance(exc, DiskFull):
            raise disk_full_error(exc, task) from None
        raise
    return record


def disk_full_error(exc: BaseException, task: dict) -> DiskFull:
    return DiskFull(getattr(exc, "errno", None), f"disk full while storing run {task['run_id']} "
                    f"in {task['study_dir']}: free some space and run the same command again "
                    "(the run has no folder, so it runs again)")


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
    try:
        return _store(task, record, None, final, time.perf_counter())
    except DiskFull:
        raise
    except OSError:
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
            except DiskFull:
                raise
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
        except DiskFull as exc:
            msg = ("disk_full", str(exc.strerror), None)
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
        self._ctx.set_forkserver_preload(PRELOAD)
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
                    elif msg[0] == "disk_full":
                        raise DiskFull(None, msg[1])
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

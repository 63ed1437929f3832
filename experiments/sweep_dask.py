"""The Dask runner of a study: an existing cluster (`--scheduler`) or a local one. Each Dask worker
runs every run in a fresh process forked from its own preloaded server, as the local runner
does (experiments/sweep_runners.py); this needs non-daemonic Dask workers (set for local
clusters; on an existing cluster start the workers with DASK_DISTRIBUTED__WORKER__DAEMON=False,
otherwise runs share the worker processes and the sweep says so). An address where nothing
listens is refused at once (`check_scheduler`), before any folder is made."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import signal
import socket
import threading
import traceback
import uuid
from collections.abc import Iterable, Iterator

from environment.errors import InputError
from experiments.store import DiskFull, is_disk_full
from experiments.sweep_runners import (
    MAX_ATTEMPTS,
    LocalRunner,
    available_cpus,
    disk_full_error,
    execute_run,
    failure_record,
)

DASK_PRELOAD = ["experiments.run", "experiments.sweep_dask"]


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
            check_scheduler(self.scheduler)
            try:
                self.client = Client(self.scheduler, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler {self.scheduler}: the scheduler answered but no "
                                 f"Dask client could connect ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
            info = self.client.scheduler_info(n_workers=-1)
            self.workers = max(1, len(info.get("workers", {})))
        else:
            # workers that may fork a process per run (also when a lost one is restarted)
            dask.config.set({"distributed.worker.daemon": False})
            with dask.config.set({"distributed.scheduler.allowed-failures": MAX_ATTEMPTS - 1}):
                self.cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                    preload=DASK_PRELOAD)
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
                except DiskFull:
                    raise
                except Exception as exc:
                    if is_disk_full(exc):
                        raise disk_full_error(exc, task) from None
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


def check_scheduler(address: str, timeout: float = 3.0) -> None:
    """An `InputError` at once if nothing listens at a Dask scheduler's address (Dask itself
    retries for half a minute, then prints a traceback)."""
    m = re.fullmatch(r"(?:(tcp|tls|ws|wss)://)?\[?([^\]/]+?)\]?:(\d+)/?", address.strip())
    if m is None:
        raise InputError(f"--scheduler {address!r}: expected an address such as "
                         "tcp://10.0.0.5:8786")
    host, port = m.group(2), int(m.group(3))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise InputError(f"--scheduler {address}: no Dask scheduler answers there ({why}); "
                         "start one with `dask scheduler`, or drop --scheduler to run on this "
                         "machine") from None


def dask_setup(worker) -> None:
    """Dask preload hook (local clusters): Ctrl-C is the driver's to handle; it closes the
    cluster itself."""
    with contextlib.suppress(ValueError):      # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)

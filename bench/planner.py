"""Benchmark: the planner's day LP, the Pyomo statement it replaced (tests/planner_pyomo.py)
against the sparse one (environment/planner.py), on the days a run hands it (not a timed test).

Prints for each the wall and CPU time per day, the time inside solver calls per day (HiGHS; for
Pyomo with its hand-over of the model), the peak memory of solving the days (resident set above
what the process held before), the old/new ratios (median of the repeats, which alternate old
and new so that both see the same load on a shared machine), and how far the two results are
apart.

    python bench/planner.py [--prosumers 320] [--days 7] [--start 2016-01-11] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's code and its Pyomo reference

import environment.planner_inputs  # noqa: E402  (first: it sets BLAS to one thread before numpy loads)

# isort: split
import numpy as np  # noqa: E402
from planner_pyomo import solve_day as pyomo_solve_day  # noqa: E402

from environment.grid.lindistflow import LinDistFlow  # noqa: E402
from environment.planner import solve_day  # noqa: E402
from environment.solver import CLOCK, highs_options  # noqa: E402
from experiments.run import run_scenario  # noqa: E402

SOLVERS = {"old": pyomo_solve_day, "new": solve_day}
PARTS = ("cost", "fuel", "wear", "emergency", "unserved_cost", "load_to_shed_mwh")


def planner_days(prosumers: int, days: int, start: str) -> list[tuple]:
    """The arguments the simulation hands the planner, one tuple per day."""
    calls = []

    def record(*args):
        calls.append(args)
        return solve_day(*args)

    real, environment.planner_inputs.solve_day = environment.planner_inputs.solve_day, record
    try:
        run_scenario(None, days=days, overrides={"prosumers.0.count": prosumers,
                                                 "calendar.start": start},
                     planner=True, write=False, figures=False, progress=False)
    finally:
        environment.planner_inputs.solve_day = real
    return calls


def timed_days(solve, days: list[tuple]) -> tuple[dict, list]:
    """Solve every day once: seconds per day (wall, CPU, inside solver calls) and results."""
    clock0, cpu0, wall0 = CLOCK.seconds, time.process_time(), time.perf_counter()
    results = [solve(*args) for args in days]
    n = len(days)
    return {"wall": (time.perf_counter() - wall0) / n, "cpu": (time.process_time() - cpu0) / n,
            "solver": (CLOCK.seconds - clock0) / n}, results


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def _portable(args: tuple) -> tuple:
    """The planner's arguments with the flow model rebuilt on a plain copy of the grid fields
    it reads (the Grid itself holds read-only mappings that do not pickle)."""
    day, flow, *rest = args
    g = flow.grid
    grid = SimpleNamespace(downstream=np.asarray(g.downstream), r_pu=np.asarray(g.r_pu),
                           x_pu=np.asarray(g.x_pu), v0_pu=np.asarray(g.v0_pu),
                           s_max_mva=np.asarray(g.s_max_mva), n_bus=g.n_bus,
                           n_branch=g.n_branch)
    return (day, LinDistFlow(grid), *rest)


def _peak_in_child(name: str, days: list[tuple]) -> float:
    solve = SOLVERS[name]
    # the first HiGHS instance and the modules Pyomo loads on first use are not the solves'
    highs_options()
    importlib.import_module("pyomo.contrib.solver.solvers.highs")
    importlib.import_module("pyomo.repn.standard_repn")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return float("nan")
    base = _rss_kb("VmRSS")
    for args in days:
        solve(*args)
    return (_rss_kb("VmHWM") - base) / 1024


def peak_memory_mb(name: str, days: list[tuple]) -> float:
    """Peak resident set above the start while every day is solved once, in a new process
    (so neither statement starts from a heap the other left resident), the kernel's
    high-water mark reset first; NaN where Linux does not allow that."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_peak_in_child, name, days).result()


def largest_difference(new: list, old: list) -> float:
    """Largest relative difference of a cost part (of the day's cost for parts near zero)."""
    return max(abs(getattr(a, p) - getattr(b, p)) / max(abs(getattr(b, p)), abs(b.cost), 1e-12)
               for a, b in zip(new, old, strict=True) for p in PARTS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prosumers", type=int, default=320)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--start", default="2016-01-11")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    days = planner_days(a.prosumers, a.days, a.start)
    runs, results = {"old": [], "new": []}, {}
    for _ in range(a.repeats):
        for name, solve in SOLVERS.items():
            stats, results[name] = timed_days(solve, days)
            runs[name].append(stats)
    portable = [_portable(args) for args in days]
    for name, rs in runs.items():
        for r in rs:
            r["memory"] = peak_memory_mb(name, portable)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for name, rs in runs.items()}
    print(f"planner benchmark: {a.days} days from {a.start}, {a.prosumers} prosumers, "
          f"median of {a.repeats}")
    print(f"  {'':22s}{'old (Pyomo)':>14s}{'new (sparse)':>14s}{'old/new':>10s}")
    for key, label, unit in (("wall", "wall per day", "s"), ("cpu", "CPU per day", "s"),
                             ("solver", "in solver calls", "s"),
                             ("memory", "peak memory", "MB")):
        o, n = med["old"][key], med["new"][key]
        print(f"  {label:22s}{o:12.3f} {unit:<2s}{n:11.3f} {unit:<2s}{o / max(n, 1e-9):9.1f}")
    print("  runs (wall per day)    old " + ", ".join(f"{r['wall']:.3f}" for r in runs["old"])
          + "; new " + ", ".join(f"{r['wall']:.3f}" for r in runs["new"]))
    new, old = results["new"], results["old"]
    rounds = sum(x.rounds != y.rounds or x.grid_constraints != y.grid_constraints
                 for x, y in zip(new, old, strict=True))
    print(f"  results: largest relative difference of a cost part "
          f"{largest_difference(new, old):.1e}; rounds or rows differ on {rounds} of "
          f"{len(days)} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the `region` scenario (simbench's MV+LV region, 9,102 buses, 7,824 households,
every market) at 15-minute MTUs (not a timed test).

Issue 19 asks a year in <= 10 minutes and <= 4 GB on 2 cores (<= 1.6 s a day on average),
and the planner in <= 30 s a day. Prints the wall time of the whole run (model build, days,
tables and summary), its CPU and system (kernel) seconds, the time inside solvers (HiGHS) and
wall/solver, peak memory (ru_maxrss), and the wall and CPU seconds of each simulated day
(mean, median, slowest; CPU seconds tell the code's cost on a machine shared with other
work). `--planner-days K` then times the planner on K days (seconds per day).

    python bench/region.py [--days 365] [--start 2016-01-01] [--planner-days 0] [--per-day]

A whole year takes a long while at today's speed: a fortnight from a January and a July start
(`--days 14 --start 2016-01-11`, `--start 2016-07-11`) gives the per-day estimate, congestion
being seasonal (the winter evening peak is the hard part).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout's code

from environment.model import FlexMarketModel  # noqa: E402
from environment.solver import CLOCK  # noqa: E402
from experiments.plan import plan_run  # noqa: E402
from experiments.statistics import distribution_summary  # noqa: E402

try:   # checkouts before it (side-by-side runs) allocate as they did
    from environment.memory import keep_pages
except ImportError:
    def keep_pages() -> None:
        pass


class DayClock:
    """Stands in for the progress bar of `FlexMarketModel.run`: one wall and CPU reading per
    day, and the solver seconds inside it."""

    def __init__(self):
        self.wall, self.cpu, self.solver = [], [], []
        self._mark()

    def _mark(self) -> None:
        self._t, self._c, self._s = time.perf_counter(), time.process_time(), CLOCK.seconds

    def update(self, _n: int) -> None:
        self.wall.append(time.perf_counter() - self._t)
        self.cpu.append(time.process_time() - self._c)
        self.solver.append(CLOCK.seconds - self._s)
        self._mark()


def run(days: int, start: str, planner: bool) -> dict:
    """One run of the region scenario: its timings, by part and by day."""
    keep_pages()   # as `experiments.run.execute` does
    CLOCK.seconds, CLOCK.calls = 0.0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    plan = plan_run("region", days=days, write=False,
                    overrides={"calendar.start": start, "planner.enabled": planner})
    model = FlexMarketModel(plan.scenario)
    build = time.perf_counter() - t0
    clock = DayClock()
    model.run(progress=clock)
    t1 = time.perf_counter()
    tables = model.tables()
    tables["ledger"] = model.ledger.frame()
    distribution_summary(model, tables)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "system_s": resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0,
            "build_s": build, "tables_s": time.perf_counter() - t1,
            "solver_s": CLOCK.seconds, "solver_calls": CLOCK.calls,
            "planner_s": getattr(model, "planner_seconds", 0.0), "clock": clock}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--start", default="2016-01-01", help="the first day (calendar.start)")
    ap.add_argument("--planner-days", type=int, default=0,
                    help="also time the planner on this many days from --start (0: skip)")
    ap.add_argument("--per-day", action="store_true", help="print every day's seconds")
    a = ap.parse_args()
    r = run(a.days, a.start, planner=False)
    c = r["clock"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"region benchmark: {a.days} days from {a.start} x {1440 // 15} MTUs, all markets, "
          "no planner")
    print(f"  wall            {r['wall_s']:8.2f} s   (model build {r['build_s']:.2f} s, "
          f"tables and summary {r['tables_s']:.2f} s)")
    print(f"  CPU             {r['cpu_s']:8.2f} s   (of which system {r['system_s']:.2f} s)")
    print(f"  inside solvers  {r['solver_s']:8.2f} s   ({r['solver_calls']} LPs)")
    print(f"  wall / solver   {r['wall_s'] / max(r['solver_s'], 1e-9):8.2f}")
    print(f"  peak memory     {rss:8.0f} MB (ru_maxrss)")
    print(f"  per day, wall   mean {statistics.mean(c.wall):.2f} s, median "
          f"{statistics.median(c.wall):.2f} s, slowest {max(c.wall):.2f} s "
          f"(day {c.wall.index(max(c.wall)) + 1})")
    print(f"  per day, CPU    mean {statistics.mean(c.cpu):.2f} s, median "
          f"{statistics.median(c.cpu):.2f} s, slowest {max(c.cpu):.2f} s; "
          f"solver {statistics.mean(c.solver):.2f} s")
    year = r["build_s"] + 365 * statistics.mean(c.wall) + r["tables_s"] * 365 / a.days
    print(f"  a year at this mean day: {year:.0f} s wall")
    if a.per_day:
        for i, (w, cpu, s) in enumerate(zip(c.wall, c.cpu, c.solver, strict=True)):
            print(f"    day {i + 1:3d}  wall {w:6.2f} s  CPU {cpu:6.2f} s  solver {s:5.2f} s")
    if a.planner_days:
        p = run(a.planner_days, a.start, planner=True)
        print(f"  planner         {p['planner_s'] / a.planner_days:8.2f} s per day "
              f"({a.planner_days} days, {p['planner_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

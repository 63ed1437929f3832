"""Benchmark: how a run's cost grows with the prosumers on simbench's MV+LV grid (issue 19).

Each size runs in a fresh subprocess (so peak RSS is that size's own), January days, every
market, without the planner. Printed per size: model build (grid, fleet, agents), wall per
simulated day, time in solvers (environment.solver.CLOCK), peak memory, and the growth of the
wall per day against the previous size (x per x prosumers: at most 1.0 is at most linear).

    python bench/scaling.py [--sizes 1000 2000 4000 8000] [--days 1] [--grid CODE] [--no-warm]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure this checkout's code

GRID = "1-MVLV-semiurb-all-2-sw"


def child(prosumers: int, days: int, grid: str) -> dict:
    from environment.model import FlexMarketModel
    from environment.solver import CLOCK
    from experiments.plan import plan_run

    plan = plan_run(None, days=days, write=False,
                    overrides={"grid.simbench_code": grid, "prosumers.0.count": prosumers,
                               "calendar.start": "2016-01-04", "planner.enabled": False})
    t0 = time.perf_counter()
    model = FlexMarketModel(plan.scenario)
    t1 = time.perf_counter()
    CLOCK.seconds = 0.0
    model.run()
    model.tables()
    t2 = time.perf_counter()
    return {"prosumers": model.fleet.n, "buses": model.grid.n_bus, "build_s": t1 - t0,
            "day_s": (t2 - t1) / days, "solver_day_s": CLOCK.seconds / days,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(prosumers: int, days: int, grid: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(prosumers), "--days",
                          str(days), "--grid", grid], capture_output=True, text=True,
                         check=False)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{prosumers} prosumers: the run failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--grid", default=GRID)
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-up run")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        import warnings

        warnings.simplefilter("ignore")
        print(json.dumps(child(a.child, a.days, a.grid)))
        return 0
    if not a.no_warm:
        measure(a.sizes[0], 1, a.grid)  # warm the grid and profile caches, not reported
    print(f"grid {a.grid}, {a.days} January day(s) per size, planner off, fresh process each")
    print(f"{'prosumers':>9} {'buses':>6} {'build s':>8} {'wall/day s':>10} {'solver/day s':>12} "
          f"{'peak MB':>8} {'growth':>16}")
    prev = None
    rows = []
    for n in a.sizes:
        r = measure(n, a.days, a.grid)
        rows.append(r)
        growth = "" if prev is None else (
            f"x{r['day_s'] / prev['day_s']:.2f} per x{r['prosumers'] / prev['prosumers']:.0f}")
        print(f"{r['prosumers']:>9,} {r['buses']:>6,} {r['build_s']:>8.1f} {r['day_s']:>10.1f} "
              f"{r['solver_day_s']:>12.2f} {r['rss_mb']:>8,.0f} {growth:>16}", flush=True)
        prev = r
    first, last = rows[0], rows[-1]
    size = last["prosumers"] / first["prosumers"]
    wall, mem = last["day_s"] / first["day_s"], last["rss_mb"] / first["rss_mb"]
    print(f"{first['prosumers']:,} -> {last['prosumers']:,} prosumers (x{size:.0f}): wall per day "
          f"x{wall:.2f}, peak memory x{mem:.2f}: growth "
          f"{'at most' if wall <= size else 'more than'} linear")
    return 0


if __name__ == "__main__":
    sys.exit(main())

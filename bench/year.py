"""Benchmark: a full year at 15-minute MTUs on the default scenario (not a timed test).

Prints wall time, time inside solvers (HiGHS), peak memory and the wall/solver ratio. The
target is a year with 1,000 prosumers in <= 60 s on a 2-core machine, without the planner (which
is timed per day separately with --planner-days; bench/planner.py sets it against the Pyomo
statement it replaced).

    python bench/year.py [--prosumers 1000] [--days 365] [--repeats 3] [--planner-days 7]
                         [--foundation] [--lem]

`--lem` adds the local electricity market as the `lem` scenario sets it (issue 21 asks for a
year with it within 1.3x of one without), home batteries answering it included.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout's code

from environment.solver import CLOCK  # noqa: E402
from experiments.run import run_scenario  # noqa: E402

# the fleet the benchmark has measured since 2026-11 (the default scenario's heat-pump share
# rose to 0.6 on 2026-12-03): side-by-side runs with older commits measure the same work
FLEET = {"prosumers.0.heat_pump.share": 0.45}
FOUNDATION = {"markets.lfm.enabled": False, "markets.intraday.enabled": False,
              "markets.platform.enabled": False, "tso.der_balancing": False}
# experiments/scenarios/lem.yaml's market (its calendar and PV share are the scenario's own)
LEM = {"markets.lem.enabled": True, "markets.lem.clearing": "double_auction",
       "markets.lem.scope": "feeder", "markets.lem.fee_eur_mwh": 5.0,
       "markets.lem.fee_side": "each", "markets.lem.local_tariff_eur_mwh": 30.0,
       "markets.lem.participation": 0.8, "markets.lem.red": "settle",
       "markets.lem.hems_battery": True}


def one(prosumers: int, days: int, planner: bool, foundation: bool = False,
        lem: bool = False) -> dict:
    CLOCK.seconds, CLOCK.calls = 0.0, 0
    t0 = time.perf_counter()
    extra = {**(FOUNDATION if foundation else {}), **(LEM if lem else {})}
    r = run_scenario(None, days=days, overrides={"prosumers.0.count": prosumers,
                                                 "calendar.start": "2016-01-01", **FLEET,
                                                 **extra},
                     planner=planner, write=False, figures=False, progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "solver_s": CLOCK.seconds, "solver_calls": CLOCK.calls,
            "planner_s": r.summary["timing"]["planner_s"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prosumers", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--planner-days", type=int, default=7,
                    help="also time the planner on this many days (0: skip)")
    ap.add_argument("--foundation", action="store_true",
                    help="only the foundation chain: DA auction, DSO validation, real time, "
                         "balancing by producers (no LFM, intraday, platform or DER balancing)")
    ap.add_argument("--lem", action="store_true",
                    help="with the local electricity market of the lem scenario (batteries "
                         "answering it included)")
    a = ap.parse_args()
    one(a.prosumers, 1, False)  # warm the simbench cache and imports
    runs = [one(a.prosumers, a.days, False, a.foundation, a.lem) for _ in range(a.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"year benchmark: {a.days} days x {1440 // 15} MTUs, {a.prosumers} prosumers, "
          f"{'foundation chain' if a.foundation else 'all markets'}"
          f"{' with the LEM' if a.lem else ''}, median of {a.repeats}")
    print(f"  wall            {med['wall_s']:8.2f} s   (runs: "
          + ", ".join(f"{r['wall_s']:.2f}" for r in runs) + ")")
    print(f"  inside solvers  {med['solver_s']:8.2f} s   ({int(med['solver_calls'])} LPs)")
    print(f"  wall / solver   {med['wall_s'] / max(med['solver_s'], 1e-9):8.2f}")
    print(f"  peak memory     {rss:8.0f} MB max RSS of the process")
    print(f"  target 60 s     {'met' if med['wall_s'] <= 60 else 'MISSED'}")
    if a.planner_days:
        p = one(a.prosumers, a.planner_days, True)
        print(f"  planner         {p['planner_s'] / a.planner_days:8.2f} s per day "
              f"({a.planner_days} days, building its inputs and the LP, HiGHS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: one day (96 MTUs) of real-time balancing under each TSO-DSO coordination scheme
on a ~100-bus simbench feeder (the loaded case of bench/lfm.py) with 10 producers and about
2,000 DER bids (not a timed test). Prints the median wall time per scheme over repeats.

    python -m bench.tso_dso [--repeats 5] [--offers 2000] [--code 1-LV-semiurb5--2-sw]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from bench.lfm import case
from environment.markets.balancing import BalancingOffers
from environment.markets.tso_dso import TSO_DSO, tso_first
from environment.markets.tso_dso_problem import BalancingProblem, delivered
from environment.solver import CLOCK


def problem(code: str, n_offers: int, seed: int = 2) -> tuple[object, BalancingProblem]:
    grid, limits, der = case(code, n_offers)
    rng = np.random.default_rng(seed)
    t_n, p_n = limits.base_p.shape[0], 10
    up = rng.uniform(40, 150, p_n)
    producers = BalancingOffers(np.arange(p_n), up, rng.uniform(0.02, 0.1, (p_n, t_n)),
                                up - rng.uniform(30, 60, p_n), rng.uniform(0.02, 0.1, (p_n, t_n)))
    need = rng.normal(0, 0.4, t_n)
    iface = rng.normal(0, 0.1, t_n)
    return grid, BalancingProblem(need, producers, der, limits, 0.25, 1000.0, -300.0,
                                  interface_mw=iface)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--offers", type=int, default=2000)
    ap.add_argument("--code", default="1-LV-semiurb5--2-sw")
    a = ap.parse_args()
    grid, p = problem(a.code, a.offers)
    print(f"TSO-DSO balancing: {a.code} ({grid.n_bus} buses, {grid.n_locations} locations), "
          f"96 MTUs, 10 producers, {a.offers} DER bids, median of {a.repeats}")
    for name, fn in [*TSO_DSO.items(), ("tso_first", tso_first)]:
        walls, solver = [], []
        for _ in range(a.repeats):
            s0 = CLOCK.seconds
            t0 = time.perf_counter()
            res = fn(p)
            walls.append(time.perf_counter() - t0)
            solver.append(CLOCK.seconds - s0)
        gap = np.abs(delivered(p, res) - p.need_mw).max()
        print(f"  {name:17s} wall {statistics.median(walls) * 1e3:7.1f} ms  HiGHS "
              f"{statistics.median(solver) * 1e3:7.1f} ms  cost {res.procurement_cost_eur:10.2f}"
              f"  unresolved {res.unresolved_mw:.4f}  counteracting "
              f"{res.counteracting_mw.sum():.3f}  balance gap {gap:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: one day's explicit LFM clearing (96 MTUs) on a ~100-bus simbench feeder with
about 1,000 location-tagged offers (not a timed test). Prints the median wall time over
repeats, the time inside HiGHS, the number of grid constraints generated and of rounds.

    python bench/lfm.py [--repeats 7] [--offers 1000] [--code 1-LV-semiurb5--2-sw]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from environment.grid.from_pandapower import load_simbench_grid
from environment.grid.lindistflow import LinDistFlow
from environment.markets.lfm import FlexOffers, GridLimits, clear_lfm, participation
from environment.solver import CLOCK


def case(code: str, n_offers: int, seed: int = 1):
    """A loaded feeder: random household loads scaled so the evening MTUs overload the
    transformer and some feeders by up to ~30 %, and offers spread over locations and MTUs."""
    grid = load_simbench_grid(code)
    flow = LinDistFlow(grid)
    rng = np.random.default_rng(seed)
    t_n, b_n, k_n = 96, grid.n_bus, grid.n_locations
    shape = 0.5 + 0.5 * np.sin(np.linspace(-np.pi / 2, 3 * np.pi / 2, t_n)) ** 2
    p = np.outer(shape, rng.uniform(0.002, 0.01, b_n))
    p[:, 0] = 0
    res = flow.solve(p, 0.25 * p)
    p *= 1.3 / (res.loading.max() or 1)
    res = flow.solve(p, 0.25 * p)
    weights = np.repeat(rng.uniform(0, 1, (1, b_n, 2)), t_n, axis=0)
    f_mw, w_mw = participation(grid, weights, flow)
    limits = GridLimits(res.p_mw, res.q_mvar, res.v_pu ** 2, grid.s_max_mva, grid.v_min_pu,
                        grid.v_max_pu, f_mw, w_mw, grid.branch_location, grid.bus_location)
    offers = FlexOffers(np.arange(n_offers), rng.integers(0, k_n, n_offers),
                        rng.integers(0, t_n, n_offers), rng.choice([1, 1, 1, -1], n_offers),
                        rng.uniform(0.001, 0.05, n_offers), rng.uniform(10, 200, n_offers))
    return grid, limits, offers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--offers", type=int, default=1000)
    ap.add_argument("--code", default="1-LV-semiurb5--2-sw")
    a = ap.parse_args()
    grid, limits, offers = case(a.code, a.offers)
    walls, solver = [], []
    for _ in range(a.repeats):
        s0 = CLOCK.seconds
        t0 = time.perf_counter()
        res = clear_lfm(offers, limits, 0.25, "pay_as_clear")
        walls.append(time.perf_counter() - t0)
        solver.append(CLOCK.seconds - s0)
    print(f"LFM clearing: {a.code} ({grid.n_bus} buses, {grid.n_locations} locations), "
          f"96 MTUs, {a.offers} offers, median of {a.repeats}")
    print(f"  wall            {statistics.median(walls) * 1e3:8.1f} ms")
    print(f"  inside HiGHS    {statistics.median(solver) * 1e3:8.1f} ms")
    print(f"  constraints     {res.constraints:8d}   rounds {res.rounds}")
    print(f"  accepted        {(res.accepted_mw > 0).sum():8d} offers, unresolved "
          f"{res.unresolved_mw:.4f} MW-MTU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

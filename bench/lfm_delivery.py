"""Benchmark: how much of what the aggregator sold the DSO it missed (issue 15, item 5).

Runs the default scenario (a January start) with 1,000 households for 14 days under each
coupling scheme and prints, per scheme, the MWh the DSO bought (activations, `ctx.dso_sold`),
the MWh the re-plans missed of them at the MTU-locations bought (the non-delivery penalty's
basis) and every MWh missed (of DSO, platform and TSO commitments and of the grid headroom
bounds of the rebound), each as a share of what the DSO bought. Not a timed test.

    python bench/lfm_delivery.py [--days 14] [--prosumers 1000] [--schemes no_coupling ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout's code

from environment import settlement  # noqa: E402
from experiments.run import run_scenario  # noqa: E402

SCHEMES = ("no_coupling", "conditional", "sequential")


def _location_missed(agg, k: int) -> np.ndarray:
    """MW missed at location k (a replaced target's miss too, where the code keeps it)."""
    forgone = getattr(agg, "forgone", {})
    return agg.plans[k]["missed"] + forgone.get(k, 0.0)


def measure(scheme: str, days: int, prosumers: int, start: str) -> dict:
    tally = {"dso_sold_mwh": 0.0, "missed_of_dso_mwh": 0.0, "missed_all_mwh": 0.0}
    settle = settlement.settle_non_delivery

    def spy(model, ctx):
        dt = ctx.dt_h
        for agg in model.aggregators:
            sold = ctx.dso_sold.get(agg.unique_id)
            for k in agg.plans:
                miss = _location_missed(agg, k)
                tally["missed_all_mwh"] += float(miss.sum()) * dt
                if sold is not None:
                    tally["missed_of_dso_mwh"] += float(
                        np.minimum(miss, sold[:, k].sum(1)).sum()) * dt
            if sold is not None:
                tally["dso_sold_mwh"] += float(sold.sum()) * dt
        return settle(model, ctx)

    settlement.settle_non_delivery = spy
    try:
        t0 = time.perf_counter()
        run = run_scenario(None, days=days, overrides={
            "prosumers.0.count": prosumers, "calendar.start": start,
            "markets.coupling": scheme}, planner=False, write=False, figures=False)
        wall = time.perf_counter() - t0
    finally:
        settlement.settle_non_delivery = settle
    flex = run.tables.get("flex")
    plat = 0.0 if flex is None else float(
        (flex["platform_up_mw"] + flex["platform_down_mw"]).sum()) * 0.25
    sold = tally["dso_sold_mwh"]
    return {"scheme": scheme, **tally, "platform_mwh": plat,
            "missed_of_dso_pct": 100 * tally["missed_of_dso_mwh"] / sold if sold else 0.0,
            "missed_all_pct": 100 * tally["missed_all_mwh"] / sold if sold else 0.0,
            "dso_cost_eur": run.summary["flexibility"]["dso_cost"]["total_eur"],
            "system_cost_eur": run.summary["system_cost_eur"], "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--prosumers", type=int, default=1000)
    ap.add_argument("--start", default="2016-01-11")
    ap.add_argument("--schemes", nargs="*", default=list(SCHEMES))
    a = ap.parse_args()
    for scheme in a.schemes:
        r = measure(scheme, a.days, a.prosumers, a.start)
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

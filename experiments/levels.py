"""summary.json's `levels` block: the DSO's view of a grid watched by voltage level
(`grid.locations: levels`), so that a region's congestion reads per level (HV/MV substation,
MV lines, MV/LV transformers, LV lines) rather than as one count over all locations.

Flexibility is counted twice: where it sits (the location of its bus) and where it relieves.
LV flexibility bought for an overloaded transformer relieves the MV/LV level: a purchase at a
location relieves the locations on its buses' paths to the substation (itself included) that
were violated at that MTU (forecast or real time before the DSO acted), split evenly among
them; where none was, it is counted where it sits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.dso import Light
from environment.grid.levels import LEVELS, location_levels


def levels_summary(model, tables: dict[str, pd.DataFrame], dso_total_eur: float) -> dict:
    """Per level: its locations, YELLOW, RED and BLACK MTU-locations, the flexibility the DSO
    bought there (MWh, both directions, all rounds) and what it paid there (LFM and RED), and
    the same tagged at the level it relieved (`relieved_*`); `dso_cost_unlocated_eur` is the
    rest of the DSO's cost (availability payments, real-time DER activations), which is not
    tied to one location."""
    grid, dt = model.grid, model.calendar.mtu_hours
    levels = location_levels(grid)
    index = {n: k for k, n in enumerate(grid.locations)}
    lights = tables["grid"][["location", "light"]]
    shed = tables["grid"].groupby("location")["load_to_shed_mw"].sum() * dt
    relief = Relief(grid, tables["grid"], index)
    flex = tables.get("flex")
    bought = np.zeros(grid.n_locations)
    relieved_mwh = np.zeros(grid.n_locations)
    if flex is not None and not flex.empty:
        mwh = (flex["dso_up_mw"] + flex["dso_down_mw"]).to_numpy() * dt
        k = flex["location"].map(index).to_numpy()
        np.add.at(bought, k, mwh)
        relieved_mwh = relief.spread(flex["mtu"].to_numpy(), k, mwh)
    paid = model.dso.cost_by_location
    relieved_eur = sum((relief.spread(*p) for p in model.dso.payments),
                       np.zeros(grid.n_locations))
    out: dict = {}
    for level in LEVELS:
        ks = [k for k, lev in enumerate(levels) if lev == level]
        if not ks:
            continue
        light = lights.loc[lights["location"].isin([grid.locations[k] for k in ks]), "light"]
        out[level] = {
            "locations": len(ks),
            "yellow": int((light == Light.YELLOW).sum()),
            "red": int((light == Light.RED).sum()),
            "black": int((light == Light.BLACK).sum()),
            "lfm_mwh": float(bought[ks].sum()),
            "dso_cost_eur": float(sum(paid[k] for k in ks)),
            "relieved_lfm_mwh": float(relieved_mwh[ks].sum()),
            "relieved_dso_cost_eur": float(relieved_eur[ks].sum()),
            "load_to_shed_mwh": float(shed.reindex([grid.locations[k] for k in ks],
                                                   fill_value=0.0).sum()),
        }
    out["dso_cost_unlocated_eur"] = dso_total_eur - float(paid.sum())
    return out


class Relief:
    """Which locations a purchase at a location relieves: those on the paths from its buses
    to the substation that were violated at its MTU (over the run, for a payment without
    one), else itself."""

    def __init__(self, grid, grid_table: pd.DataFrame, index: dict[str, int]):
        k_n = grid.n_locations
        t = grid_table["mtu"].to_numpy()
        k = grid_table["location"].map(index).to_numpy()
        hit = (grid_table["forecast_violated"] | grid_table["real_violated_before_dso"]).to_numpy()
        self.violated = np.zeros((int(t.max()) + 2 if len(t) else 1, k_n), bool)
        self.violated[t, k] = hit
        self.violated[-1] = self.violated[:-1].any(0)   # MTU -1: any time in the run
        self.on_path = np.zeros((k_n, k_n), bool)      # [k, j]: j is on k's paths up
        parent, where = np.asarray(grid.parent_bus), np.asarray(grid.bus_location)
        for j in range(k_n):
            cur = np.flatnonzero(where == j)
            while len(cur):
                self.on_path[j, where[cur]] = True
                cur = np.unique(parent[cur])
                cur = cur[cur >= 0]

    def spread(self, mtu: np.ndarray, location: np.ndarray, amount: np.ndarray) -> np.ndarray:
        """(K,) `amount` per entry split evenly over the locations it relieved."""
        hit = self.on_path[location] & self.violated[mtu]
        none = ~hit.any(1)
        hit[none, location[none]] = True
        share = np.asarray(amount, dtype=float)[:, None] * hit / hit.sum(1, keepdims=True)
        return share.sum(0)

"""summary.json's `levels` block: the DSO's view of a grid watched by voltage level
(`grid.locations: levels`), so that a region's congestion reads per level (HV/MV substation,
MV lines, MV/LV transformers, LV lines) rather than as one count over all locations."""

from __future__ import annotations

import pandas as pd

from agents.dso import Light
from environment.grid.levels import LEVELS, location_levels


def levels_summary(model, tables: dict[str, pd.DataFrame], dso_total_eur: float) -> dict:
    """Per level: its locations, YELLOW, RED and BLACK MTU-locations, the flexibility the DSO
    bought there (MWh, both directions, all rounds) and what it paid there (LFM and RED);
    `dso_cost_unlocated_eur` is the rest of the DSO's cost (availability payments, real-time
    DER activations), which is not tied to one location."""
    grid, dt = model.grid, model.calendar.mtu_hours
    level_of = dict(zip(grid.locations, location_levels(grid), strict=True))
    lights = tables["grid"][["location", "light"]]
    flex = tables.get("flex")
    paid = model.dso.cost_by_location
    out: dict = {}
    for level in LEVELS:
        names = [n for n, lev in level_of.items() if lev == level]
        if not names:
            continue
        light = lights.loc[lights["location"].isin(names), "light"]
        bought = 0.0
        if flex is not None and not flex.empty:
            rows = flex[flex["location"].isin(names)]
            bought = float((rows["dso_up_mw"] + rows["dso_down_mw"]).sum() * dt)
        out[level] = {
            "locations": len(names),
            "yellow": int((light == Light.YELLOW).sum()),
            "red": int((light == Light.RED).sum()),
            "black": int((light == Light.BLACK).sum()),
            "lfm_mwh": bought,
            "dso_cost_eur": float(sum(paid[grid.locations.index(n)] for n in names)),
        }
    out["dso_cost_unlocated_eur"] = dso_total_eur - float(paid.sum())
    return out

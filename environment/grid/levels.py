"""DSO locations by voltage level (`grid.locations: levels`).

By default a location is the substation or one whole feeder leaving it (`network._locations`):
on an MV+LV grid that is one location per MV feeder, its MV lines, MV/LV transformers and LV
networks together, so the DSO sees a dozen traffic lights for a hundred substations. By level,
each MV feeder's branches are split into three locations: its MV lines, its MV/LV
transformers and its LV lines, and the substation at the top stays one. A flexibility offer is
tagged with the location of its bus, so one in an LV network relieves the LV location and,
through the sensitivities, the transformers and MV lines above it.

Why per MV feeder and not per transformer: the DSO's work grows with its locations (the LFM's
effects are held per location over the span of its paths, `grid.location_effects`, and the
headroom shared among locations reads every bus for each); 112 transformers and their LV
networks on the 9,102-bus region would make 225 locations, the per-feeder split 30.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from environment.grid.network import TRAFO_LOCATION, Grid

LV_KV = 1.0
"""Buses below this nominal voltage are low voltage."""
LEVELS = ("HV/MV", "MV", "MV/LV", "LV")


def branch_levels(grid: Grid) -> np.ndarray:
    """Voltage level of each branch: a line's by its voltage, a transformer's by its sides."""
    to_kv = np.asarray(grid.vn_kv)[1:]
    from_kv = np.asarray(grid.vn_kv)[np.asarray(grid.branch_from)]
    lv_to, lv_from = to_kv < LV_KV, from_kv < LV_KV
    trafo = np.asarray(grid.branch_kind) == "trafo"
    return np.where(trafo, np.where(lv_to & ~lv_from, "MV/LV",
                                    np.where(lv_to, "LV", "HV/MV")),
                    np.where(lv_to, "LV", "MV")).astype(object)


def by_level(grid: Grid) -> Grid:
    """The grid with its feeders split by level: `F<k>-MV`, `F<k>-MVLV`, `F<k>-LV` (those
    with branches), the substation location kept; a bus belongs to the location of the branch
    that feeds it."""
    # a transformer between two MV voltages inside a feeder counts as its MV part
    level = np.where(branch_levels(grid) == "HV/MV", "MV", branch_levels(grid))
    feeder = np.asarray(grid.branch_location)
    names = [TRAFO_LOCATION]
    branch_location = np.zeros(grid.n_branch, dtype=np.int64)
    for k in range(1, grid.n_locations):
        for lev, tag in (("MV", "MV"), ("MV/LV", "MVLV"), ("LV", "LV")):
            sel = (feeder == k) & (level == lev)
            if sel.any():
                branch_location[sel] = len(names)
                names.append(f"{grid.locations[k]}-{tag}")
    bus_location = np.r_[0, branch_location]
    for a in (branch_location, bus_location):
        a.flags.writeable = False
    return dataclasses.replace(grid, locations=tuple(names), branch_location=branch_location,
                               bus_location=bus_location)


def location_levels(grid: Grid) -> list[str]:
    """The level of each location: that of most of its branches (the substation's: its
    transformer's)."""
    level = branch_levels(grid)
    loc = np.asarray(grid.branch_location)
    out = []
    for k in range(grid.n_locations):
        sel = loc == k
        trafo = sel & (np.asarray(grid.branch_kind) == "trafo")
        pick = level[trafo] if trafo.any() and k == 0 else level[sel]
        if len(pick) == 0:
            out.append("MV")
            continue
        values, counts = np.unique(pick.astype(str), return_counts=True)
        out.append(str(values[counts.argmax()]))
    return out

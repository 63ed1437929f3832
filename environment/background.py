"""The grid data's elements that are no household's, as fixed background in the grid's flows
(`grid.background: simbench`).

A simbench region carries far more than its households: commercial and agricultural loads
(G*, L*, BL profiles), workplace chargers (APLS_*), PV at buses without households, and at MV
loads, PV-battery parks, wind, biomass and hydro. Without them the DSO's grid carries the
households alone and is physically under-loaded. Each such element enters every power flow of
the run (the DSO's forecast and real-time assessment, the LFM's and balancing's grid checks,
the planner's grid rows) as simbench's profile times its rating, as simbench's own
time series do (`simbench.get_absolute_values`): a load p = `<profile>_pload` x p_mw and
q = `<profile>_qload` x q_mvar; an sgen injects its renewables or powerplants profile x p_mw;
a storage consumes its storage profile x p_mw (load convention: simbench's PV-battery parks
have p_mw < 0, so they inject); reactive power of sgens and storages stays at its q_mvar.

Which elements are a household's is `environment.inputs.household_devices`' rule: the H0
loads, and the PV, PV-battery systems, home chargers and heat pumps at a bus with a household
connection point (with `devices: drawn` the drawn fleet stands in for the latter). Everything
else is background.

The background is grid-only: no party buys or sells its energy in the simulated markets. Its
energy is the national system load's (`system_load`), which is why it needs a price-taking
region (`markets.dayahead.wholesale` national or exogenous): semi-urban commercial load and
generation of a few tens of MW are nothing against a national load of hundreds of TWh, so
leaving them to the national balance moves no price, while in a `closed` system the system
load is sized to the modelled households and the background's energy would be missing. It
has no forecast error: the DSO plans with the same standard profiles that real time follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agents.prosumer_devices import EV_PROFILES, HEAT_PUMP_PROFILES
from environment.calendar import Calendar

CONSTANT = ("constant", "")
"""The key of the constant profile (1.0) that holds the sgens' and storages' fixed q_mvar."""


def background_elements(net, grid) -> pd.DataFrame:
    """The in-service loads, sgens and storages that are no household's (module docstring),
    one row each: table, pandapower index and bus, the grid's bus (-1: not in the grid),
    p_mw and q_mvar as simbench states them, and the profile table and column that scale p."""
    loads = _live(net, "load")
    lp = loads.profile.astype(str)
    h0 = lp.str.startswith("H0")
    if not h0.any():    # as `household_connections`: then every load is a household's
        h0 = pd.Series(True, index=loads.index)
    homes = {grid.pp_bus_map.get(int(b), -1) for b in loads.bus[h0]} - {-1}

    def at_home(df: pd.DataFrame) -> pd.Series:
        return df.bus.map(lambda b: grid.pp_bus_map.get(int(b), -1) in homes).astype(bool)

    own = h0 | (at_home(loads) & (lp.str.startswith(EV_PROFILES)
                                  | lp.str.startswith(HEAT_PUMP_PROFILES)))
    sgens, storages = _live(net, "sgen"), _live(net, "storage")
    sp = sgens.profile.astype(str)
    renewables = set(net.profiles["renewables"].columns)
    rows = [
        _rows("load", loads, ~own, "load", lp + "_pload"),
        _rows("sgen", sgens, ~((sgens.type.astype(str) == "PV") & at_home(sgens)),
              sp.map(lambda p: "renewables" if p in renewables else "powerplants"), sp),
        _rows("storage", storages,
              ~((storages.type.astype(str) == "PV_Storage") & at_home(storages)), "storage",
              storages.profile.astype(str)),
    ]
    out = pd.concat(rows, ignore_index=True)
    out["grid_bus"] = [grid.pp_bus_map.get(int(b), -1) for b in out.bus]
    return out


def _live(net, table: str) -> pd.DataFrame:
    df = net[table] if table in net else pd.DataFrame()
    if df.empty:
        return pd.DataFrame(columns=["bus", "p_mw", "q_mvar", "profile", "type"])
    if "in_service" in df:
        df = df[df["in_service"].fillna(False).astype(bool)]
    return df.assign(type=df["type"] if "type" in df else "")


def _rows(table: str, df: pd.DataFrame, keep: pd.Series, profiles, column) -> pd.DataFrame:
    """The kept rows of `df` with the profile table and column that scale their p."""
    out = pd.DataFrame({"table": table, "index": df.index.to_numpy(int), "bus": df.bus,
                        "p_mw": df.p_mw.astype(float), "q_mvar": df.q_mvar.astype(float),
                        "profiles": profiles, "column": column}, index=df.index)
    return out[keep.to_numpy(bool)].reset_index(drop=True)


@dataclass(frozen=True)
class Background:
    """The background per grid bus as profiles x coefficients: consumption (MW, + consumed)
    at bus b and profile row r is sum_k profile_k[r] coef_k[b]. `elements` is the table of
    `background_elements` it was built from."""

    p_profiles: np.ndarray      # (K, rows) p.u.
    p_coef: np.ndarray          # (K, B) MW per p.u., signed: + consumption
    q_profiles: np.ndarray
    q_coef: np.ndarray
    elements: pd.DataFrame

    @classmethod
    def of(cls, net, grid) -> Background:
        """From a simbench net and the `Grid` built from it."""
        el = background_elements(net, grid)
        el = el[el.grid_bus >= 0]
        sign = np.where(el.table == "sgen", -1.0, 1.0)
        p_keys = list(zip(el.profiles, el.column, strict=True))
        q_keys = [("load", c.removesuffix("_pload") + "_qload") if t == "load" else CONSTANT
                  for t, c in zip(el.table, el.column, strict=True)]
        p_prof, p_coef = _combine(net, p_keys, el.grid_bus, sign * el.p_mw, grid.n_bus)
        q_prof, q_coef = _combine(net, q_keys, el.grid_bus, sign * el.q_mvar, grid.n_bus)
        return cls(p_prof, p_coef, q_prof, q_coef, el.reset_index(drop=True))

    def day(self, calendar: Calendar, day: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, B) consumption and reactive consumption on delivery day `day`'s MTUs."""
        rows = calendar.profile_rows(day)
        return tuple(prof[:, rows].mean(axis=-1).T @ coef for prof, coef in (
            (self.p_profiles, self.p_coef), (self.q_profiles, self.q_coef)))

    def summary(self) -> dict:
        """Elements and their rated MW by kind: loads (consumption) and generation (sgens,
        storages injecting at their rated power)."""
        el = self.elements
        gen = el.table != "load"
        return {"elements": len(el), "load_mw": float(el.p_mw[~gen].sum()),
                "generation_mw": float(el.p_mw[gen].abs().sum())}


def _combine(net, keys, bus, coef, n_bus: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct profiles of `keys` ((table, column) each) and their coefficients per bus."""
    names = list(dict.fromkeys(keys))
    index = {k: i for i, k in enumerate(names)}
    n_rows = len(net.profiles["load"])
    prof = np.stack([np.ones(n_rows) if k == CONSTANT else
                     net.profiles[k[0]][k[1]].to_numpy(float) for k in names]) \
        if names else np.zeros((0, n_rows))
    out = np.zeros((len(names), n_bus))
    np.add.at(out, (np.array([index[k] for k in keys], int), np.asarray(bus, int)),
              np.asarray(coef, float))
    return prof, out

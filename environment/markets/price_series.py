"""An exogenous wholesale price series (`markets.dayahead.wholesale.kind: exogenous`): read on
the run's MTUs and checked when the scenario loads, before any simulation (a module of its own
so that the scenario schema can check it without importing the markets)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np


def exogenous_prices(scenario) -> np.ndarray:
    """The price series of an ``exogenous`` wholesale market on the run's MTUs (EUR/MWh); a
    `DataError` (a ScenarioError naming the file) if the file is missing, unreadable, holds
    a value that is not a number or does not cover the run."""
    w = scenario.markets.dayahead.wholesale
    spec = scenario.data[w.prices]
    cal = scenario.calendar
    return _window(w.prices, spec.file, spec.column, spec.unit, spec.timestamp, cal.start,
                   cal.days, cal.mtu_minutes)


@lru_cache(maxsize=16)
def _window(name, file, column, unit, timestamp, start, days, mtu_minutes) -> np.ndarray:
    from environment.series import read_series

    series = read_series(name, file, column, unit, timestamp)
    n = days * 1440 // mtu_minutes
    out = series.window(dt.datetime.combine(start, dt.time()), n, mtu_minutes)
    out.flags.writeable = False
    return out


def scenario_problems(s) -> list[str]:
    """What is wrong with a scenario's wholesale market, found before any simulation: the
    price series named, in a price unit, readable and covering the run; no planner (it prices
    energy at the producers' marginal costs, and an exogenous series has none)."""
    from environment.series import UNITS, DataError, unit_kind

    w = s.markets.dayahead.wholesale
    if w.kind != "exogenous":
        return []
    where = f"markets.dayahead.wholesale.prices = {w.prices!r}"
    spec = s.data.get(w.prices)
    if spec is None:
        return [f"{where}: not a series of `data`; known: {sorted(s.data)}"]
    if spec.unit in UNITS and unit_kind(spec.unit) != "price":
        return [f"{where}: series in {spec.unit}, expected EUR/MWh or EUR/kWh"]
    out = []
    if s.planner.enabled:
        out.append(f"planner.enabled = True with {where}: the planner dispatches producers at "
                   "their marginal costs and an exogenous price series has none; set "
                   "planner.enabled false")
    try:
        exogenous_prices(s)
    except DataError as exc:
        out.append(str(exc))
    return out

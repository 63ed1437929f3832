"""What a run reads before its first day: its distribution grid, and the names its scenario
refers to (strategies, clearing mechanisms, schemes, profiles), checked to exist."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pandas as pd

from agents.prosumer_devices import EV_PROFILES, HEAT_PUMP_PROFILES
from agents.strategies import known, make_strategy
from environment.background import Background
from environment.coupling import COUPLING
from environment.datacache import cached
from environment.grid.from_pandapower import load_simbench_grid, simbench_net
from environment.grid.levels import by_level
from environment.grid.network import Grid
from environment.markets.registry import CLEARING
from environment.markets.tso_dso import TSO_DSO
from environment.profiles import simbench_profiles
from environment.scenario import Scenario, ScenarioError


def validate_references(s: Scenario, grid_buses: set[str] | None = None) -> None:
    """Names a scenario refers to (strategies, clearing mechanisms, profiles) must exist."""
    problems = []
    for role, items in (("brps", s.brps), ("aggregators", s.aggregators),
                        ("producers", s.producers)):
        valid = known(role.rstrip("s"))
        for i, item in enumerate(items):
            if item.strategy not in valid:
                problems.append(f"{role}[{i}].strategy = {item.strategy!r}: unknown strategy; "
                                f"known: {valid}")
                continue
            try:
                make_strategy(role.rstrip("s"), item.strategy, **item.strategy_params)
            except ValueError as exc:
                problems.append(f"{role}[{i}].strategy_params = {dict(item.strategy_params)}: "
                                f"{exc}")
    lem = s.markets.lem
    if lem.strategy not in known("hems"):
        problems.append(f"markets.lem.strategy = {lem.strategy!r}: unknown strategy; known: "
                        f"{known('hems')}")
    else:
        try:
            make_strategy("hems", lem.strategy, **lem.strategy_params)
        except ValueError as exc:
            problems.append(f"markets.lem.strategy_params = {dict(lem.strategy_params)}: {exc}")
    for path, name in (("markets.dayahead.clearing", s.markets.dayahead.clearing),
                       ("markets.intraday.clearing", s.markets.intraday.clearing)):
        if name not in CLEARING:
            problems.append(f"{path} = {name!r}: unknown mechanism; known: {sorted(CLEARING)}")
    if s.markets.tso_dso_scheme not in TSO_DSO:
        problems.append(f"markets.tso_dso_scheme = {s.markets.tso_dso_scheme!r}: unknown "
                        f"scheme; known: {sorted(TSO_DSO)}")
    if s.markets.coupling not in COUPLING:
        problems.append(f"markets.coupling = {s.markets.coupling!r}: unknown scheme; known: "
                        f"{sorted(COUPLING)}")
    available = simbench_profiles()

    def check(path: str, name: str | None) -> None:
        if name is not None and name not in available and name not in s.data:
            problems.append(f"{path} = {name!r}: not a simbench profile")

    for i, p in enumerate(s.producers):
        check(f"producers[{i}].profile", p.profile)
    check("system_load.profile", s.system_load.profile)
    for gi, g in enumerate(s.prosumers):
        for key, names in (("load_profiles", g.load_profiles), ("pv.profiles", g.pv.profiles),
                           ("ev.profiles", g.ev.profiles),
                           ("heat_pump.profiles", g.heat_pump.profiles)):
            if not names:
                problems.append(f"prosumers[{gi}].{key} = []: needs at least one profile")
            for j, n in enumerate(names):
                check(f"prosumers[{gi}].{key}[{j}]", n)
        if grid_buses is not None:
            for j, b in enumerate(g.buses or []):
                if b not in grid_buses:
                    problems.append(f"prosumers[{gi}].buses[{j}] = {b!r}: not a bus of grid "
                                    f"{s.grid.simbench_code}")
    if problems:
        raise ScenarioError(f"invalid scenario {s.name}:\n  " + "\n  ".join(problems))


DEVICE_COLUMNS = ["kind", "bus", "p_mw", "e_mwh", "profile"]


def household_devices(net) -> pd.DataFrame:
    """simbench's household devices, one row per in-service element (`DEVICE_COLUMNS`: kind,
    pandapower bus, rated MW, battery MWh, profile), for `devices: simbench`.

    PV: sgens of type PV (p_mw = kWp). PV-battery systems: storages of type PV_Storage, at
    buses without a PV sgen, whose profile Storage_PV<k>_<load> is PV<k>'s output shifted by
    a battery (never charging from the grid, peak 0.71-1.0 of PV<k>'s, 95-100 % of its yearly
    energy): a PV array of |p_mw| on PV<k> plus a battery of max_e_mwh at |p_mw| (2 h). EVs:
    loads on home-charging profiles (HLS_*, p_mw = the charger's rating); heat pumps: loads
    on Air_* and Soil_* profiles (p_mw = rated). Workplace charging (APLS_*) is no household's."""
    def live(table: str, column: str) -> tuple[pd.DataFrame, pd.Series]:
        df = net[table]
        if column not in df or "profile" not in df:
            df = pd.DataFrame(columns=["bus", "p_mw", "max_e_mwh", "profile", column])
        else:
            df = df[df["in_service"].fillna(False).astype(bool)] if "in_service" in df else df
        return df, df[column].astype(str)

    rows = []
    sgen, kind = live("sgen", "type")
    sgen = sgen[kind == "PV"]
    rows.append(pd.DataFrame({"kind": "pv", "bus": sgen.bus, "p_mw": sgen.p_mw, "e_mwh": 0.0,
                              "profile": sgen.profile.astype(str)}))
    st, kind = live("storage", "type")
    st = st[kind == "PV_Storage"]
    pv_of = st.profile.astype(str).str.extract(r"^Storage_(PV\d+)_", expand=False)
    if pv_of.isna().any():
        raise ValueError(f"PV_Storage profile {st.profile[pv_of.isna()].iloc[0]!r} names no "
                         "PV profile (Storage_PV<k>_<load>)")
    rows.append(pd.DataFrame({"kind": "pv", "bus": st.bus, "p_mw": st.p_mw.abs(),
                              "e_mwh": 0.0, "profile": pv_of}))
    rows.append(pd.DataFrame({"kind": "battery", "bus": st.bus, "p_mw": st.p_mw.abs(),
                              "e_mwh": st.max_e_mwh, "profile": ""}))
    load, profile = live("load", "profile")
    for kind_name, prefix in (("ev", EV_PROFILES), ("heat_pump", HEAT_PUMP_PROFILES)):
        el = load[profile.str.startswith(prefix)]
        rows.append(pd.DataFrame({"kind": kind_name, "bus": el.bus, "p_mw": el.p_mw,
                                  "e_mwh": 0.0, "profile": el.profile.astype(str)}))
    out = pd.concat(rows, ignore_index=True)[DEVICE_COLUMNS]
    return out.astype({"bus": int, "p_mw": float, "e_mwh": float, "profile": str})


def _grid_and_households(code: str):
    """Picklable: the grid's fields (mapping proxies as dicts), its loads (households and
    others) and its household devices (`household_devices`)."""
    grid = load_simbench_grid(code)
    fields = {f.name: getattr(grid, f.name) for f in dataclasses.fields(grid)}
    fields = {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in fields.items()}
    net = simbench_net(code)
    return fields, net.load[["bus", "p_mw", "profile"]].copy(), household_devices(net)


def load_grid(s: Scenario):
    """The scenario's grid (cached between runs), its loads and its household devices."""
    code = s.grid.simbench_code
    try:
        fields, loads, devices = cached(f"grid-{code}", lambda: _grid_and_households(code))
        mapped = {k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in fields.items()}
        grid = Grid(**mapped)
        return (by_level(grid) if s.grid.locations == "levels" else grid), loads, devices
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise ScenarioError(f"invalid scenario {s.name}:\n  grid.simbench_code = "
                            f"{s.grid.simbench_code!r}: {exc}") from None


def load_background(s: Scenario, points: int | None = None) -> Background:
    """The grid's background elements (`grid.background: simbench`, cached between runs);
    refused on a grid that has none, where the setting could not act, and (given the grid's
    number of household connection points, `points`) where the prosumers are fewer: the
    background leaves every H0 load and home device to them, so the households they do not
    model would be in no flow."""
    code = s.grid.simbench_code
    members = sum(g.count for g in s.prosumers)
    if points is not None and members < points:
        counts = " + ".join(f"prosumers[{i}].count = {g.count}"
                            for i, g in enumerate(s.prosumers)) or "prosumers = []"
        raise ScenarioError(f"invalid scenario {s.name}:\n  {counts}: under grid.background "
                            f"'simbench' the prosumers stand for every household connection "
                            f"point of grid {code} ({points}), which the background leaves "
                            f"out; with {members} the loads and devices of {points - members} "
                            f"households would be in no flow (model all {points}, or set "
                            "grid.background 'none')")
    out = cached(f"background-{code}",
                 lambda: Background.of(simbench_net(code), load_simbench_grid(code)))
    if out.elements.empty:
        raise ScenarioError(f"invalid scenario {s.name}:\n  grid.background = 'simbench': "
                            f"the grid {code} has no load, sgen or storage outside its "
                            "households, so there is no background to add")
    return out

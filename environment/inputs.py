"""What a run reads before its first day: its distribution grid, and the names its scenario
refers to (strategies, clearing mechanisms, schemes, profiles), checked to exist."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from agents.strategies import known, make_strategy
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


def _grid_and_households(code: str):
    """Picklable: the grid's fields (mapping proxies as dicts) and the household loads."""
    grid = load_simbench_grid(code)
    fields = {f.name: getattr(grid, f.name) for f in dataclasses.fields(grid)}
    fields = {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in fields.items()}
    return fields, simbench_net(code).load[["bus", "p_mw", "profile"]].copy()


def load_grid(s: Scenario):
    """The scenario's grid (cached between runs) and its household loads."""
    code = s.grid.simbench_code
    try:
        fields, loads = cached(f"grid-{code}", lambda: _grid_and_households(code))
        mapped = {k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in fields.items()}
        grid = Grid(**mapped)
        return (by_level(grid) if s.grid.locations == "levels" else grid), loads
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise ScenarioError(f"invalid scenario {s.name}:\n  grid.simbench_code = "
                            f"{s.grid.simbench_code!r}: {exc}") from None

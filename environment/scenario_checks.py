"""Checks of a scenario that look at several fields at once (called by the schema's validator,
environment/scenario.py): agent names are ledger accounts and must be unique across roles,
values that validate one by one must not contradict each other economically, and the user's
data series must exist and fit the fields that name them. Each returns one line per problem,
naming the field and the value."""

from __future__ import annotations

import re

from environment.series import UNITS, check_spec, unit_kind

LOAD_UNITS = ("power", "energy", "share")
RESERVED_ACCOUNTS = frozenset({"external", "da_exchange", "id_exchange", "flex_platform",
                               "lfm_operator", "lem_operator", "settlement_entity",
                               "system_consumers", "dso",
                               "tso"})
"""Ledger accounts the model opens itself (tests/test_scenario.py checks the list against a
built model); an agent of the scenario cannot take these names."""


def name_problems(s) -> list[str]:
    """Every agent name is a ledger account: no name twice, across all roles, and none
    of the accounts the model opens itself."""
    problems = []
    owner: dict[str, str] = {}
    named = [(f"{field}[{i}].name", item.name)
             for field, items in (("brps", s.brps), ("aggregators", s.aggregators),
                                  ("producers", s.producers))
             for i, item in enumerate(items)]
    named.append(("system_load.brp", s.system_load.brp))
    for where, name in named:
        if name in RESERVED_ACCOUNTS or re.fullmatch(r"prosumer_\d+", name):
            problems.append(f"{where} = {name!r}: a name the model uses itself "
                            f"({', '.join(sorted(RESERVED_ACCOUNTS))}, prosumer_<n>)")
        elif name in owner:
            problems.append(f"{where} = {name!r}: also the name of {owner[name]}; every "
                            "agent needs a name of its own")
        owner.setdefault(name, where)
    groups: dict[str, str] = {}
    for i, g in enumerate(s.prosumers):
        if g.name in groups:
            problems.append(f"prosumers[{i}].name = {g.name!r}: duplicate name")
        groups.setdefault(g.name, f"prosumers[{i}]")
        if g.prequalified:
            for name, where in owner.items():
                if re.fullmatch(re.escape(g.name) + r"_\d+", name):
                    problems.append(f"{where} = {name!r}: the name of a prequalified "
                                    f"prosumer of group {g.name!r} ({g.name}_<n>)")
    return problems

def economic_problems(s) -> list[str]:
    """Values that validate one by one but contradict each other."""
    problems = []
    da = s.markets.dayahead
    if s.value_of_load_eur_mwh > da.price_cap:
        problems.append(f"value_of_load_eur_mwh = {s.value_of_load_eur_mwh:g}: above "
                        f"markets.dayahead.price_cap = {da.price_cap:g}; demand bids at the "
                        "cap, so consumers would be cut off at prices below their value "
                        "(set them equal, or raise the cap)")
    for i, p in enumerate(s.producers):
        if not da.price_floor <= p.marginal_cost_eur_mwh <= da.price_cap:
            problems.append(f"producers[{i}].marginal_cost_eur_mwh = "
                            f"{p.marginal_cost_eur_mwh:g}: outside the day-ahead price "
                            f"range [{da.price_floor:g}, {da.price_cap:g}]; its offer would "
                            "be clipped to the range")
    for i, b in enumerate(s.brps):
        if b.energy_component_eur_mwh > b.retail_price_eur_mwh:
            problems.append(f"brps[{i}].energy_component_eur_mwh = "
                            f"{b.energy_component_eur_mwh:g}: above its retail price "
                            f"{b.retail_price_eur_mwh:g}, of which it is a part")
    cap = s.markets.lfm.price_cap
    if cap is not None and cap > s.markets.lfm.unresolved_cost_eur_mwh:
        problems.append(f"markets.lfm.price_cap = {cap:g}: above "
                        f"markets.lfm.unresolved_cost_eur_mwh = "
                        f"{s.markets.lfm.unresolved_cost_eur_mwh:g}; the DSO would pay "
                        "more for flexibility than a violation left unresolved costs it")
    lem, tariff = s.markets.lem, s.dso.network_tariff_eur_mwh
    if lem.local_tariff_eur_mwh > tariff:
        problems.append(f"markets.lem.local_tariff_eur_mwh = {lem.local_tariff_eur_mwh:g}: "
                        f"above dso.network_tariff_eur_mwh = {tariff:g}; the local tariff "
                        "is the reduced one for energy from peers")
    return problems

DRAWN_ONLY = {"pv": ("share", "kwp_mean", "kwp_sd", "profiles"),
              "battery": ("share", "capacity_kwh_mean", "capacity_kwh_sd", "duration_h"),
              "ev": ("share", "profiles", "charger_kw"),
              "heat_pump": ("share", "kw_mean", "kw_sd", "profiles")}
"""Device settings that only drawn devices read: with `devices: simbench` the grid data gives
what they would (the others, e.g. battery efficiency, act on simbench's devices too), but for
the sizes and profiles of a kind that `rollout` adds (its share is `rollout.<kind>`)."""


def device_problems(s) -> list[str]:
    """`devices: simbench` needs one member per connection point, and the device settings it
    does not read left at the schema's defaults (a scenario states them or inherits them, so
    only a changed value says a user meant it to act); `rollout` adds to simbench's devices
    and needs them."""
    problems = []
    for gi, g in enumerate(s.prosumers):
        rollout = {k: v for k, v in g.rollout.model_dump().items() if v > 0}
        if g.devices != "simbench":
            problems += [f"prosumers[{gi}].rollout.{k} = {v!r}: adds devices to households "
                         "without one in the grid data, so it needs devices 'simbench' (with "
                         f"{g.devices!r} {k}.share draws every household's)"
                         for k, v in rollout.items()]
            continue
        if g.connections != "each":
            problems.append(f"prosumers[{gi}].devices = 'simbench': takes the devices at each "
                            "household connection point, so it needs connections 'each', "
                            f"not {g.connections!r}")
        for kind, keys in DRAWN_ONLY.items():
            mine = getattr(g, kind)
            default = type(mine)()
            reads = keys[1:] if kind in rollout else ()
            changed = [k for k in keys
                       if k not in reads and getattr(mine, k) != getattr(default, k)]
            problems += [f"prosumers[{gi}].{kind}.{k} = {getattr(mine, k)!r}: cannot act "
                         "with devices 'simbench' (the grid data gives each household's "
                         f"{kind}; a rollout beyond it is rollout.{kind}, sized by "
                         f"{', '.join(keys[1:])}); only devices 'drawn' reads it"
                         for k in changed]
    return problems


def background_problems(s) -> list[str]:
    """`grid.background: simbench` leaves the background's energy to the national load
    (`environment.background`), which only a price-taking region has: in a `closed` system the
    system load is sized to the modelled households and that energy would vanish."""
    kind = s.markets.dayahead.wholesale.kind
    if s.grid.background == "simbench" and kind == "closed":
        return ["grid.background = 'simbench': its energy is the national load's, which needs "
                "a price-taking region (markets.dayahead.wholesale.kind national or "
                "exogenous), not 'closed', where the system load is sized to the households"]
    return []


def data_problems(s) -> list[str]:
    """The `data` entries exist and fit the fields that name them."""
    problems = []
    for name, spec in s.data.items():
        problems += check_spec(name, spec.file, spec.unit)
    uses = [("system_load.profile", s.system_load.profile)]
    uses += [(f"producers[{i}].profile", p.profile) for i, p in enumerate(s.producers)
             if p.profile]
    for gi, g in enumerate(s.prosumers):
        for key, names in (("load_profiles", g.load_profiles),
                           ("pv.profiles", g.pv.profiles), ("ev.profiles", g.ev.profiles),
                           ("heat_pump.profiles", g.heat_pump.profiles)):
            uses += [(f"prosumers[{gi}].{key}[{j}]", n) for j, n in enumerate(names)]
    for where, name in uses:
        spec = s.data.get(name)
        if spec is not None and spec.unit in UNITS \
                and unit_kind(spec.unit) not in LOAD_UNITS:
            problems.append(f"{where} = {name!r}: series in {spec.unit}, expected a power, "
                            "energy or p.u. series")
    sl = s.system_load
    if sl.annual_mwh is None:
        spec = s.data.get(sl.profile)
        if spec is None or (spec.unit in UNITS and unit_kind(spec.unit) == "share"):
            problems.append(f"system_load.annual_mwh = None: takes the profile as it is, "
                            f"so system_load.profile = {sl.profile!r} must be a series of "
                            "`data` in a power or energy unit")
    return problems

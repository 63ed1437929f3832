"""The checks of a transmission scenario's zones, interconnectors and balancing section: each
problem is one line naming the field path and the value (TxScenario gathers them into one
ScenarioError)."""

from __future__ import annotations


def zone_problems(s) -> list[str]:
    from environment.markets.registry import SHARING

    problems: list[str] = []
    zones: dict[str, int] = {}
    accounts = {"exchange", "grid_operator", "external"} | {p.name for p in s.producers} \
        | {ld.name for ld in s.loads}
    for i, z in enumerate(s.zones):
        if z.name in zones:
            problems.append(f"zones[{i}].name = {z.name!r}: duplicate zone")
        zones[z.name] = i
        if z.tso in accounts:
            problems.append(f"zones[{i}].tso = {z.tso!r}: already the name of a producer, a "
                            "load or a market account")
    if not s.zones:
        problems.append(f"interconnectors = <{len(s.interconnectors)} interconnectors>: no "
                        "`zones` to connect (declare the zones and each node's zone)")
        return problems
    node_zone = {}
    for i, n in enumerate(s.nodes):
        if n.zone is None:
            problems.append(f"nodes[{i}].zone = None: every node needs a zone when the scenario "
                            f"declares zones (known: {sorted(zones)})")
        elif n.zone not in zones:
            problems.append(f"nodes[{i}].zone = {n.zone!r}: unknown zone (known: "
                            f"{sorted(zones)})")
        node_zone[n.name] = n.zone
    for name in sorted(set(zones) - set(node_zone.values())):
        problems.append(f"zones[{zones[name]}].name = {name!r}: no node lies in it")
    for i, ln in enumerate(s.lines):
        a, b = node_zone.get(ln.from_), node_zone.get(ln.to)
        if a is not None and b is not None and a != b:
            problems.append(f"lines[{i}].to = {ln.to!r}: in zone {b!r}, `from` in {a!r}; a line "
                            "between zones is an interconnector")
    seen = set()
    for i, ic in enumerate(s.interconnectors):
        for field, value in (("from", ic.from_), ("to", ic.to)):
            if value not in zones:
                problems.append(f"interconnectors[{i}].{field} = {value!r}: unknown zone "
                                f"(known: {sorted(zones)})")
        if ic.from_ == ic.to:
            problems.append(f"interconnectors[{i}].to = {ic.to!r}: same zone as `from`")
        for field, value in (("limit_mw", ic.limit_mw), ("reverse_limit_mw",
                                                          ic.reverse_limit_mw)):
            if value is not None and value < 0:
                problems.append(f"interconnectors[{i}].{field} = {value:g}: negative; 0 closes "
                                "that direction")
        if ic.label in seen:
            problems.append(f"interconnectors[{i}].name = {ic.label!r}: duplicate name")
        seen.add(ic.label)
    if s.balancing.sharing not in SHARING:
        problems.append(f"balancing.sharing = {s.balancing.sharing!r}: unknown option; known: "
                        f"{sorted(SHARING)}")
    if not problems:
        problems += _adequacy(s, node_zone)
    return problems


def _adequacy(s, node_zone: dict) -> list[str]:
    """A zone whose peak load exceeds its own capacity plus what its interconnectors can bring
    in cannot clear the coupled day-ahead market."""
    out = []
    load = s.load_mw()
    for z in s.zones:
        nodes = [i for i, n in enumerate(s.nodes) if n.zone == z.name]
        cap = sum(p.capacity_mw for p in s.producers if node_zone[p.node] == z.name)
        imports = sum((ic.limit_mw if ic.to == z.name else
                       (ic.limit_mw if ic.reverse_limit_mw is None else ic.reverse_limit_mw))
                      for ic in s.interconnectors if z.name in (ic.from_, ic.to))
        peak = float(load[:, nodes].sum(1).max())
        if peak > cap + imports + 1e-9:
            out.append(f"zones[{s.zones.index(z)}] = {z.name!r}: peak load {peak:g} MW over its "
                       f"capacity {cap:g} MW plus import limits {imports:g} MW; the coupled "
                       "day-ahead market cannot clear")
    return out


FOLLOW_THE_RUN = {
    "calendar.start": "the run's start date",
    "calendar.days": "the run's periods / 24",
    "seed": "the run's seed + 100 + the region's index",
    "planner.enabled": "off: the grid above has no costs in the region's model",
    "markets.dayahead.price_floor": "the coupled market's, day_ahead.price_floor",
    "markets.dayahead.price_cap": "the coupled market's, day_ahead.price_cap",
    "markets.dayahead.wholesale": "its zone's coupled market",
    "system_load": "none: the transmission loads are the rest of the system",
}
"""A region's settings the transmission run sets (environment/tiers/regions.py), with what
it sets them to; a closed region's `producers` too (`CLOSED_PRODUCERS`)."""
CLOSED_PRODUCERS = ("producers", "the transmission grid at the node alone: a closed region's "
                    "stand-in merit order leaves (under wholesale.kind national its own "
                    "plants stay)")


def leaf_paths(key: str, value) -> list[str]:
    """The dotted paths an override `key: value` sets (a mapping sets each of its leaves)."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaf_paths(f"{key}.{k}", v)]
    return [key]


def run_set(key: str, value, closed: bool) -> list[tuple[str, str]]:
    """The settings the run sets (path, what it sets) that an override `key: value` of a
    region would touch: a path at or below one of them, or a whole section holding one."""
    follow = dict(FOLLOW_THE_RUN)
    if closed:
        follow[CLOSED_PRODUCERS[0]] = CLOSED_PRODUCERS[1]
    out = {}
    for leaf in leaf_paths(key, value):
        for path, what in follow.items():
            if leaf == path or leaf.startswith(f"{path}.") or path.startswith(f"{leaf}."):
                out[path] = what
    return list(out.items())


def region_problems(s) -> list[str]:
    """Distribution regions under nodes: a zonal scenario of whole days from a midnight
    `start`, each region at a known node under a name of its own whose ledger prefix
    (`<name>/`) no transmission account starts with, each naming a distribution scenario
    and leaving what follows the transmission run to it."""
    from environment.errors import ScenarioError
    from environment.scenario_files import find_scenario, read_scenario_data, scenario_kind

    problems: list[str] = []
    if not s.zonal:
        problems.append(f"regions = <{len(s.regions)} regions>: regions hang under the nodes "
                        "of a zonal scenario; declare `zones`")
    if s.start is None or s.start.time() != s.start.time().min:
        problems.append(f"start = {s.start}: a scenario with regions needs a start at "
                        "midnight (the regions' first delivery day)")
    if s.periods % 24:
        problems.append(f"periods = {s.periods}: a scenario with regions runs whole days "
                        "(24 hourly periods each)")
    if s.episodes != 1:
        problems.append(f"episodes = {s.episodes}: a scenario with regions runs its days once")
    for i, p in enumerate(s.producers):
        if p.strategy != "truthful":
            problems.append(f"producers[{i}].strategy = {p.strategy!r}: with regions every "
                            "transmission producer is truthful (the twin of a run with regions "
                            "is not built yet)")
    nodes = set(s.node_names)
    accounts = {"exchange", "grid_operator", "external"} | {p.name for p in s.producers} \
        | {ld.name for ld in s.loads} | {z.tso for z in s.zones}
    seen: set[str] = set()
    for i, r in enumerate(s.regions):
        if r.name in seen:
            problems.append(f"regions[{i}].name = {r.name!r}: duplicate region")
        seen.add(r.name)
        clash = sorted(a for a in accounts if a == r.name or a.startswith(f"{r.name}/"))
        if clash:
            problems.append(f"regions[{i}].name = {r.name!r}: the region's accounts are named "
                            f"{r.name}/<account>, and {clash[0]!r} is a transmission account")
        if r.node not in nodes:
            problems.append(f"regions[{i}].node = {r.node!r}: unknown node (known: "
                            f"{sorted(nodes)})")
        try:
            data = read_scenario_data(find_scenario(r.scenario))
            kind = scenario_kind(data)
        except ScenarioError as exc:
            problems.append(f"regions[{i}].scenario = {r.scenario!r}: {exc}")
            continue
        wholesale = ((data.get("markets") or {}).get("dayahead") or {}).get("wholesale") or {}
        closed = wholesale.get("kind", "closed") == "closed"
        for key, value in r.overrides.items():
            sets = run_set(key, value, closed)
            if sets:
                problems.append(f"regions[{i}].overrides.{key} = {value!r}: the transmission "
                                "run sets " + "; ".join(f"{p} ({what})" for p, what in sets))
        if kind == "transmission":
            problems.append(f"regions[{i}].scenario = {r.scenario!r}: a transmission scenario; "
                            "a region runs a distribution-grid scenario")
    return problems

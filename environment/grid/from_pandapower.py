"""Radial `Grid`s from pandapower nets and simbench benchmark codes: the repairs simbench needs,
the slack, buses merged by closed switches, branches in per unit, the spanning tree rooted at
the slack (refusing meshed or isolated parts), the DSO locations and bus coordinates."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from types import MappingProxyType

import numpy as np
import pandas as pd

from environment.grid.network import (
    DEFAULT_V_MAX_PU,
    DEFAULT_V_MIN_PU,
    TRAFO_LOCATION,
    Grid,
    readonly,
)

_UNSUPPORTED_BRANCH_TABLES = ("trafo3w", "impedance", "dcline", "tcsc", "ssc", "vsc", "line_dc")
_BUS_ELEMENT_TABLES = (
    "load", "sgen", "storage", "gen", "shunt", "ward", "xward", "motor",
    "asymmetric_load", "asymmetric_sgen",
)


def _repair_tap_changer_type(net) -> None:
    """Make pandapower >= 3 honour simbench tap positions.

    simbench leaves ``tap_changer_type`` empty, which pandapower 3 reads as "no tap changer" and
    silently ignores ``tap_pos``; the benchmark data mean a ratio tap changer.
    """
    trafo = net.trafo
    if trafo.empty or "tap_pos" not in trafo:
        return
    if "tap_changer_type" not in trafo:
        trafo["tap_changer_type"] = None
    missing = trafo["tap_changer_type"].isna() & trafo["tap_pos"].notna()
    missing &= trafo["tap_step_percent"].notna()
    if missing.any():
        trafo["tap_changer_type"] = trafo["tap_changer_type"].astype(object)
        trafo.loc[missing, "tap_changer_type"] = "Ratio"


@lru_cache(maxsize=16)
def simbench_net(code: str):
    """Cached simbench pandapower net (with profiles); shared, so deepcopy before mutating it.

    Trafo tap changers are marked as ratio type so pandapower and ``Grid`` agree on voltages.
    """
    import simbench

    net = simbench.get_simbench_net(code)
    _repair_tap_changer_type(net)
    return net


@lru_cache(maxsize=16)
def load_simbench_grid(code: str) -> Grid:
    """Radial ``Grid`` of a simbench benchmark code, e.g. ``"1-LV-semiurb5--2-sw"``."""
    return grid_from_pandapower(simbench_net(code), code)


def _in_service(df: pd.DataFrame) -> pd.Series:
    if "in_service" not in df:
        return pd.Series(True, index=df.index)
    return df["in_service"].fillna(False).astype(bool)


def _table(net, name: str) -> pd.DataFrame | None:
    df = net[name] if name in net else None
    return df if isinstance(df, pd.DataFrame) else None


def _trafo_ratio(tr: pd.Series, vn_hv_bus: float, vn_lv_bus: float) -> tuple[float, float]:
    """Off-nominal hv->lv ratio and tap-adjusted lv rated voltage, computed as pandapower does."""
    vn_hv, vn_lv = float(tr["vn_hv_kv"]), float(tr["vn_lv_kv"])
    tap_type = tr.get("tap_changer_type")
    tap_pos, step = tr.get("tap_pos"), tr.get("tap_step_percent")
    if (
        isinstance(tap_type, str) and tap_type in ("Ratio", "Symmetrical")
        and pd.notna(tap_pos) and pd.notna(step)
    ):
        neutral = tr.get("tap_neutral")
        neutral = 0.0 if pd.isna(neutral) else float(neutral)
        factor = 1.0 + (float(tap_pos) - neutral) * float(step) / 100.0
        if tr.get("tap_side") == "hv":
            vn_hv *= factor
        elif tr.get("tap_side") == "lv":
            vn_lv *= factor
    return (vn_hv / vn_lv) / (vn_hv_bus / vn_lv_bus), vn_lv


def _parse_geo(value) -> tuple[float, float] | None:
    if isinstance(value, str):
        try:
            coords = json.loads(value).get("coordinates")
        except (ValueError, AttributeError):
            return None
        if coords is not None and len(coords) >= 2:
            return float(coords[0]), float(coords[1])
    return None


def _coordinates(net, pp_index: np.ndarray) -> np.ndarray | None:
    xy = np.full((len(pp_index), 2), np.nan)
    if "geo" in net.bus:
        for i, b in enumerate(pp_index):
            point = _parse_geo(net.bus.at[b, "geo"])
            if point is not None:
                xy[i] = point
    geodata = _table(net, "bus_geodata")
    if geodata is not None and {"x", "y"} <= set(geodata.columns):
        for i, b in enumerate(pp_index):
            if np.isnan(xy[i, 0]) and b in geodata.index:
                xy[i] = geodata.at[b, "x"], geodata.at[b, "y"]
    return None if np.isnan(xy).any() else xy


def _tree_layout(parent: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Depth on y (root on top), leaves spread on x and parents centred over their children."""
    n = len(parent)
    children: list[list[int]] = [[] for _ in range(n)]
    for b in range(1, n):
        children[parent[b]].append(b)
    x = np.zeros(n)
    leaf = 0
    for b in range(n):
        if not children[b]:
            x[b] = leaf
            leaf += 1
    for b in range(n - 1, -1, -1):
        if children[b]:
            x[b] = x[children[b]].mean()
    return np.column_stack([x, -depth.astype(float)])


def _slack(net, code: str) -> tuple[int, float]:
    """The single slack bus and its voltage setpoint."""
    eg = net.ext_grid[_in_service(net.ext_grid)]
    slacks = [(int(b), float(v)) for b, v in zip(eg.bus, eg.vm_pu, strict=True)]
    gen = _table(net, "gen")
    if gen is not None and len(gen) and "slack" in gen:
        sg = gen[_in_service(gen) & gen["slack"].fillna(False).astype(bool)]
        slacks += [(int(b), float(v)) for b, v in zip(sg.bus, sg.vm_pu, strict=True)]
    if len(slacks) != 1:
        raise ValueError(
            f"{code}: {len(slacks)} in-service ext_grids/slack gens; exactly one is supported"
        )
    return slacks[0]


def _merge_buses(sw: pd.DataFrame, live: set[int], slack: int) -> dict[int, int]:
    """Representative bus per live bus after fusing closed bus-bus switches (slack wins)."""
    rep = {b: b for b in live}

    def find(b: int) -> int:
        while rep[b] != b:
            rep[b] = rep[rep[b]]
            b = rep[b]
        return b

    bus_bus = sw[(sw.et == "b") & sw["closed"].fillna(True).astype(bool)]
    for b1, b2 in zip(bus_bus.bus.astype(int), bus_bus.element.astype(int), strict=True):
        if b1 in live and b2 in live:
            r1, r2 = find(b1), find(b2)
            if r1 != r2:
                keep, drop = sorted((r1, r2), key=lambda r: (r != find(slack), r))
                rep[drop] = keep
    return {b: find(b) for b in live}


def _limit(value, default: float) -> float:
    return default if pd.isna(value) else float(value)


def _name(row: pd.Series, fallback: str) -> str:
    return str(row["name"]) if pd.notna(row.get("name")) else fallback


def _branch_edges(net, live: set[int]) -> list[dict]:
    """In-service, switched-in lines and trafos with per-unit (1 MVA base) parameters."""
    bus = net.bus
    sw = _table(net, "switch")
    sw = sw if sw is not None else pd.DataFrame(columns=["bus", "element", "et", "closed"])
    is_open = ~sw["closed"].fillna(True).astype(bool)
    open_lines = set(sw.element[(sw.et == "l") & is_open].astype(int))
    open_trafos = set(sw.element[(sw.et == "t") & is_open].astype(int))
    edges: list[dict] = []
    line = net.line
    for idx, ln in line[_in_service(line)].iterrows():
        fb, tb = int(ln.from_bus), int(ln.to_bus)
        if idx in open_lines or fb not in live or tb not in live:
            continue
        vn = float(bus.at[fb, "vn_kv"])
        par = _limit(ln.get("parallel"), 1.0)
        ohm_to_pu = float(ln.length_km) / par / vn**2
        edges.append(dict(
            kind="line", pp=int(idx), name=_name(ln, f"line {idx}"), a=fb, b=tb,
            r=float(ln.r_ohm_per_km) * ohm_to_pu,
            x=float(ln.x_ohm_per_km) * ohm_to_pu,
            s=math.sqrt(3) * vn * float(ln.max_i_ka) * _limit(ln.get("df"), 1.0) * par
            * _limit(ln.get("max_loading_percent"), 100.0) / 100.0,
            ratio=1.0,
        ))
    trafo = net.trafo
    for idx, tr in trafo[_in_service(trafo)].iterrows():
        hv, lv = int(tr.hv_bus), int(tr.lv_bus)
        if idx in open_trafos or hv not in live or lv not in live:
            continue
        vn_lv_bus = float(bus.at[lv, "vn_kv"])
        ratio, vn_lv_rated = _trafo_ratio(tr, float(bus.at[hv, "vn_kv"]), vn_lv_bus)
        par = _limit(tr.get("parallel"), 1.0)
        sn = float(tr.sn_mva)
        scale = (vn_lv_rated / vn_lv_bus) ** 2 / sn / par
        z = float(tr.vk_percent) / 100.0 * scale
        r = float(tr.vkr_percent) / 100.0 * scale
        edges.append(dict(
            kind="trafo", pp=int(idx), name=_name(tr, f"trafo {idx}"), a=hv, b=lv,
            r=r, x=math.copysign(math.sqrt(max(z * z - r * r, 0.0)), z),
            s=sn * par * _limit(tr.get("max_loading_percent"), 100.0) / 100.0,
            ratio=ratio,
        ))
    return edges


def _merge_parallel(edges: list[dict], group: dict[int, int], code: str) -> list[dict]:
    """Fold branches in parallel between the same two buses (e.g. twin HV/MV trafos) into one.

    Same kind and same off-nominal ratio are required, so no circulating current is lost;
    anything else between the same buses is a genuine loop.
    """
    bundles: dict[tuple[int, int], list[dict]] = {}
    for edge in edges:
        ga, gb = group[edge["a"]], group[edge["b"]]
        if ga == gb:
            raise ValueError(
                f"{code}: network is meshed ({edge['kind']} {edge['name']!r} connects buses "
                "already joined by a closed switch); only radial networks are supported"
            )
        bundles.setdefault((min(ga, gb), max(ga, gb)), []).append(edge)
    merged = []
    for bundle in bundles.values():
        first = bundle[0]
        if len(bundle) == 1:
            merged.append({**first, "members": (first["pp"],)})
            continue
        ratios = [e["ratio"] if group[e["a"]] == group[first["a"]] else 1.0 / e["ratio"]
                  for e in bundle]
        if any(e["kind"] != first["kind"] for e in bundle) or not np.allclose(ratios, ratios[0]):
            raise ValueError(
                f"{code}: network is meshed (parallel branches {[e['name'] for e in bundle]} "
                "differ in kind or ratio); only radial networks are supported"
            )
        oriented = [e if group[e["a"]] == group[first["a"]] else {**e, "a": e["b"], "b": e["a"]}
                    for e in bundle]
        y = sum(1.0 / complex(e["r"], e["x"]) for e in oriented)
        merged.append({
            **first, "r": (1.0 / y).real, "x": (1.0 / y).imag,
            "s": sum(e["s"] for e in oriented),
            "name": " || ".join(e["name"] for e in oriented),
            "members": tuple(e["pp"] for e in oriented),
        })
    return merged


def _spanning_tree(
    edges: list[dict], group: dict[int, int], root: int, code: str
) -> tuple[list[int], dict[int, int]]:
    """Depth-first preorder of bus groups and each group's parent edge; raises if meshed."""
    adjacency: dict[int, list[int]] = {g: [] for g in set(group.values())}
    for e, edge in enumerate(edges):
        ga, gb = group[edge["a"]], group[edge["b"]]
        adjacency[ga].append(e)
        adjacency[gb].append(e)
    for adj in adjacency.values():
        adj.sort(key=lambda e: (edges[e]["kind"] != "trafo", edges[e]["pp"]))

    order: list[int] = []
    parent_edge: dict[int, int] = {root: -1}
    stack = [root]
    while stack:
        g = stack.pop()
        order.append(g)
        children = []
        for e in adjacency[g]:
            if e == parent_edge[g]:
                continue
            ga, gb = group[edges[e]["a"]], group[edges[e]["b"]]
            other = gb if ga == g else ga
            if other in parent_edge:
                raise ValueError(
                    f"{code}: network is meshed ({edges[e]['kind']} {edges[e]['name']!r} closes "
                    "a loop); only radial networks are supported"
                )
            parent_edge[other] = e
            children.append(other)
        stack.extend(reversed(children))
    return order, parent_edge


def _check_isolated(net, group: dict[int, int], reached: set[int], code: str) -> None:
    """Dead buses are harmless unless something is connected to them."""
    unreached = set(group.values()) - reached
    if not unreached:
        return
    fed: set[int] = set()
    for name in _BUS_ELEMENT_TABLES:
        df = _table(net, name)
        if df is not None and len(df) and "bus" in df:
            fed |= {group[int(b)] for b in df.bus[_in_service(df)] if int(b) in group}
    stranded = sorted(unreached & fed)
    if stranded:
        names = ", ".join(str(net.bus.at[b, "name"]) for b in stranded[:5])
        raise ValueError(
            f"{code}: {len(stranded)} bus(es) with connected elements are not reachable from "
            f"the ext_grid (e.g. {names}); isolated parts are not supported"
        )


def _locations(
    kind: np.ndarray, pp_branch: np.ndarray, parent: np.ndarray, depth: np.ndarray,
    size: np.ndarray,
) -> tuple[tuple[str, ...], np.ndarray]:
    """"trafo" = substation part above the first busbar(s); one "F<k>" per feeder leaving it."""
    n_bus = len(parent)
    trafo_to = np.flatnonzero(kind == "trafo") + 1
    if len(trafo_to):
        busbars = set(trafo_to[depth[trafo_to] == depth[trafo_to].min()].tolist())
    else:
        busbars = {0}
    heads = [j for j in range(1, n_bus) if parent[j] in busbars and j not in busbars]
    heads.sort(key=lambda j: (kind[j - 1] != "line", pp_branch[j - 1]))
    bus_location = np.zeros(n_bus, dtype=np.int64)
    for k, j in enumerate(heads, start=1):
        bus_location[j : j + size[j]] = k
    return (TRAFO_LOCATION, *(f"F{k}" for k in range(1, len(heads) + 1))), bus_location


def grid_from_pandapower(net, code: str) -> Grid:
    """Build a ``Grid`` from a pandapower net; ``ValueError`` (naming ``code``) if not radial.

    Open switches and out-of-service lines/trafos are dropped, closed bus-bus switches merge their
    buses (treated as ideal, whatever ``z_ohm``), identical parallel branches become one
    equivalent branch, and dead buses without any connected element are ignored. Line charging,
    trafo magnetising branches and phase shifts are neglected.
    """
    for name in _UNSUPPORTED_BRANCH_TABLES:
        df = _table(net, name)
        if df is not None and len(df) and _in_service(df).any():
            raise ValueError(f"{code}: in-service {name} elements are not supported")
    bus = net.bus
    live = set(bus.index[_in_service(bus)].astype(int).tolist())
    slack_pp, v_slack = _slack(net, code)
    if slack_pp not in live:
        raise ValueError(f"{code}: the ext_grid bus {slack_pp} is out of service")
    sw = _table(net, "switch")
    group = _merge_buses(sw, live, slack_pp) if sw is not None else {b: b for b in live}
    edges = _merge_parallel(_branch_edges(net, live), group, code)
    order, parent_edge = _spanning_tree(edges, group, group[slack_pp], code)
    _check_isolated(net, group, set(parent_edge), code)

    n_bus = len(order)
    internal = {g: i for i, g in enumerate(order)}
    pp_bus_map = {b: internal[g] for b, g in group.items() if g in internal}
    bus_pp_index = np.array(order, dtype=np.int64)
    bus_index: dict[str, int] = {}
    for b in sorted(pp_bus_map, key=lambda b: (b != group[b], b)):
        bus_index.setdefault(str(bus.at[b, "name"]), pp_bus_map[b])

    branch_edges = [edges[parent_edge[g]] for g in order[1:]]
    parent = np.full(n_bus, -1, dtype=np.int64)
    reversed_pp = np.zeros(n_bus - 1, dtype=bool)
    for j, edge in enumerate(branch_edges, start=1):
        ga, gb = group[edge["a"]], group[edge["b"]]
        reversed_pp[j - 1] = ga == order[j]
        parent[j] = internal[gb if reversed_pp[j - 1] else ga]
    depth = np.zeros(n_bus, dtype=np.int64)
    for j in range(1, n_bus):
        depth[j] = depth[parent[j]] + 1
    size = np.ones(n_bus, dtype=np.int64)
    for j in range(n_bus - 1, 0, -1):
        size[parent[j]] += size[j]
    ratio = np.array([edge["ratio"] for edge in branch_edges], dtype=float)
    ratio[reversed_pp] = 1.0 / ratio[reversed_pp]
    v0 = np.full(n_bus, v_slack)
    for j in range(1, n_bus):
        v0[j] = v0[parent[j]] / ratio[j - 1]

    kind = np.array([edge["kind"] for edge in branch_edges], dtype="<U5")
    pp_branch = np.array([edge["pp"] for edge in branch_edges], dtype=np.int64)
    locations, bus_location = _locations(kind, pp_branch, parent, depth, size)

    xy = _coordinates(net, bus_pp_index)
    if xy is None:
        xy = _tree_layout(parent, depth)

    def bus_column(col: str, default: float) -> np.ndarray:
        if col not in bus:
            return np.full(n_bus, default)
        return bus[col].reindex(bus_pp_index).astype(float).fillna(default).to_numpy()

    return Grid(
        code=code,
        bus_names=tuple(str(bus.at[g, "name"]) for g in order),
        bus_pp_index=readonly(bus_pp_index),
        vn_kv=readonly(bus_column("vn_kv", np.nan)),
        v_min_pu=readonly(bus_column("min_vm_pu", DEFAULT_V_MIN_PU)),
        v_max_pu=readonly(bus_column("max_vm_pu", DEFAULT_V_MAX_PU)),
        depth=readonly(depth),
        parent_bus=readonly(parent),
        branch_from=readonly(parent[1:].copy()),
        branch_to=readonly(np.arange(1, n_bus, dtype=np.int64)),
        branch_names=tuple(edge["name"] for edge in branch_edges),
        branch_kind=readonly(kind),
        branch_pp_index=readonly(pp_branch),
        branch_pp_members=tuple(edge["members"] for edge in branch_edges),
        branch_pp_reversed=readonly(reversed_pp),
        r_pu=readonly(np.array([edge["r"] for edge in branch_edges], dtype=float)),
        x_pu=readonly(np.array([edge["x"] for edge in branch_edges], dtype=float)),
        s_max_mva=readonly(np.array([edge["s"] for edge in branch_edges], dtype=float)),
        tap_ratio=readonly(ratio),
        v_slack_pu=v_slack,
        v0_pu=readonly(v0),
        locations=locations,
        branch_location=readonly(bus_location[1:].copy()),
        bus_location=readonly(bus_location),
        xy=readonly(np.asarray(xy, dtype=float)),
        bus_index=MappingProxyType(bus_index),
        pp_bus_map=MappingProxyType(pp_bus_map),
    )

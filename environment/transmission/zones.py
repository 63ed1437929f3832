"""Bidding zones of a transmission scenario: which node lies in which zone, each zone's TSO and
grid (its nodes and the lines between them), and the interconnectors between zones with their
net transfer capacities (NTC, per direction).

Two problems are built here. Market coupling (`clear_coupled`): every zone's day-ahead offers
against its load at once, the exchange limited by the NTCs and the lines inside zones ignored,
as in European day-ahead coupling; its prices are those of the merit order of each group of
zones joined by interconnectors that do not bind (a price area: one price), so the scenario's
tie rule sets them exactly as in one zone. The grid-constrained optimum (`optimal_dispatch`):
the same with every zone's lines, the planner's benchmark and the nodal prices producers
expect. An interconnector's flow enters and leaves each zone at its border node (the zone's
first node)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from environment.transmission.network import Network, clear_zonal_periods

FLOW_PENALTY = 1e-6
"""EUR/MWh per MW exchanged, so that where exchanging saves nothing nothing is exchanged."""
BIND_TOL = 1e-6
"""MW from its NTC within which an interconnector counts as binding (splitting price areas)."""


@dataclass(frozen=True)
class Zones:
    """Zones Z, nodes N, interconnectors E. `net` is the whole grid: every line's PTDF over
    all nodes, each zone's block with its border node as slack, so flows are right for
    injections that balance within each zone (interconnector flows entered at border nodes)."""

    names: tuple[str, ...]
    tsos: tuple[str, ...]
    node_zone: np.ndarray
    border: np.ndarray
    ic_names: tuple[str, ...]
    ic_from: np.ndarray
    ic_to: np.ndarray
    fwd_mw: np.ndarray
    back_mw: np.ndarray
    net: Network
    nets: tuple[Network, ...]
    zone_nodes: tuple[np.ndarray, ...]
    zone_lines: tuple[np.ndarray, ...]

    @classmethod
    def from_scenario(cls, s) -> Zones:
        names = [z.name for z in s.zones]
        zi = {n: i for i, n in enumerate(names)}
        node_zone = np.array([zi[n.zone] for n in s.nodes])
        node_names = s.node_names
        nets, zone_nodes, zone_lines = [], [], []
        ptdf = np.zeros((len(s.lines), len(node_names)))
        for z, name in enumerate(names):
            nodes = np.flatnonzero(node_zone == z)
            members = {node_names[i] for i in nodes}
            lines = np.array([k for k, ln in enumerate(s.lines) if ln.from_ in members], int)
            try:
                net = Network.from_scenario(SimpleNamespace(
                    node_names=[node_names[i] for i in nodes],
                    lines=[s.lines[k] for k in lines]))
            except ValueError as exc:
                raise ValueError(f"zone {name}: {exc}") from None
            ptdf[np.ix_(lines, nodes)] = net.ptdf
            nets.append(net)
            zone_nodes.append(nodes)
            zone_lines.append(lines)
        net = Network(tuple(node_names), tuple(ln.name for ln in s.lines),
                      np.array([ln.limit_mw for ln in s.lines]), ptdf)
        ics = s.interconnectors
        return cls(tuple(names), tuple(z.tso for z in s.zones), node_zone,
                   np.array([nodes[0] for nodes in zone_nodes], int),
                   tuple(ic.name for ic in ics), np.array([zi[ic.from_] for ic in ics], int),
                   np.array([zi[ic.to] for ic in ics], int),
                   np.array([ic.limit_mw for ic in ics], float),
                   np.array([ic.limit_mw if ic.reverse_limit_mw is None else ic.reverse_limit_mw
                             for ic in ics], float), net, tuple(nets), tuple(zone_nodes),
                   tuple(zone_lines))

    @property
    def n(self) -> int:
        return len(self.names)

    def net_import(self, flow: np.ndarray) -> np.ndarray:
        """MW each zone receives over the interconnectors (flow + from -> to)."""
        return (np.bincount(self.ic_to, flow, self.n)
                - np.bincount(self.ic_from, flow, self.n))

    def border_injection(self, flow: np.ndarray) -> np.ndarray:
        """The interconnector flows as injections at the border nodes, MW per node."""
        out = np.zeros(len(self.node_zone))
        out[self.border] = self.net_import(flow)
        return out


@dataclass
class Dispatch:
    """One period's least-cost dispatch: MW per offer step, interconnector flows, cost, and
    the marginal price of each node (zone balance dual plus the line duals)."""

    x: np.ndarray
    flow: np.ndarray
    cost: float
    nodal_price: np.ndarray


def optimal_dispatch(z: Zones, node: np.ndarray, price: np.ndarray, mw: np.ndarray,
                     load: np.ndarray, lines: bool, what: str) -> Dispatch:
    """Least-cost steps x in [0, mw] (step i at node `node[i]` costing `price[i]`) meeting the
    nodal `load`, zone by zone, with interconnector flows within their NTCs and, if `lines`,
    every line within its limit."""
    import scipy.sparse as sp

    from environment.solver import solve_lp

    n_s, n_e, n_n = len(price), len(z.ic_names), len(z.node_zone)
    zone = z.node_zone[node]
    ee = np.arange(n_e)
    bal = sp.csr_array((np.concatenate([np.ones(n_s), np.ones(n_e), -np.ones(n_e),
                                        -np.ones(n_e), np.ones(n_e)]),
                        (np.concatenate([zone, z.ic_to, z.ic_from, z.ic_to, z.ic_from]),
                         np.concatenate([np.arange(n_s), n_s + ee, n_s + ee, n_s + n_e + ee,
                                         n_s + n_e + ee]))), shape=(z.n, n_s + 2 * n_e))
    load_z = np.bincount(z.node_zone, load, z.n)
    rows, lo, hi = [bal], [load_z], [load_z]
    n_l = len(z.net.lines) if lines else 0
    if n_l:
        place = sp.csr_array((np.ones(n_s), (node, np.arange(n_s))), shape=(n_n, n_s))
        at_border = sp.csr_array(np.eye(n_n)[:, z.border]) @ bal[:, n_s:]
        flow = sp.csr_array(z.net.ptdf) @ sp.hstack([place, at_border], format="csr")
        f0 = z.net.flows(-load)
        rows.append(flow)
        lo.append(-z.net.limit - f0)
        hi.append(z.net.limit - f0)
    # the penalty settles the coupling's flows where exchanging saves nothing; the optimum
    # with lines is read for its duals, which the penalty would blur
    cost = np.concatenate([price, np.full(2 * n_e, 0.0 if lines else FLOW_PENALTY)])
    res = solve_lp(cost, a=sp.vstack(rows, format="csr"), row_lower=np.concatenate(lo),
                   row_upper=np.concatenate(hi), lower=np.zeros(len(cost)),
                   upper=np.concatenate([mw, z.fwd_mw, z.back_mw]), what=what)
    duals = np.asarray(res.marginals, float)
    nodal = duals[:z.n][z.node_zone]
    if n_l:
        nodal = nodal + z.net.ptdf.T @ duals[z.n:]
    x = res.x[:n_s]
    flow_e = res.x[n_s:n_s + n_e] - res.x[n_s + n_e:]
    return Dispatch(x, flow_e, float(price @ x), nodal)


def price_areas(z: Zones, flow: np.ndarray) -> np.ndarray:
    """Each zone's price area: the smallest zone index of the group joined by interconnectors
    that bind in neither direction."""
    parent = np.arange(z.n)

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    free = (flow < z.fwd_mw - BIND_TOL) & (flow > -z.back_mw + BIND_TOL)
    for a, b in zip(z.ic_from[free], z.ic_to[free], strict=True):
        ra, rb = root(int(a)), root(int(b))
        parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(z.n)])


def clear_coupled(z: Zones, period: np.ndarray, node: np.ndarray, price: np.ndarray,
                  mw: np.ndarray, load: np.ndarray, floor: float, cap: float,
                  tie_price: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day-ahead market coupling of the offer steps (tagged with their `period` and `node`)
    against the nodal load (periods, nodes). Returns prices (periods, zones), the accepted MW
    of each step and the interconnector flows (periods, interconnectors).

    Volumes and flows are the least-cost coupling's (lines ignored); each price area then
    clears its own offers against its load less what it imports over binding
    interconnectors, which gives its price under the tie rule (`importers_price` where it
    has nothing of its own to clear)."""
    n_p = load.shape[0]
    price = np.clip(price, floor, cap)
    accepted = np.zeros(len(price))
    flows = np.zeros((n_p, len(z.ic_names)))
    market = np.zeros(len(price), int)
    area_load, zone_market = [], np.zeros((n_p, z.n), int)
    for t in range(n_p):
        idx = np.flatnonzero(period == t)
        d = optimal_dispatch(z, node[idx], price[idx], mw[idx], load[t], False,
                             f"day-ahead coupling period {t}")
        accepted[idx] = d.x
        flows[t] = d.flow
        area = price_areas(z, d.flow)
        roots, zone_area = np.unique(area, return_inverse=True)
        first = len(area_load)
        need = np.bincount(zone_area, np.bincount(z.node_zone, load[t], z.n)
                           - z.net_import(d.flow), len(roots))
        area_load.extend(need)
        zone_market[t] = first + zone_area
        market[idx] = zone_market[t][z.node_zone[node[idx]]]
    area_price, _ = clear_zonal_periods(market, np.arange(len(price)), price, mw,
                                        np.maximum(np.array(area_load), 0.0), floor, cap,
                                        tie_price)
    prices = area_price[zone_market]
    for t in range(n_p):
        prices[t] = importers_price(z, prices[t], flows[t])
    return prices, accepted, flows


def importers_price(z: Zones, price: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """An importing zone's price is never below the price of a zone it imports from. A price
    area that clears no offer of its own (its load all imported at the limit) has no price of
    its own and takes the dearest of its exporters' (as if that interconnector did not bind:
    no rent on it); one whose load ends exactly at the end of an offer step may clear below its
    exporter (any price of the step's gap clears it), and then takes the exporter's price, so
    that no rent is negative."""
    price = price.copy()
    into = np.where(flow > 0, z.ic_to, z.ic_from)
    out = np.where(flow > 0, z.ic_from, z.ic_to)
    moving = np.abs(flow) > BIND_TOL
    for _ in range(z.n):
        low = moving & ~np.isnan(price[out]) & ~(price[into] >= price[out])
        if not low.any():
            break
        for a, b in zip(into[low], out[low], strict=True):
            price[a] = np.fmax(price[a], price[b])
    return price

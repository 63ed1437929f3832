"""Every location's span on a radial grid at once: the LFM's effect tables of all locations in
one compiled pass per clearing.

A location's activation moves only the flows on the paths from the slack to its buses and
the voltages of the span those paths cover (`environment.grid.radial.Span`). The spans of all
locations are laid side by side as one forest (a root per location, each numbered in its own
preorder), so a clearing's tables are one sweep over the forest per MTU and direction instead
of thirty sets of numpy calls and a concatenation. The sums run in the order of the per-span
sweeps, so the tables are theirs bit for bit; their layout (`LocationEffects`' columns and
runs) depends only on the grid and is built once."""

from __future__ import annotations

import numpy as np
from numba import njit

from environment.grid.location_effects import LocationEffects
from environment.grid.radial import ROWS, RadialSweeps, down_pass


class LocationSpans:
    """The spans of `buses_k` (per location, the buses an activation there spreads over) on
    the tree `sweeps` with branch resistances `r` (L,)."""

    def __init__(self, sweeps: RadialSweeps, buses_k: list[np.ndarray], r: np.ndarray):
        spans = [sweeps.span(b) for b in buses_k]
        size = np.array([len(s.nodes) for s in spans])
        off = np.r_[0, np.cumsum(size)]
        k_n, n = len(spans), int(off[-1])
        self.parent = np.concatenate([np.where(s.sweeps.parent >= 0, s.sweeps.parent + o, -1)
                                      for s, o in zip(spans, off, strict=False)])
        inner = np.flatnonzero(self.parent >= 0)
        self.child_ptr = np.r_[0, np.cumsum(np.bincount(self.parent[inner], minlength=n))]
        self.children = inner[np.argsort(self.parent[inner], kind="stable")]
        self.parents_rev = np.flatnonzero(np.diff(self.child_ptr))[::-1].copy()
        nodes = np.concatenate([s.nodes for s in spans])
        # per forest node: the resistance of the branch feeding it (0 at a root)
        self.r_node = np.where(self.parent >= 0, np.asarray(r, float)[nodes - 1], 0.0)
        self.at = np.concatenate([s.at + o for s, o in zip(spans, off, strict=False)])
        self.width = np.array([len(b) for b in buses_k])
        self.buses = np.concatenate(buses_k)
        self.bus_ptr = np.r_[0, np.cumsum(self.width)]
        flow_off = off - np.arange(k_n + 1)   # a span's branches: its nodes but the root
        flow_column = np.full((k_n, sweeps.n_bus - 1), -1)
        for k, s in enumerate(spans):
            flow_column[k, s.branches] = flow_off[k] + np.arange(len(s.branches))
        volt_column = np.stack([s.nearest + o for s, o in zip(spans, off, strict=False)])
        self.flows = LocationEffects(np.zeros((0, 2, n - k_n)), flow_column)
        self.volts = LocationEffects(np.zeros((0, 2, n)), volt_column)

    def effects(self, weights: np.ndarray) -> tuple[LocationEffects, LocationEffects]:
        """(T, K, 2, L) flow and (T, K, 2, B) squared-voltage effects of one MW more
        consumption at each location, spread over its buses in proportion to `weights`
        (T, B, 2; uniformly where a location has none), as `lfm.participation` defines them."""
        t_n = weights.shape[0]
        spread = np.empty((2 * t_n, len(self.buses)))
        _spread(np.ascontiguousarray(weights, dtype=float), self.buses, self.bus_ptr, spread)
        flow = np.empty((2 * t_n, len(self.parent) - len(self.width)))
        volt = np.empty((2 * t_n, len(self.parent)))
        _span_effects(spread, self.at, self.parent, self.parents_rev, self.child_ptr,
                      self.children, self.r_node, flow, volt)
        return (self.flows.with_values(flow.reshape(t_n, 2, -1)),
                self.volts.with_values(volt.reshape(t_n, 2, -1)))


@njit(cache=True)
def _spread(weights, buses, bus_ptr, out):
    """Row (t, d) of `out`: each location's weights at its buses over their sum, or uniform
    where that is not positive. The sum runs bus after bus, as numpy sums the axis that
    `lfm.participation`'s fancy index puts outermost."""
    g = np.empty(len(buses))
    for t in range(weights.shape[0]):
        for d in range(2):
            for k in range(len(bus_ptr) - 1):
                lo, hi = bus_ptr[k], bus_ptr[k + 1]
                for i in range(lo, hi):
                    g[i] = weights[t, buses[i], d]
                total = g[lo]
                for i in range(lo + 1, hi):
                    total += g[i]
                for i in range(lo, hi):
                    out[2 * t + d, i] = g[i] / total if total > 0 else 1.0 / (hi - lo)


@njit(cache=True)
def _span_effects(spread, at, parent, parents_rev, child_ptr, children, r_node, flow, volt):
    """Per row of `spread` (ROWS at a time): the consumption placed at its span nodes `at`,
    summed down the forest (each non-root node's sum: the flow of the branch feeding it, into
    `flow`), and the squared-voltage change -2 x the path sum of flow x resistance (into
    `volt`)."""
    n = len(parent)
    acc = np.empty((n, ROWS))
    path = np.empty(n)
    for c0 in range(0, spread.shape[0], ROWS):
        nb = min(ROWS, spread.shape[0] - c0)
        acc[:] = 0.0
        for m in range(len(at)):
            for q in range(nb):
                acc[at[m], q] = spread[c0 + q, m]
        down_pass(acc, nb, parents_rev, child_ptr, children)
        for q in range(nb):
            c = c0 + q
            f = 0
            for j in range(n):
                if parent[j] < 0:
                    path[j] = 0.0
                else:
                    flow[c, f] = acc[j, q]
                    f += 1
                    path[j] = path[parent[j]] + acc[j, q] * r_node[j]
                volt[c, j] = -2.0 * path[j]

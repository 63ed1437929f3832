"""Grid violations measured once: the least load to shed (or injection to curtail) that brings
every violated branch and voltage limit of a radial grid back within bounds (LinDistFlow).

Summing the overload of every branch counts one overload again for each branch in series above
it (a feeder end overloading four cables in a row is one problem, not four). The measure here
is what the DSO would physically have to do: the least total MW of consumption removed (shed)
or added back (injection curtailed), placed where it helps most, after which no violated limit
is broken. The run's metrics and the planner charge it at the value of lost load; the LFM and
the TSO-DSO programmes weigh the same relief at the location level (`markets.lfm`), which is
what the DSO's own last resort can do there.

The LP per MTU (HiGHS): a change y_c = shed_c - curtail_c at bus c moves every branch flow on
the path to c by -y_c (flows are sums of downstream consumption) and every squared voltage by
+2 R[b, c] y_c (R[b, c]: the resistance of the common path). Rows are the violated limits; the
relief itself is not limited by the grid (a shed beyond the load below a branch, reversing its
flow, is not counted against it): the measure is an MW-equivalent of the violation, placed
optimally. Changes are allowed only at *candidate* buses: the end bus of each violated branch
and each bus outside its band, and where every violation of an MTU pulls one way (all
consumption-driven, or all injection-driven) only the leaf-most of them. A change anywhere
else is dominated by one at a candidate: moving it down the tree to a violated element helps
every violated flow on its path and raises R[b, c] for every violated voltage, so nothing is
lost. Rows another row of the same MTU implies are dropped before the LP.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numba import njit

from environment.solver import solve_lp

TOL = 1e-6


@dataclass(frozen=True)
class ShedMaps:
    """The radial structure the measure needs: branch l feeds the contiguous bus range
    [first[l], end[l]) (buses are in depth-first preorder), and the common-path resistance R
    (read as ``r[rows, cols]``)."""

    first: np.ndarray
    end: np.ndarray
    r: object

    @classmethod
    def of(cls, grid, flow) -> ShedMaps:
        # R is read elementwise: the (B, B) array, or by tree sweeps on large grids
        return cls(np.arange(1, grid.n_bus), flow.subtree_end(), flow.common_r())

    def flow_effect(self, branch: np.ndarray, bus: np.ndarray) -> np.ndarray:
        """1 where one MW shed at `bus` lowers the flow of `branch` by one MW (elementwise)."""
        return ((bus >= self.first[branch]) & (bus < self.end[branch])).astype(float)

    @cached_property
    def bus_end(self) -> np.ndarray:
        """(B,) one past the last bus of each bus's subtree."""
        return np.concatenate([[len(self.first) + 1], self.end])


@dataclass(frozen=True)
class Shed:
    """The least change per MTU and bus (MW, + consumption shed, - injection curtailed)."""

    mw: np.ndarray            # (T, B)

    @property
    def per_mtu(self) -> np.ndarray:
        """(T,) MW of load to shed and injection to curtail."""
        return np.abs(self.mw).sum(1)

    def per_location(self, bus_location: np.ndarray, n_locations: int) -> np.ndarray:
        """(T, K) the same by the location of the bus where it is taken."""
        out = np.zeros((self.mw.shape[0], n_locations))
        np.add.at(out.T, bus_location, np.abs(self.mw).T)
        return out


def violated(p, w, p_lim, w_lo, w_hi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, L) overloaded branches and (T, B) buses below / above their band (slack excluded)."""
    over = np.abs(p) > p_lim + TOL
    low = w < w_lo - TOL
    high = w > w_hi + TOL
    low[:, 0] = high[:, 0] = False
    return over, low, high


def least_shed(maps: ShedMaps, p: np.ndarray, w: np.ndarray, p_lim: np.ndarray,
               w_lo: np.ndarray, w_hi: np.ndarray) -> Shed:
    """The least load to shed per MTU and bus for branch flows `p` (T, L) within `p_lim`
    (T, L) and squared voltages `w` (T, B) within [`w_lo`, `w_hi`] (B,)."""
    t_n, b_n = w.shape
    out = np.zeros((t_n, b_n))
    over, low, high = violated(p, w, p_lim, w_lo, w_hi)
    # rows: (MTU, kind 0 branch / 1 bus, element, side +1 upper / -1 lower)
    lt, lj = np.nonzero(over)
    rows = [(lt, np.zeros(len(lt), int), lj, np.where(p[lt, lj] > 0, 1, -1))]
    for mask, side in ((low, -1), (high, 1)):
        t, j = np.nonzero(mask)
        rows.append((t, np.ones(len(t), int), j, np.full(len(t), side)))
    r_t, r_kind, r_j, r_side = (np.concatenate(x) for x in zip(*rows, strict=True))
    if not len(r_t):
        return Shed(out)
    c_t, c_b, c_dir = candidates(maps, r_t, r_kind, r_j, r_side, t_n)
    ri, ci = pairs(r_t, c_t, t_n)
    kind, j, side, bus = r_kind[ri], r_j[ri], r_side[ri], c_b[ci]
    br = kind == 0
    # a column's coefficient in its row read as "coef . y >= need": a shed (c_dir +1) helps a
    # consumption-driven violation, a curtailment (c_dir -1) an injection-driven one
    coef = c_dir[ci] * np.where(br, side * maps.flow_effect(np.where(br, j, 0), bus),
                                -side * 2.0 * maps.r[np.where(br, 0, j), bus])
    nz = coef != 0
    ri, ci, coef = ri[nz], ci[nz], coef[nz]
    rb = r_kind == 0
    rl = np.where(rb, r_j, 0)
    need = np.where(rb, np.abs(p[r_t, rl]) - p_lim[r_t, rl],
                    np.where(r_side > 0, w[r_t, r_j] - w_hi[r_j], w_lo[r_j] - w[r_t, r_j]))
    live = ~_dominated_rows(r_t, ri, ci, coef, need, c_t)
    k = live[ri]
    renum = np.cumsum(live) - 1
    n_c = len(c_t)
    a = sp.csr_array((-coef[k], (renum[ri[k]], ci[k])), shape=(int(live.sum()), n_c))
    res = solve_lp(np.ones(n_c), a_ub=a, b_ub=-need[live], lower=np.zeros(n_c),
                   upper=np.full(n_c, np.inf), what="least load to shed", presolve=False)
    np.add.at(out, (c_t, c_b), c_dir * res.x)
    return Shed(out)


def down_sum(maps: ShedMaps, y: np.ndarray) -> np.ndarray:
    """(T, L) sum of `y` (T, B) over each branch's downstream buses (prefix sums: buses of a
    subtree are contiguous)."""
    c = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)
    return c[:, maps.end] - c[:, maps.first]


def candidates(maps: ShedMaps, r_t, r_kind, r_j, r_side, t_n: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MTU, bus, direction) of the relief columns, ordered by MTU: at the end bus of each
    violated branch and each bus outside its band, a shed (+1) where the MTU has
    consumption-driven violations and a curtailment (-1) where it has injection-driven ones
    (the other direction only worsens them). Where an MTU's violations all pull one way, only
    the leaf-most buses (no other one below them in the tree)."""
    consuming = np.where(r_kind == 0, r_side > 0, r_side < 0)
    pull = np.zeros((t_n, 2), bool)
    pull[r_t[consuming], 0] = True
    pull[r_t[~consuming], 1] = True
    bus = np.where(r_kind == 0, maps.first[np.where(r_kind == 0, r_j, 0)], r_j)
    width = len(maps.bus_end) + 1
    key = np.sort(r_t * width + bus)   # unique by sorting: np.unique's result, cheaper
    t, b = np.divmod(key[np.diff(key, prepend=-1) != 0], width)
    nxt_t = np.append(t[1:], -1)
    nxt_b = np.append(b[1:], 0)
    inside = (nxt_t == t) & (nxt_b < maps.bus_end[b])     # another element below it
    keep = ~inside | pull[t].all(1)
    t, b = t[keep], b[keep]
    both = pull[t].all(1)
    one = np.where(pull[t, 0], 1, -1)
    t = np.concatenate([t, t[both]])
    b = np.concatenate([b, b[both]])
    d = np.concatenate([np.where(both, 1, one), -np.ones(both.sum(), int)])
    o = np.argsort(t, kind="stable")
    return t[o], b[o], d[o]


def pairs(a_t: np.ndarray, b_t: np.ndarray, t_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with a_t[i] == b_t[j]: rows paired with the columns of their MTU."""
    order = np.argsort(b_t, kind="stable")
    count = np.bincount(b_t, minlength=t_n)
    start = np.cumsum(count) - count
    n = count[a_t]
    i = np.repeat(np.arange(len(a_t)), n)
    within = np.arange(len(i)) - np.repeat(np.cumsum(n) - n, n)
    return i, order[np.repeat(start[a_t], n) + within]


def _dominated_rows(r_t, ri, ci, coef, need, c_t) -> np.ndarray:
    """(rows,) True for rows another row of the same MTU implies. Each reads a . y >= need
    (need > 0) over the MTU's relief columns (y >= 0); it is implied by another whose
    a / need is nowhere larger. Under heavy undervoltage most of a feeder's buses are low and
    the buses near its end imply the rest: a few rows per MTU are left."""
    n_r = len(need)
    start = np.searchsorted(c_t, np.arange(c_t.max() + 2))   # columns are sorted by MTU
    width = int(np.diff(start).max())
    dense = np.zeros((n_r, width))
    dense[ri, ci - start[c_t[ci]]] = coef / need[ri]
    order = np.argsort(r_t, kind="stable")
    drop = np.zeros(n_r, bool)
    drop[order[_dominated(r_t[order], dense[order])]] = True
    return drop


@njit(cache=True)
def _dominated(t, m):
    """Rows (grouped by MTU `t`) implied by another row of their MTU: m[i] >= m[j] everywhere
    (the lower index kept among equal rows)."""
    n, k = m.shape
    out = np.zeros(n, np.bool_)
    a = 0
    while a < n:
        b = a
        while b < n and t[b] == t[a]:
            b += 1
        for i in range(a, b):
            for j in range(a, b):
                if i == j or out[j]:
                    continue
                implied = True
                same = True
                for c in range(k):
                    if m[i, c] < m[j, c] - 1e-12:
                        implied = False
                        break
                    if m[i, c] > m[j, c] + 1e-12:
                        same = False
                if implied and (not same or j < i):
                    out[i] = True
                    break
        a = b
    return out

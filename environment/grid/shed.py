"""Grid violations measured once: the least load to shed (or injection to curtail) that restores
every branch and voltage limit of a radial grid under LinDistFlow.

Summing the overload of every branch counts one overload again for each branch in series above
it (a feeder end overloading four cables in a row is one problem, not four). The measure here
is what the DSO would physically have to do: the least total MW of consumption removed (shed)
or added back (injection curtailed), anywhere in the grid, after which no limit is broken. Its
cost at the value of lost load is what the metrics, the planner, the LFM and the TSO-DSO
programmes all charge for a violation, so that they are measured on one scale.

The LP per MTU (HiGHS): a change y_c = shed_c - curtail_c at bus c moves every branch flow on
the path to c by -y_c (flows are sums of downstream consumption) and every squared voltage by
+2 R[b, c] y_c. Only limits that are violated get rows, and changes are allowed only at the
*candidate* buses: the end bus of every violated branch and every bus outside its band. In a
radial grid a change anywhere else is dominated by one at a candidate: moving it down the tree
to a violated element relieves every violated flow on its path and raises R[b, c] for every
violated voltage (R[b, c] is the resistance of the common path), so the restriction loses
nothing while all violations pull one way (all overloads forward, all voltages low, or the
mirror). Where relieving one limit breaks another, constraint generation adds that limit and
its candidates and solves again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numba import njit

from environment.solver import InfeasibleError, solve_lp

TOL = 1e-6
MAX_ROUNDS = 20
ELASTIC = 1.0
"""Cost per MW-equivalent of a limit left violated, against 1 per MW shed. Elastic slacks are
added only where an LP without them is infeasible (held reactive flows alone can break a
voltage band; in an over-constrained feeder relieving one limit breaks another): a slack
counts a row's violation as relief at its own element for that row alone, so the LP still
prefers relief that serves several limits, and what it optimises is what it reports."""


@dataclass(frozen=True)
class ShedMaps:
    """The radial structure the measure needs: branch l feeds the contiguous bus range
    [first[l], end[l]) (buses are in depth-first preorder), and the common-path resistance R."""

    first: np.ndarray
    end: np.ndarray
    r: np.ndarray

    @classmethod
    def of(cls, grid, flow) -> ShedMaps:
        first = np.arange(1, grid.n_bus)
        end = first + np.asarray(grid.downstream, bool).sum(1)
        return cls(first, end, flow.sensitivities().R)

    def flow_effect(self, branch: np.ndarray, bus: np.ndarray) -> np.ndarray:
        """1 where one MW shed at `bus` lowers the flow of `branch` by one MW (elementwise)."""
        return ((bus >= self.first[branch]) & (bus < self.end[branch])).astype(float)

    @cached_property
    def bus_end(self) -> np.ndarray:
        """(B,) one past the last bus of each bus's subtree."""
        return np.concatenate([[len(self.first) + 1], self.end])

    @cached_property
    def ancestors(self) -> np.ndarray:
        """(B, B) True where bus e (column) lies above bus c (row), the slack excluded."""
        b = np.arange(len(self.first) + 1)
        holds = (b[None, :] < b[:, None]) & (b[:, None] < self.bus_end[None, :])
        holds[:, 0] = False
        return holds


@dataclass(frozen=True)
class Shed:
    """The least change per MTU and bus (MW, + consumption shed, - injection curtailed) and
    whether the constraint generation converged within MAX_ROUNDS."""

    mw: np.ndarray            # (T, B)
    converged: bool = True
    unrestorable: np.ndarray | None = None   # (T,) MW-equivalent no shedding could restore

    @property
    def per_mtu(self) -> np.ndarray:
        """(T,) MW of load to shed and injection to curtail (and MW-equivalents of what no
        shedding restores, counted as if shed)."""
        out = np.abs(self.mw).sum(1)
        return out if self.unrestorable is None else out + self.unrestorable

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
    todo = np.flatnonzero(over.any(1) | low.any(1) | high.any(1))
    if not todo.size:
        return Shed(out)
    p, w, p_lim = p[todo], w[todo], p_lim[todo]
    over, low, high = over[todo], low[todo], high[todo]
    rows = _Rows(maps, len(todo))
    y = np.zeros((len(todo), b_n))
    left = np.zeros(len(todo))
    converged = False
    for _ in range(MAX_ROUNDS):
        if not rows.add(p - down_sum(maps, y), over, low, high):
            converged = True
            break
        y, left = rows.solve(p, w, p_lim, w_lo, w_hi, b_n)
        over, low, high = violated(p - down_sum(maps, y), w + 2.0 * y @ maps.r, p_lim, w_lo,
                                   w_hi)
    out[todo] = y
    unrestorable = np.zeros(t_n)
    unrestorable[todo] = left
    return Shed(out, converged, unrestorable if left.any() else None)


def down_sum(maps: ShedMaps, y: np.ndarray) -> np.ndarray:
    """(T, L) sum of `y` (T, B) over each branch's downstream buses (prefix sums: buses of a
    subtree are contiguous)."""
    c = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)
    return c[:, maps.end] - c[:, maps.first]


def pairs(a_t: np.ndarray, b_t: np.ndarray, t_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with a_t[i] == b_t[j]: rows paired with the columns of their MTU."""
    order = np.argsort(b_t, kind="stable")
    count = np.bincount(b_t, minlength=t_n)
    start = np.cumsum(count) - count
    n = count[a_t]
    i = np.repeat(np.arange(len(a_t)), n)
    within = np.arange(len(i)) - np.repeat(np.cumsum(n) - n, n)
    return i, order[np.repeat(start[a_t], n) + within]


def _dominated_rows(r_t, ri, ci, coef, rhs, c_t) -> np.ndarray:
    """(rows,) True for requirement rows another row of the same MTU implies. A violated
    limit whose coefficients are all of one sign reads
    a . y >= need (a >= 0, need > 0 after flipping); it is implied by another such row whose
    a / need is nowhere larger. Under heavy undervoltage most of a feeder's buses are low
    and the buses near its end imply the rest: this leaves a few rows per MTU."""
    n_r = len(rhs)
    mixed = np.zeros(n_r, bool)
    np.logical_or.at(mixed, ri, coef > 0)
    req = (rhs < -TOL) & ~mixed
    drop = np.zeros(n_r, bool)
    if req.sum() < 2:
        return drop
    ids = np.flatnonzero(req)
    pos = np.full(n_r, -1)
    pos[ids] = np.arange(len(ids))
    start = np.searchsorted(c_t, np.arange(c_t.max() + 2))   # candidates are sorted by MTU
    width = int(np.diff(start).max())
    dense = np.zeros((len(ids), width))
    keep = req[ri]
    dense[pos[ri[keep]], ci[keep] - start[c_t[ci[keep]]]] = -coef[keep] / -rhs[ri[keep]]
    order = np.argsort(r_t[ids], kind="stable")
    drop[ids[order][_dominated(r_t[ids][order], dense[order])]] = True
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


class Candidates:
    """Where relief may be taken, per MTU, from the limits seen violated (`note`): the end bus
    of each violated branch, each bus outside its band. At an MTU whose base violations all
    pull one way (consumption-driven, or injection-driven), only the leaf-most of them (no
    other below them in the tree), since relief further down dominates relief above; at a
    mixed MTU, all of them. A violation against the MTU's pull was made by relief itself
    (relief beyond what lies below a branch reverses its flow): relief must then partly come
    from above it, so every bus on its path to the slack becomes a candidate too."""

    def __init__(self, maps: ShedMaps, t_n: int):
        self.maps = maps
        self.pull: np.ndarray | None = None   # (T, 2) from the first call: the base
        self.e_t, self.e_bus = np.zeros(0, int), np.zeros(0, int)
        self.x_t, self.x_bus = np.zeros(0, int), np.zeros(0, int)
        self.t_n = t_n

    def note(self, t: np.ndarray, kind: np.ndarray, j: np.ndarray, side: np.ndarray) -> None:
        """Violated limits (MTU, kind 0 branch / 1 bus, element, side +1 upper / -1 lower);
        the first call is the base, which sets each MTU's pull."""
        consuming = np.where(kind == 0, side > 0, side < 0)   # more load made it worse
        if self.pull is None:
            self.pull = np.zeros((self.t_n, 2), bool)
            self.pull[t[consuming], 0] = True
            self.pull[t[~consuming], 1] = True
        bus = np.where(kind == 0, self.maps.first[np.where(kind == 0, j, 0)], j)
        against = ~self.pull[t, np.where(consuming, 0, 1)]
        self.e_t = np.concatenate([self.e_t, t[~against]])
        self.e_bus = np.concatenate([self.e_bus, bus[~against]])
        at, ab = np.nonzero(self.maps.ancestors[bus[against]])
        self.x_t = np.concatenate([self.x_t, t[against][at], t[against]])
        self.x_bus = np.concatenate([self.x_bus, ab, bus[against]])

    def current(self) -> tuple[np.ndarray, np.ndarray]:
        """(MTU, bus) of the candidates, ordered by MTU and bus."""
        width = len(self.maps.bus_end) + 1
        key = np.unique(self.e_t * width + self.e_bus)
        t, b = np.divmod(key, width)
        nxt_t = np.append(t[1:], -1)
        nxt_b = np.append(b[1:], 0)
        inside = (nxt_t == t) & (nxt_b < self.maps.bus_end[b])   # another element below it
        keep = ~inside | self.pull[t].all(1)
        key = np.unique(np.concatenate([t[keep], self.x_t]) * width
                        + np.concatenate([b[keep], self.x_bus]))
        return np.divmod(key, width)


class _Rows:
    """The limits modelled so far (arrays over rows: MTU, kind 0 branch / 1 bus, element,
    side +1 upper / -1 lower) and the relief candidates they open (`Candidates`)."""

    def __init__(self, maps: ShedMaps, t_n: int):
        self.maps = maps
        self.t_n = t_n
        self.has_l = np.zeros((t_n, len(maps.first), 2), bool)   # lower / upper side
        self.has_v = np.zeros((t_n, len(maps.first) + 1, 2), bool)
        self.r_t, self.r_kind, self.r_j, self.r_side = (np.zeros(0, int) for _ in range(4))
        self.cand = Candidates(maps, t_n)

    @property
    def pull(self) -> np.ndarray:
        return self.cand.pull

    def add(self, p: np.ndarray, over, low, high) -> int:
        """Rows for violated limits not modelled yet (a branch on the side of its flow), and
        the candidates they open; returns how many."""
        n0 = len(self.r_t)
        t, j = np.nonzero(over)
        side = np.where(p[t, j] > 0, 1, -1)
        fresh = ~self.has_l[t, j, (side > 0).astype(int)]
        self._append(t[fresh], np.zeros(fresh.sum(), int), j[fresh], side[fresh])
        for mask, side in ((low, -1), (high, 1)):
            t, j = np.nonzero(mask & ~self.has_v[..., int(side > 0)])
            self._append(t, np.ones(len(t), int), j, np.full(len(t), side))
        self.cand.note(self.r_t[n0:], self.r_kind[n0:], self.r_j[n0:], self.r_side[n0:])
        return len(self.r_t) - n0

    def _append(self, t, kind, j, side) -> None:
        line = kind == 0
        self.has_l[t[line], j[line], (side[line] > 0).astype(int)] = True
        self.has_v[t[~line], j[~line], (side[~line] > 0).astype(int)] = True
        self.r_t, self.r_kind, self.r_j, self.r_side = (
            np.concatenate([a, b]) for a, b in ((self.r_t, t), (self.r_kind, kind),
                                                (self.r_j, j), (self.r_side, side)))

    def _entries(self, row0: int, c_t, c_b):
        """(row, candidate, coefficient on shed) of rows `row0`.. with the candidates of their
        MTU; curtailment takes the opposite coefficient."""
        ri, ci = pairs(self.r_t[row0:], c_t, self.t_n)
        ri = ri + row0
        kind, j, side, bus = self.r_kind[ri], self.r_j[ri], self.r_side[ri], c_b[ci]
        br = kind == 0
        coef = np.where(br, -side * self.maps.flow_effect(np.where(br, j, 0), bus),
                        side * 2.0 * self.maps.r[np.where(br, 0, j), bus])
        nz = coef != 0
        return ri[nz], ci[nz], coef[nz]

    def _rhs(self, p, w, p_lim, w_lo, w_hi) -> np.ndarray:
        rt, rj = self.r_t, self.r_j
        rb = self.r_kind == 0
        rl = np.where(rb, rj, 0)
        return np.where(rb, p_lim[rt, rl] - self.r_side * p[rt, rl],
                        np.where(self.r_side > 0, w_hi[rj] - w[rt, rj], w[rt, rj] - w_lo[rj]))

    def solve(self, p, w, p_lim, w_lo, w_hi, b_n) -> tuple[np.ndarray, np.ndarray]:
        """Solve the LP over every MTU's rows and candidates: (T, B) change per bus and (T,)
        MW-equivalent left unrestorable. Columns: a shed per candidate, then a curtailment
        per candidate, then an elastic slack per row."""
        maps = self.maps
        c_t, c_b = self.cand.current()
        ri, ci, coef = self._entries(0, c_t, c_b)
        rhs = self._rhs(p, w, p_lim, w_lo, w_hi)
        # Relief beyond what lies below a branch on a candidate's path reverses its flow.
        # Model those limits (on the side relief pushes towards) from the start where relief
        # could reach them: where the branch's room is below what relieving every violated
        # limit on its own at its best candidate would take in that MTU, an upper bound of
        # the relief needed. Waiting for each to break in turn takes a round per branch.
        need = np.where(rhs < -TOL, -rhs, 0.0)
        best = np.zeros(len(rhs))
        np.maximum.at(best, ri, np.abs(coef))
        bound = np.bincount(self.r_t, np.divide(need, best, out=np.zeros_like(need),
                                                where=best > 0), minlength=self.t_n)
        ci_, ai = np.nonzero(maps.ancestors[c_b] | (np.arange(len(maps.bus_end))[None, :]
                                                      == c_b[:, None]))
        t, j = c_t[ci_], ai - 1
        for side, pull in ((-1, 0), (1, 1)):
            room = p_lim[t, j] - side * p[t, j]
            k = self.pull[t, pull] & ~self.has_l[t, j, int(side > 0)] & (room < bound[t])
            if k.any():
                tj = np.unique(np.stack([t[k], j[k]]), axis=1)
                n0 = len(self.r_t)
                self._append(tj[0], np.zeros(tj.shape[1], int), tj[1],
                             np.full(tj.shape[1], side))
                r2, c2, v2 = self._entries(n0, c_t, c_b)
                ri, ci, coef = (np.concatenate([a, b]) for a, b in ((ri, r2), (ci, c2),
                                                                    (coef, v2)))
        n_c = len(c_t)
        rhs = self._rhs(p, w, p_lim, w_lo, w_hi)
        rt, rj = self.r_t, self.r_j
        rb = self.r_kind == 0
        # MW-equivalent of a row's unit: relief at the bus itself moves its squared voltage
        # by 2 R[b, b] per MW
        scale = np.where(rb, 1.0, 1.0 / np.maximum(2.0 * maps.r[rj, rj], 1e-9))
        live = ~_dominated_rows(rt, ri, ci, coef, rhs, c_t)
        k = live[ri]
        renum = np.cumsum(live) - 1
        a = sp.csr_array((np.concatenate([coef[k], -coef[k]]),
                          (np.concatenate([renum[ri[k]]] * 2),
                           np.concatenate([ci[k], n_c + ci[k]]))),
                         shape=(int(live.sum()), 2 * n_c))
        try:
            res = solve_lp(np.ones(2 * n_c), a_ub=a, b_ub=rhs[live], lower=np.zeros(2 * n_c),
                           upper=np.full(2 * n_c, np.inf), what="least load to shed",
                           presolve=False)
            res.x = np.concatenate([res.x, np.zeros(len(rhs))])
        except InfeasibleError:
            # no relief restores some limit: a slack per row (`ELASTIC`), and every row (one
            # row implies another only while neither can be left broken)
            n_r = len(rhs)
            rows = np.arange(n_r)
            a = sp.csr_array((np.concatenate([coef, -coef, -np.ones(n_r)]),
                              (np.concatenate([ri, ri, rows]),
                               np.concatenate([ci, n_c + ci, 2 * n_c + rows]))),
                             shape=(n_r, 2 * n_c + n_r))
            width = 2 * n_c + n_r
            res = solve_lp(np.concatenate([np.ones(2 * n_c), ELASTIC * scale]), a_ub=a,
                           b_ub=rhs, lower=np.zeros(width), upper=np.full(width, np.inf),
                           what="least load to shed (elastic)", presolve=False)
        y = np.zeros((self.t_n, b_n))
        np.add.at(y, (c_t, c_b), res.x[:n_c] - res.x[n_c:2 * n_c])
        left = np.bincount(rt, res.x[2 * n_c:] * scale, minlength=self.t_n)
        return y, np.where(left > TOL, left, 0.0)

"""The grid rows of a local flexibility market's clearing (`environment.markets.lfm.clear_lfm`)
and of the SmartNet schemes that clear against the distribution grid
(`environment.markets.tso_dso_lp`): generated as violations appear, with the DSO's last resort
as the columns after the offers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from environment.grid.shed import pairs

TOL = 1e-6
"""MW (flows) and squared p.u. (voltages) within which a limit holds."""
ELASTIC = 1.0
"""Cost per MW-equivalent of a limit left broken, against the last resort's per MW shed.
Elastic slacks are added only where an LP without them is infeasible (held reactive flows
alone can break a voltage band): a slack counts a row's violation as relief for that row
alone, so the LP still prefers relief that serves several limits, and what it optimises is
what it reports."""


class GridCuts:
    """The grid rows of an LFM clearing, generated as violations appear (constraint
    generation), and the columns they open after the offers. Row i reads
    sign * (base + sum coef * x) <= bound over the usable offers and those columns.

    The columns are the DSO's last resort at `relief_cost` per MWh: shedding load (up) or
    curtailing injection (down) without limit at a location, spread over its buses like its
    flexibility (the participation maps). They are what the DSO weighs buying against, so a
    violation costs what relieving it at one location costs, however many limits in series it
    breaks: the location-level form of the least load to shed. A row opens them where they
    relieve it (the direction that helps, at each location that moves it). Where even they
    cannot restore a limit (held reactive flows alone can break a voltage band), every row
    gets an elastic slack (`make_elastic`, `ELASTIC` per MW-equivalent).

    Rows are kept as arrays and made a whole round at a time with numpy: every violated branch
    (in the direction of its flow) and every bus below or above its voltage band that has no
    row yet, ordered by location, MTU and kind (branch, low, high voltage), then element.
    Adding all of them at once, not only the worst per MTU and location, matters under heavy
    congestion: a location's branches in series are relieved by different amounts, and one
    row per round left a winter clearing of a 1,000-household feeder unconverged after ten
    rounds, with violations the LP never saw."""

    def __init__(self, limits, offers, relief_cost: float = 0.0):
        """Rows against `limits` (`lfm.GridLimits`) over the usable `offers`
        (`lfm.FlexOffers`)."""
        self.lim = limits
        t_n, l_n = limits.base_p.shape
        b_n = limits.base_w.shape[1]
        self.p_lim = limits.p_lim()
        self.w_lo, self.w_hi = limits.v_min ** 2, limits.v_max ** 2
        self.o_k = offers.location
        self.o_d = np.where(offers.direction > 0, 0, 1)
        self.o_dir = offers.direction.astype(float)
        o_t = offers.mtu
        self.by_t = np.argsort(o_t, kind="stable")   # usable offers grouped by MTU
        count = np.bincount(o_t, minlength=t_n)
        self.t_count, self.t_start = count, np.cumsum(count) - count
        self.has_l = np.zeros((t_n, l_n, 2), bool)   # row exists for sign -1 (0) / +1 (1)
        self.has_v = np.zeros((t_n, b_n, 2), bool)   # row exists below (0) / above (1) band
        self.t = np.zeros(0, int)
        self.kind = np.zeros(0, int)   # 0 branch flow, 1 squared voltage
        self.j = np.zeros(0, int)
        self.sign = np.zeros(0)
        self.rhs = np.zeros(0)
        self._eff = np.zeros((0, limits.flow_per_mw.shape[1], 2))
        # per round: row, column (usable offer), coefficient
        self._entries = ([np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)])
        # the columns after the offers, in the order made: relief at (MTU, location, d: 0 up,
        # 1 down), or the elastic slack of row `x_row`; x_mw: MW(-equivalent) per unit
        self.relief_cost = relief_cost
        self.has_r = np.zeros((t_n, limits.flow_per_mw.shape[1], 2), bool)
        self.x_t, self.x_k, self.x_d, self.x_row = (np.zeros(0, int) for _ in range(4))
        self.x_mw, self.x_cost = np.zeros(0), np.zeros(0)
        self.elastic = False

    @property
    def n(self) -> int:
        return len(self.t)

    @property
    def n_extra(self) -> int:
        return len(self.x_t)

    def effects(self, rows: np.ndarray) -> np.ndarray:
        """(rows, K, 2) effect of one MW at each location and direction on each row's flow or
        squared voltage."""
        return self._eff[rows]

    def _gather(self, t: np.ndarray, kind: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(rows, K, 2) `effects` of new rows, read once from the maps: the rows' effects are
        asked for again every round (strided gathers from (T, K, 2, L) maps)."""
        out = np.empty((len(t), self.lim.flow_per_mw.shape[1], 2))
        line = kind == 0
        out[line] = self.lim.flow_per_mw[t[line], :, :, j[line]]
        out[~line] = self.lim.w_per_mw[t[~line], :, :, j[~line]]
        return out

    def add_violations(self, p: np.ndarray, w: np.ndarray, over: np.ndarray,
                       active: np.ndarray | None = None) -> int:
        """Add a row for every violated branch and bus limit that has none yet, at the MTUs
        `active` (default: all the limits hold), and the columns they open; returns how many
        rows."""
        line = over & ~np.where(p > 0, self.has_l[..., 1], self.has_l[..., 0])
        lo = (w < self.w_lo - TOL) & ~self.has_v[..., 0]
        hi = (w > self.w_hi + TOL) & ~self.has_v[..., 1]
        lo[:, 0] = hi[:, 0] = False
        if active is not None:
            line &= active[:, None]
            lo &= active[:, None]
            hi &= active[:, None]
        if not (line.any() or lo.any() or hi.any()):   # the usual last round: nothing new
            return 0
        line_sign = np.where(p > 0, 1.0, -1.0)
        found = []   # (location, MTU, order, kind, element, sign)
        for order, (mask, where) in enumerate(((line, self.lim.branch_location),
                                               (lo, self.lim.bus_location),
                                               (hi, self.lim.bus_location))):
            t, j = np.nonzero(mask)
            sign = line_sign[t, j] if order == 0 else np.full(len(t), 2.0 * order - 3.0)
            found.append((where[j], t, np.full(len(t), order), np.full(len(t), min(order, 1)),
                          j, sign))
        k, t, order, kind, j, sign = (np.concatenate(x) for x in zip(*found, strict=True))
        if not len(t):
            return 0
        o = np.lexsort((j, order, t, k))
        r0 = self.n
        self._add(t[o], kind[o], j[o], sign[o])
        self._open(np.arange(r0, self.n))
        return len(o)

    def _open(self, rows: np.ndarray) -> None:
        """Relief columns the new `rows` need (where one MW there moves the row towards its
        bound), and their elastic slacks once the LP has needed them."""
        # coefficient of relief in the row: -sign * direction * effect of more consumption
        coef = -self.sign[rows][:, None, None] * np.array([1.0, -1.0]) * self.effects(rows)
        r, k, d = np.nonzero(coef < -1e-12)
        t = self.t[rows][r]
        fresh = np.zeros(self.has_r.shape, bool)
        fresh[t, k, d] = ~self.has_r[t, k, d]
        t, k, d = np.nonzero(fresh)
        self.has_r[t, k, d] = True
        self._extend(t, k, d, np.full(len(t), -1), np.ones(len(t)),
                     np.full(len(t), self.relief_cost))
        if self.elastic:
            self._elastic(rows)

    def _extend(self, t, k, d, row, mw, cost) -> None:
        self.x_t, self.x_k, self.x_d, self.x_row, self.x_mw, self.x_cost = (
            np.concatenate([a, b]) for a, b in ((self.x_t, t), (self.x_k, k), (self.x_d, d),
                                                (self.x_row, row), (self.x_mw, mw),
                                                (self.x_cost, cost)))

    def make_elastic(self) -> None:
        """From now on every row has an elastic slack. Called when an LP without them is
        infeasible: no relief restores some limit."""
        if not self.elastic:
            self.elastic = True
            self._elastic(np.arange(self.n))

    def _elastic(self, rows: np.ndarray) -> None:
        # MW-equivalent of a row's unit: the largest effect of one MW at any location
        unit = 1.0 / np.maximum(np.abs(self.effects(rows)).max(axis=(1, 2)), 1e-9)
        z = np.zeros(len(rows), int)
        self._extend(self.t[rows], z, z, rows, unit, self.relief_cost * ELASTIC * unit)

    def relief_moves(self, x: np.ndarray) -> np.ndarray:
        """(T, K, 2) MW of less (0) and more (1) consumption from relief column values `x`."""
        out = np.zeros(self.has_r.shape)
        r = self.x_row < 0
        np.add.at(out, (self.x_t[r], self.x_k[r], self.x_d[r]), x[r])
        return out

    def unresolved_mw(self, x: np.ndarray) -> float:
        """MW (summed over MTUs) of relief, and MW-equivalents of limits left broken."""
        return float(x @ self.x_mw)

    def new_columns(self, col0: int, rows: int):
        """Columns `col0`.. for `WarmLP.add_cols`: cost, bounds and their entries in the LP's
        first `rows` rows."""
        n = self.n_extra - col0
        return (self.x_cost[col0:], np.zeros(n), np.full(n, np.inf),
                self.extra_matrix(0, col0, rows))

    def extra_matrix(self, row0: int, col0: int = 0, row1: int | None = None) -> sp.csr_array:
        """Entries of the columns `col0`.. on rows `row0`..`row1` (default: every row)."""
        row1 = self.n if row1 is None else row1
        rows = np.arange(row0, row1)
        xt, xk, xd, xr = self.x_t[col0:], self.x_k[col0:], self.x_d[col0:], self.x_row[col0:]
        relief = np.flatnonzero(xr < 0)
        ri, ci = pairs(self.t[rows], xt[relief], self.has_r.shape[0])
        ci = relief[ci]
        eff = self._eff[rows[ri], xk[ci], xd[ci]]
        val = -self.sign[rows[ri]] * np.where(xd[ci] == 0, 1.0, -1.0) * eff
        nz = np.abs(val) > 0
        el = np.flatnonzero((xr >= row0) & (xr < row1))
        return sp.csr_array((np.concatenate([val[nz], -np.ones(len(el))]),
                             (np.concatenate([ri[nz], xr[el] - row0]),
                              np.concatenate([ci[nz], el]))),
                            shape=(row1 - row0, len(xt)))

    def _add(self, t, kind, j, sign) -> None:
        lim = self.lim
        line = kind == 0
        self.has_l[t[line], j[line], (sign[line] > 0).astype(int)] = True
        self.has_v[t[~line], j[~line], (sign[~line] > 0).astype(int)] = True
        v = ~line
        base, bound = np.empty(len(t)), np.empty(len(t))
        base[line] = sign[line] * lim.base_p[t[line], j[line]]
        bound[line] = self.p_lim[t[line], j[line]]
        base[v] = sign[v] * lim.base_w[t[v], j[v]]
        bound[v] = np.where(sign[v] < 0, -self.w_lo[j[v]], self.w_hi[j[v]])
        # entries: every usable offer of the row's MTU, in offer order
        count = self.t_count[t]
        row = np.repeat(np.arange(len(t)), count)
        within = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
        pos = self.by_t[np.repeat(self.t_start[t], count) + within]
        k, d = self.o_k[pos], self.o_d[pos]
        value = np.empty(len(row))
        lr = line[row]
        value[lr] = lim.flow_per_mw[t[row[lr]], k[lr], d[lr], j[row[lr]]]
        value[~lr] = lim.w_per_mw[t[row[~lr]], k[~lr], d[~lr], j[row[~lr]]]
        self._entries[0].append(self.n + row)
        self._entries[1].append(pos)
        self._entries[2].append(-sign[row] * self.o_dir[pos] * value)
        self.t = np.concatenate([self.t, t])
        self.kind = np.concatenate([self.kind, kind])
        self.j = np.concatenate([self.j, j])
        self.sign = np.concatenate([self.sign, sign])
        self.rhs = np.concatenate([self.rhs, bound - base])
        self._eff = np.concatenate([self._eff, self._gather(t, kind, j)])

    def offer_matrix(self, n_u: int, start: int = 0) -> sp.csr_array:
        """Rows `start`.. over the usable offers."""
        row, col, val = (np.concatenate(x) for x in self._entries)
        keep = row >= start
        return sp.csr_array((val[keep], (row[keep] - start, col[keep])),
                            shape=(self.n - start, n_u))

    def matrix(self, n_u: int, start: int = 0) -> sp.csr_array:
        """Rows `start`.. over the usable offers and every column after them."""
        return sp.hstack([self.offer_matrix(n_u, start), self.extra_matrix(start)],
                         format="csr")

"""The perfect-foresight, grid-constrained social planner (one sparse LP per day, HiGHS).

The planner sees the realised day (no forecast error) and dispatches producers and every
device the markets can move (the aggregators' batteries, EVs and heat pumps, pooled per bus),
and may curtail PV or shed load (at the value of lost load) as the DSO can in RED and BLACK,
to minimise real cost: fuel, battery wear, emergency assistance and unserved energy. Devices
no market controls (un-enrolled prosumers) run exactly as in the simulation. Because enrolled
batteries return to their start each day and EV/heat-pump envelopes are daily, the week's
problem separates exactly into one LP per day.

Grid limits (LinDistFlow branch loading and bus voltages) are soft: a violation costs the value
of lost load per MW of the least load to shed (or injection to curtail) that would remove it,
the measure of `environment.grid.shed` that the run's own violations are charged by, so the two
are on one scale. The planner's relief variables enter the grid rows only, not the energy
balance, exactly as that measure does. Limits are added by constraint generation: solve, check
all limits, add the violated ones, repeat (up to MAX_ROUNDS; a run that stops there with a
limit still violated is reported, not hidden).

The LP is stated directly as sparse matrices, built in whole blocks, and kept in one `WarmLP`:
each round appends its grid rows (and the relief columns of MTUs that get their first row) and
re-solves from the last basis. Stating it in Pyomo cost some ten times what HiGHS takes to
solve it; that statement is kept as a cross-check in `tests/planner_pyomo.py`.

On grids the flow model handles by tree sweeps (above `DENSE_MAX_BUS` buses: the `region`)
the first solve, nine tenths of the day there, starts from the basis of
`environment.planner_start` instead of the slack basis; smaller grids solve as before, to the
bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from environment.planner_start import price_taker_basis
from environment.solver import WarmLP

MAX_ROUNDS = 12
TOL = 1e-6
# Option sets HiGHS retries with, from scratch, should a solve end without an optimum for
# numerical reasons: with presolve, then by the interior point method with crossover.
RETRIES = ({"presolve": "on"}, {"solver": "ipm", "run_crossover": "on"})


@dataclass
class PlannerDay:
    """Inputs of one day, MW per MTU unless stated."""

    dt_h: float
    fixed_bus_mw: np.ndarray          # (T, B) consumption no market controls
    pv_bus_mw: np.ndarray             # (T, B) PV output in it, which the planner may curtail
    q_bus_mvar: np.ndarray            # (T, B) reactive consumption (held at the run's)
    system_load_mw: np.ndarray        # (T,)
    gen_cost: np.ndarray              # (G,)
    gen_avail_mw: np.ndarray          # (G, T)
    battery: dict                     # bus -> (mwh, mw, soc0, eta)
    ev: dict                          # bus -> (lower, upper, pmax) cumulative MWh / MW
    hp: dict
    degradation: dict                 # bus -> EUR/MWh battery wear
    emergency_up_price: float
    emergency_down_price: float
    value_of_load: float
    # (T, B) the grid's background (`grid.background`): in the grid rows only, its energy is
    # the national load's, as in the simulation
    background_bus_mw: np.ndarray | None = None


@dataclass
class PlannerResult:
    cost: float
    fuel: float
    wear: float
    emergency: float
    unserved_cost: float
    rounds: int
    grid_constraints: int
    converged: bool = True        # False: stopped at MAX_ROUNDS with a limit still violated
    load_to_shed_mwh: float = 0.0  # the grid violations it kept, as load to shed (at VoLL)


def solve_day(day: PlannerDay, flow, v_min: np.ndarray, v_max: np.ndarray,
              loading_limit: float, grid_constrained: bool) -> PlannerResult:
    lp = _DayLP(day, grid_constrained, start=not getattr(flow, "dense", True))
    x = lp.solve(1)
    rounds, converged, added = 1, True, 0
    if grid_constrained:
        limits = _GridLimits(day, flow, v_min, v_max, loading_limit)
        while (rows := limits.violated(lp.net_mw(x))) is not None:
            if rounds >= MAX_ROUNDS:
                converged = False
                break
            lp.add_grid_rows(*rows)
            added += len(rows[0])
            rounds += 1
            x = lp.solve(rounds)
    return lp.result(x, rounds, added, converged)


class _Columns:
    """The LP's columns, appended in blocks of (entity, MTU) entity-major, with bounds and
    costs; `add` returns the block's column indices in that shape."""

    def __init__(self):
        self.n = 0
        self.lower, self.upper, self.cost = [], [], []

    def add(self, lower, upper, cost=0.0) -> np.ndarray:
        lower, upper, cost = np.broadcast_arrays(*(np.asarray(v, float)
                                                   for v in (lower, upper, cost)))
        for out, v in ((self.lower, lower), (self.upper, upper), (self.cost, cost)):
            out.append(v.ravel())
        idx = self.n + np.arange(lower.size).reshape(lower.shape)
        self.n += lower.size
        return idx

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.concatenate(v) for v in (self.cost, self.lower, self.upper))


def _pooled(envelopes: dict, t_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Buses and (k, T) lower, upper cumulative energy and power limit of pooled envelopes."""
    buses = np.array(sorted(envelopes), int)
    rows = [envelopes[b] for b in buses]
    lo, up, pmax = (np.array([r[i] for r in rows], float).reshape(len(buses), t_n)
                    for i in range(3))
    return buses, lo, up, pmax


def _cumulative_rows(level, start, terms) -> tuple:
    """COO entries of level[i, t] = level[i, t-1] (start[i] before the first MTU)
    + sum of coef[i] * column[i, t] over `terms` (column, coef), rows entity-major from 0;
    returns (rows, cols, values, right-hand side)."""
    k, t_n = level.shape
    row = np.arange(k * t_n).reshape(k, t_n)
    rows = [row, row[:, 1:]] + [row] * len(terms)
    cols = [level, level[:, :-1]] + [col for col, _ in terms]
    vals = [np.ones((k, t_n)), -np.ones((k, t_n - 1))] + [
        np.broadcast_to(-np.asarray(coef, float).reshape(-1, 1), (k, t_n)) for _, coef in terms]
    rhs = np.zeros((k, t_n))
    rhs[:, 0] = start
    return (np.concatenate([r.ravel() for r in rows]), np.concatenate([c.ravel() for c in cols]),
            np.concatenate([v.ravel() for v in vals]), rhs.ravel())


class _DayLP:
    """The day's LP in a `WarmLP`: producers, emergency energy up and down, pooled batteries,
    EVs and heat pumps per bus, PV curtailment and load shedding, one energy balance per MTU;
    grid rows and per-MTU relief columns are appended by constraint generation."""

    def __init__(self, day: PlannerDay, grid_constrained: bool, start: bool = False):
        self.day = day
        self.t_n, self.b_n = day.fixed_bus_mw.shape
        self.relief_cost = day.value_of_load * day.dt_h
        col = _Columns()
        buses = self._columns(col, grid_constrained)
        self.n_base = col.n
        # net consumption per (MTU, bus) the dispatch adds to the fixed part
        self.flex = _flex_map(self.t_n, self.b_n, col.n, [
            (buses["battery"], self.ch, 1.0), (buses["battery"], self.dis, -1.0),
            (buses["ev"], self.ev, 1.0), (buses["hp"], self.hp, 1.0),
            (buses["pv"], self.pvc, 1.0), (buses["shed"], self.shed, -1.0)])
        a, rhs = self._rows(col.n)
        cost, lower, upper = col.arrays()
        # without presolve: HiGHS's presolve of this LP costs more than the simplex
        # iterations it saves (some 30% of a day's solve on the default scenario)
        self.lp = WarmLP(cost, a, rhs, rhs, lower, upper, "planner LP", presolve=False)
        if start:
            self.lp.set_basis(*price_taker_basis(sp.csr_array(a), cost, lower, upper, rhs,
                                                 self._blocks(), np.vstack([self.gen,
                                                                            self.em[:1]])))
        self.relief_start = np.full(self.t_n, -1)  # first relief column of each MTU with one

    def _columns(self, col: _Columns, grid_constrained: bool) -> dict:
        """Every column but relief, block by block; returns the buses of each pooled kind."""
        day, t_n, dt = self.day, self.t_n, self.day.dt_h
        self.gen = col.add(0.0, day.gen_avail_mw, (day.gen_cost * dt)[:, None])
        self.em = col.add(np.zeros((2, t_n)), np.inf, np.array([
            [day.emergency_up_price * dt], [-day.emergency_down_price * dt]]))
        bb = np.array(sorted(day.battery), int)
        self.mwh, mw, self.soc0, self.eta = (
            np.array([day.battery[b][i] for b in bb], float) for i in range(4))
        wear = np.array([day.degradation[b] for b in bb], float)[:, None] * dt
        self.ch = col.add(np.zeros((len(bb), t_n)), mw[:, None], wear)
        self.dis = col.add(np.zeros((len(bb), t_n)), mw[:, None], wear)
        soc_lo = np.zeros((len(bb), t_n))
        soc_hi = np.repeat(self.mwh[:, None], t_n, axis=1)
        soc_lo[:, -1] = soc_hi[:, -1] = self.soc0   # back to the start at the end of the day
        self.soc = col.add(soc_lo, soc_hi)
        be, ev_lo, ev_up, ev_p = _pooled(day.ev, t_n)
        self.ev, self.evc = col.add(0.0, ev_p), col.add(ev_lo, ev_up)
        bh, hp_lo, hp_up, hp_p = _pooled(day.hp, t_n)
        self.hp, self.hpc = col.add(0.0, hp_p), col.add(hp_lo, hp_up)
        load = np.clip(day.fixed_bus_mw + day.pv_bus_mw, 0, None)
        none = np.zeros(0, int)
        bp = np.flatnonzero(day.pv_bus_mw.max(0) > 0) if grid_constrained else none
        bs = np.flatnonzero(load.max(0) > 0) if grid_constrained else none
        self.pvc = col.add(0.0, day.pv_bus_mw[:, bp].T)
        self.shed = col.add(0.0, load[:, bs].T, self.relief_cost)
        return {"battery": bb, "ev": be, "hp": bh, "pv": bp, "shed": bs}

    def _blocks(self) -> list:
        """Each device pool's state rows and columns (batteries, EVs, heat pumps, in the
        order `_rows` states them)."""
        t_n, out, start = self.t_n, [], 0
        for cols in (np.concatenate([self.ch, self.dis, self.soc], axis=1),
                     np.concatenate([self.ev, self.evc], axis=1),
                     np.concatenate([self.hp, self.hpc], axis=1)):
            out += [(np.arange(start + i * t_n, start + (i + 1) * t_n), c)
                    for i, c in enumerate(cols)]
            start += len(cols) * t_n
        return out

    def _rows(self, n: int) -> tuple[sp.csc_array, np.ndarray]:
        """States of charge and cumulative EV and heat-pump energy per device pool and MTU,
        then the energy balance per MTU, all equalities: the matrix and right-hand side."""
        dt, day = self.day.dt_h, self.day
        k_e, k_h = len(self.ev), len(self.hp)
        storage = [(self.soc, self.soc0, [(self.ch, self.eta * dt),
                                          (self.dis, -(1.0 / self.eta) * dt)]),
                   (self.evc, np.zeros(k_e), [(self.ev, np.full(k_e, dt))]),
                   (self.hpc, np.zeros(k_h), [(self.hp, np.full(k_h, dt))])]
        mats, rhs = [], []
        for level, start, terms in storage:
            r, c, v, b = _cumulative_rows(level, start, terms)
            mats.append(sp.csr_array((v, (r, c)), shape=(len(b), n)))
            rhs.append(b)
        mats.append(self._balance(n))
        rhs.append(day.fixed_bus_mw.sum(1) + day.system_load_mw)
        return sp.vstack(mats, format="csc"), np.concatenate(rhs)

    def _balance(self, n: int) -> sp.csr_array:
        """Generation plus emergency energy in less out equals consumption, per MTU."""
        t = np.arange(self.t_n)
        g = self.gen
        gen = sp.csr_array((np.concatenate([np.ones(g.size), [1.0] * self.t_n,
                                            [-1.0] * self.t_n]),
                            (np.concatenate([np.broadcast_to(t, g.shape).ravel(), t, t]),
                             np.concatenate([g.ravel(), self.em[0], self.em[1]]))),
                           shape=(self.t_n, n))
        per_mtu = sp.kron(sp.eye_array(self.t_n), np.ones((1, self.b_n)), format="csr")
        return (gen - per_mtu @ self.flex).tocsr()

    def solve(self, round_: int) -> np.ndarray:
        self.lp.what = f"planner LP (round {round_})"
        return self.lp.solve(fallbacks=RETRIES).x

    def net_mw(self, x: np.ndarray) -> np.ndarray:
        """(T, B) net consumption of the solution as the grid sees it: the fixed part, the
        dispatch, the background and the virtual relief (the last two in the grid rows only)."""
        p = self.day.fixed_bus_mw + (self.flex @ x[:self.n_base]).reshape(self.t_n, self.b_n)
        if self.day.background_bus_mw is not None:
            p += self.day.background_bus_mw
        has = np.flatnonzero(self.relief_start >= 0)
        pairs = x[self.relief_start[has][:, None] + np.arange(2 * (self.b_n - 1))]
        p[has, 1:] -= pairs[:, 0::2] - pairs[:, 1::2]
        return p

    def add_grid_rows(self, mtu: np.ndarray, coef: np.ndarray, upper: np.ndarray) -> None:
        """Rows coef[k] @ (dispatch - relief)[mtu[k]] <= upper[k] over the buses; the MTUs
        that get their first row get relief columns (shed, curtail) at every non-slack bus,
        costed at the value of lost load."""
        self._add_relief(mtu)
        k, b = np.nonzero(coef)
        c = coef[k, b]
        pick = sp.csr_array((c, (k, mtu[k] * self.b_n + b)),
                            shape=(len(mtu), self.t_n * self.b_n))
        slack = b == 0
        k, b, c = k[~slack], b[~slack], c[~slack]
        shed = self.relief_start[mtu[k]] + 2 * (b - 1) - self.n_base
        relief = sp.csr_array((np.concatenate([-c, c]), (np.concatenate([k, k]),
                                                         np.concatenate([shed, shed + 1]))),
                              shape=(len(mtu), self.lp.lower.size - self.n_base))
        self.lp.add_rows(sp.hstack([pick @ self.flex, relief], format="csr"),
                         np.full(len(mtu), -np.inf), upper)

    def _add_relief(self, mtu: np.ndarray) -> None:
        """Relief columns, (shed, curtail) per non-slack bus, for the MTUs in `mtu` without
        them, in the order they first appear."""
        first = mtu[np.sort(np.unique(mtu, return_index=True)[1])]
        new = first[self.relief_start[first] < 0]
        if len(new):
            width = 2 * (self.b_n - 1)
            self.relief_start[new] = self.lp.lower.size + width * np.arange(len(new))
            n = width * len(new)
            self.lp.add_cols(np.full(n, self.relief_cost), np.zeros(n), np.full(n, np.inf))

    def result(self, x, rounds: int, grid_constraints: int, converged: bool) -> PlannerResult:
        c = self.lp.c

        def part(*blocks):
            idx = np.concatenate([b.ravel() for b in blocks])
            return float(c[idx] @ x[idx])

        relief = x[self.n_base:]
        fuel, wear, emergency = part(self.gen), part(self.ch, self.dis), part(self.em)
        unserved = part(self.shed) + float(c[self.n_base:] @ relief)
        return PlannerResult(
            cost=fuel + wear + emergency + unserved, fuel=fuel, wear=wear, emergency=emergency,
            unserved_cost=unserved, rounds=rounds, grid_constraints=grid_constraints,
            converged=converged, load_to_shed_mwh=float(relief.sum()) * self.day.dt_h)


def _flex_map(t_n: int, b_n: int, n: int, blocks: list) -> sp.csr_array:
    """(T * B, n) map of the columns to net consumption per (MTU, bus): each block is its
    buses, its (k, T) column indices and the sign it enters with."""
    rows, cols, vals = [], [], []
    for buses, idx, sign in blocks:
        rows.append((np.arange(t_n)[None, :] * b_n + buses[:, None]).ravel())
        cols.append(idx.ravel())
        vals.append(np.full(idx.size, sign))
    return sp.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(t_n * b_n, n))


class _GridLimits:
    """The LinDistFlow limits checked after each round: branch loading (in the direction of
    the flow) and bus voltages outside the band, each added once per direction (a later round
    may push a flow past its limit the other way), as rows over net
    consumption per bus (`coef @ p[t] <= bound`), the fixed consumption moved to the bound."""

    def __init__(self, day: PlannerDay, flow, v_min, v_max, loading_limit: float):
        self.flow, self.q = flow, day.q_bus_mvar
        self.fixed = day.fixed_bus_mw if day.background_bus_mw is None \
            else day.fixed_bus_mw + day.background_bus_mw
        self.s_max = flow.grid.s_max_mva * loading_limit
        self.v_min, self.v_max = np.asarray(v_min, float), np.asarray(v_max, float)
        t_n, b_n = day.fixed_bus_mw.shape
        self.line_added = np.zeros((2, t_n, b_n - 1), bool)   # forward, reverse
        self.volt_added = np.zeros((2, t_n, b_n), bool)   # under-, overvoltage

    def violated(self, p: np.ndarray):
        """(mtu, coef, bound) of the limits `p` violates that have no row yet (branches,
        then under- and overvoltages, each MTU-major), or None if there are none."""
        res = self.flow.solve(p, self.q)
        branches, voltages = self._branch_rows(res), self._voltage_rows(res)
        if not len(branches[0]) and not len(voltages[0]):
            return None
        mtu, coef, bound = (np.concatenate(v) for v in zip(branches, voltages, strict=True))
        return mtu, coef, bound - np.einsum("kb,kb->k", coef, self.fixed[mtu])

    def _branch_rows(self, res) -> tuple:
        """sign p_branch <= the active power left beside the reactive flow under the
        limit, sign the direction of the violating flow."""
        p_lim = np.sqrt(np.clip(self.s_max[None, :] ** 2 - res.q_mvar ** 2, 0, None))
        over = np.stack([res.p_mw > p_lim + TOL, res.p_mw < -p_lim - TOL])
        side, t, line = np.nonzero(over & ~self.line_added)
        order = np.lexsort((line, t))             # MTU-major, as the other rows
        side, t, line = side[order], t[order], line[order]
        self.line_added[side, t, line] = True
        sign = np.where(side == 0, 1.0, -1.0)
        return t, sign[:, None] * self.flow.downstream_rows(line), p_lim[t, line]

    def _voltage_rows(self, res) -> tuple:
        """w = w0 - 2 (R p + X q) within the band: sign (R p)[bus] <= sign ((w0 - edge^2) / 2
        - (X q)[bus]), sign +1 below the band (edge v_min), -1 above it (edge v_max)."""
        w = res.v_pu ** 2
        outside = np.stack([w < self.v_min[None, :] ** 2 - TOL,
                            w > self.v_max[None, :] ** 2 + TOL])
        outside[:, :, 0] = False
        side, t, bus = np.nonzero(outside & ~self.volt_added)
        self.volt_added[side, t, bus] = True
        sign = np.where(side == 0, 1.0, -1.0)
        edge = np.where(side == 0, self.v_min[bus], self.v_max[bus])
        limit = (self.flow.w0[bus] - edge ** 2) / 2 \
            - np.einsum("kb,kb->k", self.flow.x_rows(bus), self.q[t])
        return t, sign[:, None] * self.flow.r_rows(bus), sign * limit

"""The planner's day LP as it was first written, in Pyomo: a reference for the sparse
statement of `environment.planner` (tests/test_planner.py) and the old side of
bench/planner.py, not used by the simulation. Same variables, bounds, objective and
constraint generation; every round Pyomo's persistent HiGHS interface hands it the grown
model."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory

from environment.planner import MAX_ROUNDS, TOL, PlannerDay, PlannerResult
from environment.solver import InfeasibleError, highs_options, timed

RETRIES = ({}, {"presolve": "off"}, {"solver": "ipm", "run_crossover": "on"})


def solve_day(day: PlannerDay, flow, v_min: np.ndarray, v_max: np.ndarray,
              loading_limit: float, grid_constrained: bool) -> PlannerResult:
    t_n, b_n = day.fixed_bus_mw.shape
    dt = day.dt_h
    m = pyo.ConcreteModel()
    T = range(t_n)
    G = range(len(day.gen_cost))
    Bb, Be, Bh = sorted(day.battery), sorted(day.ev), sorted(day.hp)
    m.g = pyo.Var(G, T, bounds=lambda _, g, t: (0, day.gen_avail_mw[g, t]))
    m.em_up = pyo.Var(T, within=pyo.NonNegativeReals)
    m.em_dn = pyo.Var(T, within=pyo.NonNegativeReals)
    bat = day.battery
    m.ch = pyo.Var(Bb, T, bounds=lambda _, b, t: (0, bat[b][1]))
    m.dis = pyo.Var(Bb, T, bounds=lambda _, b, t: (0, bat[b][1]))
    m.soc = pyo.Var(Bb, T, bounds=lambda _, b, t: (bat[b][2], bat[b][2]) if t == t_n - 1
                    else (0, bat[b][0]))
    m.ev = pyo.Var(Be, T, bounds=lambda _, b, t: (0, day.ev[b][2][t]))
    m.evc = pyo.Var(Be, T, bounds=lambda _, b, t: (day.ev[b][0][t], day.ev[b][1][t]))
    m.hp = pyo.Var(Bh, T, bounds=lambda _, b, t: (0, day.hp[b][2][t]))
    m.hpc = pyo.Var(Bh, T, bounds=lambda _, b, t: (day.hp[b][0][t], day.hp[b][1][t]))
    Bp = [int(b) for b in np.flatnonzero(day.pv_bus_mw.max(0) > 0)] if grid_constrained else []
    m.pvc = pyo.Var(Bp, T, bounds=lambda _, b, t: (0, day.pv_bus_mw[t, b]))
    load = np.clip(day.fixed_bus_mw + day.pv_bus_mw, 0, None)
    Bs = [int(b) for b in np.flatnonzero(load.max(0) > 0)] if grid_constrained else []
    m.shed = pyo.Var(Bs, T, bounds=lambda _, b, t: (0, load[t, b]))

    def prev(var, b, t, start):
        return var[b, t - 1] if t > 0 else start

    m.soc_eq = pyo.Constraint(Bb, T, rule=lambda _, b, t: m.soc[b, t] == prev(
        m.soc, b, t, bat[b][2]) + (bat[b][3] * m.ch[b, t] - m.dis[b, t] / bat[b][3]) * dt)
    m.ev_eq = pyo.Constraint(Be, T, rule=lambda _, b, t: m.evc[b, t] == prev(
        m.evc, b, t, 0.0) + m.ev[b, t] * dt)
    m.hp_eq = pyo.Constraint(Bh, T, rule=lambda _, b, t: m.hpc[b, t] == prev(
        m.hpc, b, t, 0.0) + m.hp[b, t] * dt)

    def flex(b, t):
        e = 0
        if b in bat:
            e = e + m.ch[b, t] - m.dis[b, t]
        if b in day.ev:
            e = e + m.ev[b, t]
        if b in day.hp:
            e = e + m.hp[b, t]
        if b in pv_set:
            e = e + m.pvc[b, t]
        if b in shed_set:
            e = e - m.shed[b, t]
        return e

    pv_set, shed_set = set(Bp), set(Bs)
    flex_buses = sorted(set(Bb) | set(Be) | set(Bh) | pv_set | shed_set)
    fixed_total = day.fixed_bus_mw.sum(1) + day.system_load_mw
    m.balance = pyo.Constraint(T, rule=lambda _, t: sum(m.g[g, t] for g in G) + m.em_up[t]
                               - m.em_dn[t] == fixed_total[t] + sum(flex(b, t)
                                                                     for b in flex_buses))
    m.grid = pyo.ConstraintList()
    # Grid limits are soft in the measure of `environment.grid.shed`: a violation costs the
    # value of lost load per MW of the least load to shed (or injection to curtail) that
    # restores it, a change at any bus that enters the grid rows but not the energy balance,
    # on the same scale as the run's own violations.
    m.virtual = pyo.VarList(domain=pyo.NonNegativeReals)
    virtual: dict[int, list] = {}   # MTU -> per bus (shed, curtail) variables, slack excluded

    def relief(t: int) -> list:
        if t not in virtual:
            virtual[t] = [None] + [(m.virtual.add(), m.virtual.add()) for _ in range(1, b_n)]
        return virtual[t]

    fuel = sum(day.gen_cost[g] * m.g[g, t] for g in G for t in T) * dt
    wear = sum(day.degradation[b] * (m.ch[b, t] + m.dis[b, t]) for b in Bb for t in T) * dt
    emerg = sum(day.emergency_up_price * m.em_up[t] - day.emergency_down_price * m.em_dn[t]
                for t in T) * dt
    shed_cost = day.value_of_load * dt * sum(m.shed[b, t] for b in Bs for t in T)
    m.unserved = pyo.Expression(expr=shed_cost)
    m.obj = pyo.Objective(expr=fuel + wear + emerg + m.unserved, sense=pyo.minimize)
    solver = SolverFactory("highs")

    def run():
        """Solve; on a numerical failure retry without presolve, then with the interior point
        method (HiGHS occasionally gives up on the grown constraint-generation models)."""
        status = None
        for options in RETRIES:
            res = timed(solver.solve, m, load_solutions=False,
                        solver_options={**highs_options(), **options},
                        raise_exception_on_nonoptimal_result=False)
            status = str(res.termination_condition).split(".")[-1]
            if status == "convergenceCriteriaSatisfied":
                res.solution_loader.load_vars()
                return
        raise InfeasibleError(f"planner LP (round {rounds}): {status} after {len(RETRIES)} "
                              "attempts")

    rounds, added = 1, set()
    run()
    converged = True
    if grid_constrained:
        sens_d = flow.grid.downstream  # (L, B)
        sens = flow.sensitivities()
        r_mat, x_mat = sens.R, sens.X
        s_max = flow.grid.s_max_mva * loading_limit
        while True:
            p = day.fixed_bus_mw + _flex_values(m, flex_buses, b_n, t_n) \
                - _virtual_values(virtual, b_n, t_n)
            res = flow.solve(p, day.q_bus_mvar)
            p_lim = np.sqrt(np.clip(s_max[None, :] ** 2 - res.q_mvar ** 2, 0, None))
            w = res.v_pu ** 2
            lines = [(int(t), int(line)) for t, line in
                     zip(*np.nonzero(np.abs(res.p_mw) > p_lim + TOL), strict=True)
                     if ("l", int(t), int(line), res.p_mw[t, line] > 0) not in added]
            volts = [(int(t), int(bus), sign) for sign, mask in
                     ((1.0, w < v_min[None, :] ** 2 - TOL), (-1.0, w > v_max[None, :] ** 2 + TOL))
                     for t, bus in zip(*np.nonzero(mask), strict=True)
                     if bus != 0 and ("v", int(t), int(bus), sign) not in added]
            if not lines and not volts:
                break
            if rounds >= MAX_ROUNDS:
                converged = False
                break
            for t, line in lines:
                added.add(("l", t, line, res.p_mw[t, line] > 0))
                buses = np.flatnonzero(sens_d[line])
                v = relief(t)
                fixed = float(day.fixed_bus_mw[t, buses].sum())
                expr = fixed + sum(flex(b, t) for b in flex_buses if b in set(buses)) \
                    - sum(v[b][0] - v[b][1] for b in buses)
                sign = 1.0 if res.p_mw[t, line] > 0 else -1.0
                m.grid.add(sign * expr <= p_lim[t, line])
            for t, bus, sign in volts:
                added.add(("v", t, bus, sign))
                v = relief(t)
                bound = v_min if sign > 0 else v_max
                w0 = float(sens.w0[bus])
                rq = float(x_mat[bus] @ day.q_bus_mvar[t])
                fixed = float(r_mat[bus] @ day.fixed_bus_mw[t])
                expr = fixed + sum(float(r_mat[bus, b]) * flex(b, t) for b in flex_buses) \
                    - sum(float(r_mat[bus, b]) * (v[b][0] - v[b][1])
                          for b in range(1, b_n) if r_mat[bus, b] > 0)
                limit = (w0 - bound[bus] ** 2) / 2 - rq
                m.grid.add(sign * expr <= sign * limit)
            m.unserved.expr = shed_cost + day.value_of_load * dt * sum(
                m.virtual[i] for i in m.virtual)
            run()
            rounds += 1
    val = pyo.value
    return PlannerResult(
        cost=float(val(m.obj)), fuel=float(val(fuel)), wear=float(val(wear)),
        emergency=float(val(emerg)), unserved_cost=float(val(m.unserved)),
        rounds=rounds, grid_constraints=len(added), converged=converged,
        load_to_shed_mwh=float(sum(pyo.value(m.virtual[i]) for i in m.virtual)) * dt)


def _virtual_values(virtual: dict, b_n: int, t_n: int) -> np.ndarray:
    """(T, B) net virtual relief (shed less curtailment) of the solved model."""
    out = np.zeros((t_n, b_n))
    for t, pairs in virtual.items():
        for b in range(1, b_n):
            out[t, b] = (pairs[b][0].value or 0.0) - (pairs[b][1].value or 0.0)
    return out


def _flex_values(m, flex_buses, b_n, t_n) -> np.ndarray:
    out = np.zeros((t_n, b_n))
    for name in ("ch", "ev", "hp", "pvc"):
        var = getattr(m, name)
        for (b, t), v in var.get_values().items():
            out[t, b] += v or 0.0
    for name in ("dis", "shed"):
        for (b, t), v in getattr(m, name).get_values().items():
            out[t, b] -= v or 0.0
    return out

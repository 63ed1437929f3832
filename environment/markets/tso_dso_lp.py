"""The joint clearing LP of the TSO-DSO schemes (`common`, and the DSO's interface schedule
under `shared_balancing`): least as-bid cost under the balance rows, with the distribution
limits added by constraint generation as the local flexibility market does (`lfm_cuts.GridCuts`)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from environment.markets.lfm import location_moves
from environment.markets.lfm_cuts import TOL, GridCuts
from environment.markets.tso_dso_problem import BalancingProblem
from environment.solver import InfeasibleError, solve_lp

MAX_ROUNDS = 50
"""Constraint-generation rounds of the joint LPs (each adds every row still violated)."""


def joint_lp(p: BalancingProblem, system: bool):
    """Least as-bid cost activations subject to one equality row per cleared MTU and the
    distribution limits, the latter by constraint generation with relief columns as in
    `clear_lfm` (`GridCuts`: rows violated by the base first, then every row the last
    solution violates, until none is; what DER cannot relieve is load to shed at
    ``unresolved_cost``).

    system=True: the row is the system balance over producers, DER and emergency energy.
    system=False: the DSO's interface row, DER only: sum direction * MW + left_short -
    left_long == interface_mw, the left-over deviation priced at ``interface_cost``."""
    t_n, k_n, dt, act = p.t_n, p.k_n, p.dt_h, p.active
    der, lim = p.der, p.limits
    n = len(der)
    a_t = np.flatnonzero(act)
    eq_row = np.full(t_n, -1)
    eq_row[a_t] = np.arange(a_t.size)
    idx = np.flatnonzero((der.mw > TOL) & act[der.mtu])
    idx = idx[np.argsort(der.mtu[idx], kind="stable")]
    o_t = der.mtu[idx]
    o_dir = der.direction[idx].astype(float)
    cost = [der.price[idx] * dt]
    upper = [der.mw[idx]]
    e_row, e_coef = [eq_row[o_t]], [o_dir]
    up_price, down_price = p.prices()
    if system:
        pi, ti = np.nonzero((p.producers.up_mw > TOL) & act[None, :])
        pj, tj = np.nonzero((p.producers.down_mw > TOL) & act[None, :])
        cost += [up_price[pi, ti] * dt, -down_price[pj, tj] * dt,
                 np.full(a_t.size, p.emergency_up_price * dt),
                 np.full(a_t.size, -p.emergency_down_price * dt)]
        upper += [p.producers.up_mw[pi, ti], p.producers.down_mw[pj, tj],
                  np.full(a_t.size, np.inf), np.full(a_t.size, np.inf)]
        e_row += [eq_row[ti], eq_row[tj], eq_row[a_t], eq_row[a_t]]
        e_coef += [np.ones(ti.size), -np.ones(tj.size), np.ones(a_t.size), -np.ones(a_t.size)]
        rhs_eq = p.need_mw[a_t].astype(float)
    else:
        cost += [np.full(2 * a_t.size, p.interface_cost * dt)]
        upper += [np.full(2 * a_t.size, np.inf)]
        e_row += [eq_row[a_t], eq_row[a_t]]
        e_coef += [np.ones(a_t.size), -np.ones(a_t.size)]
        iface = np.zeros(t_n) if p.interface_mw is None else np.asarray(p.interface_mw, float)
        rhs_eq = iface[a_t]
    cost, upper = np.concatenate(cost), np.concatenate(upper)
    e_row, e_coef = np.concatenate(e_row), np.concatenate(e_coef)
    n_fix = cost.size

    # the DSO's last resort (`GridCuts`) enters the grid rows only: it moves no energy the
    # balance row sees; what DER cannot relieve is left as load to shed
    cuts = None
    if lim is not None:
        cuts = GridCuts(lim, der.take(idx), relief_cost=p.unresolved_cost * dt)
        cuts.add_violations(lim.base_p, lim.base_w, np.abs(lim.base_p) > lim.p_lim() + TOL,
                            act)
    rounds, converged = 0, True
    while True:
        r_n = 0 if cuts is None else cuts.n
        n_x = 0 if cuts is None else cuts.n_extra
        width = n_fix + n_x
        a_eq = sp.csr_array((e_coef, (e_row, np.arange(n_fix))), shape=(a_t.size, width))
        a_ub = b_ub = None
        if r_n:
            a_ub = sp.hstack([cuts.offer_matrix(idx.size), sp.csr_array((r_n, n_fix - idx.size)),
                              cuts.extra_matrix(0)], format="csr")
            b_ub = cuts.rhs
        c = cost if cuts is None else np.concatenate([cost, cuts.x_cost])
        bounds = np.column_stack([np.zeros(width), np.concatenate([upper,
                                                                   np.full(n_x, np.inf)])])
        try:
            res = solve_lp(c, a_eq=a_eq, b_eq=rhs_eq, a_ub=a_ub, b_ub=b_ub, bounds=bounds,
                           what="TSO-DSO joint clearing" if system
                           else "DSO interface clearing")
        except InfeasibleError:
            if cuts is None or cuts.elastic:
                raise
            cuts.make_elastic()   # a limit no relief restores: let it stay broken, dearly
            continue
        rounds += 1
        acc = np.zeros(n)
        acc[idx] = res.x[:idx.size]
        if cuts is None:
            break
        pf, w, over = lim.violations(location_moves(der, acc, t_n, k_n)
                                     + cuts.relief_moves(res.x[n_fix:]))
        if rounds >= MAX_ROUNDS:
            converged = not cuts.add_violations(pf, w, over, act)
            break
        if not cuts.add_violations(pf, w, over, act):
            break
    x = res.x
    slack = cuts.unresolved_mw(x[n_fix:]) if cuts else 0.0
    if not converged:
        slack = max(slack, p.unresolved_mw(acc))
    out = SimpleNamespace(der=np.where(acc > TOL, acc, 0.0), slack=slack, rounds=rounds,
                          constraints=r_n, converged=converged)
    if not system:
        return out
    y = np.concatenate([res.eqlin.marginals, res.ineqlin.marginals])
    a_all = sp.vstack([a_eq] + ([a_ub] if r_n else []), format="csc")
    value = np.zeros(n)
    value[idx] = (a_all[:, :idx.size].T @ y) / dt
    o = idx.size
    up = np.zeros(p.producers.up_mw.shape)
    down = np.zeros(p.producers.down_mw.shape)
    up[pi, ti] = x[o:o + ti.size]
    o += ti.size
    down[pj, tj] = x[o:o + tj.size]
    o += tj.size
    em_up, em_down = np.zeros(t_n), np.zeros(t_n)
    em_up[a_t] = x[o:o + a_t.size]
    em_down[a_t] = x[o + a_t.size:o + 2 * a_t.size]
    price = np.full(t_n, np.nan)
    price[a_t] = res.eqlin.marginals / dt
    moved = (up.sum(0) + down.sum(0) + em_up + em_down
             + np.bincount(der.mtu, out.der, minlength=t_n)) > TOL
    out.price = np.where(moved, price, np.nan)
    out.up, out.down, out.em_up, out.em_down, out.value = up, down, em_up, em_down, value
    return out

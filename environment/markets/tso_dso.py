"""Real-time balancing with DER bids under SmartNet's TSO-DSO coordination schemes (seed 004,
INTRODUCTION: "five reference coordination schemes"; MODELLING ASPECTS, items 4 Clearing and
5 Pricing), each a function registered by name in `TSO_DSO`: `centralized`, `local`,
`shared_balancing` and `common`.

The fifth, the integrated flexibility market (TSO, DSO and commercial parties in one market
maximising welfare), is not here. In real time the commercial parties' demand is their
imbalance, which is price-inelastic: whatever they buy in the integrated market the TSO would
otherwise activate for them, so welfare maximisation is `common`'s cost minimisation, with the
same activations, prices and violations; only who pays whom differs, which the imbalance
settlement already decides. Kept as a name, it gave results bit-identical to `common` under
single pricing (12 of the 60 runs of the `tso_dso_coordination` study were duplicates). Its
difference needs commercial parties with real-time flexibility of their own and a value for
it, which no agent here has.

Sign conventions (all schemes):

* ``need_mw`` > 0: the system is short and needs upward energy; < 0: surplus.
* Producers (transmission level) follow `environment.markets.balancing`: an up offer is paid
  ``up_price``, a down offer *pays* ``down_price`` (so its cost to the system is
  ``-down_price``). Emergency up costs ``emergency_up_price``; emergency down earns
  ``emergency_down_price`` (cost ``-emergency_down_price``; negative prices are a cost).
* DER bids (`FlexOffers`): direction +1 lowers consumption (upward energy for the system),
  -1 raises it. ``price`` is what the provider asks in both directions: every accepted MW
  costs ``price * mw * dt_h``.
* Balance per MTU: sum producer up - sum producer down + sum direction * DER MW + emergency
  up - emergency down == need (`delivered` returns the left-hand side).
* ``system_price`` is d(total cost)/d(need) in EUR/MWh: the marginal up price when short, the
  marginal down price in the producers' convention (what down providers pay) when long, i.e.
  the single imbalance price; NaN where nothing was activated (callers fall back to the DA
  price, as `balancing.imbalance_prices` does).

Costs are always as bid (producers, DER), plus emergency energy, plus the distribution
violation left, as the load the DSO's last resort would shed to restore it (`lfm.GridCuts`),
at ``unresolved_cost``. On that common basis every sequential scheme's
activations are a feasible point of the `common` LP, so `common` costs no more than any of them
(see `common`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from environment.grid.headroom import cap_to_room, headroom
from environment.markets.balancing import BalancingOffers, merit_order
from environment.markets.lfm import (
    TOL,
    FlexOffers,
    GridCuts,
    GridLimits,
    clear_lfm,
    location_moves,
    unresolved_mw,
)
from environment.solver import InfeasibleError, solve_lp

TSO_DSO: dict[str, Callable] = {}
MAX_ROUNDS = 50
"""Constraint-generation rounds of the joint LPs (each adds every row still violated)."""


GRID_AWARE: set[str] = set()
"""Schemes that respect distribution limits: the DER they activate re-plan their rebound
inside the grid headroom too, and the DSO re-checks each block on the members' set-points,
clearing it again while a limit of the block is broken (`environment.balancingstage`), so
that they leave no more violation than `centralized` (tests/test_tso_dso_scenario.py)."""


def register_scheme(name: str, grid_aware: bool = True):
    def deco(fn):
        TSO_DSO[name] = fn
        if grid_aware:
            GRID_AWARE.add(name)
        return fn

    return deco


@dataclass(frozen=True)
class BalancingProblem:
    """One real-time balancing clearing; see the module docstring for signs and prices.

    ``limits``: the distribution grid around the realised-preview flows (a base that already
    violates limits is the DSO's local need); None: no distribution constraints.
    ``interface_mw``: the distribution area's deviation from its agreed TSO-DSO interface
    schedule (+: it consumes more than scheduled), used by `shared_balancing`.
    ``interface_cost``: EUR/MWh the DSO weighs deviation it leaves at the interface; below
    ``unresolved_cost`` so it never breaks a grid limit to keep its schedule, above DER prices
    so it cancels whatever its local bids allow. ``mtus``: clear only these MTUs.
    ``price_cap``: no DER bid is paid more than this (EUR/MWh; bids above it are not
    admissible, the caller filters them)."""

    need_mw: np.ndarray
    producers: BalancingOffers
    der: FlexOffers
    limits: GridLimits | None
    dt_h: float
    emergency_up_price: float
    emergency_down_price: float
    unresolved_cost: float = 5000.0
    interface_mw: np.ndarray | None = None
    mtus: np.ndarray | None = None
    interface_cost: float = 1000.0
    price_cap: float = np.inf

    @property
    def t_n(self) -> int:
        return len(self.need_mw)

    @property
    def k_n(self) -> int:
        return 0 if self.limits is None else self.limits.flow_per_mw.shape[1]

    @property
    def active(self) -> np.ndarray:
        """(T,) MTUs being cleared."""
        if self.mtus is None:
            return np.ones(self.t_n, bool)
        return np.isin(np.arange(self.t_n), self.mtus)

    def prices(self) -> tuple[np.ndarray, np.ndarray]:
        """Producer up and down prices as (P, T)."""
        shape = self.producers.up_mw.shape
        up = np.broadcast_to(np.asarray(self.producers.up_price, float).reshape(shape[0], -1),
                             shape)
        down = np.broadcast_to(
            np.asarray(self.producers.down_price, float).reshape(shape[0], -1), shape)
        return up, down


@dataclass(frozen=True)
class BalancingResult:
    """Outcome of one scheme. DER arrays are per bid of ``problem.der``; ``der_tso_price`` and
    ``der_dso_price`` are the EUR/MWh a bid earns for its TSO and its DSO use (0 where none),
    so the TSO pays ``der_tso_price * der_tso_mw * dt_h`` and the DSO
    ``der_dso_price * der_dso_mw * dt_h``; ``der_paid_price`` is their volume-weighted mean.
    ``counteracting_mw`` (T, K): MW of the TSO's DER activations at location k (summed over
    directions) that push a branch or voltage limit that ends up further beyond its limit than
    before the TSO acted (SmartNet CONCLUSION: "counteracting effects")."""

    scheme: str
    producer_up_mw: np.ndarray
    producer_down_mw: np.ndarray
    der_tso_mw: np.ndarray
    der_dso_mw: np.ndarray
    emergency_up_mw: np.ndarray
    emergency_down_mw: np.ndarray
    system_price: np.ndarray
    der_tso_price: np.ndarray
    der_dso_price: np.ndarray
    tso_cost_eur: float
    dso_cost_eur: float
    procurement_cost_eur: float
    unresolved_mw: float
    counteracting_mw: np.ndarray
    converged: bool = True   # False: a constraint generation stopped at its round limit

    @property
    def der_paid_price(self) -> np.ndarray:
        total = self.der_tso_mw + self.der_dso_mw
        paid = self.der_tso_price * self.der_tso_mw + self.der_dso_price * self.der_dso_mw
        return np.where(total > 0, paid / np.where(total > 0, total, 1.0), 0.0)


def delivered(problem: BalancingProblem, result: BalancingResult) -> np.ndarray:
    """(T,) net upward energy (MW) the activations deliver; equals need on cleared MTUs."""
    der = problem.der
    net = np.bincount(der.mtu, der.direction * (result.der_tso_mw + result.der_dso_mw),
                      minlength=problem.t_n)
    return (result.producer_up_mw.sum(0) - result.producer_down_mw.sum(0) + net
            + result.emergency_up_mw - result.emergency_down_mw)


# ---- building blocks -------------------------------------------------------------------------


def _net(der: FlexOffers, mw: np.ndarray, t_n: int) -> np.ndarray:
    """(T,) net upward energy of DER activations."""
    return np.bincount(der.mtu, der.direction * mw, minlength=t_n)


def _tso_merit(p: BalancingProblem, need: np.ndarray, der: FlexOffers | None):
    """The TSO's merit order over producers and (optionally) DER bids for `need` (T,), with
    emergency energy when offers run out (as `balancing.activate`). Ties: producers first."""
    t_n, act = p.t_n, p.active
    need = np.where(act, need, 0.0)
    up_price, down_price = p.prices()
    p_n = up_price.shape[0]
    pt = np.tile(np.arange(t_n), p_n)
    if der is None:
        der = p.der.take(np.zeros(len(p.der), bool))
    live = act[der.mtu]
    sides = []
    for sgn, prod_cost, prod_mw in ((1, up_price, p.producers.up_mw),
                                    (-1, -down_price, p.producers.down_mw)):
        mine = (der.direction == sgn) & live
        t = np.concatenate([pt, der.mtu[mine]])
        cost = np.concatenate([prod_cost.ravel(), der.price[mine]])
        mw = np.concatenate([np.where(act[pt], prod_mw.ravel(), 0.0), der.mw[mine]])
        a, marginal = merit_order(t, cost, mw, np.clip(sgn * need, 0, None), running_sum=True)
        der_mw = np.zeros(len(der))
        der_mw[mine] = a[pt.size:]
        sides.append((a[:pt.size].reshape(p_n, t_n), der_mw, marginal))
    (up, der_up, m_up), (down, der_down, m_down) = sides
    em_up = np.clip(need - up.sum(0) - _net(der, der_up, t_n), 0, None)
    em_down = np.clip(-need - down.sum(0) + _net(der, der_down, t_n), 0, None)
    price = np.full(t_n, np.nan)
    short, long_ = need > 1e-12, need < -1e-12
    price[short] = np.where(em_up > 1e-12, p.emergency_up_price, m_up)[short]
    price[long_] = np.where(em_down > 1e-12, p.emergency_down_price, -m_down)[long_]
    return SimpleNamespace(up=up, down=down, der=der_up + der_down, em_up=em_up,
                           em_down=em_down, price=price)


def _unresolved(p: BalancingProblem, der_mw: np.ndarray) -> float:
    """Load to shed (MW summed over the MTUs being cleared) left after activations `der_mw`,
    as the DSO's last resort would shed it (`lfm.unresolved_mw`)."""
    if p.limits is None:
        return 0.0
    return unresolved_mw(p.limits, location_moves(p.der, der_mw, p.t_n, p.k_n),
                         p.unresolved_cost, np.flatnonzero(p.active))


def _counteracting(p: BalancingProblem, before: np.ndarray, tso: np.ndarray) -> np.ndarray:
    """(T, K) MW of the TSO's DER moves `tso` (T, K, 2) at each location that push a limit
    whose violation they create or worsen relative to the state `before` (T, K, 2), at the
    MTUs being cleared."""
    if p.limits is None:
        return np.zeros((p.t_n, 0))
    mtus = np.flatnonzero(p.active)
    lim, before, tso = p.limits.at(mtus), before[mtus], tso[mtus]
    p0, w0, _ = lim.violations(before)
    p1, w1, _ = lim.violations(before + tso)
    p_lim = lim.p_lim()
    e0, e1 = np.abs(p0) - p_lim, np.abs(p1) - p_lim
    line = np.where((e1 > TOL) & (e1 > np.maximum(e0, 0) + TOL), np.sign(p1), 0.0)
    lo0, lo1 = lim.v_min ** 2 - w0, lim.v_min ** 2 - w1
    hi0, hi1 = w0 - lim.v_max ** 2, w1 - lim.v_max ** 2
    volt = (np.where((hi1 > TOL) & (hi1 > np.maximum(hi0, 0) + TOL), 1.0, 0.0)
            - np.where((lo1 > TOL) & (lo1 > np.maximum(lo0, 0) + TOL), 1.0, 0.0))
    volt[:, 0] = 0.0
    signed = np.array([-1.0, 1.0])[None, None, :, None]    # effect of less / more consumption
    hit = np.zeros(tso.shape, bool)
    for bad, table, eps in ((line, lim.flow_per_mw, 1e-12), (volt, lim.w_per_mw, 1e-15)):
        rows = np.flatnonzero(bad.any(0))
        if rows.size:
            push = bad[:, None, None, rows] * signed * table[..., rows] > eps
            hit |= push.any(-1)
    out = np.zeros((p.t_n, p.k_n))
    out[mtus] = (tso * hit).sum(2)
    return out


def _joint_lp(p: BalancingProblem, system: bool):
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
        slack = max(slack, _unresolved(p, acc))
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


def _result(p: BalancingProblem, scheme: str, tso, der_tso: np.ndarray, der_dso: np.ndarray,
            der_paid: tuple[np.ndarray, np.ndarray], unresolved: float,
            counteracting: np.ndarray, up=None, down=None, em_up=None, em_down=None,
            price=None, converged: bool = True) -> BalancingResult:
    """Assemble a result and its as-bid costs; producers and emergency from `tso` unless given.
    Each bid is paid one price per use, never above the market's cap."""
    dt = p.dt_h
    up = tso.up if up is None else up
    down = tso.down if down is None else down
    em_up = tso.em_up if em_up is None else em_up
    em_down = tso.em_down if em_down is None else em_down
    price = tso.price if price is None else price
    up_price, down_price = p.prices()
    producers = float((up * up_price).sum() - (down * down_price).sum()) * dt
    tso_cost = producers + float(der_tso @ p.der.price) * dt
    dso_cost = float(der_dso @ p.der.price) * dt
    emergency = float(em_up.sum() * p.emergency_up_price
                      - em_down.sum() * p.emergency_down_price) * dt
    total = tso_cost + dso_cost + emergency + p.unresolved_cost * dt * unresolved
    paid = tuple(np.minimum(x, p.price_cap) for x in der_paid)
    return BalancingResult(scheme, up, down, der_tso, der_dso, em_up, em_down, price,
                           *paid, tso_cost, dso_cost, total, unresolved, counteracting,
                           converged)


def _merit_paid(p: BalancingProblem, der_tso: np.ndarray, der_dso: np.ndarray,
                price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TSO use pay-as-clear (direction * system price, never below the bid), DSO use
    pay-as-bid: the (TSO, DSO) price per bid, 0 where that party used none of it."""
    der = p.der
    clear = np.maximum(np.nan_to_num(der.direction * price[der.mtu], nan=-np.inf), der.price)
    return np.where(der_tso > 0, clear, 0.0), np.where(der_dso > 0, der.price, 0.0)


def _moves(p: BalancingProblem, mw: np.ndarray) -> np.ndarray:
    """(T, K, 2) location moves of DER activations (K = 0 without a grid)."""
    if p.limits is None:
        return np.zeros((p.t_n, 0, 2))
    return location_moves(p.der, mw, p.t_n, p.k_n)


# ---- schemes ---------------------------------------------------------------------------------


@register_scheme("centralized", grid_aware=False)
def centralized(p: BalancingProblem) -> BalancingResult:
    """Centralized AS market model (seed 004 INTRODUCTION, scheme 1): the TSO contracts DER
    directly, one merit order over producers and every DER bid given (the DSO's prequalification
    is the caller's filter on the bids). Respects no distribution limit; the DSO solves its
    local problems in other timeframes, so nothing is bought for it here (der_dso_mw = 0) and
    the violations left, base included, count as unresolved. Counteracting MW: TSO DER moves
    that create or worsen a violation relative to the base."""
    z = np.zeros(len(p.der))
    tso = _tso_merit(p, p.need_mw, p.der)
    return _result(p, "centralized", tso, tso.der, z, _merit_paid(p, tso.der, z, tso.price),
                   _unresolved(p, tso.der),
                   _counteracting(p, _moves(p, z), _moves(p, tso.der)))


def _dso_lfm(p: BalancingProblem, der: FlexOffers, limits: GridLimits | None):
    """The DSO's local market (`clear_lfm`, pay-as-bid) on `der`: MW per bid, and whether its
    clearing converged."""
    if limits is None:
        return np.zeros(len(der)), True
    act = np.flatnonzero(p.active)
    res = clear_lfm(der, limits, p.dt_h, "pay_as_bid", unresolved_cost=p.unresolved_cost,
                    mtus=act)
    return res.accepted_mw, res.converged


@register_scheme("local")
def local(p: BalancingProblem) -> BalancingResult:
    """Local AS market model (seed 004 INTRODUCTION, scheme 2): the DSO first relieves its
    grid in a local market (`clear_lfm`, only where the base violates a limit); the remaining
    bids, capped to the grid headroom its purchases leave (`coupling.headroom`, the local
    stand-in for SmartNet's aggregated curve that "takes into account its own grid
    constraints"), go to the TSO's merit order with the producers. The DSO's net energy is
    part of the imbalance the TSO then balances. Respects distribution limits in both stages
    (the TSO stage cannot push any limit the DSO stage left violated)."""
    der = p.der
    used, converged = _dso_lfm(p, der, p.limits)
    rest = der.with_mw(np.clip(der.mw - used, 0, None))
    if p.limits is not None:
        rest = cap_to_room(rest, headroom(p.limits, _moves(p, used)))
    tso = _tso_merit(p, p.need_mw - _net(der, used, p.t_n), rest)
    return _result(p, "local", tso, tso.der, used, _merit_paid(p, tso.der, used, tso.price),
                   _unresolved(p, used + tso.der),
                   _counteracting(p, _moves(p, used), _moves(p, tso.der)), converged=converged)


@register_scheme("shared_balancing")
def shared_balancing(p: BalancingProblem) -> BalancingResult:
    """Shared balancing responsibility model (seed 004 INTRODUCTION, scheme 3): the DSO keeps
    its area on the agreed interface schedule with local DER only, one LP that serves its grid
    needs and cancels ``interface_mw`` within grid limits (soft: deviation it cannot cancel
    stays, weighed at ``interface_cost``; its grid relief must be energy-neutral or cost that).
    "DSO and TSO markets do not interact" (MODELLING ASPECTS): the TSO balances what is left,
    need minus the DSO's net DER energy, with producers only. Respects distribution limits;
    the DSO's bids are paid as bid."""
    z = np.zeros(len(p.der))
    iface = p.interface_mw is not None and np.abs(p.interface_mw[p.active]).max(
        initial=0.0) > TOL
    dso, converged = z, True
    if iface or _unresolved(p, z) > 0:
        lp = _joint_lp(p, system=False)
        dso, converged = lp.der, lp.converged
    tso = _tso_merit(p, p.need_mw - _net(p.der, dso, p.t_n), None)
    return _result(p, "shared_balancing", tso, z, dso, _merit_paid(p, z, dso, tso.price),
                   _unresolved(p, dso), _counteracting(p, _moves(p, dso), _moves(p, z)),
                   converged=converged)


def _split(p: BalancingProblem, der_mw: np.ndarray) -> np.ndarray:
    """TSO share of joint DER activations: per MTU, the DER's net energy in the system's
    direction, up to the need, assigned to the cheapest bids in that direction; the rest
    (bids against the system's direction, and volume beyond) was bought for the grid."""
    der, t_n = p.der, p.t_n
    s = np.sign(np.where(p.active, p.need_mw, 0.0))
    vol = np.clip(np.minimum(s * p.need_mw, s * _net(der, der_mw, t_n)), 0, None)
    mine = der.direction == s[der.mtu]
    tso = np.zeros(len(der))
    tso[mine] = merit_order(der.mtu[mine], der.price[mine], der_mw[mine], vol,
                            running_sum=True)[0]
    return tso


def _joint(p: BalancingProblem, scheme: str) -> BalancingResult:
    lp = _joint_lp(p, system=True)
    tso = _split(p, lp.der)
    dso = lp.der - tso
    # one price per accepted bid: the marginal value of one MW at its own location and in
    # its direction (the column's dual: energy balance plus the grid rows it moves), never
    # below its bid; the relief columns bound the grid part at the cost of load to shed
    paid = np.maximum(lp.value, p.der.price)
    counter = _counteracting(p, _moves(p, dso), _moves(p, tso))
    return _result(p, scheme, None, tso, dso,
                   (np.where(tso > 0, paid, 0.0), np.where(dso > 0, paid, 0.0)), lp.slack,
                   counter, lp.up, lp.down, lp.em_up, lp.em_down, lp.price, lp.converged)


@register_scheme("common")
def common(p: BalancingProblem) -> BalancingResult:
    """Common TSO-DSO AS market model (seed 004 INTRODUCTION, scheme 4; MODELLING ASPECTS
    4 Clearing: minimise the system operators' activation costs): one LP over producers, DER,
    emergency energy and violation slack, subject to the system balance per MTU and the
    distribution limits (constraint generation as `clear_lfm`). Respects distribution limits.

    Why it is never dearer than a sequential scheme (local, shared_balancing, centralized,
    `tso_first`): each of those yields producer, DER and emergency MW within their bounds that
    meet the same balance rows, so with slack equal to their violation on every modelled row
    they are feasible for this LP, whose objective is the same as-bid + emergency + slack cost;
    their reported slack is their violation summed over all rows, at least that on the
    modelled ones. Constraint generation ends only when no row is violated beyond TOL.

    Pricing (5 Pricing: pay-as-clear, locational marginal prices): ``system_price`` is the
    dual of the balance row; every accepted DER bid earns its locational marginal value (the
    balance and grid duals on its column), never less than its bid. The TSO/DSO split of DER
    MW is reporting only (`_split`)."""
    return _joint(p, "common")


def tso_first(p: BalancingProblem) -> BalancingResult:
    """Reference sequence (not a SmartNet scheme): the TSO's merit order on producers and all
    DER bids first, ignoring the grid; then the DSO's local market on the remaining bids against
    the flows the TSO left; then the TSO re-dispatches producers (and emergency energy) for the
    need its own and the DSO's DER activations leave. Its TSO DER MW are kept."""
    der = p.der
    first = _tso_merit(p, p.need_mw, der)
    limits = p.limits
    if limits is not None:
        pf, w, _ = limits.violations(_moves(p, first.der))
        limits = replace(limits, base_p=pf, base_w=w)
    dso, _ = _dso_lfm(p, der.with_mw(np.clip(der.mw - first.der, 0, None)), limits)
    tso = _tso_merit(p, p.need_mw - _net(der, first.der + dso, p.t_n), None)
    price = np.where(np.isnan(tso.price), first.price, tso.price)
    return _result(p, "tso_first", tso, first.der, dso,
                   _merit_paid(p, first.der, dso, price), _unresolved(p, first.der + dso),
                   _counteracting(p, np.zeros_like(_moves(p, dso)), _moves(p, first.der)),
                   price=price)

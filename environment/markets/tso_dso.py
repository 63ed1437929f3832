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

The problem, its result and their sign conventions are in
`environment.markets.tso_dso_problem`, the joint LP of `common` and `shared_balancing` in
`environment.markets.tso_dso_lp`; the merit order is `balancing.merit_order`. A new scheme
is a function of a `BalancingProblem` returning a `BalancingResult`, registered with
`register_scheme`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from environment.grid.headroom import cap_to_room, headroom
from environment.markets.balancing import merit_order
from environment.markets.lfm import TOL, FlexOffers, GridLimits, clear_lfm
from environment.markets.tso_dso_lp import joint_lp
from environment.markets.tso_dso_problem import BalancingProblem, BalancingResult

TSO_DSO: dict[str, Callable[[BalancingProblem], BalancingResult]] = {}
"""The coordination schemes by name (the scenario's `markets.tso_dso_scheme`)."""

GRID_AWARE: set[str] = set()
"""Schemes that respect distribution limits: the DER they activate re-plan their rebound
inside the grid headroom too, and the DSO re-checks each block on the members' set-points,
clearing it again while a limit of the block is broken (`environment.balancingstage`), so
that they leave no more violation than `centralized` (tests/test_tso_dso_scenario.py)."""


def register_scheme(name: str, grid_aware: bool = True):
    """Register a scheme under `name`; `grid_aware`: it respects distribution limits."""

    def deco(fn):
        TSO_DSO[name] = fn
        if grid_aware:
            GRID_AWARE.add(name)
        return fn

    return deco


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
                   p.unresolved_mw(tso.der),
                   _counteracting(p, p.moves(z), p.moves(tso.der)))


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
    bids, capped to the grid headroom its purchases leave (`grid.headroom.headroom`, the local
    stand-in for SmartNet's aggregated curve that "takes into account its own grid
    constraints"), go to the TSO's merit order with the producers. The DSO's net energy is
    part of the imbalance the TSO then balances. Respects distribution limits in both stages
    (the TSO stage cannot push any limit the DSO stage left violated)."""
    der = p.der
    used, converged = _dso_lfm(p, der, p.limits)
    rest = der.with_mw(np.clip(der.mw - used, 0, None))
    if p.limits is not None:
        rest = cap_to_room(rest, headroom(p.limits, p.moves(used)))
    tso = _tso_merit(p, p.need_mw - _net(der, used, p.t_n), rest)
    return _result(p, "local", tso, tso.der, used, _merit_paid(p, tso.der, used, tso.price),
                   p.unresolved_mw(used + tso.der),
                   _counteracting(p, p.moves(used), p.moves(tso.der)), converged=converged)


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
    if iface or p.unresolved_mw(z) > 0:
        lp = joint_lp(p, system=False)
        dso, converged = lp.der, lp.converged
    tso = _tso_merit(p, p.need_mw - _net(p.der, dso, p.t_n), None)
    return _result(p, "shared_balancing", tso, z, dso, _merit_paid(p, z, dso, tso.price),
                   p.unresolved_mw(dso), _counteracting(p, p.moves(dso), p.moves(z)),
                   converged=converged)


def _split_joint_der(p: BalancingProblem, der_mw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint DER activations split into the TSO's and the DSO's use. The TSO's: per MTU, the
    DER's net energy in the system's direction, up to the need, assigned to the cheapest bids
    in that direction; the rest (bids against the system's direction, and volume beyond) was
    bought for the grid."""
    der, t_n = p.der, p.t_n
    s = np.sign(np.where(p.active, p.need_mw, 0.0))
    vol = np.clip(np.minimum(s * p.need_mw, s * _net(der, der_mw, t_n)), 0, None)
    mine = der.direction == s[der.mtu]
    tso = np.zeros(len(der))
    tso[mine] = merit_order(der.mtu[mine], der.price[mine], der_mw[mine], vol,
                            running_sum=True)[0]
    return tso, der_mw - tso


def _joint(p: BalancingProblem, scheme: str) -> BalancingResult:
    lp = joint_lp(p, system=True)
    tso, dso = _split_joint_der(p, lp.der)
    # one price per accepted bid: the marginal value of one MW at its own location and in
    # its direction (the column's dual: energy balance plus the grid rows it moves), never
    # below its bid; the relief columns bound the grid part at the cost of load to shed
    paid = np.maximum(lp.value, p.der.price)
    counter = _counteracting(p, p.moves(dso), p.moves(tso))
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
    MW is reporting only (`_split_joint_der`)."""
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
        pf, w, _ = limits.violations(p.moves(first.der))
        limits = replace(limits, base_p=pf, base_w=w)
    dso, _ = _dso_lfm(p, der.with_mw(np.clip(der.mw - first.der, 0, None)), limits)
    tso = _tso_merit(p, p.need_mw - _net(der, first.der + dso, p.t_n), None)
    price = np.where(np.isnan(tso.price), first.price, tso.price)
    return _result(p, "tso_first", tso, first.der, dso,
                   _merit_paid(p, first.der, dso, price), p.unresolved_mw(first.der + dso),
                   _counteracting(p, np.zeros_like(p.moves(dso)), p.moves(first.der)),
                   price=price)

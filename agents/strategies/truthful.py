"""Truthful (cost-based) strategies: every agent bids its marginal or opportunity cost.

These are the reference behaviour against which strategic variants are measured."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from agents.strategies.compensation import exposed, owed
from agents.strategies.registry import register_strategy
from environment.markets.dayahead import VOLUME_TOL
from environment.markets.orders import OrderBook
from environment.solver import WarmLP


def inelastic_orders(owner: int, net_mwh: np.ndarray, floor: float, cap: float) -> OrderBook:
    """A price-taking position: buy at the cap what is consumed, sell at the floor the rest.
    Rounding noise (below `VOLUME_TOL`) is no order: a sell of 1e-17 MWh at the floor would
    widen an MTU's clearing-price interval down to the floor."""
    n = len(net_mwh)
    vol = np.where(np.abs(net_mwh) > VOLUME_TOL, net_mwh, 0.0)
    return OrderBook.from_arrays(owner=np.full(n, owner), mtu=np.arange(n),
                                 price=np.where(vol >= 0, cap, floor), volume=vol, n_mtu=n)


@register_strategy("producer", "truthful")
class TruthfulProducer:
    """Offers its forecast available capacity at marginal cost in DA, the rest of it in
    intraday, and its headroom (up) and scheduled output (down) to the TSO at marginal cost
    plus/minus activation cost."""

    def offered_mw(self, producer, available_mw: np.ndarray) -> np.ndarray:
        """What of its available capacity it offers in every energy and balancing market."""
        return available_mw

    def sell_price(self, producer) -> float:
        """EUR/MWh asked for energy (day-ahead and intraday)."""
        return producer.marginal_cost

    def da_orders(self, producer, ctx) -> OrderBook:
        mwh = self.offered_mw(producer, producer.forecast_available_mw(ctx)) * ctx.dt_h
        n = len(mwh)
        return OrderBook.from_arrays(owner=np.full(n, producer.unique_id), mtu=np.arange(n),
                                     price=np.full(n, self.sell_price(producer)), volume=-mwh,
                                     n_mtu=n)

    def balancing_prices(self, producer, up_markup: float, down_markdown: float):
        return producer.marginal_cost + up_markup, producer.marginal_cost - down_markdown


@register_strategy("brp", "truthful")
class TruthfulBrp:
    """Buys its forecast portfolio consumption (sells its forecast surplus) as a price taker."""

    def da_orders(self, brp, ctx) -> OrderBook:
        return inelastic_orders(brp.unique_id, brp.forecast_mw(ctx) * ctx.dt_h,
                                ctx.price_floor, ctx.price_cap)


@register_strategy("aggregator", "truthful")
class TruthfulAggregator:
    """Schedules its pooled batteries, EVs and heat pumps against forecast DA prices at cost
    (energy plus battery degradation), then nominates the schedule as a price taker."""

    def plan(self, agg, ctx, pools: dict, supply, adders: dict | None = None):
        """The D-1 plan of all its pools against the forecast merit order `supply`, accounting
        for the price its own schedule moves (`plan_pools`), with the locational `adders`
        (EUR/MWh per pool) and the strategy's own (`planned_pool`, `plan_adder`); returns the
        plans and the prices it expects."""
        t = len(supply.demand_mwh)
        extra = {k: (np.zeros(t) if adders is None else adders[k])
                 + self.plan_adder(agg, ctx, k) for k in pools}
        return plan_pools({k: self.planned_pool(agg, ctx, k, p) for k, p in pools.items()},
                          supply, ctx.dt_h, agg.degradation, extra)

    def planned_pool(self, agg, ctx, location: int, pool):
        """The part of a pool the D-1 plan may use (all of it)."""
        return pool

    def plan_adder(self, agg, ctx, location: int) -> np.ndarray | float:
        """EUR/MWh its D-1 plan adds to the pool's net consumption at `location` (none)."""
        return 0.0

    def schedule(self, agg, ctx, pool, prices: np.ndarray, net_max=None,
                 net_min=None, supply=None) -> dict[str, np.ndarray]:
        """A re-plan of one pool around its commitments: against the merit order `supply`
        plus `prices` as adders, or as a price taker at `prices` without one."""
        return schedule_pool(pool, prices, ctx.dt_h, agg.degradation, net_max, net_min,
                             supply=supply)

    def flex_prices(self, agg, ctx, direction: int, prices: np.ndarray,
                    location: int | None = None) -> np.ndarray:
        """Flexibility offered at its cost per MWh moved: the activation cost plus, for an
        independent aggregator, what it owes under the compensation regime net of the rebound
        and of the energy's value in its own perimeter (`compensation.owed`: + per MWh up,
        - per MWh down), never below zero (a move that pays for itself is asked nothing more).
        The LFM buys no ask above its price cap (`clear_lfm`); the platform has none.
        `location`: the grid location of the pool the offers come from."""
        return np.maximum(np.full(len(prices), float(agg.activation_cost))
                          + direction * owed(agg, ctx), 0.0)

    def balancing_prices(self, agg, ctx, direction: int, prices: np.ndarray) -> np.ndarray:
        """Balancing energy at its opportunity cost, in the producers' convention (EUR/MWh
        asked for upward energy, paid for downward energy): shifted consumption is made up
        later at about the day-ahead price, so upward energy (consuming less now) is offered
        at that price plus the activation cost, downward energy bought at it less the
        activation cost. An independent aggregator adds what it owes under the compensation
        regime (`compensation.owed`, the same sign both ways in this convention), and without
        a perimeter of its own (no perimeter correction) the energy is the supplier's: it asks
        the activation cost alone."""
        energy = prices if exposed(agg) else 0.0
        return energy + direction * agg.activation_cost + owed(agg, ctx, later=True)

    def baseline(self, agg, ctx, expected_mw: np.ndarray) -> np.ndarray:
        """The baseline it declares to the suppliers: the one its moves will be measured
        against (`settlement.baseline.dayahead`; its plan under the `declared` rule)."""
        return expected_mw

    def da_orders(self, agg, ctx) -> OrderBook:
        return inelastic_orders(agg.unique_id, agg.planned_position_mw() * ctx.dt_h,
                                ctx.price_floor, ctx.price_cap)


BLOCKS = ("ch", "dis", "soc", "ev", "evc", "hp", "hpc", "miss_hi", "miss_lo")
OFF = {b: i for i, b in enumerate(BLOCKS)}


LEAN = 7  # blocks of a plan without commitments (no miss columns, no net-bound rows)


@lru_cache(maxsize=64)
def _pool_matrices(t: int, eta: float, dt_h: float, lean: bool = False):
    """Constraint matrix of the pool LP (3T equality rows, then 2T inequality rows, which a
    `lean` LP without commitments leaves out with the miss columns); it depends only on the
    horizon, efficiency and MTU length, so it is built, stacked and converted once."""
    blocks = BLOCKS[:LEAN] if lean else BLOCKS
    eye = sp.identity(t, format="csr")
    lag = sp.eye(t, k=-1, format="csr")
    zero = sp.csr_array((t, t))

    def row(**mats):
        return sp.hstack([mats.get(b, zero) for b in blocks])

    a_eq = sp.vstack([
        row(soc=eye - lag, ch=-eta * dt_h * eye, dis=(dt_h / eta) * eye),
        row(evc=eye - lag, ev=-dt_h * eye),
        row(hpc=eye - lag, hp=-dt_h * eye),
    ], format="csr")
    if lean:
        return a_eq.tocsc()
    a_ub = sp.vstack([row(ch=eye, dis=-eye, ev=eye, hp=eye, miss_hi=-eye),
                      row(ch=-eye, dis=eye, ev=-eye, hp=-eye, miss_lo=-eye)], format="csr")
    return sp.vstack([a_eq, a_ub], format="csc")


NON_DELIVERY_PENALTY = 1e4  # EUR/MWh: a committed activation is missed only if infeasible


def _pool_lp(pool, prices: np.ndarray, dt_h: float, degradation: float,
             net_max: np.ndarray | None = None, net_min: np.ndarray | None = None,
             lean: bool = False):
    """The pool LP's costs, column bounds and row bounds (rows: `_pool_matrices`)."""
    t = len(prices)
    c = np.zeros(len(BLOCKS) * t)
    c[OFF["ch"] * t:(OFF["ch"] + 1) * t] = (prices + degradation) * dt_h
    c[OFF["dis"] * t:(OFF["dis"] + 1) * t] = (-prices + degradation) * dt_h
    c[OFF["ev"] * t:(OFF["ev"] + 1) * t] = prices * dt_h
    c[OFF["hp"] * t:(OFF["hp"] + 1) * t] = prices * dt_h
    c[OFF["miss_hi"] * t:] = NON_DELIVERY_PENALTY * dt_h
    b_eq = np.zeros(3 * t)
    b_eq[0] = pool.battery_soc
    hi = np.full(t, np.inf) if net_max is None else np.asarray(net_max, float)
    lo = np.full(t, -np.inf) if net_min is None else np.asarray(net_min, float)
    b_ub = np.concatenate([np.where(np.isfinite(hi), hi, 1e9),
                           np.where(np.isfinite(lo), -lo, 1e9)])
    e_max, p_max = pool.battery_mwh, pool.battery_mw
    soc_ub = np.full(t, e_max)
    soc_lb = np.zeros(t)
    soc_lb[-1] = soc_ub[-1] = pool.battery_soc
    zero = np.zeros(t)
    lower = np.concatenate([zero, zero, soc_lb, zero, pool.ev.lower, zero, pool.hp.lower,
                            zero, zero])
    upper = np.concatenate([np.full(2 * t, float(p_max)), soc_ub, pool.ev.pmax, pool.ev.upper,
                            pool.hp.pmax, pool.hp.upper, np.full(2 * t, np.inf)])
    row_lower = np.concatenate([b_eq, np.full(2 * t, -np.inf)])
    row_upper = np.concatenate([b_eq, b_ub])
    if lean:
        n = LEAN * t
        return c[:n], lower[:n], upper[:n], row_lower[:3 * t], row_upper[:3 * t]
    return c, lower, upper, row_lower, row_upper


def _unpack(x: np.ndarray, t: int) -> dict:
    out = {b: x[i * t:(i + 1) * t] for i, b in enumerate(BLOCKS[:len(x) // t])}
    out["missed"] = out.pop("miss_hi", 0.0) + out.pop("miss_lo", np.zeros(t))
    return out


def schedule_pool(pool, prices: np.ndarray, dt_h: float, degradation: float,
                  net_max: np.ndarray | None = None, net_min: np.ndarray | None = None,
                  warm: bool = True, supply=None) -> dict:
    """Cost-minimal schedule of a pooled flexibility envelope over one day (an LP).

    Variables per MTU: battery charge, discharge, state of charge; EV power and cumulative
    energy; heat-pump power and cumulative energy; the battery ends the day where it started.
    Energy costs `prices` (EUR/MWh of net consumption), or, with a `supply` curve, what the
    merit order's offers cost to serve it (`plan_pools`) plus `prices` as adders.
    `net_max`/`net_min` (MW, inf where free) bound the pool's net consumption where it has
    committed flexibility; missing them costs NON_DELIVERY_PENALTY per MWh (soft, so a pool
    that promised more than it can do still gets a schedule and its shortfall is reported).

    The pool keeps its LP for the day (`Pool.lp`): a re-plan changes bounds and restarts from
    the last plan's basis. `warm=False` solves a fresh copy and leaves the pool's LP as it
    was, for reference plans that must not steer later re-plans."""
    t = len(prices)
    if supply is None:
        c, lower, upper, row_lower, row_upper = _pool_lp(pool, prices, dt_h, degradation,
                                                         net_max, net_min)
        key = (t, pool.battery_eta, dt_h)
        matrix = _pool_matrices
    else:
        c, row_lower, row_upper, lower, upper = _cleared_vectors(
            [pool], supply, dt_h, degradation, [prices], [(net_max, net_min)])
        key = ("supply", t, pool.battery_eta, dt_h, id(supply.offers))
        matrix = None
    lp = pool.lp if warm else None
    if lp is None or lp.key != key:
        a = matrix(*key) if matrix else _replan_matrix(pool, supply, dt_h)
        lp = WarmLP(c, a, row_lower, row_upper, lower, upper, what="aggregator schedule",
                    key=key, presolve=matrix is not None)
        if warm:
            pool.lp = lp
        x = lp.solve().x
    else:
        x = lp.solve(c, lower, upper, row_lower, row_upper).x
    return _unpack(x, t)


_REPLAN: dict = {}   # (T, MTU hours) -> (offers, {efficiency: `_cleared_matrix` of one pool})


def _replan_matrix(pool, supply, dt_h: float):
    """`_cleared_matrix` of one pool against `supply`, built once per offer book (an
    aggregator's pools re-plan against the same one all day; books are immutable, kept and
    compared by identity): a pool of another efficiency gets a copy with its own entries
    (`_with_efficiency`)."""
    t = len(supply.demand_mwh)
    kept = _REPLAN.get((t, dt_h))
    if kept is None or kept[0] is not supply.offers:
        if len(_REPLAN) >= 16:
            _REPLAN.clear()
        kept = _REPLAN[(t, dt_h)] = (supply.offers, {})
    mats = kept[1]
    a = mats.get(pool.battery_eta)
    if a is None:
        a = mats[pool.battery_eta] = (
            _with_efficiency(next(iter(mats.values())), t, pool.battery_eta, dt_h) if mats
            else _cleared_matrix([pool], supply, dt_h))
    return a


def _with_efficiency(a, t: int, eta: float, dt_h: float):
    """A copy of a one-pool `_cleared_matrix` (CSC) for efficiency `eta`: only the charge and
    discharge entries of the state-of-charge rows (the first T) depend on it, and they hold
    the values `_pool_matrices` gives them (its scalar times the identity's ones)."""
    a = a.copy()
    end = a.indptr[2 * t]   # the charge and discharge columns come first
    col = np.repeat(np.arange(2 * t), np.diff(a.indptr[:2 * t + 1]))
    soc = a.indices[:end] < t
    data = a.data[:end]
    data[soc & (col < t)] = -eta * dt_h
    data[soc & (col >= t)] = dt_h / eta
    return a


def plan_pools(pools: dict, supply, dt_h: float, degradation: float,
               adders: dict | None = None) -> tuple[dict, np.ndarray]:
    """The D-1 plan of an aggregator's pools that accounts for its own price impact: the pools'
    net consumption is cleared against the forecast merit order `supply` (a `SupplyCurve`) in
    one LP, which minimises the cost of the offers dispatched to serve the fixed demand and
    the pools, plus battery wear and the locational `adders` (EUR/MWh per pool, (T,)).

    This is the fixed point of scheduling as a price taker and clearing the auction again with
    the schedule: a competitive equilibrium of the pools with the merit order (the pools pay
    the marginal cost of the energy they use, not the price they would move; no monopsony).
    Returns the plan per pool and the prices it expects (EUR/MWh, the balance rows' duals)."""
    keys = list(pools)
    t = len(supply.demand_mwh)
    if not keys:
        return {}, np.full(t, np.nan)
    zero = np.zeros(t)
    c, a, rl, rh, lo, up = _cleared_lp([pools[k] for k in keys], supply, dt_h, degradation,
                                       [zero if adders is None else adders.get(k, zero)
                                        for k in keys], [(None, None)] * len(keys), lean=True)
    res = WarmLP(c, a, rl, rh, lo, up, what="aggregator D-1 plan", presolve=False).solve()
    n = LEAN * t
    plans = {k: _unpack(res.x[i * n:(i + 1) * n], t) for i, k in enumerate(keys)}
    return plans, res.marginals[-t:]


def _cleared_lp(pools: list, supply, dt_h: float, degradation: float, adders: list,
                bounds: list, lean: bool = False):
    """The pools' LPs side by side, with the supply curve's offers (MWh, at their prices), the
    unserved demand (at the price cap) and unsold must-run (at minus the floor) as columns,
    and one balance row per MTU: offers dispatched = fixed demand + the pools' net."""
    c, row_lower, row_upper, lower, upper = _cleared_vectors(pools, supply, dt_h, degradation,
                                                             adders, bounds, lean)
    return c, _cleared_matrix(pools, supply, dt_h, lean), row_lower, row_upper, lower, upper


def _cleared_vectors(pools: list, supply, dt_h: float, degradation: float, adders: list,
                     bounds: list, lean: bool = False):
    """Costs, row bounds and column bounds of `_cleared_lp`."""
    t = len(supply.demand_mwh)
    parts = [_pool_lp(p, add, dt_h, degradation, *b, lean=lean)
             for p, add, b in zip(pools, adders, bounds, strict=True)]
    offers = supply.offers
    n_off = len(offers)
    price = np.clip(offers.price, supply.price_floor, supply.price_cap)
    c = np.concatenate([q[0] for q in parts]
                       + [price, np.full(t, supply.price_cap), np.full(t, -supply.price_floor)])
    lower = np.concatenate([q[1] for q in parts] + [np.zeros(n_off + 2 * t)])
    upper = np.concatenate([q[2] for q in parts] + [-offers.volume, np.full(2 * t, np.inf)])
    row_lower = np.concatenate([q[3] for q in parts] + [supply.demand_mwh])
    row_upper = np.concatenate([q[4] for q in parts] + [supply.demand_mwh])
    return c, row_lower, row_upper, lower, upper


def _cleared_matrix(pools: list, supply, dt_h: float, lean: bool = False):
    """The constraint matrix of `_cleared_lp`: it depends only on the pools' efficiencies and
    the offers' MTUs, so a re-plan against the same day's offers keeps it."""
    t = len(supply.demand_mwh)
    offers = supply.offers
    n_off = len(offers)
    own = sp.block_diag([_pool_matrices(t, p.battery_eta, dt_h, lean) for p in pools],
                        format="csr")
    eye = sp.identity(t, format="csr")
    gap = sp.csr_array((t, t))
    net = sp.hstack([-dt_h * eye, dt_h * eye, gap, -dt_h * eye, gap, -dt_h * eye,
                     sp.csr_array((t, (1 if lean else 3) * t))])
    dispatch = sp.csr_array((np.ones(n_off), (offers.mtu, np.arange(n_off))), shape=(t, n_off))
    return sp.vstack([sp.hstack([own, sp.csr_array((own.shape[0], n_off + 2 * t))]),
                      sp.hstack([*([net] * len(pools)), dispatch, eye, -eye])], format="csc")

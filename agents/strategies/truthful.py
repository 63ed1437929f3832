"""Truthful (cost-based) strategies: every agent bids its marginal or opportunity cost.

These are the reference behaviour against which strategic variants are measured."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from agents.strategies.registry import register_strategy
from environment.markets.orders import OrderBook
from environment.solver import WarmLP


def inelastic_orders(owner: int, net_mwh: np.ndarray, floor: float, cap: float) -> OrderBook:
    """A price-taking position: buy at the cap what is consumed, sell at the floor the rest."""
    mtu = np.arange(len(net_mwh))
    price = np.where(net_mwh >= 0, cap, floor)
    return OrderBook.from_arrays(owner=np.full(len(mtu), owner), mtu=mtu, price=price,
                                 volume=net_mwh, n_mtu=len(mtu))


@register_strategy("producer", "truthful")
class TruthfulProducer:
    """Offers its forecast available capacity at marginal cost in DA, and its headroom
    (up) and scheduled output (down) to the TSO at marginal cost plus/minus activation cost."""

    def da_orders(self, producer, ctx) -> OrderBook:
        mwh = producer.forecast_available_mw(ctx) * ctx.dt_h
        n = len(mwh)
        return OrderBook.from_arrays(owner=np.full(n, producer.unique_id), mtu=np.arange(n),
                                     price=np.full(n, producer.marginal_cost), volume=-mwh,
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

    def schedule(self, agg, ctx, pool, prices: np.ndarray, net_max=None,
                 net_min=None) -> dict[str, np.ndarray]:
        return schedule_pool(pool, prices, ctx.dt_h, agg.degradation, net_max, net_min)

    def flex_prices(self, agg, ctx, direction: int, prices: np.ndarray,
                    location: int | None = None) -> np.ndarray:
        """Flexibility offered at its activation cost: the energy it moves is rebalanced in
        the intraday market at the aggregator's own risk. `location`: the grid location of
        the pool the offers come from."""
        return np.full(len(prices), agg.activation_cost)

    def balancing_prices(self, agg, ctx, direction: int, prices: np.ndarray) -> np.ndarray:
        """Balancing energy at its opportunity cost, in the producers' convention (EUR/MWh
        asked for upward energy, paid for downward energy): shifted consumption is made up
        later at about the day-ahead price, so upward energy (consuming less now) is offered
        at that price plus the activation cost, downward energy bought at it less the
        activation cost."""
        return prices + direction * agg.activation_cost

    def baseline(self, agg, ctx, plan_mw: np.ndarray) -> np.ndarray:
        """The baseline it declares to the suppliers: its plan."""
        return plan_mw

    def da_orders(self, agg, ctx) -> OrderBook:
        return inelastic_orders(agg.unique_id, agg.planned_position_mw() * ctx.dt_h,
                                ctx.price_floor, ctx.price_cap)


@lru_cache(maxsize=64)
def _pool_matrices(t: int, eta: float, dt_h: float):
    """Constraint matrix of the pool LP (3T equality rows, then 2T inequality rows); it depends
    only on the horizon, efficiency and MTU length, so it is built, stacked and converted for
    the solver once."""
    blocks = ["ch", "dis", "soc", "ev", "evc", "hp", "hpc", "miss_hi", "miss_lo"]
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
    a_ub = sp.vstack([row(ch=eye, dis=-eye, ev=eye, hp=eye, miss_hi=-eye),
                      row(ch=-eye, dis=eye, ev=-eye, hp=-eye, miss_lo=-eye)], format="csr")
    return sp.vstack([a_eq, a_ub], format="csc")


NON_DELIVERY_PENALTY = 1e4  # EUR/MWh: a committed activation is missed only if infeasible


def schedule_pool(pool, prices: np.ndarray, dt_h: float, degradation: float,
                  net_max: np.ndarray | None = None, net_min: np.ndarray | None = None,
                  warm: bool = True) -> dict:
    """Cost-minimal schedule of a pooled flexibility envelope over one day (an LP).

    Variables per MTU: battery charge, discharge, state of charge; EV power and cumulative
    energy; heat-pump power and cumulative energy; the battery ends the day where it started.
    `net_max`/`net_min` (MW, inf where free) bound the pool's net consumption where it has
    committed flexibility; missing them costs NON_DELIVERY_PENALTY per MWh (soft, so a pool
    that promised more than it can do still gets a schedule and its shortfall is reported).

    The pool keeps its LP for the day (`Pool.lp`): a re-plan changes bounds and restarts from
    the last plan's basis. `warm=False` solves a fresh copy and leaves the pool's LP as it
    was, for reference plans that must not steer later re-plans."""
    t = len(prices)
    blocks = ["ch", "dis", "soc", "ev", "evc", "hp", "hpc", "miss_hi", "miss_lo"]
    off = {b: i * t for i, b in enumerate(blocks)}
    nvar = len(blocks) * t
    c = np.zeros(nvar)
    c[off["ch"]:off["ch"] + t] = (prices + degradation) * dt_h
    c[off["dis"]:off["dis"] + t] = (-prices + degradation) * dt_h
    c[off["ev"]:off["ev"] + t] = prices * dt_h
    c[off["hp"]:off["hp"] + t] = prices * dt_h
    c[off["miss_hi"]:] = NON_DELIVERY_PENALTY * dt_h
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
    key = (t, pool.battery_eta, dt_h)
    lp = pool.lp if warm else None
    if lp is None or lp.key != key:
        lp = WarmLP(c, _pool_matrices(*key), row_lower, row_upper, lower, upper,
                    what="aggregator schedule", key=key)
        if warm:
            pool.lp = lp
        x = lp.solve().x
    else:
        x = lp.solve(c, lower, upper, row_lower, row_upper).x
    out = {b: x[off[b]:off[b] + t] for b in blocks}
    out["missed"] = out.pop("miss_hi") + out.pop("miss_lo")
    return out

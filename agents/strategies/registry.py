"""Strategies by role and name: an agent's decisions come from the strategy its scenario names
(with its `strategy_params` as keyword arguments), so a new strategy plugs in by registering
here without touching agents or the model.

What the model asks of a strategy, by role (a strategy may subclass the truthful one and
override only what it changes):

* producer: ``da_orders(producer, ctx)``, ``balancing_prices(producer, up_markup, down_markdown)``
* brp: ``da_orders(brp, ctx)``
* aggregator: ``plan(agg, ctx, pools, supply, adders=None)`` (the D-1 plans of all its pools
  against the forecast merit order, and the prices it expects; the truthful one asks
  ``planned_pool(agg, ctx, location, pool)`` and ``plan_adder(agg, ctx, location)`` of the
  strategy), ``schedule(agg, ctx, pool, prices, net_max=None, net_min=None, supply=None)`` (a
  re-plan of one pool around its commitments, against the merit order `supply`),
  ``da_orders(agg, ctx)``,
  ``flex_prices(agg, ctx, direction, prices, location)`` (LFM and platform; `location` is the
  grid location of the pool offering),
  ``balancing_prices(agg, ctx, direction, prices)`` (the TSO's balancing market),
  ``baseline(agg, ctx, expected_mw)`` (the baseline an independent aggregator declares, MW
  per MTU, given the one its moves will be measured against)
* any role, optional: ``end_of_day(agent, result)`` after settlement, where ``result`` is a
  `DayResult` (the agent's EUR by market that day, and the day's prices), for strategies that
  learn from their own results."""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable

STRATEGIES: dict[tuple[str, str], type] = {}


def register_strategy(role: str, name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        key = (role, name)
        if key in STRATEGIES:
            raise ValueError(f"strategy {name!r} for {role} registered twice")
        STRATEGIES[key] = cls
        cls.role, cls.name = role, name
        return cls

    return deco


def known(role: str) -> list[str]:
    return sorted(n for r, n in STRATEGIES if r == role)


def make_strategy(role: str, name: str, **params):
    """A new strategy instance (one per agent, so adaptive strategies keep their own state)."""
    try:
        cls = STRATEGIES[(role, name)]
    except KeyError:
        raise KeyError(f"unknown {role} strategy {name!r}; known: {known(role)}") from None
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        raise ValueError(f"{role} strategy {name!r} does not take parameters {params}: {exc}") \
            from None
    return cls(**params)


def stochastic(role: str, name: str) -> bool:
    """Whether a strategy draws random numbers: it takes a `seed`."""
    cls = STRATEGIES.get((role, name))
    return cls is not None and "seed" in inspect.signature(cls).parameters


def agent_params(role: str, name: str, params: dict, run_seed: int, agent: str) -> dict:
    """A strategy's parameters for one agent of a run. A stochastic strategy draws from a
    stream of its own, derived from the run's seed and the agent's identity (its role and
    name) and the strategy's own `seed` (default 0, to pick another stream): replications
    with other seeds explore differently, no two agents share a stream, and no agent draws
    from the model's main stream (adding one would change every run's weather)."""
    params = dict(params)
    if stochastic(role, name):
        params["seed"] = [int(run_seed), _STREAM, zlib.crc32(role.encode()),
                          zlib.crc32(agent.encode()), int(params.get("seed", 0))]
    return params


_STREAM = 16  # keeps strategies' streams apart from the model's other seeded streams

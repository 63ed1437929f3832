"""Gaming the DSO's need: create the problem you are paid to solve, or inflate the baseline the
solution is measured against (seed 001, 6.1: an aggregator creating a local problem to be
paid for solving it; seed 003, 6.1.6)."""

from __future__ import annotations

import numpy as np

from agents.strategies.local import (
    check_share,
    lfm_ceiling,
    location_of,
    published,
    serves,
    upstream_locations,
)
from agents.strategies.registry import register_strategy
from agents.strategies.truthful import TruthfulAggregator


@register_strategy("aggregator", "incdec")
class IncDecAggregator(TruthfulAggregator):
    """Inc-dec gaming (seed 001, 6.1): where it expects a consumption-driven congestion at its
    locations, it plans its pools with a price `adder_eur_mwh` lower there, so its day-ahead
    position pulls consumption INTO the congested MTUs; the DSO then has to buy the relief back,
    which it sells at `markup_price` (up to the LFM price cap).

    Its expectation is an exponential memory (weight `memory` on the past) of the MTU-locations
    of earlier days: with `anticipate` = 0 the congestion the DSO published (a price taker
    reading the public map; nothing to read without publication), with `anticipate` = 1 where
    the DSO actually bought up-flexibility from it (it learns from its own sales, whatever is
    published), in between a weighted mix of the two. It games an MTU-location once the
    expectation reaches `threshold`."""

    def __init__(self, adder_eur_mwh: float = 150.0, markup_price: float = 300.0,
                 anticipate: float = 0.0, memory: float = 0.5, threshold: float = 0.25):
        self.adder = float(adder_eur_mwh)
        self.markup_price = float(markup_price)
        self.anticipate = check_share("anticipate", anticipate)
        self.memory = check_share("memory", memory, upper_open=True)
        self.threshold = float(threshold)
        self.expected: np.ndarray | None = None  # (T, K) in [0, 1]
        self._seen: np.ndarray | None = None
        self._ctx = None

    def target(self, agg) -> np.ndarray | None:
        """(T, K) MTU-locations it games: expected congestion at a location or upstream of it."""
        if self.expected is None:
            return None
        hit = self.expected >= self.threshold
        up = upstream_locations(agg.model)
        if up.size:
            hit = hit | hit[:, up].any(1, keepdims=True)
        return hit

    def plan_adder(self, agg, ctx, location: int):
        """Consumption at the MTU-locations it games looks `adder_eur_mwh` cheaper."""
        self._ctx = ctx
        hit = self.target(agg)
        return 0.0 if hit is None else -self.adder * hit[:, location]

    def schedule(self, agg, ctx, pool, prices, net_max=None, net_min=None, supply=None):
        return super().schedule(agg, ctx, pool,
                                prices + self.plan_adder(agg, ctx, location_of(agg, pool)),
                                net_max, net_min, supply)

    def flex_prices(self, agg, ctx, direction, prices, location=None):
        base = super().flex_prices(agg, ctx, direction, prices, location)
        now = published(agg)
        if now is not None:
            self._seen = now.copy() if self._seen is None else self._seen | now
        if direction < 0:
            return base
        games = np.zeros(len(base), bool)
        hit = self.target(agg)
        if hit is not None:
            games |= serves(agg, hit, location)
        if now is not None:
            games |= serves(agg, now, location)
        return np.where(games, np.maximum(base, lfm_ceiling(agg, self.markup_price)), base)

    def end_of_day(self, agg, result) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        sold = ctx.dso_sold.get(agg.unique_id)
        own = (np.zeros_like(ctx.dso_bought, dtype=bool) if sold is None
               else sold[:, :, 0] > 1e-9)
        seen = np.zeros_like(ctx.dso_bought, dtype=bool) if self._seen is None else self._seen
        public = seen & ~(ctx.dso_bought > 1e-9)  # not injection-driven
        obs = self.anticipate * own + (1 - self.anticipate) * public
        self.expected = obs if self.expected is None else \
            self.memory * self.expected + (1 - self.memory) * obs
        self._seen = None


@register_strategy("aggregator", "inc_dec")
class IncDecAlias(IncDecAggregator):
    """The same inc-dec strategy under the name the earlier study files use."""


@register_strategy("aggregator", "baseline_inflation")
class BaselineInflation(TruthfulAggregator):
    """An aggregator in the suppliers' perimeters declares a baseline above the one it expects
    to be measured against, in the MTUs where it has up-flexibility to sell: `inflation_share`
    of that baseline plus `inflation_mw` (seed 001, 6.1; seed 003, 3.4 on baselines), and
    sells the gap as energy it moved.

    Under the `declared` baseline rule (`settlement.baseline`) the declaration is the baseline:
    its reductions look larger than they are, and with a corrected perimeter the gap is energy
    it sells without moving it (phantom energy), paid by the suppliers unless the compensation
    regime charges it back (`corrected` does, at their energy component, more than the
    day-ahead price it sold at). Under a `historical`, `rolling` or `metered` rule its moves
    are measured against its metered consumption; the declaration only tells the suppliers
    what to buy, and the phantom energy it sold is its own imbalance."""

    def __init__(self, inflation_share: float = 0.3, inflation_mw: float = 0.0):
        if inflation_share < 0 or inflation_mw < 0:
            raise ValueError(f"inflation_share = {inflation_share}, inflation_mw = "
                             f"{inflation_mw}: must not be negative")
        self.inflation_share = float(inflation_share)
        self.inflation_mw = float(inflation_mw)

    def baseline(self, agg, ctx, expected_mw: np.ndarray) -> np.ndarray:
        up = sum((u for u, _ in agg.flexibility(ctx).values()), np.zeros(len(expected_mw)))
        extra = self.inflation_share * np.clip(expected_mw, 0, None) + self.inflation_mw
        return expected_mw + np.where(up > 1e-6, extra, 0.0)

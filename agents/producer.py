"""Producers: conventional and renewable plants that make the wholesale merit order."""

from __future__ import annotations

import numpy as np

from agents.party import Party
from agents.strategies import agent_params, make_strategy
from environment.markets.intraday import deviation_orders, producer_orders
from environment.markets.orders import OrderBook


class Producer(Party):
    agent_class = "producers"

    def __init__(self, model, cfg, profile_index: int | None):
        super().__init__(model)
        self.name = cfg.name
        self.technology = cfg.technology
        self.capacity = cfg.capacity_mw
        self.marginal_cost = cfg.marginal_cost_eur_mwh
        self.profile_index = profile_index
        self.offers_balancing = cfg.balancing
        self.strategy = make_strategy("producer", cfg.strategy, **agent_params(
            "producer", cfg.strategy, cfg.strategy_params, model.run_seed, cfg.name))

    @property
    def variable(self) -> bool:
        """Weather-driven: its availability follows a profile and has a forecast error."""
        return self.profile_index is not None

    @property
    def error_key(self) -> str:
        """Which weather forecast error drives its availability forecast."""
        return "pv" if self.model.bank.names[self.profile_index].startswith("PV") else "wind"

    def available_mw(self, ctx) -> np.ndarray:
        if self.profile_index is None:
            return np.full(ctx.n_mtu, self.capacity)
        return self.model.bank.day(self.profile_index, ctx.day) * self.capacity

    def forecast_available_mw(self, ctx) -> np.ndarray:
        actual = self.available_mw(ctx)
        if not self.variable:
            return actual
        return np.clip(actual * (1 + ctx.errors[self.error_key]), 0, self.capacity)

    def id_orders(self, gate) -> OrderBook:
        """A weather-driven plant closes the gap between its schedule and what its strategy
        offers of its updated availability forecast (selling at its strategy's price); a
        dispatchable one sells its headroom and buys back its schedule (`producer_orders`)."""
        ctx, s, dt = gate.ctx, gate.session, gate.ctx.dt_h
        sched = -self.position_mw(ctx)
        if self.variable:
            err = ctx.errors[self.error_key]
            avail = np.clip(self.available_mw(ctx) * (1 + s.error_share * err), 0, self.capacity)
            dev = (sched - self.strategy.offered_mw(self, avail)) * dt
            return deviation_orders(self.unique_id, dev, s, self.strategy.sell_price(self),
                                    ctx.price_cap)
        offered = self.strategy.offered_mw(self, self.available_mw(ctx))
        return producer_orders(self, sched, offered, s, dt, self.strategy.sell_price(self))

    def realised_mw(self, ctx, position_mw: np.ndarray) -> np.ndarray:
        """Net consumption (negative: output) before balancing. A dispatchable plant runs its
        DA schedule; a variable one cannot exceed its actual availability and spills what it
        did not sell."""
        scheduled = -position_mw
        return -(np.minimum(scheduled, self.available_mw(ctx)) if self.variable else scheduled)

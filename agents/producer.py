"""Producers: conventional and renewable plants that make the wholesale merit order."""

from __future__ import annotations

import numpy as np

from agents.party import Party
from agents.strategies import agent_params, make_strategy


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

    def realised_mw(self, ctx, position_mw: np.ndarray) -> np.ndarray:
        """Net consumption (negative: output) before balancing. A dispatchable plant runs its
        DA schedule; a variable one cannot exceed its actual availability and spills what it
        did not sell."""
        scheduled = -position_mw
        return -(np.minimum(scheduled, self.available_mw(ctx)) if self.variable else scheduled)

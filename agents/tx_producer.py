"""A producer in the transmission model: a plant at a node whose bids come from its strategy."""

from __future__ import annotations

import inspect

import mesa
import numpy as np

from agents.strategies import make_strategy


class TxProducer(mesa.Agent):
    agent_class = "producers"

    def __init__(self, model, cfg, index: int):
        super().__init__(model)
        self.name = cfg.name
        self.index = index
        self.node = cfg.node
        self.node_index = model.net.nodes.index(cfg.node)
        self.capacity = cfg.capacity_mw
        self.marginal_cost = cfg.marginal_cost_eur_mwh
        self.account = model.ledger.account(cfg.name, "producer")
        self.strategy_name = cfg.strategy
        self.strategy = make_strategy("tx_producer", cfg.strategy,
                                      **_with_seed(cfg.strategy, dict(cfg.strategy_params),
                                                   model.config.seed, index))
        self.da_mw = 0.0

    def da_offer(self, ctx) -> tuple[np.ndarray, np.ndarray]:
        """Prices and MW of its offer steps, checked against its capacity."""
        steps = self.strategy.da_offer(self, ctx)
        price = np.array([p for p, _ in steps], float)
        mw = np.array([q for _, q in steps], float)
        if (mw < -1e-9).any() or mw.sum() > self.capacity + 1e-6 or not np.isfinite(price).all():
            raise ValueError(f"producer {self.name}: strategy {self.strategy_name!r} offered "
                             f"{steps} with capacity {self.capacity} MW")
        return price, np.maximum(mw, 0.0)


def _with_seed(strategy: str, params: dict, seed: int, index: int) -> dict:
    """A strategy that takes a `seed` and was given none gets one drawn from the scenario seed
    and the producer's position, so a run is reproducible from the scenario seed alone and
    no two learners share a random stream."""
    from agents.strategies import STRATEGIES

    cls = STRATEGIES.get(("tx_producer", strategy))
    if cls is not None and "seed" not in params \
            and "seed" in inspect.signature(cls.__init__).parameters:
        params["seed"] = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    return params

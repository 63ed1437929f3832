"""Adaptive bidders: a modified Roth-Erev learner over a discrete set of markups (and, for
producers, day-ahead withholding shares), reinforced by the agent's own profit.

The learner core (`RothErev`, `MarkupLearner`) knows nothing of roles or markets, so any
strategy can wrap it; two are registered: ``("tx_producer", "learning")`` for the transmission
model and ``("aggregator", "learning")``, which learns a markup on its local flexibility market
offers. Each learner draws from its own `np.random.default_rng(seed)`, never the model's, so
adding a learner does not change anybody else's random numbers; in the main model `seed` is
derived from the run's seed and the agent's identity (`agents.strategies.agent_params`)."""

from __future__ import annotations

import numpy as np

from agents.strategies.registry import register_strategy
from agents.strategies.transmission import TruthfulTxProducer
from agents.strategies.truthful import TruthfulAggregator


class RothErev:
    """Modified Roth-Erev reinforcement (Nicolaisen, Petrov & Tesfatsion 2001): propensities
    decay by `recency` each update; the chosen action gains (1 - experimentation) x reward, the
    others a share of experimentation x their own propensity (so zero profit still lets the
    learner move, unlike the original rule). Choice probabilities are proportional to the
    propensities (negative ones count as zero)."""

    def __init__(self, n_actions: int, recency: float = 0.1, experimentation: float = 0.2,
                 initial_propensity: float = 1.0, seed: int | list[int] = 0):
        if n_actions < 1:
            raise ValueError("a learner needs at least one action")
        if not (0 <= recency < 1 and 0 <= experimentation < 1 and initial_propensity > 0):
            raise ValueError(f"recency {recency} and experimentation {experimentation} must be "
                             f"in [0, 1), initial_propensity {initial_propensity} positive")
        self.recency, self.experimentation = float(recency), float(experimentation)
        self.propensity = np.full(n_actions, float(initial_propensity))
        self.rng = np.random.default_rng(list(seed) if np.ndim(seed) else int(seed))

    @property
    def probabilities(self) -> np.ndarray:
        q = np.maximum(self.propensity, 0.0)
        total = q.sum()
        return q / total if total > 0 else np.full(len(q), 1 / len(q))

    def choose(self) -> int:
        return int(self.rng.choice(len(self.propensity), p=self.probabilities))

    def update(self, action: int, reward: float) -> None:
        n = len(self.propensity)
        gain = self.propensity * self.experimentation / max(n - 1, 1)
        gain[action] = reward * (1 - self.experimentation)
        self.propensity = (1 - self.recency) * self.propensity + gain


class MarkupLearner:
    """Chooses a (markup EUR/MWh, withheld share) pair per episode and learns from the
    episode's profit. Profits are scaled by `reward_scale` EUR, or by the largest absolute
    profit seen so far, so that one parameter set works for a 1 MW and a 1 GW plant."""

    def __init__(self, markups: list[float] | None = None, max_markup: float = 50.0,
                 n_markups: float = 6, withhold_shares: list[float] | None = None,
                 recency: float = 0.1, experimentation: float = 0.2,
                 initial_propensity: float = 1.0, reward_scale: float | None = None,
                 seed: int | list[int] = 0):
        grid = np.linspace(0.0, max_markup, int(n_markups)) if markups is None else markups
        shares = [0.0] if withhold_shares is None else withhold_shares
        if any(not 0 <= w <= 1 for w in shares):
            raise ValueError(f"withhold_shares {shares} must lie in [0, 1]")
        self.actions = [(float(m), float(w)) for w in shares for m in grid]
        self.core = RothErev(len(self.actions), recency, experimentation, initial_propensity,
                             seed)
        self.reward_scale = reward_scale
        self._seen = 0.0
        self.history: list[tuple[float, float, float]] = []
        self.action = self.core.choose()

    @property
    def markup(self) -> float:
        return self.actions[self.action][0]

    @property
    def withhold_share(self) -> float:
        return self.actions[self.action][1]

    def learn(self, profit_eur: float) -> None:
        """Reinforce the current action with its profit and choose the next episode's."""
        self.history.append((self.markup, self.withhold_share, float(profit_eur)))
        self._seen = max(self._seen, abs(profit_eur))
        scale = self.reward_scale or self._seen or 1.0
        self.core.update(self.action, profit_eur / scale)
        self.action = self.core.choose()


LFM_MARKETS = ("lfm_da", "lfm_id", "lfm_reservation", "lfm_penalty")


@register_strategy("tx_producer", "learning")
class LearningTxProducer(TruthfulTxProducer):
    """Learns its markup over cost (day-ahead, inc, and dec as markdown) and, if
    `withhold_shares` is given, how much capacity to keep out of the day-ahead market (offered
    at the price cap), from its profit per episode."""

    def __init__(self, markups: list[float] | None = None, max_markup: float = 50.0,
                 n_markups: float = 6, withhold_shares: list[float] | None = None,
                 recency: float = 0.1, experimentation: float = 0.2,
                 initial_propensity: float = 1.0, reward_scale: float | None = None,
                 seed: int = 0):
        self.learner = MarkupLearner(markups, max_markup, n_markups, withhold_shares, recency,
                                     experimentation, initial_propensity, reward_scale, seed)

    def da_offer(self, producer, ctx) -> list[tuple[float, float]]:
        kept = self.learner.withhold_share * producer.capacity
        return [(producer.marginal_cost + self.learner.markup, producer.capacity - kept),
                (ctx.price_cap, kept)]

    def redispatch_prices(self, producer, ctx) -> tuple[float, float]:
        m = self.learner.markup
        return producer.marginal_cost + m, producer.marginal_cost - m

    def end_of_day(self, producer, result) -> None:
        self.learner.learn(result.profit_eur)


@register_strategy("aggregator", "learning")
class LearningAggregator(TruthfulAggregator):
    """Truthful in every market but the local flexibility market, where it adds a learned
    markup (EUR/MWh) to its activation cost; reinforced by its LFM income of the day (markets
    whose name starts with "lfm"), as the model reports in `end_of_day`. Parameters are
    numbers only, as the main scenario's `strategy_params` are."""

    def __init__(self, max_markup: float = 50.0, n_markups: float = 6, recency: float = 0.1,
                 experimentation: float = 0.2, initial_propensity: float = 1.0,
                 reward_scale: float = 0.0, seed: float | list[int] = 0):
        self.learner = MarkupLearner(None, max_markup, n_markups, None, recency,
                                     experimentation, initial_propensity,
                                     reward_scale or None, seed)

    def flex_prices(self, agg, ctx, direction: int, prices: np.ndarray,
                    location: int | None = None) -> np.ndarray:
        return super().flex_prices(agg, ctx, direction, prices, location) + self.learner.markup

    def end_of_day(self, agg, result) -> None:
        """Reinforced by what its marked-up LFM offers earned: the DA and ID LFM with their
        reservation payments, less any non-delivery penalty (real-time DSO use is priced by
        the balancing strategy, not by the markup)."""
        self.learner.learn(sum(result.eur_by_market.get(m, 0.0) for m in LFM_MARKETS))

"""Market power: mark-ups and withholding where few can serve the need.

A local market is thin by construction: the DSO can only buy at the congested location, and
often one aggregator holds most of the flexibility there (seed 003, 6.1.6 and 7.1.3: gaming
where few can serve a location; price caps as the remedy). The wholesale counterpart is a
producer pricing above marginal cost or withholding capacity."""

from __future__ import annotations

import numpy as np

from agents.strategies.local import check_share, lfm_ceiling, local_shares, published, relieved
from agents.strategies.registry import register_strategy
from agents.strategies.truthful import TruthfulAggregator, TruthfulProducer
from environment.markets.orders import OrderBook


@register_strategy("aggregator", "markup")
class MarkupAggregator(TruthfulAggregator):
    """Asks up to `markup_price` (EUR/MWh, never above the LFM price cap) at the MTUs where a
    published congestion meets its local market power, and optionally withholds a share of its
    flexibility where it has that power (seed 003, 6.1.6).

    Market power at a location is its share of all aggregators' flexibility there above
    `share_threshold`, scaled to 1 for a monopolist. Without a published congestion map
    ("supermarket") it cannot target the congested MTUs and marks up wherever it has power.
    `withhold` is the share of its flexibility it keeps out of every market where its share
    exceeds the threshold (physical withholding)."""

    def __init__(self, markup_price: float = 300.0, share_threshold: float = 0.5,
                 withhold: float = 0.0):
        self.markup_price = float(markup_price)
        self.share_threshold = check_share("share_threshold", share_threshold, upper_open=True)
        self.withhold = check_share("withhold", withhold)

    def power(self, agg, ctx, direction: int) -> np.ndarray:
        """(T, K) market power in [0, 1] from its local share."""
        share = local_shares(agg, ctx, direction)
        return np.clip((share - self.share_threshold) / (1 - self.share_threshold), 0, 1)

    def flex_prices(self, agg, ctx, direction: int, prices: np.ndarray,
                    location: int | None = None) -> np.ndarray:
        base = super().flex_prices(agg, ctx, direction, prices, location)
        power = self.power(agg, ctx, direction)
        congested = published(agg)
        if congested is not None:
            power = np.where(congested, power, 0.0)
        target = lfm_ceiling(agg, self.markup_price)
        return base + power[:, relieved(agg, location)].max(1) * np.clip(target - base, 0, None)

    def da_orders(self, agg, ctx) -> OrderBook:
        """Withholding is decided once the day's plans are final, before any flexibility is
        offered: the kept capacity is offered in no market, balancing included."""
        if self.withhold > 0:
            flex = agg.flexibility(ctx)
            for d, direction in ((0, 1), (1, -1)):
                strong = local_shares(agg, ctx, direction) > self.share_threshold
                for k, pair in flex.items():
                    agg.withhold(k, d, self.withhold * pair[d] * strong[:, k])
        return super().da_orders(agg, ctx)


@register_strategy("producer", "markup")
class MarkupProducer(TruthfulProducer):
    """Offers energy (day-ahead and intraday) at marginal cost times (1 + `markup_share`) plus
    `markup_eur_mwh` and withholds the share `withhold` of its available capacity from every
    market (day-ahead, intraday and balancing); balancing energy is marked up (and down) by
    `balancing_markup_eur_mwh` more (wholesale market power, for studies of how much the
    flexibility markets discipline it)."""

    def __init__(self, markup_eur_mwh: float = 20.0, markup_share: float = 0.0,
                 withhold: float = 0.0, balancing_markup_eur_mwh: float = 20.0):
        self.markup_eur_mwh = float(markup_eur_mwh)
        self.markup_share = float(markup_share)
        self.withhold = check_share("withhold", withhold)
        self.balancing_markup = float(balancing_markup_eur_mwh)

    def offered_mw(self, producer, available_mw: np.ndarray) -> np.ndarray:
        return available_mw * (1 - self.withhold)

    def sell_price(self, producer) -> float:
        return producer.marginal_cost + abs(producer.marginal_cost) * self.markup_share \
            + self.markup_eur_mwh

    def balancing_prices(self, producer, up_markup: float, down_markdown: float):
        up, down = super().balancing_prices(producer, up_markup, down_markdown)
        return up + self.balancing_markup, down - self.balancing_markup

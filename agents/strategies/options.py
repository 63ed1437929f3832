"""Flexibility as an option: what a MW is worth now against what it may fetch later.

SmartNet's aggregator (seed 004) bids a risk premium for exercising its flexibility early,
when the forecast it commits against is still uncertain; an arbitrageur keeps flexibility out
of the day-ahead plan when later markets (LFM, BRP platform, balancing) have paid it more than
the day-ahead spread (seed 001, 6.1: arbitrage between platforms; seed 004: value churned
across layers)."""

from __future__ import annotations

import dataclasses

import numpy as np

from agents.strategies.local import check_share
from agents.strategies.registry import register_strategy
from agents.strategies.truthful import TruthfulAggregator

LATER_MARKETS = {"lfm_da": "lfm", "lfm_id": "lfm", "lfm_reservation": "lfm",
                 "platform": "platform", "balancing_der": "balancing"}


@register_strategy("aggregator", "risk_premium")
class RiskPremium(TruthfulAggregator):
    """Asks its activation cost plus a premium for the option it gives up (seed 004, the SmartNet
    aggregator's bidding): `risk_aversion` times the day's price spread (standard deviation of
    the prices it plans against) times the forecast uncertainty still open when it commits.

    The uncertainty is the D-1 load and PV forecast errors combined (`forecast`); the
    intraday LFM keeps the share of it left at the first intraday gate, the TSO's balancing
    market (close to real time) the share left at the last one, so earlier markets carry the
    larger premium."""

    def __init__(self, risk_aversion: float = 2.0):
        if risk_aversion < 0:
            raise ValueError(f"risk_aversion = {risk_aversion}: must not be negative")
        self.risk_aversion = float(risk_aversion)

    def premium(self, agg, prices: np.ndarray, stage: str) -> float:
        cfg = agg.model.config
        fc = cfg.forecast
        left = cfg.markets.intraday.forecast_error_share
        open_share = {"da": 1.0, "id": left[0], "balancing": left[-1]}[stage]
        error = float(np.hypot(fc.load_error_sd, fc.pv_error_sd)) * open_share
        return self.risk_aversion * float(np.std(prices)) * error

    def flex_prices(self, agg, ctx, direction, prices, location=None):
        stage = getattr(ctx, "flex_stage", "da")
        return super().flex_prices(agg, ctx, direction, prices, location) \
            + self.premium(agg, prices, stage)

    def balancing_prices(self, agg, ctx, direction, prices):
        return super().balancing_prices(agg, ctx, direction, prices) \
            + direction * self.premium(agg, prices, "balancing")


@register_strategy("aggregator", "arbitrage")
class Arbitrage(TruthfulAggregator):
    """Schedules its flexibility across the day-ahead, intraday, local, platform and balancing
    markets for the best expected value (seed 001, 6.1; seed 004).

    It learns, as an exponential average (weight `memory` on the past, starting from
    `prior_eur_mwh`), the margin per MWh each later market paid flexibility each day, whoever
    sold it (`observed_margins`): the LFM's price, and for platform and balancing energy the
    distance of their price from the day-ahead price; a day on which a market bought no
    flexibility counts as a margin of 0, so the value falls when nothing sells. When that
    margin exceeds the day-ahead spread (mean absolute deviation of the day-ahead prices it
    expects without flexibility), it keeps up to `max_holdback` of its battery power out of
    the day-ahead plan, more the larger the gap, and asks later markets at least the learned
    margin (the DA arbitrage it gave up)."""

    def __init__(self, prior_eur_mwh: float = 0.0, memory: float = 0.7,
                 max_holdback: float = 0.5):
        self.value = {g: float(prior_eur_mwh) for g in set(LATER_MARKETS.values())}
        self.memory = check_share("memory", memory, upper_open=True)
        self.max_holdback = check_share("max_holdback", max_holdback)
        self._mark = None
        self.holdback = 0.0

    @staticmethod
    def da_spread(prices: np.ndarray) -> float:
        return float(np.abs(prices - prices.mean()).mean())

    def later_value(self) -> float:
        return max(self.value.values())

    def plan(self, agg, ctx, pools, supply, adders=None):
        """Only the D-1 plan holds back (`planned_pool`), by the gap between the learned later
        value and the spread of the day-ahead prices it expects without flexibility; re-plans
        around sold flexibility may use all of it."""
        self._mark = agg.model.ledger.mark()
        spread, later = self.da_spread(agg.model.price_forecast(ctx, supply)), self.later_value()
        gap = (later - spread) / (later + spread) if later > spread else 0.0
        self.holdback = self.max_holdback * gap
        return super().plan(agg, ctx, pools, supply, adders)

    def planned_pool(self, agg, ctx, location, pool):
        return dataclasses.replace(pool, battery_mw=pool.battery_mw * (1 - self.holdback))

    def flex_prices(self, agg, ctx, direction, prices, location=None):
        base = super().flex_prices(agg, ctx, direction, prices, location)
        return np.maximum(base, self.value["lfm"])

    def balancing_prices(self, agg, ctx, direction, prices):
        """The truthful bid (energy it owns, compensation owed) with the learned margin in
        place of the activation cost where it is larger."""
        margin = max(agg.activation_cost, self.value["balancing"])
        return super().balancing_prices(agg, ctx, direction, prices) \
            + direction * (margin - agg.activation_cost)

    def end_of_day(self, agg, result) -> None:
        if self._mark is None:
            return
        sellers = np.array([a.account for a in agg.model.aggregators])
        margins = observed_margins(agg.model.ledger, self._mark, sellers, result.da_price)
        for group in self.value:
            self.value[group] = (self.memory * self.value[group]
                                 + (1 - self.memory) * margins.get(group, 0.0))


def observed_margins(ledger, mark: int, sellers: np.ndarray,
                     da_price: np.ndarray) -> dict[str, float]:
    """EUR/MWh flexibility earned per later market group in the ledger rows booked since
    `mark`, over every seller of flexibility (`sellers`: accounts), volume-weighted: the LFM's
    price, and for energy (platform, balancing) the distance from the DA price. A group with
    no such rows is missing (nothing sold there)."""
    t_n = len(da_price)
    eur: dict[str, float] = {}
    mwh: dict[str, float] = {}
    for payer, payee, market, mtu, q, price, _eur in ledger.rows_since(mark):
        group = LATER_MARKETS.get(market)
        if group is None:
            continue
        sold = np.isin(payee, sellers) | np.isin(payer, sellers)
        if not sold.any():
            continue
        q, price, t = np.abs(q[sold]), price[sold], mtu[sold] % t_n
        # balancing rows of downward energy carry minus the price the provider pays for it
        margin = price if group == "lfm" else np.abs(np.abs(price) - da_price[t])
        eur[group] = eur.get(group, 0.0) + float((q * margin).sum())
        mwh[group] = mwh.get(group, 0.0) + float(q.sum())
    return {g: eur[g] / mwh[g] for g in eur if mwh[g] > 1e-9}

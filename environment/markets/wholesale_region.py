"""The wholesale market a modelled region takes its day-ahead price from
(`markets.dayahead.wholesale`).

A closed system sized to the modelled households lets their own flexibility set the price: a
few MW of heat pumps or batteries move it along a merit order of a few MW. A region is a price
taker in a national market instead. Two ways to say so, each resolved here into the
producers the day-ahead auction, intraday, balancing and the aggregators' price forecasts
already know, so that no market needs a second code path:

* ``national``: a national fleet sized to the national load (`system_load`), each technology
  split into blocks of rising marginal cost, so that the merit order has a slope; the
  region's net load is added to the national load in the same auction.
* ``exogenous``: an exchange that sells and buys any volume at the user's price series; it
  also takes a fixed volume (`EXCHANGE_MW`) as demand, so that the region's net exports meet
  buyers at the series' price and not at the auction's floor.
"""

from __future__ import annotations

import numpy as np

from agents.strategies.registry import register_strategy
from agents.strategies.truthful import TruthfulProducer
from environment.markets.orders import OrderBook
from environment.markets.price_series import exogenous_prices

HOURS_PER_YEAR = 8760.0
EXCHANGE_MW = 1.0e5
"""The exchange's volume (MW): far beyond any region's net load, small enough that MWh sums
of it keep the region's kWh above the auction's rounding tolerance."""
EXCHANGE = "exchange"


def resolve(scenario):
    """The scenario with its producers (and under ``exogenous`` its system load) as the
    wholesale market makes them; a closed system is returned as it is (the same object)."""
    w = scenario.markets.dayahead.wholesale
    if w.kind == "closed":
        return scenario
    if w.kind == "national":
        producers = [*scenario.producers, *national_fleet(w, scenario.system_load.annual_mwh)]
        return scenario.model_copy(update={"producers": producers})
    from environment.scenario import Producer

    mean = float(exogenous_prices(scenario).mean())
    exchange = Producer(name=EXCHANGE, technology=EXCHANGE, capacity_mw=2 * EXCHANGE_MW,
                        marginal_cost_eur_mwh=mean, strategy=EXCHANGE)
    quiet = scenario.system_load.model_copy(update={"annual_mwh": 0.0})
    return scenario.model_copy(update={"producers": [exchange], "system_load": quiet})


def national_fleet(wholesale, annual_mwh: float | None) -> list:
    """The national plants as producers: per technology `blocks` plants of equal capacity
    (MW per MW of mean load times the mean load), their costs at the midpoints of equal steps
    from `cost_min` to `cost_max` (one plant where the range is empty)."""
    from environment.scenario import Producer

    mean_mw = (annual_mwh or 0.0) / HOURS_PER_YEAR
    out = []
    for p in wholesale.fleet:
        lo = p.cost_min_eur_mwh
        hi = lo if p.cost_max_eur_mwh is None else p.cost_max_eur_mwh
        n = wholesale.blocks if hi > lo else 1
        cap = p.capacity_per_mean_load * mean_mw / n
        for j in range(n):
            out.append(Producer(name=f"national_{p.technology}_{j + 1}" if n > 1
                                else f"national_{p.technology}",
                                technology=p.technology, capacity_mw=cap,
                                marginal_cost_eur_mwh=lo + (hi - lo) * (j + 0.5) / n,
                                profile=p.profile))
    return out


def merit_order_price(wholesale, annual_mwh: float, demand_mw: float,
                      available: dict[str, float] | None = None) -> float:
    """The national merit order's price at `demand_mw` (the cost of the block it ends in):
    what a price taker's auction clears at, for tests and notes. `available` scales the
    weather-driven technologies (capacity factor by technology, default 1)."""
    blocks = sorted((b.marginal_cost_eur_mwh, b.capacity_mw * (available or {}).get(
        b.technology, 1.0)) for b in national_fleet(wholesale, annual_mwh))
    total = 0.0
    for cost, cap in blocks:
        total += cap
        if total >= demand_mw:
            return cost
    raise ValueError(f"demand {demand_mw} MW exceeds the national fleet ({total} MW)")


def supply_with_fixed_demand(offers: OrderBook, demand_mwh: np.ndarray):
    """A merit order's offers and fixed demand, where a producer's price-taking buy (the
    exchange's fixed volume) counts as fixed demand; unchanged without such buys."""
    buys = offers.volume > 0
    if not buys.any():
        return offers, demand_mwh
    fixed = np.bincount(offers.mtu[buys], offers.volume[buys], minlength=len(demand_mwh))
    keep = np.flatnonzero(~buys)
    sells = OrderBook(offers.owner[keep], offers.mtu[keep], offers.price[keep],
                      offers.volume[keep])
    return sells, demand_mwh + fixed


@register_strategy("producer", EXCHANGE)
class ExchangeProducer(TruthfulProducer):
    """The exchange of an ``exogenous`` wholesale market: takes `EXCHANGE_MW` at any price
    and offers twice that at the series' price of each MTU (so it buys or sells whatever the
    region needs at that price), in day-ahead, intraday and balancing (plus/minus the TSO's
    activation markups)."""

    def _today(self, producer, day: int | None = None) -> np.ndarray:
        model = producer.model
        t = model.calendar.mtu_per_day
        d = model.day if day is None else day
        return exogenous_prices(model.config)[d * t:(d + 1) * t]

    def sell_price(self, producer) -> np.ndarray:
        return self._today(producer)

    def buyback_price(self, producer) -> np.ndarray:
        return self._today(producer)

    def da_orders(self, producer, ctx) -> OrderBook:
        n, price = ctx.n_mtu, self._today(producer, ctx.day)
        mwh = EXCHANGE_MW * ctx.dt_h
        return OrderBook.from_arrays(
            owner=np.full(2 * n, producer.unique_id), mtu=np.r_[np.arange(n), np.arange(n)],
            price=np.r_[np.full(n, ctx.price_cap), price],
            volume=np.r_[np.full(n, mwh), np.full(n, -2 * mwh)], n_mtu=n)

    def balancing_prices(self, producer, up_markup: float, down_markdown: float):
        price = self._today(producer)
        return price + up_markup, price - down_markdown


def national_accounts(scenario) -> set[str]:
    """The ledger accounts of the system a region takes its price from, not of the region: the
    national fleet (or the exchange), the national load's supplier and its consumers. Empty for
    a closed system, where the modelled households are the whole system."""
    from environment.settlement import SYSTEM_CONSUMERS

    w = scenario.markets.dayahead.wholesale
    if w.kind == "closed":
        return set()
    plants = ({p.name for p in national_fleet(w, scenario.system_load.annual_mwh)}
              if w.kind == "national" else {EXCHANGE})
    return plants | {scenario.system_load.brp, SYSTEM_CONSUMERS}

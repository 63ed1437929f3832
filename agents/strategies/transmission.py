"""Producer strategies for the transmission model (role ``tx_producer``): truthful, fixed markup or
withholding, and inc-dec gaming of market-based redispatch.

What the transmission model asks of them (`environment/transmission/model.py`):
``da_offer(producer, ctx)`` -> list of (EUR/MWh, MW) offer steps into the zonal day-ahead market,
``redispatch_prices(producer, ctx)`` -> (inc, dec) EUR/MWh: the price at which it sells more
(up to capacity) and the price it pays to produce less (down to zero), and optionally
``end_of_day(producer, result)`` after each episode. `ctx` is a `TxContext`: the day-ahead
price floor and cap, the truthful zonal price forecast and the cost-based nodal price forecast,
from which a producer tells whether its node exports (nodal below zonal) or imports."""

from __future__ import annotations

from agents.strategies.registry import register_strategy


@register_strategy("tx_producer", "truthful")
class TruthfulTxProducer:
    """All capacity at marginal cost in the day-ahead market; inc and dec at marginal cost (a
    dec at cost leaves it indifferent: it pays back what it saves in fuel)."""

    def da_offer(self, producer, ctx) -> list[tuple[float, float]]:
        return [(producer.marginal_cost, producer.capacity)]

    def redispatch_prices(self, producer, ctx) -> tuple[float, float]:
        return producer.marginal_cost, producer.marginal_cost


@register_strategy("tx_producer", "markup")
class MarkupTxProducer(TruthfulTxProducer):
    """Classic market power where few can serve a location: every price `markup` EUR/MWh
    away from cost in its favour, and `withhold_share` of capacity offered in the day-ahead
    market only at the price cap (kept back for the inc market)."""

    def __init__(self, markup: float = 10.0, withhold_share: float = 0.0):
        if not 0 <= withhold_share <= 1:
            raise ValueError(f"withhold_share {withhold_share} not in [0, 1]")
        self.markup, self.withhold_share = float(markup), float(withhold_share)

    def da_offer(self, producer, ctx) -> list[tuple[float, float]]:
        kept = self.withhold_share * producer.capacity
        return [(producer.marginal_cost + self.markup, producer.capacity - kept),
                (ctx.price_cap, kept)]

    def redispatch_prices(self, producer, ctx) -> tuple[float, float]:
        return producer.marginal_cost + self.markup, producer.marginal_cost - self.markup


@register_strategy("tx_producer", "incdec")
class IncDecTxProducer(TruthfulTxProducer):
    """Inc-dec gaming (Hirth & Schlecht): the day-ahead bid reflects the redispatch price the
    producer expects at its node rather than its cost.

    * ``price_taking``: competitive arbitrage. In an export node it offers at min(cost,
      expected nodal price) (whatever it sells above the nodal price it can buy back at it); in
      an import node at max(cost, expected nodal price) (it would rather sell as inc).
      Redispatch bids at cost: it gains under pay-as-clear, not under pay-as-bid.
    * ``anticipating``: also exploits pay-as-bid. Export node: offers at the price floor to be
      sure of a day-ahead sale and bids dec just `markup` above the expected nodal price (so it is
      still among the decs the grid operator takes, but pays little). Import node: withholds
      (offers at the price cap) and bids inc `markup` above max(cost, expected nodal price).
    Nodes without expected congestion get truthful bids."""

    def __init__(self, variant: str = "anticipating", markup: float = 5.0):
        if variant not in ("price_taking", "anticipating"):
            raise ValueError(f"variant {variant!r}: expected 'price_taking' or 'anticipating'")
        self.variant, self.markup = variant, float(markup)

    def da_offer(self, producer, ctx) -> list[tuple[float, float]]:
        side, mc = ctx.side(producer.node_index), producer.marginal_cost
        nodal = ctx.nodal_price_forecast[producer.node_index]
        if side == 0:
            price = mc
        elif self.variant == "price_taking":
            price = min(mc, nodal) if side > 0 else max(mc, nodal)
        else:
            price = ctx.price_floor if side > 0 else ctx.price_cap
        return [(price, producer.capacity)]

    def redispatch_prices(self, producer, ctx) -> tuple[float, float]:
        side, mc = ctx.side(producer.node_index), producer.marginal_cost
        if self.variant == "price_taking" or side == 0:
            return mc, mc
        nodal = ctx.nodal_price_forecast[producer.node_index]
        if side > 0:
            return mc, min(mc, nodal + self.markup)
        return max(mc, nodal) + self.markup, mc


@register_strategy("tx_producer", "inc_dec")
class IncDecTxAlias(IncDecTxProducer):
    """The same inc-dec strategy under the aggregators' second name, so both spellings work
    for every role."""

"""A balance responsible party: the agents that hold a market position and settle imbalance
(suppliers, the system load's supplier, aggregators, producers). Each answers a market gate
with its own orders; their price is its strategy's."""

from __future__ import annotations

import mesa

from environment.markets.orders import OrderBook


class Party(mesa.Agent):
    """The parties of a run, in the order they were created, are the model's `parties`."""

    trades_energy = False  # a perimeter of its own that real-time DER activations correct

    def da_orders(self, ctx) -> OrderBook:
        """Its orders in the day-ahead auction (`strategy.da_orders`)."""
        return self.strategy.da_orders(self, ctx)

    def id_orders(self, gate) -> OrderBook:
        """Its orders in an intraday session (`environment.intradaystage.IntradayGate`)."""
        raise NotImplementedError(f"{type(self).__name__} does not trade intraday")

    def position_mw(self, ctx):
        """(T,) its market position so far (+ bought)."""
        return ctx.position[self.model.party_slot[self.unique_id]]

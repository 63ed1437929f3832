"""Balance responsible parties / suppliers: forecast the portfolio, buy in DA, settle imbalance."""

from __future__ import annotations

import numpy as np

from agents.party import Party
from agents.strategies import agent_params, make_strategy
from environment.markets.intraday import deviation_orders
from environment.markets.orders import OrderBook


class Brp(Party):
    """Supplier of a set of prosumers (retail contracts); balance responsible for their
    metered consumption outside the devices an aggregator controls."""

    agent_class = "brps"

    def __init__(self, model, cfg, index: int):
        super().__init__(model)
        self.name = cfg.name
        self.index = index
        self.retail_price = cfg.retail_price_eur_mwh
        self.feed_in = cfg.feed_in_eur_mwh
        self.energy_component = cfg.energy_component_eur_mwh
        self.strategy = make_strategy("brp", cfg.strategy, **agent_params(
            "brp", cfg.strategy, cfg.strategy_params, model.run_seed, cfg.name))

    @property
    def customers(self) -> np.ndarray:
        return self.model.fleet.brp == self.index

    def _aggregated(self):
        return [a for a in self.model.aggregators if a.in_supplier_perimeter]

    def forecast_mw(self, ctx, retail: np.ndarray | None = None) -> np.ndarray:
        """Its customers' forecast consumption (D-1, or from an updated `retail` forecast),
        with the baselines aggregators declared for the devices they control in its
        perimeter."""
        retail = ctx.retail_net_forecast if retail is None else retail
        out = retail[self.customers].sum(0)
        for agg in self._aggregated():
            out = out + agg.declared[self.index]
        return out

    def id_orders(self, gate) -> OrderBook:
        """Price-taking orders closing its customers' updated forecast deviation from its
        position."""
        ctx = gate.ctx
        dev = (self.forecast_mw(ctx, gate.retail) - self.position_mw(ctx)) * ctx.dt_h
        return deviation_orders(self.unique_id, dev, gate.session, ctx.price_floor,
                                ctx.price_cap)

    def platform_orders(self, gate) -> OrderBook:
        """It asks the BRPs' flexibility platform to close its updated forecast deviation,
        paying up to its expected imbalance premium over the energy price (buying) or
        accepting that much less (selling)."""
        ctx, s = gate.ctx, gate.session
        prem = self.model.config.markets.platform.brp_premium_eur_mwh
        dev = (self.forecast_mw(ctx, gate.retail) - self.position_mw(ctx)) * ctx.dt_h
        t = np.arange(s.first_mtu, ctx.n_mtu)
        keep = np.abs(dev[t]) > 1e-9
        t = t[keep]
        return OrderBook.from_arrays(np.full(len(t), self.unique_id), t,
                                     ctx.da_price[t] + np.sign(dev[t]) * prem, dev[t],
                                     ctx.n_mtu)

    def realised_mw(self, ctx, position_mw=None) -> np.ndarray:
        """Metered net consumption of the portfolio (its DA position does not change it); an
        aggregator's devices count at their baseline (`settlement.baseline`) where its
        perimeter is corrected, as metered where not."""
        out = ctx.retail_net[self.customers].sum(0)
        for agg in self._aggregated():
            out = out + (agg.settlement_baseline[self.index] if agg.corrected
                         else agg.real_by_brp[self.index])
        return out


class SystemLoadBrp(Party):
    """Supplier of the rest of the wholesale system's demand (an exogenous published profile)."""

    agent_class = "brps"

    def __init__(self, model, cfg, profile_index: int, retail_price: float):
        super().__init__(model)
        self.name = cfg.brp
        self.profile_index = profile_index
        self.retail_price = retail_price
        bank = model.bank
        self.peak_mw = cfg.annual_mwh / bank.annual_energy_per_peak(bank.names[profile_index])
        self.strategy = make_strategy("brp", "truthful")

    def realised_mw(self, ctx, position_mw=None) -> np.ndarray:
        return self.model.bank.day(self.profile_index, ctx.day) * self.peak_mw

    def forecast_mw(self, ctx) -> np.ndarray:
        return self.realised_mw(ctx) * (1 + ctx.errors["system"])

    def id_orders(self, gate) -> OrderBook:
        """Price-taking orders closing the system load's deviation from its position, with the
        forecast error the session has left."""
        ctx, s = gate.ctx, gate.session
        fc = self.realised_mw(ctx) * (1 + s.error_share * ctx.errors["system"])
        return deviation_orders(self.unique_id, (fc - self.position_mw(ctx)) * ctx.dt_h, s,
                                ctx.price_floor, ctx.price_cap)

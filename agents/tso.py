"""The TSO: keeps the system balanced by activating balancing energy and sets imbalance prices.
Producers' offers form the merit order after realisation; DER offered through aggregators are
activated block by block before it (`activate`, called by `environment.balancingstage`, which
applies and books the activations), and the marginal bid of either pass sets the imbalance
price, kept on the system's side of the day-ahead price
(`environment.markets.balancing.direction_rule`)."""

from __future__ import annotations

import mesa
import numpy as np

from environment.markets.balancing import (
    BalancingOffers,
    activate,
    imbalance_prices,
    with_der_price,
)
from environment.markets.lfm import FlexOffers, GridLimits
from environment.markets.tso_dso import TSO_DSO
from environment.markets.tso_dso_problem import BalancingProblem, BalancingResult


class Tso(mesa.Agent):
    agent_class = "tso"

    def __init__(self, model, cfg, price_floor: float):
        super().__init__(model)
        self.name = "tso"
        self.cfg = cfg
        self.emergency_down_price = price_floor

    def producer_offers(self, ctx) -> BalancingOffers:
        """The producers' balancing offers around their day-ahead schedules, priced by their
        strategies."""
        m = self.model
        ids, up_p, up_q, dn_p, dn_q = [], [], [], [], []
        t = ctx.n_mtu
        for p in m.producers:
            if not p.offers_balancing:
                continue
            up, down = p.strategy.balancing_prices(p, self.cfg.up_markup_eur_mwh,
                                                   self.cfg.down_markdown_eur_mwh)
            sched = -ctx.position[m.party_slot[p.unique_id]]
            ids.append(p.unique_id)
            up_p.append(np.full(t, up))
            dn_p.append(np.full(t, down))
            # a weather-driven plant can curtail what it actually produces and, where the
            # day-ahead market took less than it offers, offer the rest
            avail = p.available_mw(ctx)
            up_q.append(np.clip(p.strategy.offered_mw(p, avail) - sched, 0, None))
            dn_q.append(np.clip(np.minimum(sched, avail) if p.variable else sched, 0, None))
        return BalancingOffers(np.array(ids, int), np.array(up_p, float).reshape(-1, t),
                               np.array(up_q).reshape(-1, t), np.array(dn_p, float).reshape(-1, t),
                               np.array(dn_q).reshape(-1, t))

    def activate(self, ctx, preview: dict, limits: GridLimits, der: FlexOffers,
                 mtus: np.ndarray, tso_need: bool = True
                 ) -> tuple[FlexOffers, BalancingProblem, BalancingResult]:
        """A balancing block's DER activations: it asks for the system imbalance the preview
        of real time shows at the block's MTUs (`tso_need`; none in the DSO's re-check, whose
        preview adds the TSO's earlier activations back), from the DER bids up to the
        flexibility price cap and the producers' offers, cleared with the DSO under the
        scenario's TSO-DSO scheme (`markets.tso_dso_scheme`). Returns the bids as cleared,
        the problem and the scheme's result."""
        m = self.model
        mk = m.config.markets
        cap = mk.flex_price_cap
        need = np.zeros(ctx.n_mtu)
        if tso_need:
            need[mtus] = preview["system_short"][mtus]
        der = der.with_mw(np.where(der.price <= cap, der.mw, 0.0))   # bids above the cap
        problem = BalancingProblem(
            need_mw=need, producers=preview["producer_offers"], der=der, limits=limits,
            dt_h=ctx.dt_h, emergency_up_price=self.cfg.emergency_price_eur_mwh,
            emergency_down_price=self.emergency_down_price,
            unresolved_cost=mk.lfm.unresolved_cost_eur_mwh,
            interface_mw=m.dso.interface_deviation(ctx, preview, mtus), mtus=mtus,
            price_cap=cap)
        res = TSO_DSO[mk.tso_dso_scheme](problem)
        m.note_truncation("tso_dso", not res.converged)
        return der, problem, res

    def balance(self, offers: BalancingOffers, residual_mw: np.ndarray, da_price,
                system_short_mw: np.ndarray | None = None, der_price: np.ndarray | None = None):
        """Activate producers on the `residual_mw` DER left; price the system imbalance
        `system_short_mw` (before any activation) from the marginal bid of both passes."""
        system = residual_mw if system_short_mw is None else system_short_mw
        act = activate(offers, residual_mw, self.cfg.emergency_price_eur_mwh,
                       self.emergency_down_price)
        if der_price is not None:
            act = with_der_price(act, der_price)
        short_p, long_p = imbalance_prices(act, system, da_price, self.cfg.pricing,
                                           self.cfg.escalation_eur_mwh_per_mw)
        return act, short_p, long_p

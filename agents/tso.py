"""The TSO: keeps the system balanced by activating balancing energy and sets imbalance prices.
Producers' balancing offers form the merit order. (Aggregators' flexibility held for the TSO
under sequential coupling is reserved but not yet activated: DER in the ancillary-services
market, with the device-level effects of an activation, is the next step.)"""

from __future__ import annotations

import mesa
import numpy as np

from environment.markets.balancing import BalancingOffers, activate, imbalance_prices


class Tso(mesa.Agent):
    agent_class = "tso"

    def __init__(self, model, cfg, price_floor: float):
        super().__init__(model)
        self.name = "tso"
        self.cfg = cfg
        self.emergency_down_price = price_floor

    def collect_offers(self, producers, schedules_mw: dict[int, np.ndarray], ctx):
        ids, up_p, up_q, dn_p, dn_q = [], [], [], [], []
        t = ctx.n_mtu
        for p in producers:
            if not p.offers_balancing:
                continue
            up, down = p.strategy.balancing_prices(p, self.cfg.up_markup_eur_mwh,
                                                   self.cfg.down_markdown_eur_mwh)
            sched = schedules_mw[p.unique_id]
            ids.append(p.unique_id)
            up_p.append(np.full(t, up))
            dn_p.append(np.full(t, down))
            up_q.append(np.clip(p.available_mw(ctx) - sched, 0, None))
            dn_q.append(np.clip(sched, 0, None))
        return BalancingOffers(np.array(ids, int), np.array(up_p, float).reshape(-1, t),
                               np.array(up_q).reshape(-1, t), np.array(dn_p, float).reshape(-1, t),
                               np.array(dn_q).reshape(-1, t))

    def balance(self, offers: BalancingOffers, system_short_mw: np.ndarray, da_price):
        act = activate(offers, system_short_mw, self.cfg.emergency_price_eur_mwh,
                       self.emergency_down_price)
        short_p, long_p = imbalance_prices(act, system_short_mw, da_price, self.cfg.pricing)
        return act, short_p, long_p

"""The TSO: keeps the system balanced by activating balancing energy and sets imbalance prices.
Producers' balancing offers form the merit order; under sequential coupling aggregators'
flexibility held for the TSO (what fits in the DSO's grid headroom) joins it."""

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

    def collect_offers(self, producers, schedules_mw: dict[int, np.ndarray], ctx,
                       aggregators=()):
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
        for agg in aggregators:
            held = ctx.tso_offers.get(agg.unique_id)
            if held is None or not len(held) or not held.mw.any():
                continue
            ids.append(agg.unique_id)
            for direction, q, pr, sign in ((1, up_q, up_p, 1.0), (-1, dn_q, dn_p, -1.0)):
                sel = held.direction == direction
                mw = np.zeros(t)
                np.add.at(mw, held.mtu[sel], held.mw[sel])
                q.append(mw)
                pr.append(ctx.da_price + sign * agg.activation_cost)
        return BalancingOffers(np.array(ids, int), np.array(up_p, float).reshape(-1, t),
                               np.array(up_q).reshape(-1, t), np.array(dn_p, float).reshape(-1, t),
                               np.array(dn_q).reshape(-1, t))

    def der_activation(self, act, offers: BalancingOffers, aggregators, ctx) -> dict:
        """What balancing activation did to each aggregator: its change of consumption (T,)
        and where it happened (T, B), spread over the locations it held capacity for."""
        model = self.model
        grid = model.grid
        out = {}
        for agg in aggregators:
            net = np.zeros(ctx.n_mtu)
            nodal = np.zeros((ctx.n_mtu, grid.n_bus))
            k = np.flatnonzero(offers.provider == agg.unique_id)
            held = ctx.tso_offers.get(agg.unique_id)
            if k.size and held is not None:
                for direction, activated in ((1, act.up_mw[k[0]]), (-1, act.down_mw[k[0]])):
                    sel = held.direction == direction
                    per_loc = np.zeros((ctx.n_mtu, grid.n_locations))
                    np.add.at(per_loc, (held.mtu[sel], held.location[sel]), held.mw[sel])
                    total = per_loc.sum(1, keepdims=True)
                    share = np.divide(per_loc, total, out=np.zeros_like(per_loc),
                                      where=total > 0)
                    change = -direction * activated[:, None] * share
                    net += change.sum(1)
                    for loc in range(grid.n_locations):
                        buses = grid.bus_location == loc
                        w = model.flex_weights * buses
                        if w.sum() > 0:
                            nodal += np.outer(change[:, loc], w / w.sum())
            out[agg.unique_id] = {"net_mw": net, "nodal_mw": nodal}
        return out

    def balance(self, offers: BalancingOffers, system_short_mw: np.ndarray, da_price):
        act = activate(offers, system_short_mw, self.cfg.emergency_price_eur_mwh,
                       self.emergency_down_price)
        short_p, long_p = imbalance_prices(act, system_short_mw, da_price, self.cfg.pricing)
        return act, short_p, long_p

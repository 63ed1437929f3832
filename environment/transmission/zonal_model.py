"""The transmission model with bidding zones: a period's chain becomes

    coupled day-ahead market (all zones at once, interconnectors within their NTCs, lines
    ignored) -> each zone's TSO redispatches its own lines (the day-ahead exchange fixed) ->
    real time: forecast errors leave each zone an imbalance, which the regional balance place
    clears under the scenario's sharing option -> settlement.

Money, beyond the one-zone model's rows: loads pay and producers receive their zone's price,
and the exchange pays the congestion rent ((price to - price from) x flow) half to each
border's TSO; each TSO pays its own zone's incs and is paid its decs, charges its zone's loads
the net redispatch cost (network_charge), pays its zone's balancing activations
(balancing_up; balancing_down is paid to it), buys emergency energy from outside
(balancing_emergency), settles cross-border balancing energy with the other TSOs
(regional_balancing: the importer pays the exporter) and charges its zone's loads the net
balancing cost (balancing_charge) per real MWh; in a period where a zone has no (real) load
(a generation-only zone, or a forecast error below -100 %) its producers pay both charges
per MWh delivered, so a TSO keeps a cost only where nothing was consumed or delivered in its
zone. Balancing offers are the producers' headroom after
redispatch at marginal cost; renewables do not offer. A zone's loads carry its imbalance cost:
there are no BRPs in this kind, so the imbalance is not charged to whoever caused it. Real time
is not checked against the lines inside zones (the balancing place sees zones and
interconnector headroom only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from environment.markets.regional import BalancingPeriod, Sharing, share
from environment.transmission.model import Redispatch, TransmissionModel, TxContext
from environment.transmission.network import FLOW_TOL, Network, nodal_lp
from environment.transmission.scenario import TxScenario
from environment.transmission.zones import Zones, clear_coupled, optimal_dispatch

ERROR_STREAM = 20
"""Added to the seed for the forecast-error draws, a stream of its own (the producers' learners
draw from the seed and their position)."""


@dataclass
class ZonalAuction:
    """The coupled auction: prices (periods, zones), MW (periods, producers), flows (periods,
    interconnectors)."""

    price: np.ndarray
    mw: np.ndarray
    flow: np.ndarray


def transmission_model(scenario: TxScenario, seed: int | None = None) -> TransmissionModel:
    """The model that runs `scenario`: the zonal one if it declares zones."""
    cls = ZonalTransmissionModel if scenario.zonal else TransmissionModel
    return cls(scenario, seed)


class ZonalTransmissionModel(TransmissionModel):
    """A run of a transmission scenario with zones (module docstring); a `step()` is a period."""

    def __init__(self, scenario: TxScenario, seed: int | None = None):
        super().__init__(scenario, seed)
        s, z = self.config, self.zones
        self.batch = False
        tso_names = list(dict.fromkeys(z.tsos))
        accounts = {name: self.ledger.account(name, "grid_operator") for name in tso_names}
        self.tso_account = np.array([accounts[name] for name in z.tsos])
        self.load_zone = z.node_zone[self.load_node]
        self.prod_zone = z.node_zone[self.node_of]
        self.renewable = np.array([cfg.renewable for cfg in s.producers])
        seed = s.seed if seed is None else seed
        rng = np.random.default_rng(seed + ERROR_STREAM)
        shape = (s.episodes, s.periods, z.n)
        self.load_error = rng.standard_normal(shape) * [zn.load_error_sd for zn in s.zones]
        self.renewable_error = rng.standard_normal(shape) * [zn.renewable_error_sd
                                                             for zn in s.zones]
        b = s.balancing
        self.emergency = (s.day_ahead.price_cap if b.emergency_up_eur_mwh is None
                          else b.emergency_up_eur_mwh,
                          s.day_ahead.price_floor if b.emergency_down_eur_mwh is None
                          else b.emergency_down_eur_mwh)
        self.rows.zones = []
        self.rows.interconnectors = []

    def _network(self) -> Network:
        self.zones = Zones.from_scenario(self.config)
        return self.zones.net

    def _forecasts(self) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Per period: the truthful coupled price of each node's zone, the nodal prices and
        cost of the grid-constrained optimum over all zones (lines and NTCs)."""
        s, z, g = self.config, self.zones, len(self.producers)
        n_p = s.periods
        price, _, _ = clear_coupled(z, np.repeat(np.arange(n_p), g), np.tile(self.node_of, n_p),
                                    self.cost.ravel(), np.tile(self.capacity, n_p), self.load,
                                    s.day_ahead.price_floor, s.day_ahead.price_cap,
                                    s.day_ahead.tie_price)
        out = []
        for t in range(n_p):
            opt = optimal_dispatch(z, self.node_of, self.cost[t], self.capacity, self.load[t],
                                   True, f"grid-constrained optimum period {t}")
            out.append((price[t][z.node_zone], opt.nodal_price, opt.cost))
        return out

    def _auction_of(self, episode: int) -> ZonalAuction:
        s, n_p, g = self.config, self.config.periods, len(self.producers)
        period, owner, price, mw = self.offers(episode)
        prices, accepted, flow = clear_coupled(
            self.zones, period, self.node_of[owner], price, mw, self.load,
            s.day_ahead.price_floor, s.day_ahead.price_cap, s.day_ahead.tie_price)
        da_mw = np.bincount(period * g + owner, accepted, minlength=n_p * g).reshape(n_p, g)
        return ZonalAuction(prices, da_mw, flow)

    def step(self) -> None:
        s = self.config
        t, episode = self.step_index % s.periods, self.step_index // s.periods
        if t == 0:
            self._mark = self.ledger.mark()
            self._auction = self._auction_of(episode)
        self._zonal_period(episode, t)
        self.running = self.step_index < s.periods * s.episodes

    def _zonal_period(self, episode: int, t: int) -> None:
        z = self.zones
        self._set_costs(t)
        ctx = self._context(episode, t)
        load = self.load[t]
        a = self._auction
        price, da_mw, flow = a.price[t], a.mw[t], a.flow[t]
        for p, q in zip(self.producers, da_mw, strict=True):
            p.da_mw = float(q)
        injection = (np.bincount(self.node_of, da_mw, minlength=len(z.node_zone)) - load
                     + z.border_injection(flow))
        flow_da = self.net.flows(injection)
        rd, rd_cost = self._redispatch_zones(ctx, da_mw, injection)
        final = da_mw + rd.inc_mw - rd.dec_mw
        self._check_zones(t, episode, final, load, flow)
        bal, need, delivered, real_load = self._balance(episode, t, final, flow)
        self._settle_zonal(t, price, da_mw, flow, rd, rd_cost, bal, delivered, real_load)
        self._record(t, episode, float(price[self.load_zone] @ self.load_share[:, t])
                     / max(float(self.load_share[:, t].sum()), 1e-12), flow_da, da_mw, rd,
                     delivered)
        self._record_zones(t, episode, price, flow, rd_cost, bal, need, load, real_load)
        self.step_index += 1
        if t == self.config.periods - 1:
            self._end_of_episode(episode)

    def _redispatch_zones(self, ctx: TxContext, da_mw: np.ndarray,
                          injection: np.ndarray) -> tuple[Redispatch, np.ndarray]:
        """Each zone's TSO restores its own lines with its own zone's producers (the
        interconnector schedules fixed): the one-zone rules (bids, caps, pricing) per zone.
        Returns the redispatch and its cost per zone."""
        cfg, z = self.config.redispatch, self.zones
        n = len(self.producers)
        cost = self.cost[ctx.period]
        if cfg.mechanism == "cost_based":
            inc_bid, dec_bid = cost.copy(), cost.copy()
            reg_inc = reg_dec = np.ones(n, bool)
        else:
            bids = np.array([p.strategy.redispatch_prices(p, ctx) for p in self.producers],
                            float).reshape(n, 2)
            inc_bid, dec_bid = bids[:, 0], bids[:, 1]
            reg_inc = np.zeros(n, bool) if cfg.price_cap is None else inc_bid > cfg.price_cap
            reg_dec = np.zeros(n, bool) if cfg.dec_price_floor is None \
                else dec_bid < cfg.dec_price_floor
            inc_bid = np.where(reg_inc, cost, inc_bid)
            dec_bid = np.where(reg_dec, cost, dec_bid)
        inc, dec = np.zeros(n), np.zeros(n)
        inc_price, dec_price = inc_bid.copy(), dec_bid.copy()
        nodal = np.full(len(z.node_zone), np.nan)
        for k in range(z.n):
            net, nodes = z.nets[k], z.zone_nodes[k]
            inj = injection[nodes]
            if not (net.overload(inj) > FLOW_TOL).any():
                continue
            prod = np.flatnonzero(self.prod_zone == k)
            local = np.searchsorted(nodes, self.node_of[prod])
            m = len(prod)
            lp = nodal_lp(net, np.concatenate([inc_bid[prod], -dec_bid[prod]]),
                          np.concatenate([self.capacity[prod] - da_mw[prod], da_mw[prod]]),
                          np.concatenate([local, local]),
                          np.concatenate([np.ones(m), -np.ones(m)]), inj,
                          f"redispatch of zone {z.names[k]} episode {ctx.episode} period "
                          f"{ctx.period}")
            inc[prod], dec[prod] = lp.x[:m], lp.x[m:]
            nodal[nodes] = lp.nodal_price
            if cfg.mechanism == "market" and cfg.pricing == "pay_as_clear":
                at = lp.nodal_price[local]
                clear_inc = at if cfg.price_cap is None else np.minimum(at, cfg.price_cap)
                clear_dec = at if cfg.dec_price_floor is None \
                    else np.maximum(at, cfg.dec_price_floor)
                inc_price[prod] = np.where(reg_inc[prod], cost[prod], clear_inc)
                dec_price[prod] = np.where(reg_dec[prod], cost[prod], clear_dec)
        rd = Redispatch(inc, dec, inc_price, dec_price, nodal, reg_inc, reg_dec)
        per_zone = np.bincount(self.prod_zone, inc * inc_price - dec * dec_price, z.n)
        return rd, per_zone

    def _check_zones(self, t: int, episode: int, final: np.ndarray, load: np.ndarray,
                     flow: np.ndarray) -> None:
        """Every zone balances with its interconnector schedule, and the lines are within
        their limits after redispatch, or the run stops."""
        z = self.zones
        gap = (np.bincount(self.prod_zone, final, z.n) + z.net_import(flow)
               - np.bincount(z.node_zone, load, z.n))
        inj = np.bincount(self.node_of, final, len(z.node_zone)) - load \
            + z.border_injection(flow)
        over = self.net.overload(inj)
        if (np.abs(gap) > 1e-6 * max(1.0, load.sum())).any() or (over > 1e-6).any():
            raise RuntimeError(f"episode {episode} period {t}: zone imbalance "
                               f"{np.abs(gap).max():g} MW, overload {over.max(initial=0):g} MW "
                               "after redispatch")

    def _balance(self, episode: int, t: int, final: np.ndarray, flow: np.ndarray):
        """Real time: the forecast errors, each zone's imbalance (+ short), and the regional
        balance place's activation. Returns the outcome, the imbalance per zone, the
        producers' delivered MW and the loads' real MW."""
        z = self.zones
        share_load = self.load_share[:, t]
        real_load = self.real_load(episode, t)
        scheduled = final.copy()
        ren = self.renewable
        scheduled[ren] = np.clip(final[ren] * (1 + self.renewable_error[episode, t]
                                               [self.prod_zone[ren]]), 0, self.capacity[ren])
        need = (np.bincount(self.load_zone, real_load - share_load, z.n)
                - np.bincount(self.prod_zone, scheduled - final, z.n))
        offer = ~ren
        period = BalancingPeriod(
            need, self.prod_zone[offer], self.cost[t][offer],
            (self.capacity - final)[offer], self.cost[t][offer], final[offer], z.ic_from,
            z.ic_to, np.maximum(z.fwd_mw - flow, 0.0), np.maximum(z.back_mw + flow, 0.0),
            *self.emergency)
        bal = share(self.config.balancing.sharing, period)
        delivered = scheduled.copy()
        delivered[offer] += bal.up_mw - bal.down_mw
        return bal, need, delivered, real_load

    def real_load(self, episode: int, t: int) -> np.ndarray:
        """The loads' real MW in period `t`: each its forecast times (1 + its zone's error)
        (a distribution region under a node replaces its own: environment/tiers)."""
        return self.load_share[:, t] * (1 + self.load_error[episode, t][self.load_zone])

    def _settle_zonal(self, t, price, da_mw, flow, rd: Redispatch, rd_cost, bal: Sharing,
                      delivered, real_load) -> None:
        led, mtu, z = self.ledger, self.step_index, self.zones
        prod, tso = self.prod_accounts, self.tso_account
        loads = self.load_share[:, t]
        load_acc = np.array(self.load_accounts)
        led.pay(load_acc, self.exchange, "day_ahead", mtu, loads, price[self.load_zone])
        led.pay(self.exchange, prod, "day_ahead", mtu, da_mw, price[self.prod_zone])
        half = 0.5 * (price[z.ic_to] - price[z.ic_from])
        led.pay(self.exchange, tso[z.ic_from], "congestion_rent", mtu, flow, half)
        led.pay(self.exchange, tso[z.ic_to], "congestion_rent", mtu, flow, half)
        led.pay(tso[self.prod_zone], prod, "redispatch_inc", mtu, rd.inc_mw, rd.inc_price)
        led.pay(prod, tso[self.prod_zone], "redispatch_dec", mtu, rd.dec_mw, rd.dec_price)
        offer = np.flatnonzero(~self.renewable)
        oz = self.prod_zone[offer]
        led.pay(tso[oz], prod[offer], "balancing_up", mtu, bal.up_mw, self.cost[t][offer])
        led.pay(prod[offer], tso[oz], "balancing_down", mtu, bal.down_mw, self.cost[t][offer])
        em = self.emergency
        led.pay(tso, self.external, "balancing_emergency", mtu, bal.emergency_up_mw, em[0])
        led.pay(self.external, tso, "balancing_emergency", mtu, bal.emergency_down_mw, em[1])
        other = tso[z.ic_to] != tso[z.ic_from]
        led.pay(tso[z.ic_to][other], tso[z.ic_from][other], "regional_balancing", mtu,
                bal.flow_mw[other], bal.price_eur_mwh[other])
        led.pay(prod, self.external, "fuel", mtu, delivered, self.cost[t])
        made = np.bincount(self.prod_zone, delivered, z.n)
        for market, cost, basis in (("network_charge", rd_cost, loads),
                                    ("balancing_charge", bal.shared_eur, real_load)):
            zone_basis = np.bincount(self.load_zone, basis, z.n)
            has = zone_basis[self.load_zone] > 0
            led.pay(load_acc[has], tso[self.load_zone][has], market, mtu, basis[has],
                    (cost / np.where(zone_basis > 0, zone_basis, 1.0))[self.load_zone][has])
            # a zone without (real) load: its producers pay per MWh delivered
            mine = ((zone_basis <= 0) & (made > 0))[self.prod_zone]
            if mine.any():
                led.pay(prod[mine], tso[self.prod_zone][mine], market, mtu, delivered[mine],
                        (cost / np.where(made > 0, made, 1.0))[self.prod_zone][mine])

    def _record_zones(self, t, episode, price, flow, rd_cost, bal: Sharing, need, load,
                      real_load) -> None:
        z, e = self.zones, len(self.zones.ic_names)
        step = self.step_index
        self.rows.zones.append({
            "step": np.full(z.n, step), "episode": np.full(z.n, episode),
            "period": np.full(z.n, t), "zone": np.array(z.names, object),
            "tso": np.array(z.tsos, object), "da_price_eur_mwh": price,
            "load_mw": np.bincount(z.node_zone, load, z.n),
            "net_import_mw": z.net_import(flow), "imbalance_mw": need,
            "real_load_mw": np.bincount(self.load_zone, real_load, z.n),
            "redispatch_cost_eur": rd_cost, "balancing_alone_eur": bal.alone_eur,
            "balancing_activation_eur": bal.activation_eur,
            "balancing_settlement_eur": bal.settlement_eur,
            "balancing_shared_eur": bal.shared_eur, "sharing_value_eur": bal.value_eur,
            "emergency_mw": bal.emergency_up_mw - bal.emergency_down_mw})
        self.rows.interconnectors.append({
            "step": np.full(e, step), "episode": np.full(e, episode), "period": np.full(e, t),
            "interconnector": np.array(z.ic_names, object),
            "from_zone": np.array([z.names[i] for i in z.ic_from], object),
            "to_zone": np.array([z.names[i] for i in z.ic_to], object),
            "flow_da_mw": flow, "limit_mw": z.fwd_mw, "reverse_limit_mw": z.back_mw,
            "price_spread_eur_mwh": price[z.ic_to] - price[z.ic_from],
            "congestion_rent_eur": flow * (price[z.ic_to] - price[z.ic_from]),
            "balancing_flow_mw": bal.flow_mw, "balancing_price_eur_mwh": bal.price_eur_mwh})

    def tables(self) -> dict:
        out = super().tables()
        out["zones"] = self._table(self.rows.zones)
        out["interconnectors"] = self._table(self.rows.interconnectors)
        return out

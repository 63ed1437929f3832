"""One run of the tiers: distribution regions under the nodes of a zonal transmission model.

A day (24 hourly periods of the transmission, 24 x k MTUs of each region, k = 60 /
mtu_minutes):

1. each region opens its day and plans (`FlexMarketModel.open_day`,
   `dayaheadstage.plan`: its aggregators against the zone's forecast price) and posts its
   parties' day-ahead order book (`dayaheadstage.order_book`);
2. the coupled market clears the day's periods over all zones, each region's book in it as
   hourly steps at its node (environment/tiers/coupling.py);
3. each region's auction takes the coupled outcome (`dayaheadstage.auction` with that
   clearing: its zone's price, its orders accepted as in the coupling), and the region runs
   the rest of its day under its own rules (`FlexMarketModel.before_realtime`: its DSO's
   validation and LFM, its LEM, intraday; the national place; `realtime_and_settle`: DER
   balancing, real time, settlement);
4. the transmission model steps through the day's periods: the regions' day-ahead net
   positions are loads at their nodes, their real-time deviations from them (what they
   imported beyond: intraday trades with the grid above, their TSO's activations of it,
   emergency energy) join their zones' imbalances, which the zones' TSOs balance through the
   regional place (environment/markets/regional.py).

Inside a region, its own TSO agent settles its parties' imbalances at the zone's price plus
its markups and activates its DER (under the region's TSO-DSO scheme, with its DSO's limits
where the scheme has them) and the grid above; the energy it takes from the grid above is
the deviation the zone's TSO balances. The region's connection account
(`<region>/transmission`) pays the coupled market for its day-ahead position and its share of
the zone's balancing charge, and keeps what the region's TSO agent paid it.

The national place (environment/tiers/national.py): for the regions with `pass_up`, between
steps 3's intraday and real time, the flexibility their local places did not clear is offered
hour by hour to their zones' TSOs with their DSOs' limits attached and cleared against the
zones' own imbalances with the producers' offers; accepted DER are committed in the regions as
their TSOs' activations before real time, so the regions' deviations carry them to the zones'
balance. Without `pass_up` a region's DER balance only its own region."""

from __future__ import annotations

import numpy as np
import pandas as pd

from environment import dayaheadstage
from environment.model import FlexMarketModel
from environment.tiers.coupling import (
    Steps,
    accepted_orders,
    coupling_steps,
    fixed,
    region_clearing,
)
from environment.tiers.national import pass_up_day
from environment.tiers.regions import STAND_IN, region_scenarios
from environment.transmission.scenario import Load
from environment.transmission.zonal_model import ZonalAuction, ZonalTransmissionModel
from environment.transmission.zones import clear_coupled

HOURS = 24


def account_of(region: str, account: str) -> str:
    """A region's ledger account in the run's ledger."""
    return f"{region}/{account}"


class TierTransmission(ZonalTransmissionModel):
    """The zonal transmission model with regions as loads at their nodes: the coupled
    auction is cleared day by day with the regions' steps (`couple_day`), and a region's real
    load is its day-ahead net position plus its deviation."""

    def __init__(self, scenario, seed: int | None = None):
        n = len(scenario.regions)
        loads = [*scenario.loads, *(Load(name=account_of(r.name, STAND_IN), node=r.node,
                                         mw=0.0) for r in scenario.regions)]
        super().__init__(scenario.model_copy(update={"loads": loads}), seed)
        node = {name: i for i, name in enumerate(self.net.nodes)}
        self.region_node = np.array([node[r.node] for r in scenario.regions], int)
        self.region_zone = self.zones.node_zone[self.region_node]
        self.region_row = np.arange(len(loads) - n, len(loads))
        p, z = self.config.periods, self.zones
        self.deviation = np.zeros((n, p))
        self.coupled = ZonalAuction(np.full((p, z.n), np.nan),
                                    np.zeros((p, len(self.producers))),
                                    np.zeros((p, len(z.ic_names))))
        self.day_offers = self.truthful_offers()
        self.passing = [r.name for r in scenario.regions if r.pass_up]
        self.region_tso = {}
        for i, r in enumerate(scenario.regions):
            if r.pass_up:
                self.region_tso[i] = self.ledger.account(account_of(r.name, "tso"),
                                                         "grid_operator")
        self.national_due: dict[int, list] = {}
        self.national_rows: list[dict] = []
        self.national_der_rows: list[dict] = []

    def pass_up(self, t: int, i: int, hour, cut: np.ndarray, accepted: np.ndarray) -> None:
        """Region `i`'s offers and activations of period `t` in the national place: recorded,
        and what its zone's TSO owes `<region>/tso` booked with the period."""
        up = hour.direction > 0
        eur = float(accepted @ hour.price)
        zone = int(self.region_zone[i])
        self.national_der_rows.append({
            "period": t, "region": self.config.regions[i].name, "zone": self.zones.names[zone],
            "offered_up_mw": float(hour.mw[up].sum()), "offered_down_mw": float(
                hour.mw[~up].sum()), "cut_by_dso_mw": float(cut.sum()),
            "activated_up_mw": float(accepted[up].sum()),
            "activated_down_mw": float(accepted[~up].sum()), "cost_eur": eur})
        mwh = float(accepted.sum())
        if mwh > 0:
            self.national_due.setdefault(t, []).append(
                (zone, self.region_tso[i], mwh, eur / mwh))

    def national_hour(self, t: int, zone: np.ndarray, need: np.ndarray, out) -> None:
        """The zones' side of period `t` in the national place: their own imbalance, the DER
        activated in them (offers of `zone`), its cost and the value of the pass-up."""
        z = self.zones
        self.national_rows.append({
            "period": np.full(z.n, t), "zone": np.array(z.names, object), "own_imbalance_mw": need,
            "der_activated_mw": np.bincount(zone, out.der_mw, z.n),
            "der_cost_eur": out.der_cost_eur, "value_eur": out.value_eur})

    def table_of(self, rows: list[dict]) -> pd.DataFrame:
        """Rows of arrays as a table with the periods' timestamps."""
        return self._table(rows)

    def _settle_zonal(self, t, price, da_mw, flow, rd, rd_cost, bal, delivered,
                      real_load) -> None:
        super()._settle_zonal(t, price, da_mw, flow, rd, rd_cost, bal, delivered, real_load)
        due = self.national_due.pop(self.step_index, None)
        if not due:
            return
        led, z, mtu = self.ledger, self.zones, self.step_index
        cost = np.zeros(z.n)
        for zone, region, mwh, eur_mwh in due:
            led.pay(self.tso_account[zone], region, "national_der", mtu, mwh, eur_mwh)
            cost[zone] += mwh * eur_mwh
        zone_real = np.bincount(self.load_zone, real_load, z.n)
        per_mwh = cost / np.where(zone_real > 0, zone_real, 1.0)
        has = (zone_real[self.load_zone] > 0) & (per_mwh[self.load_zone] != 0)
        led.pay(np.array(self.load_accounts)[has], self.tso_account[self.load_zone][has],
                "balancing_charge", mtu, real_load[has], per_mwh[self.load_zone][has])

    def _auction_of(self, episode: int) -> ZonalAuction:
        return self.coupled

    def _forecasts(self) -> list:
        """Filled a day at a time (`forecast_day`): a year's coupling at set-up is an LP per
        period before the first day runs."""
        return [None] * self.config.periods

    def forecast_day(self, day: int) -> np.ndarray:
        """The zones' truthful coupled prices of the day's periods (periods, zones), before the
        regions' books are in (their loads of the day are still the stand-ins' zeros); the
        periods' forecasts the producers' context holds. The grid-constrained optimum of each
        period prices no one here (the producers are truthful, and the transmission planner
        sees no region, so the run reports none)."""
        s, z, g = self.config, self.zones, len(self.producers)
        h0 = day * HOURS
        hours = slice(h0, h0 + HOURS)
        price, _, _ = clear_coupled(z, np.repeat(np.arange(HOURS), g),
                                    np.tile(self.node_of, HOURS), self.cost[hours].ravel(),
                                    np.tile(self.capacity, HOURS), self.load[hours],
                                    s.day_ahead.price_floor, s.day_ahead.price_cap,
                                    s.day_ahead.tie_price)
        nodal = np.full(len(z.node_zone), np.nan)
        for t in range(HOURS):
            self.forecast[h0 + t] = (price[t][z.node_zone], nodal, np.nan)
        return price

    def truthful_offers(self) -> tuple[np.ndarray, ...]:
        """`offers(0)` when every producer offers its capacity at cost (a run with regions
        checks they do), without a producer's context per period."""
        n_p, g = self.config.periods, len(self.producers)
        return (np.tile(np.arange(n_p), g), np.repeat(np.arange(g), n_p),
                self.cost.T.ravel(), np.repeat(self.capacity, n_p).astype(float))

    def real_load(self, episode: int, t: int) -> np.ndarray:
        out = super().real_load(episode, t)
        rows = self.region_row
        out[rows] = self.load_share[rows, t] + self.deviation[:, t]
        return out

    def couple_day(self, day: int, steps: list[Steps]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The coupled market of the day's periods with every region's steps at its node.
        Returns the zones' prices (periods, zones) and the MW taken of each region's steps;
        the regions' net positions become their loads."""
        s, z, g = self.config, self.zones, len(self.producers)
        h0 = day * HOURS
        period, owner, price, mw = self.day_offers
        sel = (period >= h0) & (period < h0 + HOURS)
        load = self.load[h0:h0 + HOURS].copy()
        for st, node in zip(steps, self.region_node, strict=True):
            load[:, node] += st.fixed_mw
        prices, accepted, flow = clear_coupled(
            z, np.concatenate([period[sel] - h0, *(st.hour for st in steps)]),
            np.concatenate([self.node_of[owner[sel]],
                            *(np.full(len(st.hour), n) for st, n in
                              zip(steps, self.region_node, strict=True))]),
            np.concatenate([price[sel], *(st.price for st in steps)]),
            np.concatenate([mw[sel], *(st.mw for st in steps)]), load,
            s.day_ahead.price_floor, s.day_ahead.price_cap, s.day_ahead.tie_price)
        n0 = int(sel.sum())
        a = self.coupled
        a.price[h0:h0 + HOURS] = prices
        a.mw[h0:h0 + HOURS] = np.bincount((period[sel] - h0) * g + owner[sel], accepted[:n0],
                                          HOURS * g).reshape(HOURS, g)
        a.flow[h0:h0 + HOURS] = flow
        taken = np.split(accepted[n0:], np.cumsum([len(st.hour) for st in steps])[:-1])
        for st, x, node, row in zip(steps, taken, self.region_node, self.region_row,
                                    strict=True):
            net = st.fixed_mw - np.bincount(st.hour, x, HOURS)
            self.load[h0:h0 + HOURS, node] += net
            self.load_share[row, h0:h0 + HOURS] = net
        return prices, taken


class TierModel:
    """A run of a transmission scenario with `regions` (module docstring); `step()` is a
    day."""

    def __init__(self, scenario, seed: int | None = None):
        seed = scenario.seed if seed is None else seed
        self.config = scenario
        self.tx = TierTransmission(scenario, seed)
        self.regions = [FlexMarketModel(s) for s in region_scenarios(scenario, seed)]
        self.days = scenario.periods // HOURS
        self.per_hour = []
        for m in self.regions:
            k = 60 // m.calendar.mtu_minutes
            self.per_hour.append(k)
            m.node_price = np.full(scenario.periods * k, np.nan)
            m.stand_in = next(p for p in m.producers if p.name == STAND_IN)
        self.rows: list[pd.DataFrame] = []
        self.day = 0
        self.running = self.days > 0

    def step(self) -> None:
        """One day of every tier (module docstring)."""
        d = self.day
        ctxs, books, steps = [], [], []
        forecast = self.tx.forecast_day(d)
        for m, k, zone in zip(self.regions, self.per_hour, self.tx.region_zone, strict=True):
            t = m.calendar.mtu_per_day
            m.node_price[d * t:(d + 1) * t] = np.repeat(forecast[:, zone], k)
            ctx = m.open_day(m.day)
            dayaheadstage.plan(m, ctx)
            book = dayaheadstage.order_book(m, ctx)
            ctxs.append(ctx)
            books.append(book)
            steps.append(coupling_steps(book, m.stand_in.unique_id, k, HOURS))
        prices, taken = self.tx.couple_day(d, steps)
        imports = []
        for i, m in enumerate(self.regions):
            ctx, k = ctxs[i], self.per_hour[i]
            t = ctx.n_mtu
            price = np.repeat(prices[:, self.tx.region_zone[i]], k)
            m.node_price[d * t:(d + 1) * t] = price
            clearing = region_clearing(books[i], steps[i], accepted_orders(steps[i], taken[i]),
                                       m.stand_in.unique_id, price, ctx.price_floor,
                                       ctx.price_cap)
            dayaheadstage.auction(m, ctx, books[i], fixed(clearing))
            imports.append(-ctx.position[m.party_slot[m.stand_in.unique_id]].copy())
            m.before_realtime(ctx)
        if self.tx.passing:
            pass_up_day(self, d, ctxs)
        for i, m in enumerate(self.regions):
            ctx, k, da_import = ctxs[i], self.per_hour[i], imports[i]
            t, slot = ctx.n_mtu, m.party_slot[m.stand_in.unique_id]
            price = m.node_price[d * t:(d + 1) * t]
            m.realtime_and_settle(ctx)
            rt = ctx.realtime
            real_import = -rt.realised[slot] + rt.balancing[slot] \
                + rt.act.emergency_up_mw - rt.act.emergency_down_mw
            dev = real_import - da_import
            self.tx.deviation[i, d * HOURS:(d + 1) * HOURS] = dev.reshape(HOURS, k).mean(1)
            self.rows.append(pd.DataFrame({
                "region": m.config.name, "mtu": ctx.mtu0 + np.arange(t),
                "period": d * HOURS + np.arange(t) // k, "da_price_eur_mwh": price,
                "da_import_mw": da_import, "real_import_mw": real_import,
                "deviation_mw": dev}))
        for _ in range(HOURS):
            self.tx.step()
        self.day += 1
        self.running = self.day < self.days

    def run(self) -> TierModel:
        while self.running:
            self.step()
        return self

    def tables(self) -> dict[str, pd.DataFrame]:
        """The transmission's tables, the regions' exchange with it per MTU (`regions`) and
        one ledger of every tier (a region's accounts as `<region>/<account>`; `mtu` is the
        tier's own: the transmission's hour, the region's MTU, `mtu_minutes` says which)."""
        out = self.tx.tables()
        regions = pd.concat(self.rows, ignore_index=True)
        regions.insert(1, "node", regions["region"].map(
            {m.config.name: self.tx.net.nodes[n] for m, n in
             zip(self.regions, self.tx.region_node, strict=True)}))
        regions.insert(2, "zone", regions["region"].map(
            {m.config.name: self.tx.zones.names[z] for m, z in
             zip(self.regions, self.tx.region_zone, strict=True)}))
        out["regions"] = regions
        if self.tx.passing:
            out["national"] = self.tx.table_of(self.tx.national_rows)
            der = pd.DataFrame(self.tx.national_der_rows)
            der.insert(0, "timestamp", pd.DatetimeIndex(self.tx.timestamps)[der["period"]])
            out["national_der"] = der
        parts = [out["ledger"].assign(mtu_minutes=60)]
        for m in self.regions:
            led = m.ledger.frame()
            for side in ("payer", "payee"):
                led[side] = account_of(m.config.name, "") + led[side].astype(str)
            parts.append(led.assign(mtu_minutes=m.calendar.mtu_minutes))
        ledger = pd.concat(parts, ignore_index=True)
        for col in ("payer", "payee", "market"):
            ledger[col] = ledger[col].astype(str).astype("category")
        out["ledger"] = ledger
        return out

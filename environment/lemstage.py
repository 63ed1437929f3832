"""The local electricity market's gate (PARITY, seed 003 D4.3): D-1, after the DSO validated
the day-ahead schedules, every participating household's home energy manager posts its
forecast net surplus (ask) or deficit (bid) per MTU, the LEMO clears each LEM area and MTU,
and the matched energy is settled after real time (`environment.lem_settlement`).

Traffic light (D4.3 6.3.5 "Coordination between Flexibility Requesting Parties" and the
Traffic Light Concept of its executive summary: GREEN the LEM runs; YELLOW with an explicit
LFM the LFM opens and the LEM pauses, with an implicit LFM it runs on under the DSO's
locational grid prices; RED/BLACK the DSO takes control and market activity stops): with
`markets.lfm` on and `markets.implicit` off, a household's orders at an MTU where its
location (or a location upstream of it, the transformer) is YELLOW are not entered; with
`markets.implicit` on, its trades pay the locational grid price the DSO set (`ctx.adders`)
and its manager prices that in; with neither, YELLOW changes nothing. RED and BLACK are
known only in real time, after the D-1 clearing: trades matched at an MTU-location that
turned RED/BLACK are settled as matched or cancelled (`markets.lem.red`; `cancel_red`).

Scope (D4.3 6.1.4 "Local Scope", 6.3.4 "Definition of Local Scope": liquidity wants a large
area, precision a small one): `feeder` = one DSO location (a feeder leaving the substation),
`transformer` = all buses below the nearest transformer upstream (the MV/LV area),
`region` = the whole grid. A scope whose areas coincide with the next smaller one's on this
grid cannot act as what it names and is refused (`lem_areas`).

Simplification: the LEM is a financial overlay on the retail contracts. Managers post what
their plans already forecast and the suppliers stay balance responsible for their customers'
metered energy; the LEM changes who pays whom for it. Nothing moves a device unless
`markets.lem.hems_battery` is on: then the managers re-plan the home batteries no aggregator
holds against the expected local prices before the day-ahead market (`plan_batteries`,
`environment.lem_batteries`), so the suppliers buy for, and the LEM trades, the moved energy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.strategies import agent_params, make_strategy
from agents.strategies.hems import Reservation
from agents.strategies.local import upstream_locations
from environment.errors import ScenarioError
from environment.lem_batteries import BatteryPlanner
from environment.markets.lem import area_mtu, clear_double_auction
from environment.markets.orders import OrderBook
from environment.markets.registry import get_clearing

LEM_OPERATOR = "lem_operator"
RED = 2   # agents.dso.Light.RED: RED and BLACK stop market activity


@dataclass(slots=True)
class LemDay:
    """What the LEM gate leaves for settlement and recording (MW per household and MTU)."""

    matched_mw: np.ndarray          # (N, T) matched D-1, + bought, - sold
    price: np.ndarray               # (N, T) EUR/MWh its trades settle at (NaN: none)
    grid_price: np.ndarray          # (N, T) locational grid price on its trades (implicit)
    paused: np.ndarray              # (T, K) MTU-locations where YELLOW paused the LEM
    settled_mw: np.ndarray | None = None   # (N, T) after RED/BLACK, what settlement books


def transformer_area(grid) -> np.ndarray:
    """(B,) per bus the first bus below its nearest upstream transformer (0 above all)."""
    area = np.zeros(grid.n_bus, np.int64)
    trafo = np.asarray(grid.branch_kind) == "trafo"
    for b in range(1, grid.n_bus):   # preorder: a parent comes before its children
        area[b] = b if trafo[b - 1] else area[grid.parent_bus[b]]
    return area


def lem_areas(grid, bus: np.ndarray, scope: str) -> np.ndarray:
    """(N,) LEM area of each household at `bus` (0..areas-1) under `scope`; ScenarioError if
    on this grid (its buses below a transformer, wherever households happen to sit) the scope
    makes the same markets as the next smaller one."""
    if scope not in ("feeder", "transformer", "region"):
        raise ScenarioError(f"invalid scenario: markets.lem.scope = {scope!r}: expected "
                            "feeder, transformer or region")
    location, trafo = np.asarray(grid.bus_location), transformer_area(grid)
    below = np.flatnonzero(trafo > 0) if trafo.any() else np.arange(1, grid.n_bus)

    def same(a, b) -> bool:
        pairs = len({(x, y) for x, y in zip(a[below].tolist(), b[below].tolist(), strict=True)})
        return pairs == len(np.unique(a[below])) == len(np.unique(b[below]))

    if scope == "region" and same(np.zeros_like(trafo), trafo):
        raise ScenarioError(f"invalid scenario: markets.lem.scope = 'region': grid "
                            f"{grid.code} is one transformer area, so a region is the same "
                            "market as `transformer`; use scope transformer or a grid with "
                            "several MV/LV transformers")
    if scope == "feeder" and same(location, trafo):
        raise ScenarioError(f"invalid scenario: markets.lem.scope = 'feeder': grid "
                            f"{grid.code} has one feeder per transformer area, so a feeder is "
                            "the same market as `transformer`")
    part = {"feeder": location, "transformer": trafo,
            "region": np.zeros_like(trafo)}[scope][bus]
    return np.unique(part, return_inverse=True)[1].astype(np.int64)


class LocalMarket:
    """The run's LEM: its areas, participants, managers' strategy and arrival stream."""

    def __init__(self, model):
        cfg = model.config.markets.lem
        self.model, self.cfg = model, cfg
        f, grid = model.fleet, model.grid
        self.area = lem_areas(grid, f.bus, cfg.scope)
        self.n_areas = int(self.area.max()) + 1 if f.n else 0
        # its own streams: enabling the LEM changes no other draw of the run
        self.participant = np.random.default_rng([model.run_seed, 3]).random(f.n) \
            < cfg.participation
        self.arrival_rng = np.random.default_rng([model.run_seed, 2])
        self.location = np.asarray(grid.bus_location)[f.bus]
        self.upstream = upstream_locations(model)
        self.strategy = make_strategy("hems", cfg.strategy, **agent_params(
            "hems", cfg.strategy, cfg.strategy_params, model.run_seed, "hems"))
        self.clear = get_clearing(cfg.clearing)
        self.account = model.ledger.account(LEM_OPERATOR, "market_operators")
        fee = cfg.fee_eur_mwh
        self.fee_buyer = fee if cfg.fee_side in ("each", "buyer") else 0.0
        self.fee_seller = fee if cfg.fee_side in ("each", "seller") else 0.0
        mk = model.config.markets
        self.yellow_rule = "price" if mk.implicit.enabled else \
            ("pause" if mk.lfm.enabled else "none")
        self.battery_rows = np.zeros(0, np.int64)   # households whose battery follows the LEM
        self.battery_plan: np.ndarray | None = None  # (N, T) MW, the day's plan of those rows
        self.battery_shift: np.ndarray | None = None  # (N, T) MW, plan - self-consumption rule
        self._planner = None   # (key, lem_batteries.BatteryPlanner), kept warm across days

    def per_household(self, by_location: np.ndarray) -> np.ndarray:
        """(T, K) flags -> (N, T): a household's own location's or any upstream one's."""
        up = by_location[:, self.upstream].any(1) if len(self.upstream) else False
        return (by_location[:, self.location] | np.asarray(up)[:, None]).T

    def reservation(self, grid_price: np.ndarray) -> Reservation:
        """The managers' reservation prices (agents/strategies/hems.py derives them)."""
        m = self.model
        retail = np.array([b.retail_price for b in m.brps])[m.fleet.brp][:, None]
        feed = np.array([b.feed_in for b in m.brps])[m.fleet.brp][:, None]
        saving = m.dso.tariff - self.cfg.local_tariff_eur_mwh
        return Reservation(bid=retail + saving - self.fee_buyer - grid_price,
                           ask=feed + self.fee_seller - grid_price)

    def expected_prices(self, net_mw: np.ndarray, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
        """(N, T) EUR/MWh a household expects to pay for import and earn for export, from the
        area's first-pass clearing of the participants' self-consumption plans `net_mw` (a
        double auction whatever `clearing` is: deterministic, and the same prices under
        truthful managers; before the DSO's validation, so without YELLOW or grid prices).
        A share `fill` of its import (export) is expected to clear locally, the rest goes to
        its supplier: buy = R - fill_b (R - min(R, p + local tariff + fee)), sell = F +
        fill_s (max(F, p - fee) - F), R = retail + full tariff, F = feed-in. `fill` is the
        side's matched share in its area and MTU, 1 where only the other side posted, 0 where
        it did not; p the clearing price, or where nothing cleared the midpoint of the
        household's own bid and ask (where a lone pair would clear)."""
        m, cfg = self.model, self.cfg
        n, t = net_mw.shape
        size = self.n_areas * t
        res = self.reservation(np.zeros((n, t)))
        bid, ask = self.strategy.prices(res)
        mwh = net_mw * dt_h
        live = self.participant[:, None] & (np.abs(mwh) > 1e-9)
        i, k = np.nonzero(live)
        book = OrderBook.from_arrays(i, area_mtu(self.area[i], k, t),
                                     np.where(mwh[i, k] > 0, bid[i, k], ask[i, k]),
                                     mwh[i, k], size)
        da = m.config.markets.dayahead
        c = clear_double_auction(book, size, da.price_floor, da.price_cap)

        def per_key(x):
            return np.bincount(book.mtu, x, size) if len(book) else np.zeros(size)

        offer_b, offer_s = per_key(np.clip(book.volume, 0, None)), per_key(np.clip(
            -book.volume, 0, None))
        fill_b = np.divide(per_key(np.clip(c.accepted, 0, None)), offer_b,
                           out=(offer_s > 0).astype(float), where=offer_b > 0)
        fill_s = np.divide(per_key(np.clip(-c.accepted, 0, None)), offer_s,
                           out=(offer_b > 0).astype(float), where=offer_s > 0)
        key = area_mtu(self.area[:, None], np.arange(t)[None, :], t)
        price = c.price[key] if len(book) else np.full((n, t), np.nan)
        p = np.where(np.isnan(price), 0.5 * (bid + ask), price)
        retail = np.array([b.retail_price for b in m.brps])[m.fleet.brp][:, None] + m.dso.tariff
        feed = np.array([b.feed_in for b in m.brps])[m.fleet.brp][:, None]
        local_buy = np.minimum(retail, p + cfg.local_tariff_eur_mwh + self.fee_buyer)
        local_sell = np.maximum(feed, p - self.fee_seller)
        return (retail - fill_b[key] * (retail - local_buy),
                np.broadcast_to(feed + fill_s[key] * (local_sell - feed), (n, t)).copy())

    def plan_batteries(self, base_mw: np.ndarray, rule_mw: np.ndarray, dt_h: float
                       ) -> np.ndarray:
        """D-1, before the day-ahead market: the participants' own batteries re-planned
        against the expected local prices (`expected_prices` of the self-consumption plans,
        `environment.lem_batteries`) from `base_mw`, net consumption before those batteries,
        and `rule_mw`, the self-consumption rule's battery power (N, T). Returns every
        battery's power, the rule's where no manager re-plans; keeps the plan for real time."""
        f = self.model.fleet
        own = (f.batt_mwh > 0) & ~f.enrolled["battery"]
        rows = np.flatnonzero(self.participant & own)
        buy, sell = self.expected_prices(base_mw + rule_mw, dt_h)
        feed = np.array([b.feed_in for b in self.model.brps])[f.brp]
        key = (tuple(rows), base_mw.shape[1], dt_h)
        if self._planner is None or self._planner[0] != key:
            self._planner = (key, BatteryPlanner(f.batt_mwh[rows], f.batt_mw[rows],
                                                 f.eta[rows], base_mw.shape[1], dt_h))
        out = rule_mw.copy()
        out[rows] = self._planner[1].plan(base_mw[rows], buy[rows], sell[rows], f.soc[rows],
                                          feed[rows])
        self.battery_rows, self.battery_plan = rows, out
        self.battery_shift = out - rule_mw
        return out

    def planned_net(self, ctx) -> np.ndarray:
        """(N, T) MW each household's plan forecasts at its meter in its supplier's perimeter
        (the devices an aggregator holds inside that perimeter included)."""
        m = self.model
        inside = np.isin(m.fleet.aggregator, [a.index for a in m.aggregators
                                              if a.in_supplier_perimeter])
        plan = m.device_plan(ctx)
        return ctx.retail_net_forecast + np.where(
            inside[:, None], plan["battery"] + plan["ev"] + plan["hp"], 0.0)

    def congestion_before(self, ctx) -> dict:
        """(T, K) flags of the DSO's day-ahead check (`Dso.validate`, the same aggregator plans
        and forecast) of the households' plans before the managers re-planned their batteries
        for the LEM: the self-consumption rule's (`ctx.retail_net_before_lem`). Without
        `hems_battery` those are the plans the DSO checked, so the flags are `ctx.da_flags`;
        published on `ctx.lem_before_flags`."""
        if not self.cfg.hems_battery:
            ctx.lem_before_flags = ctx.da_flags
        else:
            _, _, ctx.lem_before_flags = self.model.forecast_grid(
                ctx, ctx.retail_net_before_lem, ctx.forecast)
        return ctx.lem_before_flags

    def trade(self, ctx) -> LemDay:
        """D-1: the managers' orders, the LEMO's clearing per area and MTU; published on
        `ctx.lem`."""
        n, t, dt = self.model.fleet.n, ctx.n_mtu, ctx.dt_h
        yellow = ctx.yellow if ctx.yellow is not None else np.zeros((t, 0), bool)
        grid_price = np.zeros((n, t))
        if self.yellow_rule == "price" and ctx.adders is not None and np.any(ctx.adders):
            a = ctx.adders
            up = a[:, self.upstream].sum(1) if len(self.upstream) else 0.0
            grid_price = (a[:, self.location] + np.asarray(up)[:, None]).T
        paused = yellow if self.yellow_rule == "pause" else np.zeros_like(yellow)
        bid, ask = self.strategy.prices(self.reservation(grid_price))
        mwh = self.planned_net(ctx) * dt
        live = self.participant[:, None] & (np.abs(mwh) > 1e-9) & ~self.per_household(paused)
        i, k = np.nonzero(live)
        book = OrderBook.from_arrays(i, area_mtu(self.area[i], k, t),
                                     np.where(mwh[i, k] > 0, bid[i, k], ask[i, k]),
                                     mwh[i, k], self.n_areas * t)
        book = book.arrived(self.clear, self.arrival_rng)
        c = self.clear(book, self.n_areas * t, ctx.price_floor, ctx.price_cap)
        matched, price = np.zeros((n, t)), np.full((n, t), np.nan)
        rows, cols = book.owner, book.mtu % t if t else book.mtu
        matched[rows, cols] = c.accepted / dt
        price[rows, cols] = np.where(c.accepted != 0, c.paid_price(book), np.nan)
        ctx.lem = LemDay(matched, price, grid_price, paused)
        return ctx.lem

    def cancel_red(self, lem: LemDay, light: np.ndarray) -> np.ndarray:
        """(N, T) MW settled: as matched (`red: settle`), or without the trades of households
        whose location was RED/BLACK in real time (`red: cancel`), the other side of each
        area and MTU cut back pro rata so that bought equals sold."""
        m = lem.matched_mw.copy()
        if self.cfg.red == "settle":
            return m
        m[self.per_household(light >= RED)] = 0.0
        t = m.shape[1]
        key = area_mtu(self.area[:, None], np.arange(t)[None, :], t)
        size = self.n_areas * t
        bought = np.bincount(key.ravel(), np.clip(m, 0, None).ravel(), size)
        sold = np.bincount(key.ravel(), np.clip(-m, 0, None).ravel(), size)
        q = np.minimum(bought, sold)
        keep_b = np.divide(q, bought, out=np.zeros(size), where=bought > 0)
        keep_s = np.divide(q, sold, out=np.zeros(size), where=sold > 0)
        return m * np.where(m > 0, keep_b[key], keep_s[key])

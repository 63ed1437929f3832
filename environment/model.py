"""The Mesa model: agents built from the scenario and the daily market cycle.

One `step()` is one delivery day:
1. D-1 morning: forecasts (with error) of load, PV, wind; aggregators pool their flexibility
   and schedule it against a fundamental price forecast.
2. D-1 gate closure: day-ahead auction (mechanism from the market registry).
3. D-1 afternoon: DSO validation of the schedules on the grid (LinDistFlow) per MTU/location.
4. Day D real time: realisation with forecast errors; TSO activates balancing energy.
5. Settlement: DA, imbalance, balancing, retail, network tariffs, flexibility fees and fuel,
   each payment a ledger row.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from types import MappingProxyType

import mesa
import numpy as np
import pandas as pd

from agents.aggregator import Aggregator
from agents.brp import Brp, SystemLoadBrp
from agents.dso import Dso
from agents.producer import Producer
from agents.prosumer import DayProfiles, Envelope, Prosumer, ProsumerFleet
from agents.strategies import known
from agents.tso import Tso
from environment.calendar import Calendar
from environment.datacache import cached
from environment.forecast import draw_day_errors
from environment.grid.network import Grid, load_simbench_grid, simbench_net
from environment.ledger import Ledger
from environment.markets.orders import OrderBook
from environment.markets.registry import CLEARING, get_clearing
from environment.planner import PlannerDay, PlannerResult, solve_day
from environment.profiles import ProfileBank, simbench_profiles
from environment.scenario import Scenario, ScenarioError

EXTERNAL = "external"
EXCHANGE = "da_exchange"
SYSTEM_CONSUMERS = "system_consumers"


@dataclass
class DayContext:
    """Everything the agents see of one delivery day; forecasts are filled before the auction,
    realised values after."""

    day: int
    mtu0: int
    n_mtu: int
    dt_h: float
    price_floor: float
    price_cap: float
    errors: dict
    profiles: DayProfiles
    forecast: DayProfiles
    ev_env: Envelope
    hp_env_forecast: Envelope
    retail_net_forecast: np.ndarray
    retail_net: np.ndarray = field(default=None)


def validate_references(s: Scenario, grid_buses: set[str] | None = None) -> None:
    """Names a scenario refers to (strategies, clearing mechanisms, profiles) must exist."""
    problems = []
    for role, items in (("brps", s.brps), ("aggregators", s.aggregators),
                        ("producers", s.producers)):
        valid = known(role.rstrip("s"))
        for i, item in enumerate(items):
            if item.strategy not in valid:
                problems.append(f"{role}[{i}].strategy = {item.strategy!r}: unknown strategy; "
                                f"known: {valid}")
    get_clearing("uniform_price")
    if s.markets.dayahead.clearing not in CLEARING:
        problems.append(f"markets.dayahead.clearing = {s.markets.dayahead.clearing!r}: unknown "
                        f"mechanism; known: {sorted(CLEARING)}")
    available = simbench_profiles()

    def check(path: str, name: str | None) -> None:
        if name is not None and name not in available:
            problems.append(f"{path} = {name!r}: not a simbench profile")

    for i, p in enumerate(s.producers):
        check(f"producers[{i}].profile", p.profile)
    check("system_load.profile", s.system_load.profile)
    for gi, g in enumerate(s.prosumers):
        for key, names in (("load_profiles", g.load_profiles), ("pv.profiles", g.pv.profiles),
                           ("ev.profiles", g.ev.profiles),
                           ("heat_pump.profiles", g.heat_pump.profiles)):
            if not names:
                problems.append(f"prosumers[{gi}].{key} = []: needs at least one profile")
            for j, n in enumerate(names):
                check(f"prosumers[{gi}].{key}[{j}]", n)
        if grid_buses is not None:
            for j, b in enumerate(g.buses or []):
                if b not in grid_buses:
                    problems.append(f"prosumers[{gi}].buses[{j}] = {b!r}: not a bus of grid "
                                    f"{s.grid.simbench_code}")
    if problems:
        raise ScenarioError(f"invalid scenario {s.name}:\n  " + "\n  ".join(problems))


def _grid_and_households(code: str):
    """Picklable: the grid's fields (mapping proxies as dicts) and the household loads."""
    grid = load_simbench_grid(code)
    fields = {f.name: getattr(grid, f.name) for f in dataclasses.fields(grid)}
    fields = {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in fields.items()}
    return fields, simbench_net(code).load[["bus", "p_mw", "profile"]].copy()


def _load_grid(s: Scenario):
    code = s.grid.simbench_code
    try:
        fields, loads = cached(f"grid-{code}", lambda: _grid_and_households(code))
        mapped = {k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in fields.items()}
        return Grid(**mapped), loads
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise ScenarioError(f"invalid scenario {s.name}:\n  grid.simbench_code = "
                            f"{s.grid.simbench_code!r}: {exc}") from None


class FlexMarketModel(mesa.Model):
    """A run of one scenario; `step()` simulates one delivery day."""

    def __init__(self, scenario: Scenario, seed: int | None = None):
        seed = scenario.seed if seed is None else seed
        super().__init__(rng=seed)
        self.config = s = scenario
        self.grid, net = _load_grid(s)
        validate_references(s, set(self.grid.bus_index))
        c = s.calendar
        self.calendar = Calendar(c.start, c.days, c.mtu_minutes, c.da_gate_closure_hour)
        groups = s.prosumers
        names = [n for g in groups for n in (*g.load_profiles, *g.pv.profiles, *g.ev.profiles,
                                             *g.heat_pump.profiles)]
        names += [p.profile for p in s.producers if p.profile] + [s.system_load.profile]
        self.bank = ProfileBank(names, self.calendar)
        shares = np.array([b.customer_share for b in s.brps])
        self.fleet = ProsumerFleet(groups, self.grid, net, self.bank.names, self.rng, shares)
        self.ledger = Ledger()
        self.ledger.account(EXTERNAL, "external")
        self.ledger.account(EXCHANGE, "market_operators")
        self.ledger.account(SYSTEM_CONSUMERS, "consumers")

        self.brps = [Brp(self, b, i) for i, b in enumerate(s.brps)]
        self.system_brp = SystemLoadBrp(self, s.system_load,
                                        self.bank.index[s.system_load.profile],
                                        s.system_load.retail_price_eur_mwh)
        self.aggregators = [Aggregator(self, a, i) for i, a in enumerate(s.aggregators)]
        for agg, cfg in zip(self.aggregators, s.aggregators, strict=True):
            self.fleet.enrol(agg.index, cfg.enrolment, list(cfg.devices), self.rng)
        self.producers = [Producer(self, p, self.bank.index[p.profile] if p.profile else None)
                          for p in s.producers]
        self.dso = Dso(self, self.grid, s.grid, s.dso, self.fleet.bus)
        self.tso = Tso(self, s.tso, s.markets.dayahead.price_floor)
        self.prosumers = [Prosumer(self, self.fleet, i) for i in range(self.fleet.n)]
        for a in [*self.brps, self.system_brp, *self.aggregators, *self.producers, self.dso,
                  self.tso]:
            a.account = self.ledger.account(a.name, a.agent_class)
        base = len(self.ledger.names)
        for i in range(self.fleet.n):
            self.ledger.account(f"prosumer_{i}", "prosumers")
        self.prosumer_account = base + np.arange(self.fleet.n)
        self.clear_da = get_clearing(s.markets.dayahead.clearing)
        self.day = 0
        self.records: dict[str, list] = {}
        self.valued = {"prosumers": 0.0, "consumers": 0.0}
        self.service_mwh = 0.0
        self.shortfall_mwh = 0.0
        self.planner_days: list[PlannerResult] = []
        self.planner_seconds = 0.0
        self.running = True

    @property
    def parties(self) -> list:
        """Balance responsible parties, in a fixed order."""
        return [*self.brps, self.system_brp, *self.aggregators, *self.producers]

    def _context(self, day: int) -> DayContext:
        f, cal = self.fleet, self.calendar
        t, dt = cal.mtu_per_day, cal.mtu_hours
        actual = f.day_profiles(self.bank, day)
        err = draw_day_errors(self.rng, self.config.forecast, len(self.brps), f.n, t)
        load_err = err["load"][f.brp] if f.n else np.zeros((0, t))
        fc = DayProfiles(
            load=actual.load * np.clip(1 + load_err + err["idio"], 0, None),
            pv=actual.pv * np.clip(1 + err["pv"], 0, None),
            ev=actual.ev,
            hp=np.clip(actual.hp * (1 + load_err), 0, f.hp_mw[:, None]),
        )
        dx = self.config.markets.dayahead
        ctx = DayContext(day, day * t, t, dt, dx.price_floor, dx.price_cap, err, actual, fc,
                         f.ev_envelope(actual.ev, dt), f.hp_envelope(fc.hp, dt), None)
        ctx.retail_net_forecast = self._retail_net(fc, commit=False)
        return ctx

    def _retail_net(self, prof: DayProfiles, commit: bool, devices=None) -> np.ndarray:
        """Metered consumption in the supplier's perimeter: everything but enrolled devices."""
        f = self.fleet
        ev = np.where(f.enrolled["ev"][:, None], 0.0, prof.ev)
        hp = np.where(f.enrolled["heat_pump"][:, None], 0.0, prof.hp)
        own = (f.batt_mwh > 0) & ~f.enrolled["battery"]
        batt = f.self_consumption(prof.pv - prof.load - ev - hp, own, self.calendar.mtu_hours,
                                  commit=commit)
        if devices is not None:
            devices["battery"][own] = batt[own]
        return prof.load - prof.pv + ev + hp + batt

    def price_forecast(self, ctx: DayContext) -> np.ndarray:
        """A fundamental forecast from public data: the producers' merit order against
        forecast demand without flexibility."""
        demand = self.system_brp.forecast_mw(ctx) + ctx.retail_net_forecast.sum(0)
        demand = demand + sum(a.pool_baseline(ctx) for a in self.aggregators)
        book = OrderBook.concat(
            [p.strategy.da_orders(p, ctx) for p in self.producers]
            + [OrderBook.from_arrays(-1, np.arange(ctx.n_mtu),
                                     np.where(demand >= 0, ctx.price_cap, ctx.price_floor),
                                     demand * ctx.dt_h, ctx.n_mtu)])
        return self.clear_da(book, ctx.n_mtu, ctx.price_floor, ctx.price_cap).price

    def step(self) -> None:
        if self.day >= self.calendar.days:
            self.running = False
            return
        ctx = self._context(self.day)
        f, dt, t = self.fleet, ctx.dt_h, ctx.n_mtu
        soc_start = f.soc.copy()

        prices_fc = self.price_forecast(ctx)
        for agg in self.aggregators:
            agg.schedule(ctx, prices_fc)

        parties = self.parties
        book = OrderBook.concat([p.strategy.da_orders(p, ctx) for p in parties])
        clearing = self.clear_da(book, t, ctx.price_floor, ctx.price_cap)
        owners = np.array([p.unique_id for p in parties])
        pos = np.zeros((len(parties), t))
        slot = {uid: i for i, uid in enumerate(owners)}
        rows = np.array([slot[o] for o in book.owner])
        np.add.at(pos, (rows, book.mtu), clearing.accepted)
        position_mw = pos / dt

        zeros = np.zeros((f.n, t))
        plan = {"battery": zeros.copy(), "ev": zeros.copy(), "hp": zeros.copy()}
        for agg in self.aggregators:
            agg.setpoints(ctx, plan)
        fc_net = ctx.retail_net_forecast + plan["battery"] + plan["ev"] + plan["hp"]
        q_fc = self.dso.reactive(self.dso.nodal(ctx.forecast.load + ctx.forecast.hp))
        _, fc_flags = self.dso.assess(self.dso.nodal(fc_net), q_fc, self.dso.yellow_margin)

        real = {k: v.copy() for k, v in plan.items()}
        for agg in self.aggregators:
            agg.realise(ctx, real)
        ctx.retail_net = self._retail_net(ctx.profiles, commit=True, devices=real)
        real["ev"] = np.where(f.enrolled["ev"][:, None], real["ev"], ctx.profiles.ev)
        real["hp"] = np.where(f.enrolled["heat_pump"][:, None], real["hp"], ctx.profiles.hp)
        prosumer_net = ctx.profiles.load - ctx.profiles.pv + real["battery"] + real["ev"] \
            + real["hp"]

        realised = np.array([p.realised_mw(ctx, position_mw[i]) for i, p in enumerate(parties)])
        imbalance_mw = position_mw - realised
        system_short = -imbalance_mw.sum(0)

        scheduled_gen = {p.unique_id: -position_mw[i] for i, p in enumerate(parties)
                         if isinstance(p, Producer)}
        offers = self.tso.collect_offers(self.producers, scheduled_gen, ctx)
        act, p_short, p_long = self.tso.balance(offers, system_short, clearing.price)

        q_real = self.dso.reactive(self.dso.nodal(ctx.profiles.load + real["hp"]))
        flows, real_flags = self.dso.assess(self.dso.nodal(prosumer_net), q_real)
        light = self.dso.traffic_light(fc_flags["violated"], real_flags["violated"])
        violation_mw = self.dso.violation_mw(flows)
        self._value_energy(ctx, real)
        if self.config.planner.enabled:
            t0 = time.perf_counter()
            self.planner_days.append(self._plan_day(ctx, soc_start, q_real))
            self.planner_seconds += time.perf_counter() - t0

        self._settle(ctx, book, clearing, parties, position_mw, imbalance_mw, offers, act,
                     p_short, p_long, real, prosumer_net)
        generation = -realised[[isinstance(p, Producer) for p in parties]].sum(0) \
            + act.up_mw.sum(0) - act.down_mw.sum(0) + act.emergency_up_mw - act.emergency_down_mw
        demand = realised[[not isinstance(p, Producer) for p in parties]].sum(0)
        self._record(ctx, clearing, prices_fc, system_short, act, p_short, p_long, generation,
                     demand, real, parties, position_mw, realised, fc_flags, real_flags, light,
                     flows, violation_mw)
        self.day += 1
        if self.day >= self.calendar.days:
            self.running = False

    def _value_energy(self, ctx, real) -> None:
        """Energy services with value in welfare: every load, EV and heat pump's baseline
        energy for the day. A device an aggregator left short of its daily energy has failed
        that much service (valued like lost load); over-consumption is only a cost."""
        f, dt, prof = self.fleet, ctx.dt_h, ctx.profiles
        sys_mwh = float(self.system_brp.realised_mw(ctx).sum() * dt)
        service = float((prof.load + prof.ev + prof.hp).sum() * dt)
        short = sum(float(np.clip((prof_d - real[key]).sum(1) * dt, 0, None)[f.enrolled[d]].sum())
                    for key, prof_d, d in (("ev", prof.ev, "ev"), ("hp", prof.hp, "heat_pump")))
        self.valued["prosumers"] += service - short
        self.valued["consumers"] += sys_mwh
        self.service_mwh += service + sys_mwh
        self.shortfall_mwh += short

    def valued_energy_mwh(self) -> dict[str, float]:
        return dict(self.valued)

    def _plan_day(self, ctx, soc_start, q_real) -> PlannerResult:
        """The planner's day: same realised data, every market-controllable device free."""
        f, dt, dso, b_n = self.fleet, ctx.dt_h, self.dso, self.grid.n_bus
        bat = f.enrolled["battery"]
        sums = {k: np.bincount(f.bus[bat], weights=v[bat], minlength=b_n) for k, v in
                (("e", f.batt_mwh), ("p", f.batt_mw), ("soc", soc_start), ("eta", f.eta))}
        count = np.bincount(f.bus[bat], minlength=b_n)
        wear = np.zeros(f.n)
        for agg in self.aggregators:
            wear[agg.members] = agg.degradation
        wear_bus = np.bincount(f.bus[bat], weights=(wear * f.batt_mwh)[bat], minlength=b_n)
        battery = {int(b): (sums["e"][b], sums["p"][b], sums["soc"][b],
                            sums["eta"][b] / count[b]) for b in np.flatnonzero(sums["e"] > 0)}
        degradation = {b: wear_bus[b] / battery[b][0] for b in battery}

        def pooled(env, mask):
            lo, up, pm = (dso.bus_of @ np.where(mask[:, None], a, 0.0)
                          for a in (env.lower, env.upper, env.pmax))
            return {int(b): (np.minimum(lo[b], up[b]), up[b], pm[b])
                    for b in np.flatnonzero(up[:, -1] > 0)}

        day = PlannerDay(
            dt_h=dt, fixed_bus_mw=dso.nodal(ctx.retail_net), q_bus_mvar=q_real,
            system_load_mw=self.system_brp.realised_mw(ctx),
            gen_cost=np.array([p.marginal_cost for p in self.producers]),
            gen_avail_mw=np.array([p.available_mw(ctx) for p in self.producers]),
            battery=battery, degradation=degradation,
            ev=pooled(ctx.ev_env, f.enrolled["ev"]),
            hp=pooled(f.hp_envelope(ctx.profiles.hp, dt), f.enrolled["heat_pump"]),
            emergency_up_price=self.tso.cfg.emergency_price_eur_mwh,
            emergency_down_price=self.tso.emergency_down_price,
            value_of_load=self.config.value_of_load_eur_mwh)
        return solve_day(day, dso.flow, dso.v_min, dso.v_max, dso.loading_limit,
                         self.config.planner.grid_constrained)

    def _settle(self, ctx, book, clearing, parties, position_mw, imbalance_mw, offers, act,
                p_short, p_long, real, prosumer_net) -> None:
        led, dt, t = self.ledger, ctx.dt_h, ctx.n_mtu
        mtus = ctx.mtu0 + np.arange(t)
        acct = {p.unique_id: p.account for p in parties}
        ex = led.id(EXCHANGE)
        ext = led.id(EXTERNAL)
        payer = np.array([acct[o] for o in book.owner])
        price = clearing.price[book.mtu]
        acc = clearing.accepted
        buy = acc > 0
        led.pay(payer[buy], ex, "dayahead", ctx.mtu0 + book.mtu[buy], acc[buy], price[buy])
        sell = acc < 0
        led.pay(ex, payer[sell], "dayahead", ctx.mtu0 + book.mtu[sell], -acc[sell], price[sell])

        tso = self.tso.account
        party_acct = np.array([p.account for p in parties])[:, None]
        imb = imbalance_mw * dt
        short = imb < 0
        led.pay(np.broadcast_to(party_acct, imb.shape)[short], tso, "imbalance",
                np.broadcast_to(mtus, imb.shape)[short], -imb[short],
                np.broadcast_to(p_short, imb.shape)[short])
        led.pay(tso, np.broadcast_to(party_acct, imb.shape)[~short],
                "imbalance", np.broadcast_to(mtus, imb.shape)[~short], imb[~short],
                np.broadcast_to(p_long, imb.shape)[~short])

        prov = np.array([acct[u] for u in offers.provider], int)[:, None]
        if len(prov):
            shape = act.up_mw.shape
            led.pay(tso, np.broadcast_to(prov, shape), "balancing", np.broadcast_to(mtus, shape),
                    act.up_mw * dt, np.broadcast_to(act.marginal_up, shape))
            led.pay(np.broadcast_to(prov, shape), tso, "balancing", np.broadcast_to(mtus, shape),
                    act.down_mw * dt, np.broadcast_to(act.marginal_down, shape))
        led.pay(tso, ext, "balancing_emergency", mtus, act.emergency_up_mw * dt,
                self.tso.cfg.emergency_price_eur_mwh)
        led.pay(ext, tso, "balancing_emergency", mtus, act.emergency_down_mw * dt,
                self.tso.emergency_down_price)

        for i, p in enumerate(parties):
            if isinstance(p, Producer):
                out = -position_mw[i] + imbalance_mw[i]
                k = np.flatnonzero(offers.provider == p.unique_id)
                if k.size:
                    out = out + act.up_mw[k[0]] - act.down_mw[k[0]]
                led.pay(p.account, ext, "fuel", mtus, out * dt, p.marginal_cost)

        self._settle_retail(ctx, real, prosumer_net)

    def _settle_retail(self, ctx, real, prosumer_net) -> None:
        """Daily bills per prosumer: supplier import and feed-in, network tariff on grid import,
        aggregator energy and flexibility fees."""
        led, f, dt = self.ledger, self.fleet, ctx.dt_h
        if f.n == 0:
            return
        day_mtu = ctx.mtu0
        net = ctx.retail_net
        imp = np.clip(net, 0, None).sum(1) * dt
        exp = np.clip(-net, 0, None).sum(1) * dt
        brp_acct = np.array([b.account for b in self.brps])[f.brp]
        retail = np.array([b.retail_price for b in self.brps])[f.brp]
        feed = np.array([b.feed_in for b in self.brps])[f.brp]
        pa = self.prosumer_account
        led.pay(pa, brp_acct, "retail", day_mtu, imp, retail)
        led.pay(brp_acct, pa, "feed_in", day_mtu, exp, feed)
        grid_import = np.clip(prosumer_net, 0, None).sum(1) * dt
        led.pay(pa, self.dso.account, "network_tariff", day_mtu, grid_import, self.dso.tariff)
        sysb = self.system_brp
        sys_mwh = sysb.realised_mw(ctx).sum() * dt
        led.pay(led.id(SYSTEM_CONSUMERS), sysb.account, "retail", day_mtu, sys_mwh,
                sysb.retail_price)
        for agg in self.aggregators:
            m = agg.members
            if not m.any():
                continue
            energy = (np.where(f.enrolled["ev"][:, None], real["ev"], 0.0)
                      + np.where(f.enrolled["heat_pump"][:, None], real["hp"], 0.0))[m].sum(1) * dt
            led.pay(pa[m], agg.account, "aggregator_energy", day_mtu, energy, retail[m])
            n_dev = sum(f.enrolled[d][m].astype(int) for d in f.enrolled)
            led.pay(agg.account, pa[m], "flexibility_fee", day_mtu, n_dev, agg.fee)
            b = f.enrolled["battery"] & m
            throughput = np.abs(real["battery"][b]).sum() * dt
            led.pay(agg.account, led.id(EXTERNAL), "battery_wear", day_mtu, throughput,
                    agg.degradation)

    def _record(self, ctx, clearing, prices_fc, system_short, act, p_short, p_long, generation,
                demand, real, parties, position_mw, realised, fc_flags, real_flags, light,
                flows, violation_mw) -> None:
        t = ctx.n_mtu
        mtus = ctx.mtu0 + np.arange(t)
        prof = ctx.profiles
        rec = self.records
        rec.setdefault("series", []).append(pd.DataFrame({
            "mtu": mtus,
            "day": ctx.day,
            "da_price": clearing.price,
            "da_price_forecast": prices_fc,
            "da_volume_mwh": clearing.volume,
            "da_curtailed_mwh": clearing.curtailed,
            "system_short_mw": system_short,
            "activated_up_mw": act.up_mw.sum(0),
            "activated_down_mw": act.down_mw.sum(0),
            "emergency_up_mw": act.emergency_up_mw,
            "emergency_down_mw": act.emergency_down_mw,
            "imbalance_price_short": p_short,
            "imbalance_price_long": p_long,
            "generation_mw": generation,
            "demand_mw": demand,
            "system_load_mw": self.system_brp.realised_mw(ctx),
            "prosumer_load_mw": prof.load.sum(0),
            "pv_mw": prof.pv.sum(0),
            "ev_mw": real["ev"].sum(0),
            "heat_pump_mw": real["hp"].sum(0),
            "battery_mw": real["battery"].sum(0),
            "trafo_loading": flows.loading[:, self.grid.branch_kind == "trafo"].max(1)
            if (self.grid.branch_kind == "trafo").any() else flows.loading.max(1),
            "max_loading": flows.loading.max(1),
            "v_min_pu": flows.v_pu[:, 1:].min(1),
            "v_max_pu": flows.v_pu[:, 1:].max(1),
            "violation_mw_eq": violation_mw,
        }))
        n_loc = self.grid.n_locations
        rec.setdefault("grid", []).append(pd.DataFrame({
            "mtu": np.repeat(mtus, n_loc),
            "location": np.tile(np.array(self.grid.locations, dtype=object), t),
            "light": light.ravel(),
            "forecast_violated": fc_flags["violated"].ravel(),
            "forecast_max_loading": fc_flags["max_loading"].ravel(),
            "max_loading": real_flags["max_loading"].ravel(),
            "v_min_pu": real_flags["v_min"].ravel(),
            "v_max_pu": real_flags["v_max"].ravel(),
            "overload_mw": real_flags["overload_mw"].ravel(),
        }))
        names = np.array([p.name for p in parties], dtype=object)
        classes = np.array([p.agent_class for p in parties], dtype=object)
        rec.setdefault("positions", []).append(pd.DataFrame({
            "mtu": np.tile(mtus, len(parties)),
            "party": np.repeat(names, t),
            "class": np.repeat(classes, t),
            "position_mwh": (position_mw * ctx.dt_h).ravel(),
            "realised_mwh": (realised * ctx.dt_h).ravel(),
            "imbalance_mwh": ((position_mw - realised) * ctx.dt_h).ravel(),
        }))
        for agg in self.aggregators:
            flex = agg.flexibility(ctx)
            rec.setdefault("aggregators", []).append(pd.DataFrame({
                "mtu": mtus, "aggregator": agg.name, "baseline_mw": agg.baseline,
                "schedule_mw": agg.planned_net_mw(),
                "up_mw": sum((u for u, _ in flex.values()), np.zeros(t)),
                "down_mw": sum((d for _, d in flex.values()), np.zeros(t))}))

    def run(self, progress=None) -> None:
        while self.running:
            self.step()
            if progress is not None:
                progress.update(1)

    def tables(self) -> dict[str, pd.DataFrame]:
        ts = self.calendar.timestamps()
        out = {}
        for k, parts in self.records.items():
            df = pd.concat(parts, ignore_index=True)
            df.insert(0, "timestamp", ts[df["mtu"].to_numpy()])
            out[k] = df
        return out

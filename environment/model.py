"""The Mesa model: agents built from the scenario, and one delivery day per `step()`.

A day is a sequence of gates, each a function of the module that holds its concept; each
publishes on the day's context (`environment.day.DayContext`) what the gates after it read:
1. D-1 morning (`dayaheadstage.plan`): forecasts (with error) of load, PV, wind; aggregators
   pool their flexibility per grid location and schedule it against a fundamental price
   forecast (with the implicit LFM, against locational grid tariffs the DSO sets).
2. D-1 gate closure (`dayaheadstage.auction`): every party's orders, one auction.
3. D-1 afternoon: the DSO validates the schedules on the grid (`Dso.validate`: traffic light
   per MTU and location); the local electricity market under that light (`lemstage`); the
   day-ahead LFM under the coupling scheme (`flexstage`).
4. Day D: intraday sessions with improving forecasts (`intradaystage.intraday`), the first also
   with the intraday LFM and the BRPs' flexibility platform.
5. Real time: DER balancing block by block (`balancingstage`); realisation, the DSO's
   RED/BLACK actions and the TSO's activation of producers (`realtime`).
6. Settlement (`settlement.settle_day`): every payment a ledger row; recording (`records`).
"""

from __future__ import annotations

import warnings

import mesa
import numpy as np

from agents.aggregator import Aggregator
from agents.brp import Brp, SystemLoadBrp
from agents.dso import Dso
from agents.party import Party
from agents.producer import Producer
from agents.prosumer import DayProfiles, Prosumer, ProsumerFleet
from agents.prosumer_devices import connection_devices, household_connections
from agents.tso import Tso
from environment import (
    balancingstage,
    dayaheadstage,
    flexstage,
    intradaystage,
    planner_inputs,
    realtime,
    records,
    settlement,
)
from environment.calendar import Calendar
from environment.day import DayContext, DayResult
from environment.forecast import draw_day_errors
from environment.inputs import load_background, load_grid, validate_references
from environment.ledger import Ledger
from environment.lemstage import LocalMarket
from environment.markets import wholesale_region
from environment.markets.dayahead import SupplyCurve
from environment.markets.orders import OrderBook
from environment.markets.registry import get_clearing
from environment.markets.ties import with_tie_price
from environment.planner import PlannerResult
from environment.profiles import ProfileBank, own_peak_mw, own_profiles
from environment.scenario import Aggregator as ScenarioAggregator
from environment.scenario import Scenario
from environment.settlement import (
    EXCHANGE,
    EXTERNAL,
    ID_EXCHANGE,
    LFM_OPERATOR,
    PLATFORM,
    SETTLEMENT_ENTITY,
    SYSTEM_CONSUMERS,
)
from environment.truncation import TRUNCATIONS, TruncationWarning


class FlexMarketModel(mesa.Model):
    """A run of one scenario; `step()` simulates one delivery day."""

    def __init__(self, scenario: Scenario, seed: int | None = None):
        seed = scenario.seed if seed is None else seed
        super().__init__(rng=seed)
        self.run_seed = seed  # stochastic strategies derive their own streams from it
        self.config = s = wholesale_region.resolve(scenario)
        # orders' arrival in continuous trading draws from a stream of its own, so that a run
        # with another market design sees the same weather, fleet and forecast errors
        self.arrival_rng = np.random.default_rng([seed, 1])
        self.grid, loads, devices = load_grid(s)
        validate_references(s, set(self.grid.bus_index))
        c = s.calendar
        self.calendar = Calendar(c.start, c.days, c.mtu_minutes, c.da_gate_closure_hour)
        groups = s.prosumers
        names = [n for g in groups for n in (*g.load_profiles, *g.pv.profiles, *g.ev.profiles,
                                             *g.heat_pump.profiles)]
        names += [p.profile for p in s.producers if p.profile] + [s.system_load.profile]
        owned = connection_devices(self.grid, loads, devices) \
            if any(g.devices == "simbench" for g in groups) else None
        names += owned.profile_names if owned else []
        self.bank = ProfileBank(names, self.calendar, own_profiles(s, self.calendar, names),
                                owned.mixes if owned else None)
        shares = np.array([b.customer_share for b in s.brps])
        self.fleet = ProsumerFleet(groups, self.grid, loads, self.bank.names, self.rng, shares,
                                   owned)
        self.ledger = Ledger()
        for name, cls in ((EXTERNAL, "external"), (EXCHANGE, "market_operators"),
                          (ID_EXCHANGE, "market_operators"),
                          (PLATFORM, "market_operators"),
                          (LFM_OPERATOR, "market_operators"),
                          (SETTLEMENT_ENTITY, "market_operators"),
                          (SYSTEM_CONSUMERS, "consumers")):
            self.ledger.account(name, cls)

        self.brps = [Brp(self, b, i) for i, b in enumerate(s.brps)]
        self.system_brp = SystemLoadBrp(self, self._system_load(s),
                                        self.bank.index[s.system_load.profile],
                                        s.system_load.retail_price_eur_mwh)
        self.aggregators = [Aggregator(self, a, i) for i, a in enumerate(s.aggregators)]
        brp_index = {b.name: i for i, b in enumerate(s.brps)}
        direct = np.isin(self.fleet.group, [i for i, g in enumerate(groups) if g.prequalified])
        for agg, cfg in zip(self.aggregators, s.aggregators, strict=True):
            eligible = ~direct
            if cfg.kind == "supplier":
                eligible &= self.fleet.brp == brp_index[cfg.supplier]
            self.fleet.enrol(agg.index, cfg.enrolment, list(cfg.devices), self.rng, eligible)
        self._add_prequalified_prosumers(s)
        self.producers = [Producer(self, p, self.bank.index[p.profile] if p.profile else None)
                          for p in s.producers]
        self.dso = Dso(self, self.grid, s.grid, s.dso, self.fleet.bus)
        self.background = None
        if s.grid.background == "simbench":
            points = len(household_connections(self.grid, loads)[0])
            self.background = load_background(s, points)
        self.tso = Tso(self, s.tso, s.markets.dayahead.price_floor)
        self.prosumers = [Prosumer(self, self.fleet, i) for i in range(self.fleet.n)]
        # the balance responsible parties, in the order they were created: suppliers, the
        # system load's, aggregators, producers (the rows of every per-party array)
        self.parties = self.agents.select(agent_type=Party)
        for a in [*self.parties, self.dso, self.tso]:
            a.account = self.ledger.account(a.name, a.agent_class)
        base = len(self.ledger.names)
        for i in range(self.fleet.n):
            self.ledger.account(f"prosumer_{i}", "prosumers")
        self.prosumer_account = base + np.arange(self.fleet.n)
        self.party_slot = {p.unique_id: i for i, p in enumerate(self.parties)}
        self.account_of = {a.unique_id: a.account for a in
                           [*self.parties, self.dso, self.tso]}
        f = self.fleet
        # the prosumers with a device some aggregator controls
        self.flex_rows = np.flatnonzero(f.enrolled["battery"] | f.enrolled["ev"]
                                        | f.enrolled["heat_pump"])
        self.published_congestion = None
        self._plan_cache = None
        self._own_preview = None
        self.clear_da = with_tie_price(get_clearing(s.markets.dayahead.clearing),
                                       s.markets.dayahead.tie_price)
        self.clear_id = get_clearing(s.markets.intraday.clearing)
        self.lem = LocalMarket(self) if s.markets.lem.enabled else None
        self.day = 0
        self.records: dict[str, list] = {}
        # MWh of DER the TSO activated, (up, down), each party's per MTU (record_day)
        self.der_tso_mwh = np.zeros(2)
        self.valued = {"prosumers": 0.0, "consumers": 0.0}
        self.service_mwh = 0.0
        self.shortfall_mwh = 0.0
        self.planner_days: list[PlannerResult] = []
        self.planner_seconds = 0.0
        # what a run cut short or clipped (counted, in summary.json, and warned once a kind)
        self.truncated: dict[str, float] = {}
        self.running = True

    def note_truncation(self, what: str, amount: float = 1.0) -> None:
        """Count an iteration cut off at its round limit, or energy clipped (`amount` MWh);
        the first of each kind in a run is also warned, so nothing is truncated silently."""
        if not amount:
            return
        if what not in self.truncated:
            warnings.warn(f"{self.config.name}: {TRUNCATIONS.get(what, what)} (day "
                          f"{self.day}); counted in summary.json under 'truncation'",
                          TruncationWarning, stacklevel=2)
        self.truncated[what] = self.truncated.get(what, 0.0) + float(amount)

    def _system_load(self, s: Scenario):
        """The system load's settings; `annual_mwh: null` (an own series as it is) becomes the
        series' annual energy, which scales it back to its own MW."""
        sl = s.system_load
        if sl.annual_mwh is not None:
            return sl
        name = sl.profile
        peak_mw = own_peak_mw(s.data[name])
        return sl.model_copy(update={"annual_mwh": peak_mw
                                     * self.bank.annual_energy_per_peak(name)})

    def _add_prequalified_prosumers(self, s: Scenario) -> None:
        """A prequalified prosumer sells its own flexibility: an aggregator of one, in its
        supplier's perimeter, whose earnings are a prosumer's (agent class `prosumers`)."""
        f = self.fleet
        owns = (f.batt_mwh > 0) | (f.ev_mw > 0) | (f.hp_mw > 0)
        for gi, g in enumerate(s.prosumers):
            if not g.prequalified:
                continue
            for j, i in enumerate(np.flatnonzero((f.group == gi) & owns & (f.aggregator < 0))):
                cfg = ScenarioAggregator(name=f"{g.name}_{j}", kind="independent",
                                         enrolment=1.0, fee_eur_per_device_day=0.0,
                                         activation_cost_eur_mwh=g.activation_cost_eur_mwh)
                agg = Aggregator(self, cfg, len(self.aggregators))
                agg.agent_class = "prosumers"
                self.aggregators.append(agg)
                self.fleet.enrol(agg.index, 1.0, list(cfg.devices), self.rng,
                                 np.arange(f.n) == i)

    def own_batteries(self, prof: DayProfiles) -> np.ndarray:
        """Self-consumption of the home batteries no aggregator controls (N, T) MW; those
        whose manager planned them for the LEM follow that plan (`markets.lem.hems_battery`)."""
        f, dt = self.fleet, self.calendar.mtu_hours
        ev = np.where(f.enrolled["ev"][:, None], 0.0, prof.ev)
        hp = np.where(f.enrolled["heat_pump"][:, None], 0.0, prof.hp)
        own = (f.batt_mwh > 0) & ~f.enrolled["battery"]
        out = f.self_consumption(prof.pv - prof.load - ev - hp, own, dt)
        if self.lem is not None and self.lem.battery_plan is not None:
            rows = self.lem.battery_rows
            out[rows] = f.follow(self.lem.battery_plan[rows], rows, dt)
        return out

    def retail_net(self, prof: DayProfiles, own: np.ndarray | None = None) -> np.ndarray:
        """Metered consumption in the supplier's perimeter: everything but enrolled devices;
        `own`: the home batteries' power if the caller has it (`own_batteries`)."""
        f = self.fleet
        ev = np.where(f.enrolled["ev"][:, None], 0.0, prof.ev)
        hp = np.where(f.enrolled["heat_pump"][:, None], 0.0, prof.hp)
        return prof.load - prof.pv + ev + hp + (self.own_batteries(prof) if own is None
                                                else own)

    def supply_forecast(self, ctx: DayContext) -> SupplyCurve:
        """A fundamental forecast from public data: the producers' merit order and forecast
        demand without flexibility (the aggregators' devices at their baselines)."""
        demand = self.system_brp.forecast_mw(ctx) + ctx.retail_net_forecast.sum(0)
        demand = demand + sum(a.pool_baseline(ctx) for a in self.aggregators)
        offers = OrderBook.concat([p.da_orders(ctx) for p in self.producers])
        offers, demand = wholesale_region.supply_with_fixed_demand(offers, demand * ctx.dt_h)
        return SupplyCurve(offers, demand, ctx.price_floor, ctx.price_cap)

    def price_forecast(self, ctx: DayContext, supply: SupplyCurve | None = None) -> np.ndarray:
        """The day-ahead price the fundamental forecast clears at."""
        supply = self.supply_forecast(ctx) if supply is None else supply
        return self.clear_da(supply.book(), ctx.n_mtu, ctx.price_floor, ctx.price_cap).price

    def device_plan(self, ctx) -> dict[str, np.ndarray]:
        """Per-device set-points (N, T) of every aggregator's current plan (zero elsewhere),
        recomputed only when some aggregator's plan changed. The arrays are shared and
        read-only: copy them to change them."""
        key = (ctx.day, tuple(a.version for a in self.aggregators))
        if self._plan_cache is None or self._plan_cache[0] != key:
            z = np.zeros((self.fleet.n, ctx.n_mtu))
            plan = {"battery": z.copy(), "ev": z.copy(), "hp": z.copy()}
            for agg in self.aggregators:
                agg.setpoints(ctx, plan)
            for a in plan.values():
                a.flags.writeable = False
            self._plan_cache = (key, plan)
        return dict(self._plan_cache[1])

    def forecast_grid(self, ctx, retail: np.ndarray, prof: DayProfiles):
        """DSO validation of a forecast: nodal consumption (T, B), flows and voltages
        (`FlowResult`), and per-location flags."""
        plan = self.device_plan(ctx)
        p_bus = self.dso.nodal(retail + plan["battery"] + plan["ev"] + plan["hp"])
        hp = np.where(self.fleet.enrolled["heat_pump"][:, None], plan["hp"], prof.hp)
        q_bus = self.dso.reactive(self.dso.nodal(prof.load + hp))
        flows, flags = self.dso.assess(p_bus, q_bus, self.dso.yellow_margin)
        return p_bus, flows, flags

    def realtime_devices(self, ctx, commit: bool):
        """Device power in real time (N, T) per kind and the realised profiles: aggregators'
        current set-points as realised, home batteries on self-consumption, the rest at their
        baselines. Without `commit`, a preview: the profiles returned are the day's own (read
        them only); real time gets copies it may curtail. States of charge move only once
        real time is final (`ProsumerFleet.commit_soc`, after the DSO's RED/BLACK actions)."""
        f = self.fleet
        real = {k: v.copy() for k, v in self.device_plan(ctx).items()}
        for agg in self.aggregators:
            agg.realise(ctx, real)
        prof = ctx.profiles if not commit else DayProfiles(
            *(a.copy() for a in (ctx.profiles.load, ctx.profiles.pv, ctx.profiles.ev,
                                 ctx.profiles.hp)))
        own = (f.batt_mwh > 0) & ~f.enrolled["battery"]
        real["battery"][own] = self._own_realtime(ctx, prof, commit)[own]
        real["ev"] = np.where(f.enrolled["ev"][:, None], real["ev"], prof.ev)
        real["hp"] = np.where(f.enrolled["heat_pump"][:, None], real["hp"], prof.hp)
        return real, prof

    def _own_realtime(self, ctx, prof: DayProfiles, commit: bool) -> np.ndarray:
        """Home batteries on self-consumption in real time. The DER balancing stage previews
        real time once per block; a preview depends only on the day's realised profiles and
        the states of charge, so it is kept until either changes."""
        if commit:
            return self.own_batteries(prof)
        soc = self.fleet.soc.tobytes()
        kept = self._own_preview
        if kept is None or kept[0] is not ctx or kept[1] != soc:
            kept = self._own_preview = (ctx, soc, self.own_batteries(prof))
        return kept[2]

    def preview_realtime(self, ctx) -> dict:
        """What the TSO and DSO see of real time with the aggregators' current plans: the
        system imbalance before activations (MW, + short), the distribution grid's nodal
        schedules, the area's net consumption, and producers' balancing offers."""
        real, prof = self.realtime_devices(ctx, commit=False)
        metered = realtime.meter(self, ctx, real, prof)
        net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
        dso = self.dso
        return {"system_short": (metered - ctx.position + realtime.corrections(self, ctx)).sum(0)
                - ctx.dso_realtime_mw,
                "p_bus": dso.nodal(net), "q_bus": dso.reactive(dso.nodal(prof.load + real["hp"])),
                "area_net": net.sum(0), "producer_offers": self.tso.producer_offers(ctx)}

    def open_day(self, day: int) -> DayContext:
        """The day's context: realised profiles, the forecast errors drawn for the day and the
        forecasts they give, and empty positions."""
        f, cal = self.fleet, self.calendar
        t, dt = cal.mtu_per_day, cal.mtu_hours
        actual = f.day_profiles(self.bank, day)
        err = draw_day_errors(self.rng, self.config.forecast, len(self.brps), f.n, t)
        load_err = (err["load"][f.brp] if f.n else np.zeros((0, t))) \
            + self.config.forecast.load_bias
        fc = DayProfiles(
            load=actual.load * np.clip(1 + load_err + err["idio"], 0, None),
            pv=actual.pv * np.clip(1 + err["pv"], 0, None),
            ev=actual.ev,
            hp=np.clip(actual.hp * (1 + load_err), 0, f.hp_mw[:, None]),
        )
        if self.lem is not None:
            self.lem.battery_plan = None    # yesterday's plan is done
        self.dso.background = None if self.background is None else self.background.day(cal, day)
        replan = self.lem is not None and self.lem.cfg.hems_battery
        rule = self.own_batteries(fc) if replan else None
        retail = before = self.retail_net(fc, rule)
        if replan:
            plan = self.lem.plan_batteries(retail - rule, rule, dt)
            rows = self.lem.battery_rows
            retail = before.copy()
            retail[rows] = (before - rule)[rows] + plan[rows]
        dx = self.config.markets.dayahead
        return DayContext(
            day, day * t, t, dt, dx.price_floor, dx.price_cap, err, actual, fc,
            f.ev_envelope(actual.ev, dt), f.hp_envelope(fc.hp, dt),
            retail_net_forecast=retail, soc_start=f.soc.copy(),
            ledger_mark=self.ledger.mark(), position=np.zeros((len(self.parties), t)),
            id_price=np.full(t, np.nan), id_volume=np.zeros(t),
            dso_bought=np.zeros((t, self.grid.n_locations)),
            retail_net_before_lem=before if self.lem is not None else None)

    def step(self) -> None:
        """One delivery day, gate by gate."""
        if self.day >= self.calendar.days:
            self.running = False
            return
        ctx = self.open_day(self.day)
        dayaheadstage.plan(self, ctx)
        dayaheadstage.auction(self, ctx)
        self.after_auction(ctx)

    def after_auction(self, ctx) -> None:
        """The day's gates after the day-ahead auction (a coordinator of several regions
        runs `open_day`, `dayaheadstage.plan` and the auction itself, then this, or its two
        halves with the grid above's national place between them)."""
        self.before_realtime(ctx)
        self.realtime_and_settle(ctx)

    def before_realtime(self, ctx) -> None:
        """D-1 afternoon to the interface agreement: validation, LEM, LFM, intraday."""
        mk = self.config.markets
        self.dso.validate(ctx)
        if self.lem is not None:
            self.lem.congestion_before(ctx)
            self.lem.trade(ctx)
        if mk.lfm.enabled:
            flexstage.flex_round(self, ctx, "da", ctx.retail_net_forecast, ctx.forecast)
        if mk.intraday.enabled:
            intradaystage.intraday(self, ctx)
        self.agree_interface(ctx)

    def realtime_and_settle(self, ctx) -> None:
        """Real time from the DER balancing blocks on, settlement and the day's records."""
        balancingstage.der_balancing(self, ctx)
        ctx.realtime = realtime.realise(self, ctx)
        records.value_energy(self, ctx)
        if self.config.planner.enabled:
            planner_inputs.plan_day(self, ctx)
        settlement.settle_day(self, ctx)
        records.record_day(self, ctx)
        self.close_day(ctx)

    def agree_interface(self, ctx) -> None:
        """After the markets: the DSO validates the final schedules, and the distribution
        area's exchange they give is the interface schedule the TSO holds it to."""
        p_fc, _, ctx.final_flags = self.forecast_grid(ctx, ctx.retail_net_forecast,
                                                      ctx.forecast)
        ctx.interface_schedule = p_fc.sum(1)

    def close_day(self, ctx) -> None:
        """Each party's strategy learns its own day (`DayResult`); the calendar moves on."""
        rt = ctx.realtime
        for party in self.parties:
            hook = getattr(party.strategy, "end_of_day", None)
            if hook is not None:
                hook(party, DayResult(ctx.day, self.ledger.received_since(ctx.ledger_mark,
                                                                          party.account),
                                      ctx.da_price, rt.price_short, rt.price_long))
        self.day += 1
        if self.day >= self.calendar.days:
            self.running = False

    def run(self, progress=None) -> None:
        while self.running:
            self.step()
            if progress is not None:
                progress.update(1)

    def tables(self) -> dict:
        return records.tables(self.records, self.calendar.timestamps())

    def valued_energy_mwh(self) -> dict[str, float]:
        return dict(self.valued)

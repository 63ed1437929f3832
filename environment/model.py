"""The Mesa model: agents built from the scenario and the daily market cycle.

One `step()` is one delivery day:
1. D-1 morning: forecasts (with error) of load, PV, wind; aggregators pool their flexibility
   per grid location and schedule it against a fundamental price forecast (with the implicit
   LFM, against locational grid tariffs the DSO sets where it forecasts violations).
2. D-1 gate closure: day-ahead auction (mechanism from the market registry).
3. D-1 afternoon: DSO validation of the schedules on the grid (LinDistFlow), traffic light per
   MTU and location; the day-ahead LFM under the scenario's coupling scheme.
4. Day D: intraday sessions with improving forecasts; the first also runs the intraday LFM and
   the BRPs' flexibility platform.
5. Real time: realisation; RED/BLACK actions of the DSO (conditional coupling); the TSO
   activates balancing energy (producers, and DER under sequential coupling).
6. Settlement: every payment a ledger row.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
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
from agents.strategies import known, make_strategy
from agents.tso import Tso
from environment import balancingstage, flexstage
from environment.calendar import Calendar
from environment.coupling import COUPLING
from environment.datacache import cached
from environment.forecast import draw_day_errors
from environment.grid.levels import by_level
from environment.grid.network import Grid, load_simbench_grid, simbench_net
from environment.ledger import Ledger
from environment.markets import wholesale_region
from environment.markets.dayahead import SupplyCurve
from environment.markets.orders import OrderBook
from environment.markets.registry import CLEARING, get_clearing
from environment.markets.ties import with_tie_price
from environment.markets.tso_dso import TSO_DSO
from environment.planner import PlannerDay, PlannerResult, solve_day
from environment.profiles import ProfileBank, own_peak_mw, own_profiles, simbench_profiles
from environment.scenario import Aggregator as ScenarioAggregator
from environment.scenario import Scenario, ScenarioError
from environment.settlement import book_auction, book_balancing, book_imbalance

EXTERNAL = "external"
TRUNCATIONS = {
    "lfm": "an LFM clearing stopped at its round limit with limits still violated",
    "tso_dso": "a TSO-DSO balancing clearing stopped at its round limit",
    "planner": "the planner stopped adding grid limits at its round limit",
    "soc_clipped_mwh": "battery energy outside the state-of-charge bounds was clipped",
    "battery_cut_mwh": "battery set-points were cut to keep states of charge within bounds",
}


class TruncationWarning(UserWarning):
    """A run cut an iteration short or clipped a quantity (see summary.json 'truncation')."""
EXCHANGE = "da_exchange"
SYSTEM_CONSUMERS = "system_consumers"
SETTLEMENT_ENTITY = "settlement_entity"
PLAN_ROUNDS = 5  # best-response rounds among several aggregators planning against one merit order


@dataclass(frozen=True)
class DayResult:
    """What an agent learns of its own day after settlement (for adaptive strategies)."""

    day: int
    eur_by_market: dict
    da_price: np.ndarray
    imbalance_price_short: np.ndarray
    imbalance_price_long: np.ndarray

    @property
    def profit_eur(self) -> float:
        return float(sum(self.eur_by_market.values()))


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
    da_price: np.ndarray = field(default=None)
    position: np.ndarray = field(default=None)       # (parties, T) MW bought (+) or sold
    id_price: np.ndarray = field(default=None)
    id_volume: np.ndarray = field(default=None)
    tso_offers: dict = field(default_factory=dict)   # aggregator id -> FlexOffers held for TSO
    planner_fixed: np.ndarray = field(default=None)
    yellow: np.ndarray = field(default=None)         # (T, K) day-ahead YELLOW regime
    dso_bought: np.ndarray = field(default=None)     # (T, K) extra consumption bought by DSO
    dso_sold: dict = field(default_factory=dict)     # aggregator id -> (T, K, up/down) MW the
                                                     # DSO bought from it in the LFM
    flex_stage: str = "da"                           # flexibility round being priced
    lfm_excluded: frozenset = frozenset()            # aggregators kept out of the day's LFM
    round_stats: list = field(default_factory=list)


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
                continue
            try:
                make_strategy(role.rstrip("s"), item.strategy, **item.strategy_params)
            except ValueError as exc:
                problems.append(f"{role}[{i}].strategy_params = {dict(item.strategy_params)}: "
                                f"{exc}")
    for path, name in (("markets.dayahead.clearing", s.markets.dayahead.clearing),
                       ("markets.intraday.clearing", s.markets.intraday.clearing)):
        if name not in CLEARING:
            problems.append(f"{path} = {name!r}: unknown mechanism; known: {sorted(CLEARING)}")
    if s.markets.tso_dso_scheme not in TSO_DSO:
        problems.append(f"markets.tso_dso_scheme = {s.markets.tso_dso_scheme!r}: unknown "
                        f"scheme; known: {sorted(TSO_DSO)}")
    if s.markets.coupling not in COUPLING:
        problems.append(f"markets.coupling = {s.markets.coupling!r}: unknown scheme; known: "
                        f"{sorted(COUPLING)}")
    available = simbench_profiles()

    def check(path: str, name: str | None) -> None:
        if name is not None and name not in available and name not in s.data:
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
        grid = Grid(**mapped)
        return (by_level(grid) if s.grid.locations == "levels" else grid), loads
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise ScenarioError(f"invalid scenario {s.name}:\n  grid.simbench_code = "
                            f"{s.grid.simbench_code!r}: {exc}") from None


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
        self.grid, net = _load_grid(s)
        validate_references(s, set(self.grid.bus_index))
        c = s.calendar
        self.calendar = Calendar(c.start, c.days, c.mtu_minutes, c.da_gate_closure_hour)
        groups = s.prosumers
        names = [n for g in groups for n in (*g.load_profiles, *g.pv.profiles, *g.ev.profiles,
                                             *g.heat_pump.profiles)]
        names += [p.profile for p in s.producers if p.profile] + [s.system_load.profile]
        self.bank = ProfileBank(names, self.calendar, own_profiles(s, self.calendar, names))
        shares = np.array([b.customer_share for b in s.brps])
        self.fleet = ProsumerFleet(groups, self.grid, net, self.bank.names, self.rng, shares)
        self.ledger = Ledger()
        for name, cls in ((EXTERNAL, "external"), (EXCHANGE, "market_operators"),
                          (flexstage.ID_EXCHANGE, "market_operators"),
                          (flexstage.PLATFORM, "market_operators"),
                          (flexstage.LFM_OPERATOR, "market_operators"),
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
        self.tso = Tso(self, s.tso, s.markets.dayahead.price_floor)
        self.prosumers = [Prosumer(self, self.fleet, i) for i in range(self.fleet.n)]
        for a in [*self.brps, self.system_brp, *self.aggregators, *self.producers, self.dso,
                  self.tso]:
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
        self.day = 0
        self.records: dict[str, list] = {}
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

    @property
    def parties(self) -> list:
        """Balance responsible parties, in a fixed order."""
        return [*self.brps, self.system_brp, *self.aggregators, *self.producers]

    def _context(self, day: int) -> DayContext:
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
        dx = self.config.markets.dayahead
        ctx = DayContext(day, day * t, t, dt, dx.price_floor, dx.price_cap, err, actual, fc,
                         f.ev_envelope(actual.ev, dt), f.hp_envelope(fc.hp, dt), None)
        ctx.retail_net_forecast = self.retail_net(fc)
        ctx.position = np.zeros((len(self.parties), t))
        ctx.id_price = np.full(t, np.nan)
        ctx.id_volume = np.zeros(t)
        ctx.dso_bought = np.zeros((t, self.grid.n_locations))
        return ctx

    def own_batteries(self, prof: DayProfiles) -> np.ndarray:
        """Self-consumption of the home batteries no aggregator controls (N, T) MW."""
        f = self.fleet
        ev = np.where(f.enrolled["ev"][:, None], 0.0, prof.ev)
        hp = np.where(f.enrolled["heat_pump"][:, None], 0.0, prof.hp)
        own = (f.batt_mwh > 0) & ~f.enrolled["battery"]
        return f.self_consumption(prof.pv - prof.load - ev - hp, own, self.calendar.mtu_hours)

    def retail_net(self, prof: DayProfiles) -> np.ndarray:
        """Metered consumption in the supplier's perimeter: everything but enrolled devices."""
        f = self.fleet
        ev = np.where(f.enrolled["ev"][:, None], 0.0, prof.ev)
        hp = np.where(f.enrolled["heat_pump"][:, None], 0.0, prof.hp)
        return prof.load - prof.pv + ev + hp + self.own_batteries(prof)

    def supply_forecast(self, ctx: DayContext) -> SupplyCurve:
        """A fundamental forecast from public data: the producers' merit order and forecast
        demand without flexibility (the aggregators' devices at their baselines)."""
        demand = self.system_brp.forecast_mw(ctx) + ctx.retail_net_forecast.sum(0)
        demand = demand + sum(a.pool_baseline(ctx) for a in self.aggregators)
        offers = OrderBook.concat([p.strategy.da_orders(p, ctx) for p in self.producers])
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

    def _schedule_aggregators(self, ctx, supply: SupplyCurve) -> np.ndarray:
        """Aggregators plan their pools against the forecast merit order `supply`, each with
        the others' plans as fixed demand (best responses in turn, `PLAN_ROUNDS` times at
        most, until no plan moves); with the implicit LFM the DSO answers forecast violations
        with locational tariffs (+ where consumption hurts, - where injection does) and the
        aggregators plan again, `iterations` times."""
        k_n = self.grid.n_locations
        adders = np.zeros((ctx.n_mtu, k_n))
        self._plan_rounds(ctx, supply, None)
        imp = self.config.markets.implicit
        if imp.enabled and self.aggregators:
            for _ in range(imp.iterations):
                _, _, flags = self.forecast_grid(ctx, ctx.retail_net_forecast, ctx.forecast)
                if not flags["violated"].any():
                    break
                adders = adders + imp.tariff_eur_mwh * flags["violated"] * flags["direction"]
                self._plan_rounds(ctx, supply, adders)
        plan = self.device_plan(ctx)
        for agg in self.aggregators:
            agg.declare_baseline(ctx, plan)
        return adders

    def _plan_rounds(self, ctx, supply: SupplyCurve, adders) -> None:
        """Each aggregator plans against the merit order with every other aggregator's devices
        in the fixed demand: their plan of this day if they have one, else their baseline."""
        dt, aggs = ctx.dt_h, self.aggregators
        fixed = {a.unique_id: a.planned_net_mw() * dt if adders is not None
                 else a.pool_baseline(ctx) * dt for a in aggs}
        rest = supply.plus(-sum((a.pool_baseline(ctx) * dt for a in aggs), np.zeros(ctx.n_mtu)))
        for _ in range(PLAN_ROUNDS if len(aggs) > 1 else 1):
            moved = 0.0
            for agg in aggs:
                others = sum((v for u, v in fixed.items() if u != agg.unique_id),
                             np.zeros(ctx.n_mtu))
                agg.schedule(ctx, rest.plus(others), adders)
                new = agg.planned_net_mw() * dt
                moved = max(moved, float(np.abs(new - fixed[agg.unique_id]).max()))
                fixed[agg.unique_id] = new
            if moved < 1e-9:
                break

    def _realtime_devices(self, ctx, commit: bool):
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

    def corrections(self, ctx) -> np.ndarray:
        """(parties, T) MW of real-time activations (+ up: consumed less) that count as sold
        by the parties with a perimeter of their own: their imbalance is measured against
        their market position less these."""
        own = np.array([getattr(p, "trades_energy", False) for p in self.parties])
        return np.where(own[:, None], ctx.der_tso + ctx.der_dso, 0.0)

    def preview_realtime(self, ctx) -> dict:
        """What the TSO and DSO see of real time with the aggregators' current plans: the
        system imbalance before activations (MW, + short), the distribution grid's nodal
        schedules, the area's net consumption, and producers' balancing offers."""
        real, prof = self._realtime_devices(ctx, commit=False)
        metered = self._meter(ctx, real, prof)
        net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
        dso = self.dso
        scheduled_gen = {p.unique_id: -ctx.position[i] for i, p in enumerate(self.parties)
                         if isinstance(p, Producer)}
        return {"system_short": (metered - ctx.position + self.corrections(ctx)).sum(0)
                - ctx.dso_realtime_mw,
                "p_bus": dso.nodal(net), "q_bus": dso.reactive(dso.nodal(prof.load + real["hp"])),
                "area_net": net.sum(0),
                "producer_offers": self.tso.collect_offers(self.producers, scheduled_gen, ctx)}

    def step(self) -> None:
        if self.day >= self.calendar.days:
            self.running = False
            return
        ctx = self._context(self.day)
        f, dt, t = self.fleet, ctx.dt_h, ctx.n_mtu
        mk = self.config.markets
        soc_start = f.soc.copy()
        parties = self.parties
        mark = self.ledger.mark()

        supply = self.supply_forecast(ctx)
        prices_fc = self.price_forecast(ctx, supply)
        adders = self._schedule_aggregators(ctx, supply)
        book = OrderBook.concat([p.strategy.da_orders(p, ctx) for p in parties]).arrived(
            self.clear_da, self.arrival_rng)
        clearing = self.clear_da(book, t, ctx.price_floor, ctx.price_cap)
        ctx.da_price = clearing.price
        rows = np.array([self.party_slot[o] for o in book.owner])
        np.add.at(ctx.position, (rows, book.mtu), clearing.accepted / dt)
        book_auction(self.ledger, book, clearing, "dayahead", self.ledger.id(EXCHANGE),
                     self.account_of, ctx.mtu0)

        _, _, da_flags = self.forecast_grid(ctx, ctx.retail_net_forecast, ctx.forecast)
        ctx.yellow = da_flags["violated"]
        if mk.lfm.exclude_position_changers:
            ctx.lfm_excluded = self._position_changers(ctx, da_flags)
        if mk.lfm.enabled:
            flexstage.flex_round(self, ctx, "da", ctx.retail_net_forecast, ctx.forecast)
        if mk.intraday.enabled:
            flexstage.intraday(self, ctx)
        p_fc, _, final_flags = self.forecast_grid(ctx, ctx.retail_net_forecast, ctx.forecast)

        ctx.interface_schedule = p_fc.sum(1)
        balancingstage.der_balancing(self, ctx)

        real, prof = self._realtime_devices(ctx, commit=True)
        # batteries follow their set-points only as far as their states of charge allow (a
        # pooled plan that charged and discharged at once would otherwise store energy the
        # metered net power never delivered)
        self.note_truncation("battery_cut_mwh", f.keep_within_soc(real["battery"], dt))
        e = f.enrolled
        own = (f.batt_mwh > 0) & ~e["battery"]
        ctx.planner_fixed = prof.load - prof.pv + np.where(own[:, None], real["battery"], 0.0) \
            + np.where(e["ev"][:, None], 0.0, prof.ev) \
            + np.where(e["heat_pump"][:, None], 0.0, prof.hp)
        before = self._meter(ctx, real, prof)
        red = flexstage.red_actions(self, ctx, real, prof) if self.config.dso.emergency_actions \
            else None
        if red is not None and red["black"].any():
            # a disconnection zeroed part of the batteries' paths: what follows must stay
            # within their states of charge
            self.note_truncation("battery_cut_mwh", f.keep_within_soc(real["battery"], dt))
        # states of charge follow the final power path
        self.note_truncation("soc_clipped_mwh", f.commit_soc(real["battery"], dt))
        realised = self._meter(ctx, real, prof, settle=False) if red is not None else before
        prosumer_net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
        # Perimeter correction: parties settle what they would have metered without the DSO's
        # RED actions and real-time DER activations; the DSO is balance responsible for the
        # energy it moved. The system imbalance is what it was before any TSO activation; DER
        # the TSO activated in corrected perimeters already sold their part of it.
        activated = self.corrections(ctx)
        imbalance_mw = ctx.position - activated - before
        dso_imbalance = -(realised - before).sum(0) + ctx.dso_realtime_mw
        # The system imbalance is the sum of the settled imbalances (ENTSO-E). Producers'
        # balancing energy closes what is physically left: market positions net to zero, so
        # that is the metered net consumption after DER activations.
        system_short = -imbalance_mw.sum(0) - dso_imbalance
        scheduled_gen = {p.unique_id: -ctx.position[i] for i, p in enumerate(parties)
                         if isinstance(p, Producer)}
        offers = self.tso.collect_offers(self.producers, scheduled_gen, ctx)
        act, p_short, p_long = self.tso.balance(offers, realised.sum(0), clearing.price,
                                                system_short, ctx.der_price)
        nodal = self.dso.nodal(prosumer_net)
        q_real = self.dso.reactive(self.dso.nodal(prof.load + real["hp"]))
        flows, real_flags = self.dso.assess(nodal, q_real)
        red_flags = red["red"] if red is not None else real_flags["violated"]
        black = red["black"] if red is not None else np.zeros_like(red_flags)
        light = self.dso.traffic_light(da_flags["violated"], red_flags, black)
        shed = self.dso.load_to_shed(flows)
        self._value_energy(ctx, real, prof)
        if self.config.planner.enabled:
            t0 = time.perf_counter()
            self.planner_days.append(self._plan_day(ctx, soc_start, q_real))
            self.note_truncation("planner", not self.planner_days[-1].converged)
            self.planner_seconds += time.perf_counter() - t0

        led, mtus = self.ledger, ctx.mtu0 + np.arange(t)
        accounts = np.array([p.account for p in parties])
        book_imbalance(led, accounts, imbalance_mw * dt, p_short, p_long, self.tso.account, mtus)
        if np.any(dso_imbalance):
            book_imbalance(led, np.array([self.dso.account]), dso_imbalance[None, :] * dt,
                           p_short, p_long, self.tso.account, mtus)
        book_balancing(led, np.array([self.account_of[u] for u in offers.provider], int), act,
                       self.tso.account, led.id(EXTERNAL), mtus, dt,
                       self.tso.cfg.emergency_price_eur_mwh, self.tso.emergency_down_price)
        balancing = np.zeros((len(parties), t))   # producers' balancing energy (MW, + up)
        for i, p in enumerate(parties):
            if isinstance(p, Producer):
                k = np.flatnonzero(offers.provider == p.unique_id)
                if k.size:
                    balancing[i] = act.up_mw[k[0]] - act.down_mw[k[0]]
                led.pay(p.account, led.id(EXTERNAL), "fuel", mtus,
                        (balancing[i] - realised[i]) * dt, p.marginal_cost)
        self._settle_retail(ctx, real, prosumer_net, adders, red)
        self._settle_compensation(ctx)
        self._settle_non_delivery(ctx)
        if self.config.tso.capacity_price_eur_mw_h > 0:
            for uid, held in ctx.tso_offers.items():
                led.pay(self.tso.account, self.account_of[uid], "balancing_capacity",
                        ctx.mtu0 + held.mtu, held.mw * dt, self.config.tso.capacity_price_eur_mw_h)
        gen = -realised[[isinstance(p, Producer) for p in parties]].sum(0) \
            + act.up_mw.sum(0) - act.down_mw.sum(0) + act.emergency_up_mw - act.emergency_down_mw
        demand = realised[[not isinstance(p, Producer) for p in parties]].sum(0)
        self._record(ctx, clearing, prices_fc, system_short, act, p_short, p_long, gen, demand,
                     real, prof, parties, realised, realised - before, imbalance_mw,
                     dso_imbalance, da_flags, final_flags, real_flags, light, flows,
                     shed, red, activated, balancing)
        for agent in [*parties, self.dso, self.tso]:
            hook = getattr(agent.strategy, "end_of_day", None) if hasattr(agent, "strategy") \
                else None
            if hook is not None:
                hook(agent, DayResult(ctx.day, self.ledger.received_since(mark, agent.account),
                                      clearing.price, p_short, p_long))
        self.day += 1
        if self.day >= self.calendar.days:
            self.running = False

    def _meter(self, ctx, real, prof, settle: bool = True) -> np.ndarray:
        """(parties, T) metered net consumption: suppliers' perimeters, aggregators' devices,
        the system load and producers' output at their positions (`settle`: the reading
        compensation is settled on)."""
        e = self.fleet.enrolled
        net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
        ctx.retail_net = net - np.where(e["battery"][:, None], real["battery"], 0.0) \
            - np.where(e["ev"][:, None], real["ev"], 0.0) \
            - np.where(e["heat_pump"][:, None], real["hp"], 0.0)
        for agg in self.aggregators:
            agg.meter(ctx, real, settle)
        return np.array([p.realised_mw(ctx, ctx.position[i])
                         for i, p in enumerate(self.parties)])

    def _value_energy(self, ctx, real, prof) -> None:
        """Energy services with value in welfare: every load, EV and heat pump's baseline
        energy for the day. What the day did not deliver of it (an EV or heat pump left
        short, a load curtailed or disconnected) has failed that much service, valued like
        lost load; over-consumption is only a cost."""
        dt, base = ctx.dt_h, ctx.profiles
        sys_mwh = float(self.system_brp.realised_mw(ctx).sum() * dt)
        service = float((base.load + base.ev + base.hp).sum() * dt)
        short = float(np.clip((base.load - prof.load).sum(1) * dt, 0, None).sum())
        for key, prof_d in (("ev", base.ev), ("hp", base.hp)):
            short += float(np.clip((prof_d - real[key]).sum(1) * dt, 0, None).sum())
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
            dt_h=dt, fixed_bus_mw=dso.nodal(ctx.planner_fixed),
            pv_bus_mw=dso.nodal(ctx.profiles.pv), q_bus_mvar=q_real,
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

    def _position_changers(self, ctx, flags) -> frozenset:
        """Aggregators whose D-1 plan at a forecast-congested MTU-location (or one upstream of
        it) moved towards the congestion, compared with a cost-based plan of the same pool
        against the same prices: the footprint of inc-dec gaming."""
        yellow, worse = flags["violated"], flags["direction"]
        served = np.unique(self.grid.bus_location[self.fleet.bus])
        upstream = np.setdiff1d(np.arange(self.grid.n_locations), served)
        out = set()
        for agg in self.aggregators:
            refs = agg.reference_net(ctx)
            for k, net in agg.location_net_mw().items():
                cols = [k, *upstream]
                moved = (net - refs[k])[:, None] * worse[:, cols]
                if (yellow[:, cols] & (moved > 1e-6)).any():
                    out.add(agg.unique_id)
                    break
        return frozenset(out)

    def _settle_non_delivery(self, ctx) -> None:
        """An aggregator pays the DSO a penalty per MWh of its LFM commitments that its plan
        could not honour: what it missed at an MTU-location, up to what the DSO bought from
        it there (a miss of a TSO or platform commitment is settled as imbalance)."""
        pen = self.config.markets.lfm.non_delivery_penalty_eur_mwh
        if pen <= 0:
            return
        for agg in self.aggregators:
            sold = ctx.dso_sold.get(agg.unique_id)
            if sold is None:
                continue
            missed = sum((np.minimum(agg.missed_mw(k), sold[:, k].sum(1))
                          for k in agg.plans), np.zeros(ctx.n_mtu))
            self.ledger.pay(agg.account, self.dso.account, "lfm_penalty",
                            ctx.mtu0 + np.arange(ctx.n_mtu), missed * ctx.dt_h, pen)

    def _settle_compensation(self, ctx) -> None:
        """Compensation for the energy independent aggregators moved out of (or into) each
        supplier's perimeter, per MTU (seed 001 4.2): the aggregator pays the supplier per MWh
        its customers consumed below the declared baseline (and is paid per MWh above) at the
        regime's price; under `central` a neutral settlement entity pays the supplier the DA
        price and charges the aggregator the same."""
        st = self.config.settlement
        if st.compensation == "none":
            return
        led, mtus = self.ledger, ctx.mtu0 + np.arange(ctx.n_mtu)
        for agg in self.aggregators:
            if agg.kind != "independent":
                continue
            taken = -agg.moved_by_brp() * ctx.dt_h
            for b, brp in enumerate(self.brps):
                if st.compensation == "central":
                    central = led.id(SETTLEMENT_ENTITY)
                    led.pay(agg.account, central, "compensation", mtus, taken[b], ctx.da_price)
                    led.pay(central, brp.account, "compensation", mtus, taken[b], ctx.da_price)
                    continue
                price = {"contractual": st.contractual_price_eur_mwh,
                         "regulated": st.regulated_price_eur_mwh,
                         "corrected": brp.energy_component}[st.compensation]
                led.pay(agg.account, brp.account, "compensation", mtus, taken[b], price)

    def _settle_retail(self, ctx, real, prosumer_net, adders, red) -> None:
        """Daily bills per prosumer: supplier import and feed-in, network tariff on grid import,
        aggregator energy and flexibility fees, locational tariffs (implicit LFM) and RED
        compensation."""
        led, f, dt = self.ledger, self.fleet, ctx.dt_h
        if f.n == 0:
            return
        day_mtu = ctx.mtu0
        e = f.enrolled
        devices = (np.where(e["battery"][:, None], real["battery"], 0.0)
                   + np.where(e["ev"][:, None], real["ev"], 0.0)
                   + np.where(e["heat_pump"][:, None], real["hp"], 0.0))
        inside = np.isin(f.aggregator, [a.index for a in self.aggregators
                                        if a.in_supplier_perimeter])
        net = ctx.retail_net + np.where(inside[:, None], devices, 0.0)
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
            if not agg.in_supplier_perimeter:
                energy = (np.where(e["ev"][:, None], real["ev"], 0.0)
                          + np.where(e["heat_pump"][:, None], real["hp"], 0.0))[m].sum(1) * dt
                led.pay(pa[m], agg.account, "aggregator_energy", day_mtu, energy, retail[m])
            n_dev = sum(f.enrolled[d][m].astype(int) for d in f.enrolled)
            led.pay(agg.account, pa[m], "flexibility_fee", day_mtu, n_dev, agg.fee)
            b = f.enrolled["battery"] & m
            throughput = np.abs(real["battery"][b]).sum() * dt
            led.pay(agg.account, led.id(EXTERNAL), "battery_wear", day_mtu, throughput,
                    agg.degradation)
            if np.any(adders):
                loc = self.grid.bus_location[f.bus]
                consumed = np.zeros((ctx.n_mtu, self.grid.n_locations))
                own_dev = (np.where(f.enrolled["battery"][:, None], real["battery"], 0.0)
                           + np.where(f.enrolled["ev"][:, None], real["ev"], 0.0)
                           + np.where(f.enrolled["heat_pump"][:, None], real["hp"], 0.0))
                for k in range(self.grid.n_locations):
                    consumed[:, k] = own_dev[m & (loc == k)].sum(0)
                tk, kk = np.nonzero(adders)
                led.pay(agg.account, self.dso.account, "implicit_tariff", ctx.mtu0 + tk,
                        consumed[tk, kk] * dt, adders[tk, kk])
        if red is not None and red["curtailed_mwh"].any():
            led.pay(self.dso.account, pa, "red_compensation", day_mtu, red["curtailed_mwh"],
                    self.config.dso.red_compensation_eur_mwh)
        if red is not None and red["direct_mwh"].any():
            for agg in self.aggregators:   # direct control of contracted devices: the
                mwh = red["direct_mwh"][agg.members].sum()   # contract holder is paid
                if mwh > 0:
                    led.pay(self.dso.account, agg.account, "red_direct_control", day_mtu, mwh,
                            self.config.dso.direct_control_eur_mwh)


    def _record(self, ctx, clearing, prices_fc, system_short, act, p_short, p_long, generation,
                demand, real, prof, parties, realised, correction, imbalance_mw,
                dso_imbalance, da_flags, final_flags, real_flags, light, flows, shed,
                red, activated, balancing) -> None:
        t = ctx.n_mtu
        mtus = ctx.mtu0 + np.arange(t)
        rec = self.records
        trafo = self.grid.branch_kind == "trafo"
        rec.setdefault("series", []).append(pd.DataFrame({
            "mtu": mtus,
            "day": ctx.day,
            "da_price": clearing.price,
            "da_price_forecast": prices_fc,
            "da_volume_mwh": clearing.volume,
            "da_curtailed_mwh": clearing.curtailed,
            "id_price": ctx.id_price,
            "id_volume_mwh": ctx.id_volume,
            "system_short_mw": system_short,
            "dso_imbalance_mwh": dso_imbalance * ctx.dt_h,
            "activated_up_mw": act.up_mw.sum(0),
            "activated_down_mw": act.down_mw.sum(0),
            "emergency_up_mw": act.emergency_up_mw,
            "emergency_down_mw": act.emergency_down_mw,
            "der_balancing_up_mw": ctx.der_tso.sum(0),
            "der_dso_realtime_up_mw": ctx.der_dso.sum(0),
            "tso_dso_counteracting_mw": ctx.counteracting.sum(1),
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
            "trafo_loading": flows.loading[:, trafo].max(1) if trafo.any()
            else flows.loading.max(1),
            "max_loading": flows.loading.max(1),
            "v_min_pu": flows.v_pu[:, 1:].min(1),
            "v_max_pu": flows.v_pu[:, 1:].max(1),
            "load_to_shed_mw": shed.per_mtu,
        }))
        n_loc = self.grid.n_locations
        rec.setdefault("grid", []).append(pd.DataFrame({
            "mtu": np.repeat(mtus, n_loc),
            "location": np.tile(np.array(self.grid.locations, dtype=object), t),
            "light": light.ravel(),
            "forecast_violated": da_flags["violated"].ravel(),
            "forecast_violated_after_markets": final_flags["violated"].ravel(),
            "real_violated_before_dso": (red["red"] if red is not None
                                         else real_flags["violated"]).ravel(),
            "real_violated": real_flags["violated"].ravel(),
            "forecast_max_loading": da_flags["max_loading"].ravel(),
            "max_loading": real_flags["max_loading"].ravel(),
            "v_min_pu": real_flags["v_min"].ravel(),
            "v_max_pu": real_flags["v_max"].ravel(),
            "overload_mw": real_flags["overload_mw"].ravel(),
            "load_to_shed_mw": shed.per_location(self.grid.bus_location, n_loc).ravel(),
        }))
        names = np.array([p.name for p in parties], dtype=object)
        classes = np.array([p.agent_class for p in parties], dtype=object)
        rec.setdefault("positions", []).append(pd.DataFrame({
            "mtu": np.tile(mtus, len(parties)),
            "party": np.repeat(names, t),
            "class": np.repeat(classes, t),
            "position_mwh": (ctx.position * ctx.dt_h).ravel(),
            "realised_mwh": (realised * ctx.dt_h).ravel(),
            "perimeter_correction_mwh": (correction * ctx.dt_h).ravel(),
            "activated_mwh": (activated * ctx.dt_h).ravel(),
            "imbalance_mwh": (imbalance_mw * ctx.dt_h).ravel(),
            "balancing_mwh": (balancing * ctx.dt_h).ravel(),
        }))
        for agg in self.aggregators:
            flex = agg.flexibility(ctx)
            bat = agg.masks()["battery"]
            rec.setdefault("aggregators", []).append(pd.DataFrame({
                "mtu": mtus, "aggregator": agg.name, "baseline_mw": agg.baseline,
                "schedule_mw": agg.planned_net_mw(),
                "up_mw": sum((u for u, _ in flex.values()), np.zeros(t)),
                "down_mw": sum((d for _, d in flex.values()), np.zeros(t)),
                "missed_mw": agg.missed_mw(),
                "battery_throughput_mwh": np.abs(real["battery"][bat]).sum(0) * ctx.dt_h}))
        stats = {"day": ctx.day, "curtailed_mwh": float(red["curtailed_mwh"].sum())
                 if red is not None else 0.0,
                 **{f"balancing_{k}": v for k, v in ctx.balancing_cost.items()}}
        for r in ctx.round_stats:
            stats[f"{r['stage']}_rounds"] = stats.get(f"{r['stage']}_rounds", 0) + 1
            stats[f"{r['stage']}_unresolved_mw"] = r["unresolved_mw"]
            stats[f"{r['stage']}_refused_mw"] = r["refused_mw"]
        rec.setdefault("days", []).append(pd.DataFrame([stats]))

    def run(self, progress=None) -> None:
        while self.running:
            self.step()
            if progress is not None:
                progress.update(1)

    def tables(self) -> dict[str, pd.DataFrame]:
        ts = self.calendar.timestamps()
        out = {}
        for k, parts in self.records.items():
            if isinstance(parts[0], dict):   # recorded as columns
                df = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
            else:
                df = pd.concat(parts, ignore_index=True)
            if "mtu" in df:
                df.insert(0, "timestamp", ts[df["mtu"].to_numpy()])
            out[k] = df
        return out

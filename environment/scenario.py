"""Scenario schema: every number a run uses, validated before any work starts.

A scenario is a YAML file (read by environment/scenario_files.py: `extends`, list changes,
`data` paths). Loading it checks types, signs, ranges, names, grid nodes, the economic
consistency of prices and the user's own data series, and stops with a `ScenarioError` whose
lines each name the field (dotted path) and the value.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from environment.errors import ScenarioError
from environment.paths import assign
from environment.scenario_checks import (
    background_problems,
    data_problems,
    device_problems,
    economic_problems,
    name_problems,
)
from environment.scenario_common import Model as _Model
from environment.scenario_common import NonNeg, Positive, Rollout, SeriesSpec, Share, format_errors
from environment.scenario_files import read_scenario_data
from environment.scenario_markets import (  # noqa: F401  (the schema's public names)
    DayAhead,
    ImplicitLfm,
    Intraday,
    Lem,
    Lfm,
    Markets,
    Platform,
)


class Calendar(_Model):
    """Simulated period, any year: simbench's profiles are of 2016, and a date of another year
    reads the 2016 day of the same weekday nearest the same date (season and weekday kept,
    see `environment.calendar.profile_date`); the run's summary says so."""

    start: dt.date = dt.date(2016, 1, 11)
    days: Annotated[int, Field(ge=1, le=366)] = 7
    mtu_minutes: Literal[5, 15, 30, 60] = 15
    da_gate_closure_hour: Annotated[int, Field(ge=0, le=23)] = 12

    @field_validator("start", mode="before")
    @classmethod
    def _parse_date(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v)
            except ValueError as exc:
                raise ValueError(f"not an ISO date (YYYY-MM-DD): {exc}") from None
        return v


class Grid(_Model):
    """`locations`: what the DSO watches and the LFM tags offers with. `feeders` (default):
    the substation and each feeder leaving it; `levels`: each feeder split into its MV lines,
    MV/LV transformers and LV lines (`environment.grid.levels`), and the summary reports
    per level. `background: simbench`: the grid data's elements that are no household's in
    every flow (`environment.background`)."""

    simbench_code: str = "1-LV-semiurb5--2-sw"
    locations: Literal["feeders", "levels"] = "feeders"
    background: Literal["none", "simbench"] = "none"
    loading_limit: Annotated[float, Field(gt=0, le=2)] = 1.0
    v_min_pu: Annotated[float, Field(gt=0.5, lt=1.0)] | None = None
    v_max_pu: Annotated[float, Field(gt=1.0, lt=1.5)] | None = None
    load_power_factor: Annotated[float, Field(gt=0, le=1)] = 0.97


class Pv(_Model):
    share: Share = 0.4
    kwp_mean: NonNeg = 6.0
    kwp_sd: NonNeg = 2.0
    profiles: list[str] = ["PV1", "PV3", "PV4", "PV7"]


class Battery(_Model):
    share: Share = 0.2
    capacity_kwh_mean: NonNeg = 8.0
    capacity_kwh_sd: NonNeg = 3.0
    duration_h: Positive = 2.0
    efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95
    initial_soc: Share = 0.5


class Ev(_Model):
    share: Share = 0.3
    profiles: list[str] = ["HLS_A_3.7", "HLS_B_3.7", "HLS_C_3.7", "HLS_A_11.0"]
    charger_kw: dict[str, Positive] = {
        "HLS_A_3.7": 3.7, "HLS_B_3.7": 3.7, "HLS_C_3.7": 3.7, "HLS_A_11.0": 11.0,
    }
    parking_hours: NonNeg = 8.0


class HeatPump(_Model):
    share: Share = 0.3
    kw_mean: NonNeg = 3.0
    kw_sd: NonNeg = 0.8
    profiles: list[str] = ["Air_Parallel_1", "Air_Semi-Parallel_1", "Air_Alternative_1",
                           "Soil_Alternative_1"]
    storage_hours: NonNeg = 2.0


class ProsumerGroup(_Model):
    """Prosumers sharing load statistics and DER shares; placed on `buses` (default: the
    grid's household connection points, weighted by their simbench rating). `connections:
    each` places one member on each household connection point instead, the first `count` in
    the grid's order, with the load profile simbench gives that point where
    `load_profiles` lists it.

    `devices`: `drawn` draws PV, batteries, EVs and heat pumps by `share` and size; `simbench`
    (with `connections: each`) takes them from the grid data at each connection point
    (`agents.prosumer_devices`), and of the device settings only battery `efficiency` and
    `initial_soc`, EV `parking_hours` and heat-pump `storage_hours` still act, and a kind's
    sizes and profiles where `rollout` adds that kind to households without one.

    `prequalified`: each member owning a flexible device is large enough to be prequalified
    by the DSO and offers its own flexibility, location-tagged, in the local flexibility
    market and the balancing market (seed 003 6.1), at `activation_cost_eur_mwh`; its
    devices stay in its supplier's perimeter, like an independent aggregator's."""

    name: str
    count: Annotated[int, Field(ge=0)]
    buses: list[str] | None = None
    connections: Literal["weighted", "each"] = "weighted"
    devices: Literal["drawn", "simbench"] = "drawn"
    rollout: Rollout = Rollout()
    prequalified: bool = False
    activation_cost_eur_mwh: NonNeg = 20.0
    annual_mwh_mean: NonNeg = 3.5
    annual_mwh_sd: NonNeg = 1.0
    load_profiles: list[str] = ["H0-A", "H0-B", "H0-C", "H0-G", "H0-L"]
    pv: Pv = Pv()
    battery: Battery = Battery()
    ev: Ev = Ev()
    heat_pump: HeatPump = HeatPump()

    @model_validator(mode="after")
    def _one_placement(self) -> ProsumerGroup:
        if self.connections == "each" and self.buses is not None:
            raise ValueError(f"buses = {self.buses}: connections 'each' places the members on "
                             "the grid's household connection points, not on named buses")
        return self


class Forecast(_Model):
    """D-1 forecast errors: a common AR(1) component per portfolio plus idiosyncratic noise,
    and an optional systematic bias of the household load forecast (intraday forecasts keep
    the same share of it as of the random error)."""

    load_error_sd: NonNeg = 0.08
    pv_error_sd: NonNeg = 0.20
    wind_error_sd: NonNeg = 0.15
    idiosyncratic_sd: NonNeg = 0.25
    autocorrelation: Annotated[float, Field(ge=0, lt=1)] = 0.95
    load_bias: Annotated[float, Field(ge=-0.5, le=0.5)] = 0.0


StrategyParams = dict[str, float]


class Brp(_Model):
    """A supplier and balance responsible party. `energy_component_eur_mwh` is the energy
    part of its supply price: what an independent aggregator pays it per MWh moved under the
    `corrected` compensation regime."""

    name: str
    customer_share: Share
    retail_price_eur_mwh: float = 300.0
    feed_in_eur_mwh: float = 80.0
    energy_component_eur_mwh: float = 110.0
    strategy: str = "truthful"
    strategy_params: StrategyParams = {}


class Aggregator(_Model):
    """An aggregator of prosumer devices. `kind` is its relation to the suppliers (ENTSO-E
    demand-response models, seed 003 3.4):

    * ``own_brp``: its devices are sub-metered out of the supplier's perimeter; it supplies
      them and is their balance responsible party.
    * ``independent``: the devices stay in each customer's supplier's perimeter; the
      aggregator declares a baseline (its D-1 plan) and sells deviations from it; imbalance
      perimeters and compensation follow `settlement`.
    * ``supplier``: owned by the BRP named in `supplier`, enrols only that BRP's customers;
      activations stay inside the firm (no compensation).

    `balancing`: it offers its flexibility to the TSO's balancing market."""

    name: str
    kind: Literal["own_brp", "independent", "supplier"] = "own_brp"
    supplier: str | None = None
    enrolment: Share = 0.6
    devices: list[Literal["battery", "ev", "heat_pump"]] = ["battery", "ev", "heat_pump"]
    degradation_eur_mwh: NonNeg = 15.0
    activation_cost_eur_mwh: NonNeg = 20.0
    fee_eur_per_device_day: NonNeg = 0.10
    balancing: bool = True
    strategy: str = "truthful"
    strategy_params: StrategyParams = {}

    @model_validator(mode="after")
    def _supplier_named(self) -> Aggregator:
        if (self.kind == "supplier") != (self.supplier is not None):
            raise ValueError(f"kind {self.kind!r} with supplier {self.supplier!r}: a supplier "
                             "aggregator names its BRP in `supplier`, other kinds do not")
        return self


class Producer(_Model):
    name: str
    technology: str
    capacity_mw: NonNeg
    marginal_cost_eur_mwh: float
    profile: str | None = None
    balancing: bool = True
    strategy: str = "truthful"
    strategy_params: StrategyParams = {}


class SystemLoad(_Model):
    """Demand of the rest of the wholesale system, served by its own BRP. `profile` is a
    simbench profile scaled to `annual_mwh`, or a series of `data`; `annual_mwh: null` takes
    such a series (in a power or energy unit) as it is, in MW."""

    brp: str = "wholesale_retail"
    profile: str = "hv_urban"
    annual_mwh: NonNeg | None = 8000.0
    retail_price_eur_mwh: float = 250.0


class Tso(_Model):
    """Balancing market and imbalance settlement. The imbalance price is the marginal
    activated bid (single: one price; dual: only the side that aggravates the system pays or
    receives it) plus `escalation_eur_mwh_per_mw` per MW of system imbalance, so that a large
    imbalance costs more per MWh than a small one (a flat price invites arbitrage against the
    TSO). DER bid through aggregators in `der_block_hours` blocks, so that an activation's
    rebound falls in later blocks. Under sequential coupling the TSO's gate of the day-ahead
    round holds `der_reserve_mw` of upward and of downward DER capacity per MTU (the cheapest
    of what the DSO left, within its headroom) for real-time balancing, paying
    `capacity_price_eur_mw_h` per MW and hour held."""

    pricing: Literal["single", "dual"] = "single"
    up_markup_eur_mwh: NonNeg = 15.0
    down_markdown_eur_mwh: NonNeg = 15.0
    emergency_price_eur_mwh: Positive = 1000.0
    escalation_eur_mwh_per_mw: NonNeg = 0.0
    der_balancing: bool = True
    der_block_hours: Annotated[int, Field(ge=1, le=24)] = 4
    der_reserve_mw: NonNeg = 0.05
    capacity_price_eur_mw_h: NonNeg = 0.0


class Dso(_Model):
    """The DSO. `emergency_actions`: where limits are still broken in real time it curtails
    consumption or PV at `red_compensation_eur_mwh` (RED) and disconnects what even that
    cannot save above `black_loading` (BLACK): grid security, not market design, so it is the
    same under every coupling scheme. Under a scheme whose real-time regime is direct control
    (conditional coupling) it first steers the devices aggregators hold under contract, paying
    the aggregator `direct_control_eur_mwh`."""

    network_tariff_eur_mwh: NonNeg = 70.0
    yellow_margin: Annotated[float, Field(ge=0, lt=0.5)] = 0.0
    emergency_actions: bool = True
    red_compensation_eur_mwh: NonNeg = 150.0
    direct_control_eur_mwh: NonNeg = 50.0
    black_loading: Annotated[float, Field(gt=1.0)] = 1.5
    conditional_yellow: Literal["refuse_worsening", "pause"] = "refuse_worsening"


class Baseline(_Model):
    """How the energy an aggregator moved is measured in one market
    (`environment.markets.baseline`): `declared` (its own D-1 schedule), `historical` (the
    mean of the `top` highest of the last `days` similar days, PJM's 4 of 5 by default),
    `rolling` (the mean of the last `days` similar days, 5 by default) or `metered` (the
    reading before each activation; only where the market activates)."""

    rule: str = "declared"
    days: Annotated[int, Field(ge=1, le=60)] | None = None
    top: Annotated[int, Field(ge=1, le=60)] | None = None

    @model_validator(mode="after")
    def _acting(self) -> Baseline:
        from environment.markets.baseline import BASELINES, LOOKBACK

        if self.rule not in BASELINES:
            raise ValueError(f"rule = {self.rule!r}: unknown baseline rule; known: "
                             f"{sorted(BASELINES)}")
        takes = LOOKBACK.get(self.rule, (None, None))
        if takes[0] is None and self.days is not None:
            raise ValueError(f"days = {self.days}: the {self.rule!r} rule does not look back "
                             "over days")
        if takes[1] is None and self.top is not None:
            raise ValueError(f"top = {self.top}: only the 'historical' rule takes the highest "
                             f"of its days, not {self.rule!r}")
        if self.rule == "historical" and self.n_top > self.n_days:
            raise ValueError(f"top = {self.n_top} of days = {self.n_days}: cannot take more "
                             "days than it looks back over")
        return self

    @property
    def n_days(self) -> int | None:
        """Days looked back over (the rule's default where not set)."""
        from environment.markets.baseline import LOOKBACK

        return self.days or LOOKBACK.get(self.rule, (None, None))[0]

    @property
    def n_top(self) -> int | None:
        from environment.markets.baseline import LOOKBACK

        return self.top or LOOKBACK.get(self.rule, (None, None))[1]


class Baselines(_Model):
    """The baseline rule of each market that moves an aggregator's energy: `dayahead` (its
    schedule and intraday and platform trades), `lfm` (MTUs where the DSO bought from it),
    `balancing` (MTUs where the TSO or DSO activated it in real time)."""

    dayahead: Baseline = Baseline()
    lfm: Baseline = Baseline()
    balancing: Baseline = Baseline()

    @model_validator(mode="after")
    def _schedule_not_metered(self) -> Baselines:
        if self.dayahead.rule == "metered":
            raise ValueError("dayahead.rule = 'metered': a reading before activation needs an "
                             "activation; the day-ahead schedule has none")
        return self

    @property
    def default(self) -> bool:
        return all(getattr(self, m).rule == "declared" for m in ("dayahead", "lfm",
                                                                  "balancing"))


class Settlement(_Model):
    """Compensation between independent aggregators and the suppliers of their customers
    (seed 001 4.2): what the aggregator pays per MWh it moved out of (or into) a supplier's
    perimeter. `none`; `contractual` (a bilateral price); `regulated` (a tariff the regulator
    sets); `corrected` (the supplier's energy component of the supply price); `central` (a
    neutral settlement entity corrects the supplier's position and pays it the DA spot price,
    charged to the aggregator). `perimeter_correction` (default: off under `none`, on
    otherwise) moves the aggregator's activations out of the supplier's imbalance."""

    compensation: Literal["none", "contractual", "regulated", "corrected", "central"] = "none"
    perimeter_correction: bool | None = None
    contractual_price_eur_mwh: float = 90.0
    regulated_price_eur_mwh: float = 70.0
    baseline: Baselines = Baselines()

    @model_validator(mode="after")
    def _central_corrects(self) -> Settlement:
        if self.compensation == "central" and self.perimeter_correction is False:
            raise ValueError("perimeter_correction = False with compensation 'central': the "
                             "central regime is a correction of the supplier's perimeter")
        if not self.baseline.default and self.compensation == "none" \
                and not self.corrects_perimeter:
            raise ValueError(f"baseline = {self.baseline.model_dump()}: without compensation "
                             "or perimeter correction nothing is settled against a baseline")
        return self

    @property
    def corrects_perimeter(self) -> bool:
        if self.perimeter_correction is None:
            return self.compensation != "none"
        return self.perimeter_correction


class Planner(_Model):
    enabled: bool = True
    grid_constrained: bool = True


class Scenario(_Model):
    name: str = "default"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 42
    calendar: Calendar = Calendar()
    grid: Grid = Grid()
    prosumers: list[ProsumerGroup]
    forecast: Forecast = Forecast()
    brps: Annotated[list[Brp], Field(min_length=1)]
    aggregators: list[Aggregator] = []
    producers: Annotated[list[Producer], Field(min_length=1)]
    system_load: SystemLoad = SystemLoad()
    tso: Tso = Tso()
    dso: Dso = Dso()
    markets: Markets = Markets()
    settlement: Settlement = Settlement()
    planner: Planner = Planner()
    value_of_load_eur_mwh: Positive = 4000.0
    data: dict[str, SeriesSpec] = {}

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        from environment.markets.price_series import scenario_problems

        problems = name_problems(self) + economic_problems(self) + data_problems(self)
        problems += scenario_problems(self) + device_problems(self)
        problems += background_problems(self)
        total = sum(b.customer_share for b in self.brps)
        if abs(total - 1.0) > 1e-9:
            shares = [b.customer_share for b in self.brps]
            problems.append(f"brps[*].customer_share = {shares}: must sum to 1 (sum {total:g})")
        brp_names = [b.name for b in self.brps]
        for i, a in enumerate(self.aggregators):
            if a.kind == "supplier" and a.supplier not in brp_names:
                problems.append(f"aggregators[{i}].supplier = {a.supplier!r}: not a BRP; "
                                f"known: {brp_names}")
        perimeter = any(a.kind != "own_brp" for a in self.aggregators) \
            or any(g.prequalified for g in self.prosumers)
        if not self.settlement.baseline.default and not perimeter:
            problems.append(f"settlement.baseline = {self.settlement.baseline.model_dump()}: "
                            "no aggregator in the suppliers' perimeters (independent or "
                            "supplier kind) is measured against a baseline")
        problems += self._dso_problems()
        problems += self._tso_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self


    def _tso_problems(self) -> list[str]:
        """The TSO's DER reserve acts only where a gate holds it: sequential coupling, with DER
        in real-time balancing (a changed value elsewhere is refused, see `_dso_problems`)."""
        t, out = self.tso, []
        holds = self.markets.coupling == "sequential" and t.der_balancing \
            and self.markets.lfm.enabled
        if t.der_reserve_mw not in (0.0, Tso().der_reserve_mw) and not holds:
            out.append(f"tso.der_reserve_mw = {t.der_reserve_mw}: DER capacity is held for the "
                       "TSO only in the flexibility rounds of coupling 'sequential' with "
                       f"tso.der_balancing (here {self.markets.coupling!r}, der_balancing "
                       f"{t.der_balancing}, lfm.enabled {self.markets.lfm.enabled})")
        if t.capacity_price_eur_mw_h > 0 and not (holds and t.der_reserve_mw > 0):
            out.append(f"tso.capacity_price_eur_mw_h = {t.capacity_price_eur_mw_h}: pays "
                       "capacity held for the TSO, and none is held (sequential coupling with "
                       "tso.der_reserve_mw > 0 holds it)")
        return out

    def _dso_problems(self) -> list[str]:
        """DSO settings changed from their defaults where they cannot act (the shipped files
        state every field, so only a changed value says a user meant it)."""
        d, default = self.dso, Dso()
        changed = [k for k in ("red_compensation_eur_mwh", "black_loading",
                               "direct_control_eur_mwh", "conditional_yellow")
                   if getattr(d, k) != getattr(default, k)]
        out = []
        if not d.emergency_actions:
            out += [f"dso.{k} = {getattr(d, k)}: acts only with dso.emergency_actions"
                    for k in changed if k != "conditional_yellow"]
        if self.markets.coupling != "conditional":
            out += [f"dso.{k} = {getattr(d, k)!r}: acts only under coupling 'conditional', "
                    f"not {self.markets.coupling!r}"
                    for k in changed if k in ("direct_control_eur_mwh", "conditional_yellow")]
        return out


def parse_scenario(data: Any, source: str = "<dict>") -> Scenario:
    """Validate a mapping (as read from YAML) into a Scenario."""
    if not isinstance(data, dict):
        raise ScenarioError(f"invalid scenario {source}: top level must be a mapping, "
                            f"got {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise format_errors(exc, source) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; `extends: NAME` starts from another scenario (next to
    the file, else a shipped one) and changes what this file sets."""
    path = Path(path)
    return parse_scenario(read_scenario_data(path), str(path))


def with_overrides(scenario: Scenario, overrides: dict[str, Any]) -> Scenario:
    """Return a copy with dotted-path overrides applied, e.g. {"calendar.days": 3} or
    {"prosumers.0.count": 500}; a path that names no field is a ScenarioError."""
    data = scenario.model_dump(mode="json")
    for dotted, value in overrides.items():
        try:
            assign(data, dotted, value)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ScenarioError(f"invalid override {dotted} = {value!r}: no such field "
                                f"({type(exc).__name__}: {exc})") from None
    return parse_scenario(data, f"{scenario.name} with overrides {overrides}")


def dump_scenario(scenario: Scenario) -> str:
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)

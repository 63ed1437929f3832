"""Schema of a transmission scenario (`kind: transmission`): a few nodes joined by lines, producers
and inelastic loads at the nodes, a zonal day-ahead market that ignores the lines, and the grid
operator's redispatch market that makes the day-ahead dispatch feasible.

It is a separate scenario kind from the distribution-grid `Scenario` because it shares none of
its sections (no calendar, prosumers or simbench grid); the CLI tells them apart by `kind`.
Both kinds are read the same way (environment/scenario_files.py: `extends`, list changes) and
name the user's own series the same way, in `data:` (a load's `mw` or a producer's
`marginal_cost_eur_mwh` may name one: wholesale demand, an import at a neighbour's price).
Periods are hours; with `start` (or a series) they carry timestamps. A wholesale-only case is
one node and no lines. Errors are `ScenarioError`s whose lines name the field path and the
value."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from environment.errors import ScenarioError
from environment.paths import assign
from environment.scenario_common import SeriesSpec, format_errors
from environment.scenario_files import read_scenario_data
from environment.series import DataError, read_series, unit_kind
from environment.tiers.schema import Region

NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Name = Annotated[str, Field(min_length=1)]
TxStrategyParams = dict[str, float | str | list[float] | None]
KIND = "transmission"
PERIOD_MINUTES = 60
DEFAULT_PERIODS = 24


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Node(_Model):
    """A node; `zone` names its bidding zone (one of `zones`; none: the scenario has one zone
    and no `zones` section)."""

    name: Name
    zone: Name | None = None


class Zone(_Model):
    """A bidding zone and its TSO (who redispatches its lines, balances it and earns half the
    congestion rent of its interconnectors). `load_error_sd` and `renewable_error_sd` turn on
    real-time forecast errors (default 0: off): each period the zone's loads come out
    (1 + e) times their forecast and its renewable producers (producers with `renewable:
    true`) deliver (1 + e') times their schedule (within their capacity), e and e' drawn from
    normal distributions with these standard deviations (shares), seeded from `seed`. The
    imbalance they leave is what the TSO balances (`balancing`)."""

    name: Name
    tso: Name
    load_error_sd: NonNeg = 0.0
    renewable_error_sd: NonNeg = 0.0


class Interconnector(_Model):
    """A border between two zones with its net transfer capacity: `limit_mw` from `from` to
    `to` and `reverse_limit_mw` back (default the same); 0 closes that direction."""

    model_config = ConfigDict(populate_by_name=True)
    name: Name | None = None
    from_: Name = Field(alias="from")
    to: Name
    limit_mw: float
    reverse_limit_mw: float | None = None

    @property
    def label(self) -> str:
        return self.name or f"{self.from_}-{self.to}"


class Balancing(_Model):
    """The regional balance place: how the zones' TSOs share balancing energy
    (environment/markets/regional.py: `none`, `imbalance_netting`, `common_merit_order`).
    Offers are the producers' headroom after redispatch at marginal cost (renewables do not
    offer); what no offer covers is emergency energy at `emergency_up_eur_mwh` (default: the
    day-ahead price cap) or `emergency_down_eur_mwh` (default: the price floor). A scenario
    whose emergency up price is below a (non-renewable) producer's marginal cost, or whose
    emergency down price is above one, is refused: emergency energy is the last resort."""

    sharing: str = "none"
    emergency_up_eur_mwh: float | None = None
    emergency_down_eur_mwh: float | None = None


class Line(_Model):
    """A line from `from` to `to` (positive flow direction) with a thermal limit; the reactance
    only matters in meshed grids, where it sets how flows split (DC power flow)."""

    model_config = ConfigDict(populate_by_name=True)
    name: Name
    from_: Name = Field(alias="from")
    to: Name
    limit_mw: Positive
    reactance: Positive = 1.0


class TxProducer(_Model):
    """A plant at a node; `marginal_cost_eur_mwh` is a number or the name of a price series
    of `data` (an import at a neighbouring market's price, a fuel-indexed cost)."""

    name: Name
    node: Name
    capacity_mw: Positive
    marginal_cost_eur_mwh: float | Name
    strategy: str = "truthful"
    strategy_params: TxStrategyParams = {}
    renewable: bool = False


class Load(_Model):
    """Inelastic demand at a node: one value for every period, one per period, or the name of
    a series of `data` in a power or energy unit (MW; a period is one hour, so MW and MWh per
    period are the same number)."""

    name: Name
    node: Name
    mw: NonNeg | list[NonNeg] | Name


class DayAhead(_Model):
    """Zonal day-ahead auction; `tie_price` as in the distribution kind's
    `markets.dayahead.tie_price` (marginal_offer: the most expensive accepted offer)."""

    price_floor: float = -500.0
    price_cap: float = 4000.0
    tie_price: Literal["midpoint", "marginal_offer"] = "marginal_offer"

    @model_validator(mode="after")
    def _ordered(self) -> DayAhead:
        if not self.price_floor < self.price_cap:
            raise ValueError(f"price_floor {self.price_floor} must be below price_cap "
                             f"{self.price_cap}")
        return self


class Redispatch(_Model):
    """`market`: least-cost inc/dec from the producers' bids; `cost_based`: regulated redispatch
    at marginal cost (the no-gaming benchmark). An inc bid above `price_cap` (a dec bid below
    `dec_price_floor`) is not accepted as a market offer: the plant is redispatched at its
    marginal cost instead, as regulated redispatch would, so a cap bounds the rent per MWh."""

    mechanism: Literal["market", "cost_based"] = "market"
    pricing: Literal["pay_as_bid", "pay_as_clear"] = "pay_as_bid"
    price_cap: float | None = None
    dec_price_floor: float | None = None


class TxScenario(_Model):
    """`periods` hours from `start` (optional; default: the first series' start, else no
    timestamps), repeated `episodes` times; `periods` defaults to what the series cover from
    `start`, else 24."""

    kind: Literal["transmission"]
    name: Name = "transmission"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    start: dt.datetime | None = None
    periods: Annotated[int, Field(ge=1, le=8784)] | None = None
    episodes: Annotated[int, Field(ge=1)] = 1
    nodes: Annotated[list[Node], Field(min_length=1)]
    lines: list[Line] = []
    producers: Annotated[list[TxProducer], Field(min_length=1)]
    loads: Annotated[list[Load], Field(min_length=1)]
    day_ahead: DayAhead = DayAhead()
    redispatch: Redispatch = Redispatch()
    zones: list[Zone] = []
    interconnectors: list[Interconnector] = []
    balancing: Balancing = Balancing()
    regions: list[Region] = []
    data: dict[str, SeriesSpec] = {}

    @field_validator("start", mode="before")
    @classmethod
    def _parse_start(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return dt.datetime.fromisoformat(v)
            except ValueError as exc:
                raise ValueError(f"not an ISO date and time (YYYY-MM-DDTHH:MM): {exc}") \
                    from None
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return dt.datetime.combine(v, dt.time())
        return v

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def zonal(self) -> bool:
        """Whether the scenario declares zones (the zonal model with market coupling, a TSO
        per zone and the regional balance place runs it)."""
        return bool(self.zones)

    def dump_data(self, exclude_none: bool = False) -> dict:
        """The scenario as data (aliases), without the zonal fields where a scenario without
        zones leaves them at their defaults, so the dump (and the run id hashed from it) of
        such a scenario is what it was before zones existed."""
        drop: dict = {} if self.zonal else {"zones": True, "interconnectors": True,
                                           "balancing": True, "nodes": {"__all__": {"zone"}}}
        if not self.regions:
            drop["regions"] = True
        if not self.zonal and not any(p.renewable for p in self.producers):
            drop["producers"] = {"__all__": {"renewable"}}
        return self.model_dump(mode="json", by_alias=True, exclude_none=exclude_none,
                               exclude=drop or None)

    def series(self, name: str) -> np.ndarray:
        """A series of `data` on the run's hours (MW, or EUR/MWh for prices)."""
        spec = self.data[name]
        s = read_series(name, spec.file, spec.column, spec.unit, spec.timestamp)
        return s.window(self.start, self.periods, PERIOD_MINUTES)

    def load_by_load(self) -> np.ndarray:
        """(loads, periods) inelastic demand of each load, MW."""
        return np.array([self.series(ld.mw) if isinstance(ld.mw, str)
                         else np.broadcast_to(np.asarray(ld.mw, float), self.periods)
                         for ld in self.loads])

    def load_mw(self) -> np.ndarray:
        """(periods, nodes) inelastic demand."""
        out = np.zeros((self.periods, len(self.nodes)))
        idx = {n: i for i, n in enumerate(self.node_names)}
        for ld, mw in zip(self.loads, self.load_by_load(), strict=True):
            out[:, idx[ld.node]] += mw
        return out

    def marginal_cost(self) -> np.ndarray:
        """(periods, producers) marginal cost, EUR/MWh."""
        return np.column_stack([
            self.series(p.marginal_cost_eur_mwh) if isinstance(p.marginal_cost_eur_mwh, str)
            else np.full(self.periods, float(p.marginal_cost_eur_mwh))
            for p in self.producers])

    def timestamps(self) -> list[dt.datetime] | None:
        if self.start is None:
            return None
        return [self.start + dt.timedelta(minutes=PERIOD_MINUTES * t)
                for t in range(self.periods)]

    @model_validator(mode="after")
    def _periods_from_data(self) -> TxScenario:
        """Fill `start` and `periods` from the series named (frozen model: set once, here)."""
        problems = []
        used = [(f"loads[{i}].mw", ld.mw, "load") for i, ld in enumerate(self.loads)
                if isinstance(ld.mw, str)]
        used += [(f"producers[{i}].marginal_cost_eur_mwh", p.marginal_cost_eur_mwh, "price")
                 for i, p in enumerate(self.producers) if isinstance(p.marginal_cost_eur_mwh, str)]
        for name, spec in self.data.items():
            from environment.series import check_spec

            problems += check_spec(name, spec.file, spec.unit)
        for where, name, use in used:
            spec = self.data.get(name)
            if spec is None:
                problems.append(f"{where} = {name!r}: not a series of `data` (known: "
                                f"{sorted(self.data)})")
            elif not problems:
                kind = unit_kind(spec.unit)
                if (use == "load") != (kind in ("power", "energy")) or \
                        (use == "price" and kind != "price"):
                    problems.append(f"{where} = {name!r}: series in {spec.unit}; expected "
                                    + ("a power or energy unit" if use == "load"
                                       else "a price (EUR/MWh)"))
        if problems:
            raise ValueError("\n  ".join(problems))
        if used:
            first = used[0][1]
            spec = self.data[first]
            try:
                s = read_series(first, spec.file, spec.column, spec.unit, spec.timestamp)
            except DataError as exc:
                raise ValueError(str(exc)) from None
            if self.start is None:
                object.__setattr__(self, "start", s.start)
            if self.periods is None:
                hours = (s.end - self.start) / dt.timedelta(minutes=PERIOD_MINUTES)
                object.__setattr__(self, "periods", max(1, int(hours)))
        elif self.periods is None:
            object.__setattr__(self, "periods", DEFAULT_PERIODS)
        return self

    @model_validator(mode="after")
    def _references(self) -> TxScenario:
        from agents.strategies import known, make_strategy

        problems: list[str] = []
        nodes = set()
        for i, n in enumerate(self.nodes):
            if n.name in nodes:
                problems.append(f"nodes[{i}].name = {n.name!r}: duplicate node")
            nodes.add(n.name)
        for kind, items in (("lines", self.lines), ("producers", self.producers),
                            ("loads", self.loads)):
            seen = set()
            for i, item in enumerate(items):
                if item.name in seen:
                    problems.append(f"{kind}[{i}].name = {item.name!r}: duplicate name")
                seen.add(item.name)
        for i, ln in enumerate(self.lines):
            for field, value in (("from", ln.from_), ("to", ln.to)):
                if value not in nodes:
                    problems.append(f"lines[{i}].{field} = {value!r}: unknown node")
            if ln.from_ == ln.to:
                problems.append(f"lines[{i}].to = {ln.to!r}: same node as `from`")
        strategies = known("tx_producer")
        for i, p in enumerate(self.producers):
            if p.node not in nodes:
                problems.append(f"producers[{i}].node = {p.node!r}: unknown node")
            if p.strategy not in strategies:
                problems.append(f"producers[{i}].strategy = {p.strategy!r}: unknown; known: "
                                f"{strategies}")
                continue
            try:
                make_strategy("tx_producer", p.strategy, **p.strategy_params)
            except ValueError as exc:
                problems.append(f"producers[{i}].strategy_params = {p.strategy_params!r}: {exc}")
        for i, ld in enumerate(self.loads):
            if ld.node not in nodes:
                problems.append(f"loads[{i}].node = {ld.node!r}: unknown node")
            if isinstance(ld.mw, list) and len(ld.mw) not in (1, self.periods):
                problems.append(f"loads[{i}].mw = <{len(ld.mw)} values>: expected one value or "
                                f"periods = {self.periods}")
        floor, cap = self.day_ahead.price_floor, self.day_ahead.price_cap
        for i, p in enumerate(self.producers):
            c = p.marginal_cost_eur_mwh
            if not isinstance(c, str) and not floor <= c <= cap:
                problems.append(f"producers[{i}].marginal_cost_eur_mwh = {c:g}: outside the "
                                f"day-ahead price range [{floor:g}, {cap:g}]; its offer would be "
                                "clipped to the range")
        if self.zonal or self.interconnectors:
            from environment.transmission.zone_checks import zone_problems

            problems += zone_problems(self)
        if self.regions:
            from environment.transmission.zone_checks import region_problems

            problems += region_problems(self)
        if not problems:
            try:
                problems += self._physics()
            except DataError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def _physics(self) -> list[str]:
        from environment.transmission.network import Network

        problems = []
        try:
            if self.zonal:
                from environment.transmission.zones import Zones

                Zones.from_scenario(self)
            else:
                Network.from_scenario(self)
        except ValueError as exc:
            problems.append(f"lines = <{len(self.lines)} lines>: {exc}")
        capacity = sum(p.capacity_mw for p in self.producers)
        load = self.load_mw().sum(1)
        peak = float(load.max())
        if peak > capacity:
            when = "" if self.start is None else \
                f" at {self.timestamps()[int(load.argmax())]:%Y-%m-%d %H:%M}"
            problems.append(f"loads = peak {peak:g} MW{when}: more than the producers' capacity "
                            f"{capacity:g} MW, the day-ahead market cannot clear")
        floor, cap = self.day_ahead.price_floor, self.day_ahead.price_cap
        cost = self.marginal_cost()
        for i, p in enumerate(self.producers):
            if isinstance(p.marginal_cost_eur_mwh, str) and \
                    not ((cost[:, i] >= floor) & (cost[:, i] <= cap)).all():
                problems.append(f"producers[{i}].marginal_cost_eur_mwh = "
                                f"{p.marginal_cost_eur_mwh!r}: the series leaves the day-ahead "
                                f"price range [{floor:g}, {cap:g}]")
        return problems + self._emergency_problems(cost)

    def _emergency_problems(self, cost: np.ndarray) -> list[str]:
        """Emergency energy is the last resort: it must cost at least as much as every
        balancing offer (up) and pay at most as much as every one (down), or the TSOs would
        buy it before the offers, or 'earn' on it."""
        b, problems = self.balancing, []
        offers = cost[:, [i for i, p in enumerate(self.producers) if not p.renewable]]
        if not offers.size:
            return problems
        dear, cheap = float(offers.max()), float(offers.min())
        if b.emergency_up_eur_mwh is not None and b.emergency_up_eur_mwh < dear:
            problems.append(f"balancing.emergency_up_eur_mwh = {b.emergency_up_eur_mwh:g}: below "
                            f"the dearest up offer ({dear:g} EUR/MWh, a producer's marginal "
                            "cost); emergency energy would be bought before the offers")
        if b.emergency_down_eur_mwh is not None and b.emergency_down_eur_mwh > cheap:
            problems.append(f"balancing.emergency_down_eur_mwh = {b.emergency_down_eur_mwh:g}: "
                            f"above the cheapest down offer ({cheap:g} EUR/MWh, a producer's "
                            "marginal cost); the TSOs would earn on emergency energy")
        return problems


def parse_tx_scenario(data: Any, source: str = "<dict>") -> TxScenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"invalid scenario {source}: top level must be a mapping, "
                            f"got {type(data).__name__}")
    try:
        return TxScenario.model_validate(data)
    except ValidationError as exc:
        raise format_errors(exc, source) from None


def load_tx_scenario(path: str | Path) -> TxScenario:
    """Read and validate a transmission scenario file (`extends` and `data` as for the
    distribution kind)."""
    path = Path(path)
    return parse_tx_scenario(read_scenario_data(path), str(path))


REGION_OVERRIDE = re.compile(r"^regions\.(\d+)\.overrides\.(.+)$")


def tx_with_overrides(s: TxScenario, overrides: dict[str, Any]) -> TxScenario:
    """A copy with dotted-path overrides, e.g. {"redispatch.price_cap": 60} or
    {"producers.2.strategy": "truthful"}; {"regions.0.overrides.prosumers.0.count": 80}
    adds (or changes) an override of region 0's own scenario."""
    data = s.dump_data(exclude_none=True)
    for dotted, value in overrides.items():
        region = REGION_OVERRIDE.match(dotted)
        if region and int(region[1]) < len(data.get("regions", [])):
            # a region's overrides are dotted paths of its own scenario: any may be added
            data["regions"][int(region[1])]["overrides"][region[2]] = value
            continue
        try:
            assign(data, dotted, value, new_keys=False)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ScenarioError(f"override {dotted} = {value!r}: no such field") from None
    return parse_tx_scenario(data, f"{s.name} with overrides")

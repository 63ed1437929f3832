"""Schema of a transmission scenario (`kind: transmission`): a few nodes joined by lines, producers
and inelastic loads at the nodes, a zonal day-ahead market that ignores the lines, and the grid
operator's redispatch market that makes the day-ahead dispatch feasible.

It is a separate scenario kind from the distribution-grid `Scenario` because it shares none of
its sections (no calendar, prosumers or simbench grid); the CLI tells them apart by `kind`.
Errors are `ScenarioError`s whose lines name the field path and the value."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from environment.paths import assign
from environment.scenario import ScenarioError, _format

NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Name = Annotated[str, Field(min_length=1)]
TxStrategyParams = dict[str, float | str | list[float] | None]
KIND = "transmission"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Node(_Model):
    name: Name


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
    name: Name
    node: Name
    capacity_mw: Positive
    marginal_cost_eur_mwh: float
    strategy: str = "truthful"
    strategy_params: TxStrategyParams = {}


class Load(_Model):
    """Inelastic demand at a node: one value for every period or one per period (MW; a period
    is one hour, so MW and MWh per period are the same number)."""

    name: Name
    node: Name
    mw: NonNeg | list[NonNeg]


class DayAhead(_Model):
    price_floor: float = -500.0
    price_cap: float = 4000.0

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
    kind: Literal["transmission"]
    name: Name = "transmission"
    seed: Annotated[int, Field(ge=0)] = 0
    periods: Annotated[int, Field(ge=1, le=8784)] = 24
    episodes: Annotated[int, Field(ge=1)] = 1
    nodes: Annotated[list[Node], Field(min_length=1)]
    lines: list[Line] = []
    producers: Annotated[list[TxProducer], Field(min_length=1)]
    loads: Annotated[list[Load], Field(min_length=1)]
    day_ahead: DayAhead = DayAhead()
    redispatch: Redispatch = Redispatch()

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def load_mw(self) -> np.ndarray:
        """(periods, nodes) inelastic demand."""
        out = np.zeros((self.periods, len(self.nodes)))
        idx = {n: i for i, n in enumerate(self.node_names)}
        for ld in self.loads:
            out[:, idx[ld.node]] += np.broadcast_to(np.asarray(ld.mw, float), self.periods)
        return out

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
        if not problems:
            problems += self._physics()
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def _physics(self) -> list[str]:
        from environment.transmission.network import Network

        problems = []
        try:
            Network.from_scenario(self)
        except ValueError as exc:
            problems.append(f"lines = <{len(self.lines)} lines>: {exc}")
        capacity = sum(p.capacity_mw for p in self.producers)
        peak = float(self.load_mw().sum(1).max())
        if peak > capacity:
            problems.append(f"loads = peak {peak:g} MW: more than the producers' capacity "
                            f"{capacity:g} MW, the day-ahead market cannot clear")
        return problems


def parse_tx_scenario(data: Any, source: str = "<dict>") -> TxScenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"invalid scenario {source}: top level must be a mapping, "
                            f"got {type(data).__name__}")
    try:
        return TxScenario.model_validate(data)
    except ValidationError as exc:
        raise _format(exc, source) from None


def load_tx_scenario(path: str | Path) -> TxScenario:
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"invalid scenario {path}: not valid YAML: {exc}") from None
    return parse_tx_scenario(data, str(path))


def is_transmission(path: str | Path) -> bool:
    """Whether a scenario file is of the transmission kind (so the CLI runs it with this
    model rather than the distribution-grid one)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and data.get("kind") == KIND


def tx_with_overrides(s: TxScenario, overrides: dict[str, Any]) -> TxScenario:
    """A copy with dotted-path overrides, e.g. {"redispatch.price_cap": 60} or
    {"producers.2.strategy": "truthful"}."""
    data = s.model_dump(mode="json", by_alias=True)
    for dotted, value in overrides.items():
        try:
            assign(data, dotted, value, new_keys=False)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ScenarioError(f"override {dotted} = {value!r}: no such field") from None
    return parse_tx_scenario(data, f"{s.name} with overrides")

"""Twin runs: a scenario and its counterfactual with the same seed in which the chosen producers
bid truthfully. The differences are what the strategies did: their gaming profit, what it cost
the grid operator and the consumers, and the welfare it destroyed."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from environment.errors import ScenarioError
from environment.transmission.model import TransmissionModel
from environment.transmission.scenario import TxScenario, tx_with_overrides


@dataclass
class TwinReport:
    """All amounts EUR over the whole run, scenario minus truthful twin.

    `gaming_profit` of each producer made truthful in the twin (the strategic ones: what
    their strategy earned them); `other_producers` the profit change of everyone else (their
    profits move too, but it is not their gaming); `by_class` the change of each ledger class's
    net income, `grid_operator_extra_cost` the change of the redispatch bill,
    `consumer_bill_change` what consumers pay more (day-ahead plus network charge),
    `welfare_lost` the extra fuel burnt (loads are inelastic, so welfare is minus the fuel
    cost)."""

    truthful: list[str]
    gaming_profit: pd.Series
    other_producers: pd.Series
    by_class: pd.Series
    grid_operator_extra_cost: float
    consumer_bill_change: float
    welfare_lost: float
    run: TransmissionModel
    twin: TransmissionModel

    def as_dict(self) -> dict:
        return {"truthful_in_twin": self.truthful,
                "gaming_profit_eur": {k: float(v) for k, v in self.gaming_profit.items()},
                "other_producers_profit_change_eur": {k: float(v) for k, v in
                                                      self.other_producers.items()},
                "by_class_eur": {k: float(v) for k, v in self.by_class.items()},
                "grid_operator_extra_cost_eur": self.grid_operator_extra_cost,
                "consumer_bill_change_eur": self.consumer_bill_change,
                "welfare_lost_eur": self.welfare_lost}


def strategic_producers(scenario: TxScenario) -> list[str]:
    return [p.name for p in scenario.producers if p.strategy != "truthful"]


def run_twin(scenario: TxScenario, truthful: list[str] | None = None,
             seed: int | None = None) -> TwinReport:
    """Run `scenario` and its twin in which the producers named in `truthful` (default: all
    that are not truthful already) bid at cost; both with the same seed."""
    if truthful is None:
        truthful = strategic_producers(scenario)
    names = [p.name for p in scenario.producers]
    unknown = sorted(set(truthful) - set(names))
    if unknown:
        raise ScenarioError(f"twin: {', '.join(unknown)}: no producer of that name in "
                            f"scenario {scenario.name}; producers: {', '.join(names)}")
    changes = {}
    for i, name in enumerate(names):
        if name in truthful:
            changes[f"producers.{i}.strategy"] = "truthful"
            changes[f"producers.{i}.strategy_params"] = {}
    twin_scenario = tx_with_overrides(scenario, changes) if changes else scenario
    run = TransmissionModel(scenario, seed).run()
    twin = TransmissionModel(twin_scenario, seed).run()
    bal_run, bal_twin = run.profits(), twin.profits()
    delta = bal_run - bal_twin
    classes = run.ledger.account_classes()
    producers = delta[classes == "producer"]
    gaming = producers[producers.index.isin(truthful)].reindex(truthful)
    others = producers[~producers.index.isin(truthful)]
    by_class = delta.groupby(classes).sum()
    a, b = run.totals(), twin.totals()
    return TwinReport(list(truthful), gaming, others, by_class,
                      a["redispatch_cost_eur"] - b["redispatch_cost_eur"],
                      -float(by_class.get("consumer", 0.0)), a["fuel_eur"] - b["fuel_eur"],
                      run, twin)

"""Twin runs: a scenario and its counterfactual with the same seed in which the chosen producers
bid truthfully. The differences are what the strategies did: their gaming profit, what it cost
the grid operator and the consumers, and the welfare it destroyed."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from environment.transmission.model import TransmissionModel
from environment.transmission.scenario import TxScenario, tx_with_overrides


@dataclass
class TwinReport:
    """All amounts EUR over the whole run, scenario minus truthful twin.

    `gaming_profit` per producer (the made-truthful ones and everyone else, whose profits move
    too), `by_class` the change of each ledger class's net income, `grid_operator_extra_cost`
    the change of the redispatch bill, `consumer_bill_change` what consumers pay more (day-ahead
    plus network charge), `welfare_lost` the extra fuel burnt (loads are inelastic, so welfare
    is minus the fuel cost)."""

    truthful: list[str]
    gaming_profit: pd.Series
    by_class: pd.Series
    grid_operator_extra_cost: float
    consumer_bill_change: float
    welfare_lost: float
    run: TransmissionModel
    twin: TransmissionModel

    def as_dict(self) -> dict:
        return {"truthful_in_twin": self.truthful,
                "gaming_profit_eur": {k: float(v) for k, v in self.gaming_profit.items()},
                "by_class_eur": {k: float(v) for k, v in self.by_class.items()},
                "grid_operator_extra_cost_eur": self.grid_operator_extra_cost,
                "consumer_bill_change_eur": self.consumer_bill_change,
                "welfare_lost_eur": self.welfare_lost}


def run_twin(scenario: TxScenario, truthful: list[str] | None = None,
             seed: int | None = None) -> TwinReport:
    """Run `scenario` and its twin in which the producers named in `truthful` (default: all
    that are not truthful already) bid at cost; both with the same seed."""
    if truthful is None:
        truthful = [p.name for p in scenario.producers if p.strategy != "truthful"]
    names = [p.name for p in scenario.producers]
    unknown = sorted(set(truthful) - set(names))
    if unknown:
        raise ValueError(f"run_twin: unknown producers {unknown}; known: {names}")
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
    by_class = delta.groupby(classes).sum()
    rd_run = sum(r["redispatch_cost_eur"] for r in run.rows.periods)
    rd_twin = sum(r["redispatch_cost_eur"] for r in twin.rows.periods)
    fuel_run = sum(r["fuel_eur"] for r in run.rows.periods)
    fuel_twin = sum(r["fuel_eur"] for r in twin.rows.periods)
    return TwinReport(list(truthful), producers, by_class, rd_run - rd_twin,
                      -float(by_class.get("consumer", 0.0)), fuel_run - fuel_twin, run, twin)

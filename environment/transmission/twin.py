"""Twin runs: a scenario and its counterfactual with the same seed in which the chosen producers
bid truthfully. The differences are what the strategies did; they are computed from the two
models in experiments/twin_statistics.py (`transmission_twin_summary`): the strategic producers'
gaming profit, what it cost the grid operator and the consumers, and the welfare it destroyed."""

from __future__ import annotations

from dataclasses import dataclass

from environment.errors import ScenarioError
from environment.transmission.model import TransmissionModel
from environment.transmission.scenario import TxScenario, tx_with_overrides
from environment.transmission.zonal_model import transmission_model


@dataclass
class TwinPair:
    """The run and its twin, both run; `truthful` names the producers made truthful."""

    truthful: list[str]
    run: TransmissionModel
    twin: TransmissionModel


def strategic_producers(scenario: TxScenario) -> list[str]:
    return [p.name for p in scenario.producers if p.strategy != "truthful"]


def truthful_twin(scenario: TxScenario, truthful: list[str]) -> TxScenario:
    """The scenario with the producers named in `truthful` bidding at cost (no parameters)."""
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
    return tx_with_overrides(scenario, changes) if changes else scenario


def run_pair(scenario: TxScenario, truthful: list[str] | None = None,
             seed: int | None = None) -> TwinPair:
    """Run `scenario` and its twin in which the producers named in `truthful` (default: all
    that are not truthful already) bid at cost; both with the same seed."""
    if truthful is None:
        truthful = strategic_producers(scenario)
    twin_scenario = truthful_twin(scenario, truthful)
    return TwinPair(list(truthful), transmission_model(scenario, seed).run(),
                    transmission_model(twin_scenario, seed).run())

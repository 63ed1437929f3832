"""Twin runs: a strategic run against its truthful counterfactual with the same seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_model import check_payments

from experiments.cli import main
from experiments.statistics import CLASSES
from experiments.twin import run_twin, strategic_agents, truthful_twin

INCDEC = {"aggregators.0.strategy": "incdec"}


@pytest.fixture(scope="module")
def incdec_twin():
    return run_twin("default", days=4, overrides=INCDEC)


def test_all_truthful_twin_has_no_gaming_profit():
    rep = run_twin("default", ["flexco"], days=1)
    game, fair = rep.runs
    assert rep.same_realisations
    assert rep.gaming_profit_eur == {"flexco": 0.0}
    assert (rep.by_agent["change"] == 0.0).all()
    assert game.ledger.equals(fair.ledger)
    assert rep.welfare["change"] == 0.0


def test_twin_sees_the_same_realisations(incdec_twin):
    game, fair = incdec_twin.runs
    assert game.scenario.aggregators[0].strategy == "incdec"
    assert fair.scenario.aggregators[0].strategy == "truthful"
    assert fair.scenario.aggregators[0].strategy_params == {}
    sg, sf = game.tables["series"], fair.tables["series"]
    np.testing.assert_array_equal(sg["system_load_mw"], sf["system_load_mw"])
    green = (game.tables["grid"].groupby("mtu")["light"].max() < 2).to_numpy() \
        & (fair.tables["grid"].groupby("mtu")["light"].max() < 2).to_numpy()
    for col in ("prosumer_load_mw", "pv_mw"):
        np.testing.assert_array_equal(sg[col][green], sf[col][green])
    assert not sg["da_price"].equals(sf["da_price"])  # the strategy did change the markets


def test_gaming_profit_is_the_agents_profit_difference(incdec_twin):
    game, fair = incdec_twin.runs
    diff = game.model.ledger.balances()["flexco"] - fair.model.ledger.balances()["flexco"]
    assert incdec_twin.gaming_profit_eur["flexco"] == pytest.approx(diff, abs=1e-6)
    assert incdec_twin.gaming_profit_eur["flexco"] > 0
    lfm = incdec_twin.by_agent
    dso_lfm = lfm[(lfm["account"] == "dso") & lfm["market"].str.startswith("lfm_")]["change"]
    assert dso_lfm.sum() < 0  # the DSO pays for the congestion it was sold


def test_transfers_and_welfare_are_consistent(incdec_twin):
    """Profit changes of all classes and the outside world sum to zero (transfers); the
    welfare change is the classes' profit change plus the change of valued energy less the
    change of the violation cost."""
    rep = incdec_twin
    change = rep.by_class["change"]
    assert change.sum() == pytest.approx(0.0, abs=1e-6)
    w = rep.welfare
    inside = change.reindex(CLASSES, fill_value=0.0).sum()
    assert w["change"] == pytest.approx(inside + w["valued_energy_change"]
                                        - w["violation_cost_change"], abs=1e-6)
    assert w["change"] == pytest.approx(-change.get("external", 0.0)
                                        + w["valued_energy_change"]
                                        - w["violation_cost_change"], abs=1e-6)
    assert abs(rep.identity_residual_eur) < 1e-6
    for run in rep.runs:
        check_payments(run)


def test_price_cap_cuts_the_gaming_profit(incdec_twin):
    capped = run_twin("default", days=4, overrides={**INCDEC, "markets.lfm.price_cap": 100.0})
    assert capped.gaming_profit_eur["flexco"] < incdec_twin.gaming_profit_eur["flexco"]


def test_default_twin_agents_and_unknown_names(default_scenario):
    from environment.scenario import ScenarioError, with_overrides

    s = with_overrides(default_scenario, INCDEC)
    assert strategic_agents(s) == ["flexco"]
    assert strategic_agents(default_scenario) == []
    with pytest.raises(ScenarioError, match="nobody"):
        truthful_twin(s, ["nobody"])


def test_cli_twin_writes_a_report(tmp_path, capsys):
    out = tmp_path / "twin"
    assert main(["twin", "--days", "1", "--set", "aggregators.0.strategy=markup",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gaming profit flexco" in text and "welfare" in text
    summary = json.loads((out / "twin.json").read_text())
    assert summary["agents"] == ["flexco"] and summary["same_realisations"]
    assert (out / "profit_by_agent_market.csv").is_file()
    assert (out / "profit_by_class.csv").is_file()


def test_cli_twin_help(capsys):
    with pytest.raises(SystemExit):
        main(["twin", "--help"])
    assert "--agents" in capsys.readouterr().out

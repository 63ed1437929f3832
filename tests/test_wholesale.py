"""Transmission scenarios from the user's side: a wholesale-only case cleared in one call with no
LP and no twin, own demand and price series, the tie rule, `twin` on every shipped case,
`--days`/`--episodes`, exact signed figures, and the inc_dec alias."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import environment.markets.dayahead as dayahead
import environment.solver
from environment.markets.orders import OrderBook
from environment.scenario_files import shipped_scenarios
from environment.transmission.model import TransmissionModel
from environment.transmission.network import clear_zonal
from environment.transmission.scenario import load_tx_scenario, parse_tx_scenario
from experiments.cli import main
from experiments.headline import num, signed
from experiments.statistics import transmission_summary

ZONE = {
    "kind": "transmission", "name": "zone", "periods": 48, "nodes": [{"name": "z"}],
    "producers": [{"name": f"u{i}", "node": "z", "capacity_mw": 100.0,
                   "marginal_cost_eur_mwh": 10.0 * (i + 1)} for i in range(6)],
    "loads": [{"name": "d", "node": "z",
               "mw": [150 + 200 * abs(np.sin(t / 7)) for t in range(48)]}],
}


def test_wholesale_only_clears_all_periods_in_one_call_without_lp(monkeypatch):
    calls = []
    real = dayahead.clear_uniform_price

    def counting(book, n_mtu, *a, **k):
        calls.append(n_mtu)
        return real(book, n_mtu, *a, **k)

    def no_lp(*a, **k):
        raise AssertionError("an LP was solved in a model without lines")

    monkeypatch.setattr("environment.transmission.network.clear_uniform_price", counting)
    monkeypatch.setattr(environment.solver, "solve_lp", no_lp)
    m = TransmissionModel(parse_tx_scenario(copy.deepcopy(ZONE))).run()
    assert calls == [48, 48]               # the truthful forecast and the auction
    prices = m.period_table()["da_price_eur_mwh"].to_numpy()
    load = np.array(ZONE["loads"][0]["mw"])
    for t in (0, 17, 47):                  # the same as clearing each hour on its own
        p, _ = clear_zonal(np.arange(6), 10.0 * np.arange(1, 7), np.full(6, 100.0), load[t],
                           -500, 4000, "marginal_offer")
        assert prices[t] == p
    s = transmission_summary(m, m.tables())
    assert s["system_cost_eur"] == pytest.approx(s["planner_system_cost_eur"], abs=1e-6)
    assert s["cost_efficiency"] == pytest.approx(1.0)
    assert abs(s["ledger"]["sum_eur"]) < 1e-6


def test_no_twin_without_strategic_producers(tmp_path, capsys):
    path = tmp_path / "zone.yaml"
    path.write_text(json.dumps(ZONE))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "no strategic producer: no truthful twin" in out and "no lines" in out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["twin"] is None


def test_shipped_wholesale_week_reads_demand_and_an_import_price(tmp_path):
    s = load_tx_scenario(shipped_scenarios()["wholesale_week"])
    assert s.periods == 168 and str(s.start) == "2024-03-24 23:00:00"
    cost = s.marginal_cost()
    imp = [p.name for p in s.producers].index("import")
    assert cost[:, imp].std() > 5 and (np.delete(cost, imp, axis=1).std(0) == 0).all()
    m = TransmissionModel(s).run()
    table = m.period_table()
    assert table["timestamp"].iloc[0].isoformat() == "2024-03-24T23:00:00"
    assert (table["load_mw"].to_numpy() == s.load_mw().sum(1)).all()


@pytest.mark.parametrize("rule", ["midpoint", "marginal_offer"])
def test_tie_price_rule(rule):
    """Demand of 10 MW meets the supply curve exactly at the end of the 20 EUR step: every
    price in [20, 40] clears; midpoint pays 30, marginal_offer the accepted offer's 20."""
    book = OrderBook.from_arrays(owner=[0, 1, -1], mtu=[0, 0, 0], price=[20.0, 40.0, 4000.0],
                                 volume=[-10.0, -10.0, 10.0], n_mtu=1)
    c = dayahead.clear_uniform_price(book, 1, -500, 4000, tie_price=rule)
    assert c.price[0] == {"midpoint": 30.0, "marginal_offer": 20.0}[rule]
    assert c.volume[0] == 10.0


def test_the_scenario_tie_rule_reaches_both_kinds(default_scenario):
    from environment.markets.ties import with_tie_price

    assert default_scenario.markets.dayahead.tie_price == "marginal_offer"
    bound = with_tie_price(dayahead.clear_uniform_price, "midpoint")
    book = OrderBook.from_arrays(owner=[0, 1, -1], mtu=[0, 0, 0], price=[20.0, 40.0, 4000.0],
                                 volume=[-10.0, -10.0, 10.0], n_mtu=1)
    assert bound(book, 1, -500, 4000).price[0] == 30.0
    tied = copy.deepcopy(ZONE)
    tied["periods"], tied["loads"][0]["mw"] = 1, 200.0
    for rule, price in (("midpoint", 25.0), ("marginal_offer", 20.0)):
        tied["day_ahead"] = {"tie_price": rule}
        m = TransmissionModel(parse_tx_scenario(tied)).run()
        assert m.period_table()["da_price_eur_mwh"].iloc[0] == price


@pytest.mark.parametrize("name", ["two_node_incdec", "two_node_competitive"])
def test_twin_works_on_every_shipped_transmission_case(name, tmp_path, capsys):
    args = ["twin", name, "--out", str(tmp_path / "t")]
    if name == "two_node_competitive":
        args += ["--set", "episodes=3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "gaming profit of" in out and "Traceback" not in out
    report = json.loads((tmp_path / "t" / "twin.json").read_text())
    strategic = {p.name for p in load_tx_scenario(shipped_scenarios()[name]).producers
                 if p.strategy != "truthful"}
    assert set(report["gaming_profit_eur"]) == strategic
    assert not strategic & set(report["other_producers_profit_change_eur"])


def test_gaming_profit_counts_strategic_producers_only(tmp_path, capsys):
    assert main(["run", "two_node_incdec", "--out", str(tmp_path / "r"), "-q"]) == 0
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    gaming = s["twin"]["gaming_profit_eur"]
    assert set(gaming) == {"north_gas", "south_ccgt"}
    for name, eur in gaming.items():
        assert f"gaming profit of {name}: {signed(eur)} EUR" in out
    assert f"consumers' bill: {signed(s['twin']['consumer_bill_change_eur'])} EUR" in out
    assert "+-" not in out


def test_days_are_24_periods_and_episodes_are_their_own_option(tmp_path):
    out = tmp_path / "d"
    assert main(["run", "two_node_incdec", "--days", "2", "--set", "loads.1.mw=2000",
                 "--episodes", "2", "--out", str(out), "-q"]) == 0
    run = json.loads((out / "summary.json").read_text())["run"]
    assert (run["periods"], run["episodes"]) == (48, 2)
    assert run["id"].startswith("two_node_incdec-seed1-48hx2-")


def test_episodes_are_refused_for_the_distribution_kind(capsys):
    assert main(["run", "--episodes", "3"]) == 2
    assert "only transmission scenarios have episodes" in capsys.readouterr().err


def test_inc_dec_is_an_alias_for_every_role():
    from agents.strategies import known

    for role in ("aggregator", "tx_producer"):
        assert {"incdec", "inc_dec"} <= set(known(role))
    d = load_tx_scenario(shipped_scenarios()["two_node_incdec"]).model_dump(by_alias=True)
    d["producers"][2]["strategy"] = "inc_dec"
    parse_tx_scenario(d)


@pytest.mark.parametrize(("x", "text"), [(4.5, "4.5"), (85.5, "85.5"), (-1.7e-14, "0"),
                                         (1234.567, "1,234.57"), (250000.4, "250,000"),
                                         (-5.0, "-5")])
def test_numbers_are_printed_exactly(x, text):
    assert num(x) == text
    assert signed(5) == "+5" and signed(-5) == "-5" and signed(0.0) == "0"

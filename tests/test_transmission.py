"""Transmission model: the two-node inc-dec case worked by hand, price caps, the day-ahead merit
order and redispatch against independent computations, validation, ledger and determinism."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from environment.scenario import ScenarioError
from environment.solver import solve_lp
from environment.transmission.model import TransmissionModel
from environment.transmission.network import Network, clear_zonal, nodal_lp
from environment.transmission.scenario import parse_tx_scenario
from environment.transmission.twin import run_pair
from experiments.run import scenario_path
from experiments.statistics import transmission_summary
from experiments.twin_statistics import transmission_twin_summary

# Node A exports: cheap a_base (20), a_mid (40) and a_gamer (60); node B imports, with b_peak
# (50). Loads A 50, B 100 MW; line A->B 40 MW.
HAND = {
    "kind": "transmission", "name": "hand", "periods": 1, "episodes": 1,
    "nodes": [{"name": "A"}, {"name": "B"}],
    "lines": [{"name": "AB", "from": "A", "to": "B", "limit_mw": 40}],
    "producers": [
        {"name": "a_base", "node": "A", "capacity_mw": 100, "marginal_cost_eur_mwh": 20},
        {"name": "a_mid", "node": "A", "capacity_mw": 100, "marginal_cost_eur_mwh": 40},
        {"name": "a_gamer", "node": "A", "capacity_mw": 30, "marginal_cost_eur_mwh": 60,
         "strategy": "incdec", "strategy_params": {"variant": "anticipating", "markup": 5}},
        {"name": "b_peak", "node": "B", "capacity_mw": 150, "marginal_cost_eur_mwh": 50},
    ],
    "loads": [{"name": "load_A", "node": "A", "mw": 50},
              {"name": "load_B", "node": "B", "mw": 100}],
}


def hand(**changes):
    d = copy.deepcopy(HAND)
    for path, value in changes.items():
        node = d
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[leaf] = value
    return parse_tx_scenario(d)


def twin(scenario) -> dict:
    """The scenario against its truthful twin: the figures summary.json holds under `twin`, and
    the two models under `pair`."""
    pair = run_pair(scenario)
    return {**transmission_twin_summary(pair.run, pair.twin, pair.truthful), "pair": pair}


def producer_rows(model):
    return model.tables()["producers"].set_index("producer")


def test_truthful_hand_case():
    """Merit order A 20 (100 MW), A 40, B 50, A 60 against 150 MW: a_mid is marginal, DA price
    40, A produces 150 MW for a 50 MW load, so 100 MW would flow on a 40 MW line. The grid
    operator decs 60 MW in A, highest dec price first (a_mid 50 MW at 40, a_base 10 at 20) and
    incs b_peak 60 MW at 50: 3000 - 2000 - 200 = 800 EUR, recovered from consumers, whose bill
    is 150 x 40 + 800 = 6800 EUR. The final dispatch (a_base 90, b_peak 60) is the planner's."""
    m = TransmissionModel(hand(**{"producers.2.strategy": "truthful",
                                  "producers.2.strategy_params": {}})).run()
    period = m.tables()["periods"].iloc[0]
    assert period["da_price_eur_mwh"] == pytest.approx(40, abs=1e-6)
    assert period["flow_da_AB_mw"] == pytest.approx(100, abs=1e-6)
    rows = producer_rows(m)
    np.testing.assert_allclose(rows["da_mw"], [100, 50, 0, 0], atol=1e-6)
    np.testing.assert_allclose(rows["dec_mw"], [10, 50, 0, 0], atol=1e-6)
    np.testing.assert_allclose(rows["inc_mw"], [0, 0, 0, 60], atol=1e-6)
    np.testing.assert_allclose(rows["final_mw"], [90, 0, 0, 60], atol=1e-6)
    assert period["redispatch_cost_eur"] == pytest.approx(800, abs=1e-6)
    bal = m.profits()
    assert bal["load_A"] + bal["load_B"] == pytest.approx(-6800, abs=1e-6)
    assert bal["a_base"] == pytest.approx(100 * 40 - 10 * 20 - 90 * 20, abs=1e-6)
    assert bal["grid_operator"] == pytest.approx(0, abs=1e-6)
    assert abs(bal.sum()) < 1e-6
    assert transmission_summary(m, m.tables())["welfare_loss_vs_planner_eur"] == \
        pytest.approx(0, abs=1e-6)


def test_incdec_hand_case_pay_as_bid():
    """a_gamer (cost 60, never dispatched when truthful) expects node A's nodal price 20 below
    the zonal 40, so it offers at the floor: it sells 30 MW at 40 (a_mid falls to 20 MW, the
    price stays 40), and bids dec at 20 + 5 = 25. The operator's decs: a_mid 20 at 40, a_gamer
    30 at 25, a_base 10 at 20; inc b_peak 60 at 50: 3000 - 800 - 750 - 200 = 1250 EUR.
    a_gamer earns 30 x (40 - 25) = 450 without producing; the operator pays 450 more and passes
    it to consumers; the final dispatch is unchanged, so no welfare is lost."""
    r = twin(hand())
    assert r["truthful_in_twin"] == ["a_gamer"]
    assert r["gaming_profit_eur"]["a_gamer"] == pytest.approx(450, abs=1e-6)
    rivals = r["other_producers_profit_change_eur"]
    assert max(map(abs, rivals.values())) < 1e-6  # rivals lose and gain nothing
    assert r["grid_operator_extra_cost_eur"] == pytest.approx(450, abs=1e-6)
    assert r["consumer_bill_change_eur"] == pytest.approx(450, abs=1e-6)
    assert r["welfare_lost_eur"] == pytest.approx(0, abs=1e-6)
    rows = producer_rows(r["pair"].run)
    np.testing.assert_allclose(rows["da_mw"], [100, 20, 30, 0], atol=1e-6)
    np.testing.assert_allclose(rows["dec_mw"], [10, 20, 30, 0], atol=1e-6)
    assert rows.loc["a_gamer", "dec_price_eur_mwh"] == pytest.approx(25)
    assert r["pair"].run.tables()["periods"]["redispatch_cost_eur"].iloc[0] == pytest.approx(1250)
    for m in (r["pair"].run, r["pair"].twin):
        assert abs(m.profits().sum()) < 1e-6


def test_price_taking_incdec_under_pay_as_clear_takes_rent_from_rivals():
    """Competitive inc-dec: a_gamer offers at A's expected nodal price 20 and bids dec at cost.
    Under pay-as-clear every dec pays A's nodal price 20 (a_base is marginal), so a_gamer earns
    30 x (40 - 20) = 600, all of it out of a_mid's windfall (a_mid sells 30 MW less at 40 and
    buys back 30 MW less at 20): the operator's bill and consumers do not change."""
    r = twin(hand(**{"producers.2.strategy_params": {"variant": "price_taking"},
                         "redispatch.pricing": "pay_as_clear"}))
    assert r["gaming_profit_eur"]["a_gamer"] == pytest.approx(600, abs=1e-6)
    assert r["other_producers_profit_change_eur"]["a_mid"] == pytest.approx(-600, abs=1e-6)
    assert r["grid_operator_extra_cost_eur"] == pytest.approx(0, abs=1e-6)
    assert r["consumer_bill_change_eur"] == pytest.approx(0, abs=1e-6)
    period = r["pair"].run.tables()["periods"].iloc[0]
    assert period["redispatch_price_A_eur_mwh"] == pytest.approx(20, abs=1e-6)
    assert period["redispatch_price_B_eur_mwh"] == pytest.approx(50, abs=1e-6)
    # under pay-as-bid the same bids lose: it buys back at its cost 60 what it sold at 40
    r_pab = twin(hand(**{"producers.2.strategy_params": {"variant": "price_taking"}}))
    assert r_pab["gaming_profit_eur"]["a_gamer"] == pytest.approx(-600, abs=1e-6)


@pytest.mark.parametrize("regime", [{"redispatch.dec_price_floor": 40.0},
                                    {"redispatch.mechanism": "cost_based"}])
def test_dec_floor_or_cost_based_redispatch_removes_the_gaming_profit(regime):
    """With dec bids below the DA price 40 refused (or all redispatch at cost), a_gamer's dec
    bid 25 is replaced by its cost 60: it is dec'd first and pays 1800 for 1200 of day-ahead
    sales, -600 EUR against 0 in the twin."""
    without = twin(hand())
    capped = twin(hand(**regime))
    assert without["gaming_profit_eur"]["a_gamer"] > 0
    assert capped["gaming_profit_eur"]["a_gamer"] == pytest.approx(-600, abs=1e-6)
    assert capped["gaming_profit_eur"]["a_gamer"] <= 0


PIVOT = {
    "kind": "transmission", "name": "pivot", "periods": 1, "episodes": 1,
    "nodes": [{"name": "A"}, {"name": "B"}],
    "lines": [{"name": "AB", "from": "A", "to": "B", "limit_mw": 40}],
    "producers": [
        {"name": "a_base", "node": "A", "capacity_mw": 200, "marginal_cost_eur_mwh": 20},
        {"name": "b_pivot", "node": "B", "capacity_mw": 150, "marginal_cost_eur_mwh": 50,
         "strategy": "markup", "strategy_params": {"markup": 30}},
    ],
    "loads": [{"name": "load_A", "node": "A", "mw": 50},
              {"name": "load_B", "node": "B", "mw": 100}],
}


@pytest.mark.parametrize("pricing", ["pay_as_bid", "pay_as_clear"])
def test_inc_price_cap_below_the_gaming_price_removes_the_rent(pricing):
    """b_pivot is the only inc in B: DA price 20 (a_base), 150 - 50 = 100 MW on a 40 MW line, so
    60 MW inc at its bid 80 = 50 + 30: 1800 EUR of rent, which consumers pay. A cap of 60 below
    the bid makes it redispatched at cost: no rent."""
    d = copy.deepcopy(PIVOT)
    d["redispatch"] = {"pricing": pricing}
    free = twin(parse_tx_scenario(d))
    assert free["gaming_profit_eur"]["b_pivot"] == pytest.approx(1800, abs=1e-6)
    assert free["consumer_bill_change_eur"] == pytest.approx(1800, abs=1e-6)
    d["redispatch"]["price_cap"] = 60.0
    capped = twin(parse_tx_scenario(d))
    assert capped["gaming_profit_eur"]["b_pivot"] == pytest.approx(0, abs=1e-6)
    assert capped["grid_operator_extra_cost_eur"] == pytest.approx(0, abs=1e-6)


def _merit_lp(price, mw, load):
    res = solve_lp(price, a_eq=np.ones((1, len(price))), b_eq=[load],
                   bounds=list(zip(np.zeros(len(mw)), mw, strict=True)))
    return float(price @ res.x)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 200), st.floats(1, 100)), min_size=1, max_size=8),
       st.floats(0.05, 0.95))
def test_zonal_merit_order_matches_an_lp(steps, share):
    price = np.array([p for p, _ in steps], float)
    mw = np.array([q for _, q in steps])
    load = share * mw.sum()
    p_da, acc = clear_zonal(np.arange(len(mw)), price, mw, load, -500, 4000)
    assert acc.sum() == pytest.approx(load, abs=1e-6)
    assert float(price @ acc) == pytest.approx(_merit_lp(price, mw, load), abs=1e-6)
    assert (acc[price < p_da - 1e-9] == pytest.approx(mw[price < p_da - 1e-9]))
    assert np.all(acc[price > p_da + 1e-9] == 0)


def _brute_two_node(incs, decs, excess):
    """Closed form for two nodes with A exporting `excess` MW too much: dec in A from the
    highest dec price down, inc in B from the cheapest up."""
    dec = sorted(decs, key=lambda x: -x[0])
    inc = sorted(incs, key=lambda x: x[0])
    cost, need = 0.0, excess
    for price, room in inc:
        take = min(room, need)
        cost += price * take
        need -= take
    need = excess
    for price, room in dec:
        take = min(room, need)
        cost -= price * take
        need -= take
    return cost


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 60)), min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 100), st.integers(1, 60)), min_size=1, max_size=4),
       st.floats(1, 30))
def test_two_node_redispatch_matches_the_closed_form(decs, incs, excess):
    """Inc bids at least dec bids + 100 never profit from extra round trips, so the LP must
    match the closed-form merit orders of decs in A and incs in B."""
    dec_room = sum(r for _, r in decs)
    inc_room = sum(r for _, r in incs)
    excess = min(excess, dec_room, inc_room)
    net = Network(("A", "B"), ("AB",), np.array([40.0]), np.array([[0.0, -1.0]]))
    n_d, n_i = len(decs), len(incs)
    cost = np.array([-p for p, _ in decs] + [p + 100 for p, _ in incs], float)
    upper = np.array([r for _, r in decs] + [r for _, r in incs], float)
    node = np.array([0] * n_d + [1] * n_i)
    sign = np.array([-1.0] * n_d + [1.0] * n_i)
    injection = np.array([40 + excess, -(40 + excess)])
    lp = nodal_lp(net, cost, upper, node, sign, injection, "test")
    expect = _brute_two_node([(p + 100, r) for p, r in incs], decs, excess)
    assert lp.cost == pytest.approx(expect, abs=1e-6)


THREE = {
    "kind": "transmission", "name": "mesh", "periods": 1,
    "nodes": [{"name": "n1"}, {"name": "n2"}, {"name": "n3"}],
    "lines": [{"name": "l12", "from": "n1", "to": "n2", "limit_mw": 60, "reactance": 1.0},
              {"name": "l23", "from": "n2", "to": "n3", "limit_mw": 200, "reactance": 2.0},
              {"name": "l13", "from": "n1", "to": "n3", "limit_mw": 200, "reactance": 1.0}],
    "producers": [
        {"name": "g1", "node": "n1", "capacity_mw": 300, "marginal_cost_eur_mwh": 10},
        {"name": "g2", "node": "n2", "capacity_mw": 300, "marginal_cost_eur_mwh": 40},
        {"name": "g3", "node": "n3", "capacity_mw": 300, "marginal_cost_eur_mwh": 25}],
    "loads": [{"name": "d2", "node": "n2", "mw": 150}, {"name": "d3", "node": "n3", "mw": 100}],
}


def _pyomo_dispatch(s, load):
    """The cost-based nodal dispatch as a B-theta DC OPF in Pyomo: angles instead of PTDFs."""
    import pyomo.environ as pyo
    from pyomo.contrib.solver.common.factory import SolverFactory

    nodes = s.node_names
    m = pyo.ConcreteModel()
    m.g = pyo.Var(range(len(s.producers)), bounds=lambda _m, i: (0, s.producers[i].capacity_mw))
    m.th = pyo.Var(nodes)
    m.th[nodes[0]].fix(0)

    def flow(ln):
        return (m.th[ln.from_] - m.th[ln.to]) / ln.reactance

    m.lim = pyo.ConstraintList()
    for ln in s.lines:
        m.lim.add(pyo.inequality(-ln.limit_mw, flow(ln), ln.limit_mw))
    for k, n in enumerate(nodes):
        gen = sum(m.g[i] for i, p in enumerate(s.producers) if p.node == n)
        out = sum(flow(ln) for ln in s.lines if ln.from_ == n) \
            - sum(flow(ln) for ln in s.lines if ln.to == n)
        m.lim.add(gen - load[k] == out)
    m.obj = pyo.Objective(expr=sum(p.marginal_cost_eur_mwh * m.g[i]
                                   for i, p in enumerate(s.producers)))
    SolverFactory("highs").solve(m)
    return pyo.value(m.obj)


def test_meshed_redispatch_matches_pyomo_and_nodal_prices_are_marginal_costs():
    """Three meshed nodes with a tight line: the redispatched (truthful) dispatch costs what a
    B-theta OPF in Pyomo says, and each nodal price is the finite-difference cost of 1 MW more
    load at the node."""
    s = parse_tx_scenario(THREE)
    m = TransmissionModel(s).run()
    rows = producer_rows(m)
    fuel = float(rows["final_mw"] @ m.cost[0])
    load = s.load_mw()[0]
    assert fuel == pytest.approx(_pyomo_dispatch(s, load), abs=1e-6)
    assert abs(m.tables()["periods"]["flow_da_l12_mw"].iloc[0]) > 60  # DA overloads l12
    _, prices, base = m.forecast[0]
    for k in range(3):
        bumped = load.copy()
        bumped[k] += 1e-3
        assert (_pyomo_dispatch(s, bumped) - base) / 1e-3 == pytest.approx(prices[k], abs=1e-4)


@pytest.mark.parametrize(("path", "value", "message"), [
    ("lines.0.to", "C", "lines[0].to = 'C': unknown node"),
    ("producers.0.node", "Z", "producers[0].node = 'Z': unknown node"),
    ("producers.0.strategy", "bogus", "producers[0].strategy = 'bogus': unknown"),
    ("producers.0.capacity_mw", -5, "producers[0].capacity_mw = -5"),
    ("loads.0.mw", [1.0, 2.0], "loads[0].mw = <2 values>"),
    ("redispatch.pricing", "vickrey", "redispatch.pricing = 'vickrey'"),
    ("producers.2.strategy_params", {"variant": "psychic"},
     "producers[2].strategy_params = {'variant': 'psychic'}: variant 'psychic'"),
    ("lines.0.colour", "red", "lines[0].colour = 'red': Extra inputs are not permitted"),
    ("loads.1.mw", 1000, "loads = peak 1050 MW: more than the producers' capacity"),
])
def test_bad_scenarios_name_the_field_and_value(path, value, message):
    with pytest.raises(ScenarioError) as err:
        hand(**{path: value})
    assert message in str(err.value)


def test_unconnected_nodes_are_refused():
    d = copy.deepcopy(THREE)
    d["lines"] = d["lines"][:1]
    with pytest.raises(ScenarioError, match="do not connect all nodes"):
        parse_tx_scenario(d)


def test_shipped_scenario_balances_and_repeats(tmp_path):
    """The shipped inc-dec day through the CLI: energy balances every period (the model checks),
    the ledger sums to zero, and the same seed gives the same numbers to the bit."""
    from experiments.cli import main

    assert main(["run", "two_node_incdec", "--out", str(tmp_path / "a"), "-q"]) == 0
    assert main(["run", str(scenario_path("two_node_incdec")), "--out", str(tmp_path / "b"),
                 "-q"]) == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    del a["timing"], b["timing"]
    assert a == b
    assert abs(a["ledger"]["sum_eur"]) < 1e-6
    assert a["twin"]["gaming_profit_eur"]["north_gas"] > 0
    assert a["twin"]["gaming_profit_eur"]["south_ccgt"] > 0
    assert (tmp_path / "a" / "ledger.parquet").is_file()

"""Measures a regulator can trust: one price per accepted bid within its market's cap, the DSO's
cost reconciled with what it pays, violations priced once, availability payments, states of
charge that follow the power actually delivered, nothing truncated silently, parameters that
act or are rejected, and the efficiency gap split by cause."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from test_lfm import DT, offers

from agents.strategies import make_strategy
from environment.markets.lfm import GridLimits, clear_lfm
from environment.scenario import ScenarioError, load_scenario, with_overrides
from environment.truncation import TruncationWarning
from experiments.efficiency import decompose
from experiments.run import run_scenario, scenario_path

SHIPPED = ["default", "coupling_conflict", "ample_flex", "short_flex"]
SCHEMES = ["centralized", "local", "shared_balancing", "common"]


def series_chain(base_mw: float, limits) -> GridLimits:
    """Branches in series (branch l feeds every bus from l + 1 on) all carrying `base_mw`;
    one location whose activation moves every branch by one MW per MW."""
    n = len(limits)
    flow = np.ones((1, 1, 2, n))
    return GridLimits(base_p=np.full((1, n), base_mw), base_q=np.zeros((1, n)),
                      base_w=np.ones((1, n + 1)), s_max=np.asarray(limits, float),
                      v_min=np.full(n + 1, 0.5), v_max=np.full(n + 1, 1.5), flow_per_mw=flow,
                      w_per_mw=np.zeros((1, 1, 2, n + 1)), branch_location=np.zeros(n, int),
                      bus_location=np.zeros(n + 1, int))


def test_a_violation_in_series_is_priced_once_in_the_lfm():
    """Two branches in series, both carrying 1.5 MW against limits of 1.0: shedding 0.5 MW at
    the feeder end restores both, so leaving the violation costs 0.5 MW x 1,000 EUR/MWh x
    0.25 h = 125 EUR, not twice that. An offer at 1,500 EUR/MWh (dearer than that relief,
    cheaper than two rows of it) is not bought; one at 900 is bought for exactly 0.5 MW."""
    lim = series_chain(1.5, [1.0, 1.0])
    dear = clear_lfm(offers([0], [1.0], [1500.0]), lim, DT, unresolved_cost=1000.0)
    assert dear.accepted_mw[0] == 0.0
    assert dear.unresolved_mw == pytest.approx(0.5, abs=1e-9)
    cheap = clear_lfm(offers([0], [1.0], [900.0]), lim, DT, unresolved_cost=1000.0)
    assert cheap.accepted_mw[0] == pytest.approx(0.5, abs=1e-9)
    assert cheap.unresolved_mw == pytest.approx(0.0, abs=1e-9)


def test_pay_as_clear_is_the_location_value_never_above_the_cap():
    """The same chain, an offer of 0.3 MW at 900: the last 0.2 MW of relief is shed at 1,000,
    so one more MW at the location is worth 1,000 EUR/MWh: the offer is paid that under
    pay-as-clear (not 2,000, the two rows' duals summed row by row would say so only if each
    row had its own slack). With a cap of 950 the offer is paid 950, and an offer above the
    cap is not bought at all."""
    lim = series_chain(1.5, [1.0, 1.0])
    res = clear_lfm(offers([0], [0.3], [900.0]), lim, DT, "pay_as_clear",
                    unresolved_cost=1000.0)
    assert res.accepted_mw[0] == pytest.approx(0.3)
    assert res.location_price[0, 0, 0] == pytest.approx(1000.0)
    assert res.paid_price[0] == pytest.approx(1000.0)
    capped = clear_lfm(offers([0, 0], [0.3, 0.3], [900.0, 960.0]), lim, DT, "pay_as_clear",
                       price_cap=950.0, unresolved_cost=1000.0)
    np.testing.assert_allclose(capped.accepted_mw, [0.3, 0.0], atol=1e-9)
    assert capped.paid_price[0] == pytest.approx(950.0)
    assert (capped.location_price <= 950.0 + 1e-9).all()


@pytest.fixture(scope="module")
def scheme_runs():
    """The counteracting designed case without coupling (violations reach real time) under
    every TSO-DSO scheme, 1 day. Before bids were capped and priced at one location's value,
    `common` paid a real-time DSO purchase 39,566 EUR/MWh here (the sum of several grid
    rows' slack duals) and `local` 4,020 (a bid above the 4,000 cap). Under `central`
    compensation, where the independent aggregator owes nothing net and bids its activation
    cost (DA price +- it in real time; tests/test_compensation.py)."""
    return {s: run_scenario("coupling_conflict", days=1,
                            overrides={"markets.tso_dso_scheme": s,
                                       "markets.coupling": "no_coupling",
                                       "settlement.compensation": "central"},
                            planner=False, write=False, figures=False) for s in SCHEMES}


FLEX_MARKETS = ("lfm_da", "lfm_id", "lfm_realtime", "balancing_der")


def _assert_within_caps(run) -> None:
    caps = run.scenario.markets
    led = run.ledger
    flex = led[led["market"].isin(FLEX_MARKETS)]
    assert (flex["price_eur_mwh"] <= caps.flex_price_cap + 1e-9).all(), \
        flex.loc[flex["price_eur_mwh"] > caps.flex_price_cap, ["market", "price_eur_mwh"]]
    energy = led[led["market"].isin(("dayahead", "intraday"))]
    assert (energy["price_eur_mwh"] <= caps.dayahead.price_cap + 1e-9).all()


def test_no_bid_is_paid_above_its_markets_cap_under_any_scheme(scheme_runs):
    for run in scheme_runs.values():
        _assert_within_caps(run)
    # the DSO bought in real time under the schemes that let it, so the check is not vacuous
    paid = {s: r.summary["flexibility"]["dso_cost"]["lfm_realtime_eur"]
            for s, r in scheme_runs.items()}
    assert paid["centralized"] == 0.0 and max(paid.values()) > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_no_bid_is_paid_above_its_markets_cap_in_shipped_scenarios(name):
    run = run_scenario(name, days=1, overrides={"prosumers.0.count": 60} if name == "default"
                       else None, planner=False, write=False, figures=False)
    _assert_within_caps(run)


def test_a_cap_below_the_asks_buys_nothing_above_it():
    """With an LFM cap of 15 EUR/MWh, below the aggregator's 20 EUR/MWh activation ask in the
    LFM, the DSO buys nothing there; in real time it pays no DER bid above 15 either (a
    downward bid asks the activation cost less the DA price, which can fall below it). Under
    `central` compensation, where its asks are its activation cost (under a flat price it adds
    the shift's energy value, which can take an ask below the cap)."""
    run = run_scenario("coupling_conflict", days=1,
                       overrides={"markets.lfm.price_cap": 15.0, "markets.coupling": "no_coupling",
                                  "markets.tso_dso_scheme": "common",
                                  "settlement.compensation": "central"},
                       planner=False, write=False, figures=False)
    led = run.ledger
    bought = led[led["market"].isin(FLEX_MARKETS[:3]) & (led["payer"] == "dso")]
    assert (bought["price_eur_mwh"] <= 15.0 + 1e-9).all()
    assert not bought["market"].isin(["lfm_da", "lfm_id"]).any()
    # the LFM's cap is the DSO's: the platform, where suppliers pay the energy price plus
    # the same asks, still trades (0.052 MWh; it once withheld every offer above the cap)
    platform = led[(led["market"] == "platform") & (led["payer"] == "flex_platform")]
    assert platform["mwh"].abs().sum() > 0.03


def test_dso_cost_is_every_euro_the_dso_pays_for_flexibility(scheme_runs):
    """The summary's DSO cost against the ledger: every euro the DSO pays, in any market but
    the settlement of its own imbalance (the energy its real-time actions moved), is a
    flexibility cost, real time included."""
    for run in scheme_runs.values():
        led = run.ledger
        paid = led[(led["payer"] == "dso") & (led["market"] != "imbalance")]
        cost = run.summary["flexibility"]["dso_cost"]
        assert math.isclose(cost["total_eur"], float(paid["eur"].sum()), abs_tol=1e-9)
    assert max(r.summary["flexibility"]["dso_cost"]["lfm_realtime_eur"]
               for r in scheme_runs.values()) > 0


def test_grid_violations_are_load_to_shed_not_summed_overloads():
    """short_flex without coupling or emergency actions leaves violations in real time: the
    summary's load to shed equals the grid table's per-location figures and the series'
    per-MTU figures, and is what the system cost charges at the value of lost load."""
    run = run_scenario("short_flex", days=2, overrides={"markets.coupling": "no_coupling",
                                                        "dso.emergency_actions": False},
                       planner=False, write=False, figures=False)
    s, dt = run.summary, 0.25
    grid, series = run.tables["grid"], run.tables["series"]
    assert s["load_to_shed_mwh"] > 0
    assert math.isclose(s["load_to_shed_mwh"], grid["load_to_shed_mw"].sum() * dt, rel_tol=1e-9)
    assert math.isclose(s["load_to_shed_mwh"], series["load_to_shed_mw"].sum() * dt,
                        rel_tol=1e-9)
    assert math.isclose(s["grid_violation_cost_eur"],
                        s["load_to_shed_mwh"] * run.scenario.value_of_load_eur_mwh,
                        rel_tol=1e-12)


def test_availability_payment_is_per_mw_and_hour_and_cleared_in_the_objective():
    """Conditional products: at D-1 the DSO reserves availability and pays the fee per MW and
    hour (no activation is paid at D-1), then activates in the intraday LFM; an availability
    fee above the cost of leaving the violation (5,000 EUR/MWh) buys no availability, since
    the LFM weighs each offer at its ask plus the fee."""
    fee = 30.0
    run = run_scenario("coupling_conflict", days=1,
                       overrides={"markets.lfm.reservation_eur_mw_h": fee},
                       planner=False, write=False, figures=False)
    led, flex = run.ledger, run.tables["flex"]
    avail = flex[flex["stage"] == "da_availability"]
    reserved_mwh = (avail["dso_up_mw"] + avail["dso_down_mw"]).sum() * 0.25
    assert reserved_mwh > 0
    rows = led[led["market"] == "lfm_reservation"]
    assert math.isclose(rows["eur"].sum(), fee * reserved_mwh, rel_tol=1e-9)
    assert (rows["price_eur_mwh"] == fee).all()
    assert led[led["market"] == "lfm_da"]["eur"].sum() == 0.0
    assert led[led["market"] == "lfm_id"]["eur"].sum() > 0
    dear = run_scenario("coupling_conflict", days=1,
                        overrides={"markets.lfm.reservation_eur_mw_h": 6000.0},
                        planner=False, write=False, figures=False)
    assert dear.ledger[dear.ledger["market"] == "lfm_reservation"]["eur"].sum() == 0.0


def test_states_of_charge_follow_the_delivered_power_through_a_disconnection(monkeypatch):
    """A feeder disconnected in real time (BLACK: every device at the location off) zeroes
    part of the batteries' planned power. The state of charge each battery ends the day with
    is its start plus the energy of the power it actually delivered (charging times the
    efficiency, discharging over it), recomputed here from the recorded trajectory, and never
    leaves [0, capacity]: no phantom energy."""
    import environment.model as model_module
    from environment import records

    seen = {}
    record = records.record_day

    def spy(model, ctx):
        seen[ctx.day] = (model.fleet.soc.copy(), ctx.realtime.real["battery"].copy())
        return record(model, ctx)

    monkeypatch.setattr(records, "record_day", spy)
    starts = {}
    step = model_module.FlexMarketModel.step

    def step_spy(self):
        starts[self.day] = self.fleet.soc.copy()
        return step(self)

    monkeypatch.setattr(model_module.FlexMarketModel, "step", step_spy)
    run = run_scenario("default", days=1, overrides={
        "dso.black_loading": 1.01, "prosumers.0.count": 1000, "calendar.start": "2016-01-06"},
        planner=False, write=False, figures=False)
    assert (run.tables["grid"]["light"] == 3).any(), "no disconnection: the test proves nothing"
    f = run.model.fleet
    soc0, (soc1, power) = starts[0], seen[0]
    b = f.batt_mwh > 0
    eta = f.eta[b][:, None]
    path = soc0[b][:, None] + np.cumsum(np.where(power[b] > 0, power[b] * eta,
                                                 power[b] / eta), axis=1) * 0.25
    assert (path >= -1e-9).all() and (path <= f.batt_mwh[b][:, None] + 1e-9).all()
    np.testing.assert_allclose(soc1[b], path[:, -1], atol=1e-12)
    assert "soc_clipped_mwh" not in run.summary["truncation"]


def test_a_round_limit_reached_is_counted_and_warned(monkeypatch):
    """The planner adds grid limits by constraint generation; cut at one round on a congested
    day it stops with limits violated: counted in summary.json and warned once per run."""
    import environment.planner as planner

    monkeypatch.setattr(planner, "MAX_ROUNDS", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = run_scenario("short_flex", days=2, planner=True, write=False, figures=False)
    assert run.summary["truncation"]["planner"] == 2
    hits = [w for w in caught if issubclass(w.category, TruncationWarning)
            and "planner" in str(w.message)]
    assert len(hits) == 1


@pytest.mark.parametrize("override, needle", [
    ({"tso.der_reserve_mw": 0.5}, "tso.der_reserve_mw = 0.5"),
    ({"tso.der_reserve_mw": 0.5, "markets.coupling": "sequential",
      "tso.capacity_price_eur_mw_h": 5.0}, None),
    ({"tso.der_reserve_mw": 0.5, "markets.coupling": "sequential",
      "tso.der_balancing": False}, "tso.der_reserve_mw = 0.5"),
    ({"tso.capacity_price_eur_mw_h": 5.0}, "tso.capacity_price_eur_mw_h = 5.0"),
    ({"dso.direct_control_eur_mwh": 80.0, "markets.coupling": "no_coupling"},
     "dso.direct_control_eur_mwh = 80.0"),
    ({"markets.lfm.reservation_eur_mw_h": 10.0, "markets.lfm.intraday": False},
     "reservation_eur_mw_h = 10.0"),
])
def test_parameters_that_cannot_act_are_rejected(override, needle):
    s = load_scenario(scenario_path("default"))
    if needle is None:
        with_overrides(s, override)
        return
    with pytest.raises(ScenarioError, match=needle.replace(".", r"\.")):
        with_overrides(s, override)


def test_anticipation_weighs_own_sales_against_the_published_map():
    """`anticipate` is a weight, not a switch: 0.5 expects half of what it sold and half of
    what was published; values outside [0, 1] are rejected."""
    from types import SimpleNamespace

    def expectation(a):
        strat = make_strategy("aggregator", "incdec", anticipate=a, memory=0.0)
        bought = np.zeros((2, 2))
        sold = np.zeros((2, 2, 2))
        sold[0, 0, 0] = 1.0                      # sold up-flexibility at (0, 0)
        strat._ctx = SimpleNamespace(dso_bought=bought, dso_sold={7: sold})
        strat._seen = np.array([[False, True], [False, False]])   # published at (0, 1)
        strat.end_of_day(SimpleNamespace(unique_id=7), None)
        return strat.expected

    np.testing.assert_allclose(expectation(0.5), [[0.5, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(expectation(1.0), [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(expectation(0.0), [[0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="anticipate = 1.5"):
        make_strategy("aggregator", "incdec", anticipate=1.5)


def test_withheld_flexibility_is_offered_in_no_market():
    """A markup aggregator withholding all of its flexibility where it has market power (a
    monopolist: share threshold 0) offers the TSO nothing either."""
    run = run_scenario("default", days=1, overrides={
        "prosumers.0.count": 60, "aggregators.0.strategy": "markup",
        "aggregators.0.strategy_params": {"withhold": 1.0, "share_threshold": 0.0}},
        planner=False, write=False, figures=False)
    s = run.summary["settlement"]
    assert s["der_balancing_up_mwh"] == 0.0 and s["der_balancing_down_mwh"] == 0.0
    truthful = run_scenario("default", days=1, overrides={"prosumers.0.count": 60},
                            planner=False, write=False, figures=False)
    t = truthful.summary["settlement"]
    assert t["der_balancing_up_mwh"] + t["der_balancing_down_mwh"] > 0


def test_efficiency_gap_is_split_by_cause():
    """With perfect forecasts and truthful agents already, the counterfactuals are the run
    itself: forecast error and strategies explain nothing, the market design all of the gap."""
    perfect = {"forecast.load_error_sd": 0.0, "forecast.pv_error_sd": 0.0,
               "forecast.wind_error_sd": 0.0, "forecast.idiosyncratic_sd": 0.0,
               "forecast.load_bias": 0.0, "prosumers.0.count": 60}
    d = decompose("default", days=1, overrides=perfect)
    parts = d.parts
    assert parts["forecast_error_eur"] == pytest.approx(0.0, abs=1e-9)
    assert parts["strategies_eur"] == 0.0
    assert parts["market_design_eur"] == pytest.approx(parts["total_gap_eur"], abs=1e-9)
    assert parts["total_gap_eur"] >= -1e-6
    d2 = decompose("default", days=1, overrides={"prosumers.0.count": 60})
    p2 = d2.parts
    assert sum(v for k, v in p2.items() if k != "total_gap_eur") == \
        pytest.approx(p2["total_gap_eur"], abs=1e-9)
    assert p2["forecast_error_eur"] != 0.0


def test_a_producers_withholding_holds_in_every_market():
    """The nuclear plant (0.3 MW at 12 EUR/MWh, below every other price, so every market wants
    all of it) withholds half of its capacity: it sells at most 0.15 MW x 0.25 h = 0.0375 MWh
    per MTU over the day-ahead and intraday markets, and the TSO activates no more than that
    either. Truthful, it sells all 0.075 MWh at most MTUs."""
    def nuclear(run):
        pos = run.tables["positions"]
        return pos[pos["party"] == "nuclear"]

    over = {"prosumers.0.count": 60, "producers.2.strategy": "markup",
            "producers.2.strategy_params": {"withhold": 0.5, "markup_eur_mwh": 0.0}}
    held = nuclear(run_scenario("default", days=1, overrides=over, planner=False,
                                write=False, figures=False))
    sold = -held["position_mwh"] + held["balancing_mwh"].clip(lower=0)
    assert sold.max() <= 0.0375 + 1e-9
    assert sold.max() == pytest.approx(0.0375)
    free = nuclear(run_scenario("default", days=1, overrides={"prosumers.0.count": 60},
                                planner=False, write=False, figures=False))
    assert (-free["position_mwh"] > 0.0375 + 1e-6).mean() > 0.5

"""`grid.background: simbench`: the grid data's loads, generators and storages that are no
household's enter every flow as their own profile times their rating, recomputed here from the
raw pandapower tables; the setting is refused where it cannot act or its energy would vanish."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from agents.dso import Dso
from environment import inputs
from environment.background import Background
from environment.calendar import Calendar
from environment.errors import ScenarioError
from environment.grid.from_pandapower import grid_from_pandapower, load_simbench_grid, simbench_net
from environment.grid.lindistflow import LinDistFlow
from environment.scenario import load_scenario, parse_scenario, with_overrides
from environment.scenario_files import find_scenario
from experiments import dictionary
from experiments.run import run_scenario

ROWS = 35136
JAN_11 = 10 * 96     # the first profile row of 2016-01-11
LV_GRID = "1-LV-semiurb5--2-sw"


def _street(background: bool = True) -> pp.pandapowerNet:
    """An MV/LV substation and three LV buses with profiles: bus A a household with its heat
    pump and PV; bus B a household with its PV-battery system and a workplace charger; bus C
    (no household) a shop, a 10 kWp PV and a PV-battery park; a wind park at the MV bus."""
    net = pp.create_empty_network()
    mv = pp.create_bus(net, 20.0, name="MV")
    lv = pp.create_bus(net, 0.4, name="LV busbar")
    a, b, c = (pp.create_bus(net, 0.4, name=n) for n in ("A", "B", "C"))
    pp.create_ext_grid(net, mv)
    pp.create_transformer(net, mv, lv, "0.63 MVA 20/0.4 kV")
    for bus in (a, b, c):
        pp.create_line(net, lv, bus, 0.1, "NAYY 4x150 SE")
    loads = [(a, 0.003, 0.001, "H0-A"), (a, 0.004, 0.0015, "Air_Parallel_1"),
             (b, 0.003, 0.001, "H0-B")]
    if background:
        loads += [(b, 0.011, 0.004, "APLS_A_11.0"), (c, 0.02, 0.008, "G1-A")]
    for bus, p, q, _ in loads:
        pp.create_load(net, bus, p, q)
    net.load["profile"] = [p for *_, p in loads]
    sgens = [(a, 0.006, "PV", "PV3")]
    if background:
        sgens += [(c, 0.010, "PV", "PV1"), (mv, 0.5, "Wind_MV", "WP4")]
    for bus, p, kind, _ in sgens:
        pp.create_sgen(net, bus, p, type=kind)
    net.sgen["profile"] = [p for *_, p in sgens]
    storages = [(b, -0.005, 0.010, "Storage_PV5_H0-B")]
    if background:
        storages.append((c, -0.004, 0.008, "Storage_PV1_G1-A"))
    for bus, p, e, _ in storages:
        pp.create_storage(net, bus, p, e, type="PV_Storage")
    net.storage["profile"] = [p for *_, p in storages]
    rng = np.random.default_rng(5)
    columns = {"load": [f"{p}_{s}" for *_, p in loads for s in ("pload", "qload")],
               "renewables": ["PV1", "PV3", "WP4"], "storage": [p for *_, p in storages]}
    net.profiles = {k: pd.DataFrame({c: rng.random(ROWS) for c in cols})
                    for k, cols in columns.items()}
    net.profiles["powerplants"] = pd.DataFrame(index=range(ROWS))
    return net


def test_the_background_is_what_no_household_owns_at_its_profile_times_rating():
    net = _street()
    grid = grid_from_pandapower(net, "street")
    bg = Background.of(net, grid)
    el = bg.elements
    assert sorted(zip(el.table, el.column, strict=True)) == [
        ("load", "APLS_A_11.0_pload"), ("load", "G1-A_pload"), ("sgen", "PV1"),
        ("sgen", "WP4"), ("storage", "Storage_PV1_G1-A")]
    assert bg.summary() == {"elements": 5, "load_mw": pytest.approx(0.031),
                            "generation_mw": pytest.approx(0.514)}
    p, q = bg.day(Calendar(dt.date(2016, 1, 11), 1, 15, 12), 0)
    rows = JAN_11 + np.arange(96)
    prof = net.profiles
    bus = {n: grid.pp_bus_map[i] for i, n in enumerate(net.bus.name)}
    expected = np.zeros((96, grid.n_bus))
    expected[:, bus["B"]] = 0.011 * prof["load"]["APLS_A_11.0_pload"].to_numpy()[rows]
    expected[:, bus["C"]] = (0.02 * prof["load"]["G1-A_pload"].to_numpy()[rows]
                             - 0.010 * prof["renewables"]["PV1"].to_numpy()[rows]
                             - 0.004 * prof["storage"]["Storage_PV1_G1-A"].to_numpy()[rows])
    expected[:, bus["MV"]] = -0.5 * prof["renewables"]["WP4"].to_numpy()[rows]
    np.testing.assert_allclose(p, expected, atol=1e-15)
    expected_q = np.zeros((96, grid.n_bus))
    expected_q[:, bus["B"]] = 0.004 * prof["load"]["APLS_A_11.0_qload"].to_numpy()[rows]
    expected_q[:, bus["C"]] = 0.008 * prof["load"]["G1-A_qload"].to_numpy()[rows]
    np.testing.assert_allclose(q, expected_q, atol=1e-15)
    # hourly MTUs: the mean of the hour's rows
    p_h, _ = bg.day(Calendar(dt.date(2016, 1, 11), 1, 60, 12), 0)
    np.testing.assert_allclose(p_h, expected.reshape(24, 4, -1).mean(1), atol=1e-15)


def test_a_bus_of_a_simbench_grid_carries_its_elements_profile_times_rating():
    """On the default LV grid: pandapower bus 108 has one element that is no household's, a
    24.6 kW G3-A load; its background at 2016-01-11 10:00 is read from the raw tables."""
    net, grid = simbench_net(LV_GRID), load_simbench_grid(LV_GRID)
    bg = Background.of(net, grid)
    shop = net.load[(net.load.bus == 108) & (net.load.profile == "G3-A")].iloc[0]
    p, q = bg.day(Calendar(dt.date(2016, 1, 11), 1, 15, 12), 0)
    b, t = grid.pp_bus_map[108], 40
    assert p[t, b] == pytest.approx(
        net.profiles["load"]["G3-A_pload"].iloc[JAN_11 + t] * shop.p_mw, rel=1e-12)
    assert q[t, b] == pytest.approx(
        net.profiles["load"]["G3-A_qload"].iloc[JAN_11 + t] * shop.q_mvar, rel=1e-12)
    assert p[t, b] > 0
    # the households' own elements are not in it: no H0 load, and no home charger, heat pump,
    # PV or PV-battery system at a household's bus
    profiles = bg.elements.column
    assert not profiles.str.startswith(("H0", "HLS_")).any()
    homes = {grid.pp_bus_map[b] for b in net.load.bus[net.load.profile.str.startswith("H0")]}
    assert not bg.elements.grid_bus[bg.elements.table == "sgen"].isin(homes).any()


def test_flows_with_background_add_its_lindistflow_response():
    net = _street()
    grid = grid_from_pandapower(net, "street")
    bp, bq = Background.of(net, grid).day(Calendar(dt.date(2016, 1, 11), 1, 15, 12), 0)
    flow = LinDistFlow(grid)
    rng = np.random.default_rng(2)
    p, q = rng.normal(0, 0.01, (96, grid.n_bus)), rng.normal(0, 0.003, (96, grid.n_bus))
    dso = SimpleNamespace(flow=flow, background=(bp, bq))
    both, alone = Dso.flows(dso, p, q), flow.solve(p, q)
    response, zero = flow.solve(bp, bq), flow.solve(0 * p, 0 * q)
    np.testing.assert_allclose(both.p_mw, alone.p_mw + response.p_mw, atol=1e-15)
    np.testing.assert_allclose(both.q_mvar, alone.q_mvar + response.q_mvar, atol=1e-15)
    np.testing.assert_allclose(both.v_pu ** 2 - alone.v_pu ** 2,
                               response.v_pu ** 2 - zero.v_pu ** 2, atol=1e-12)
    assert np.abs(response.p_mw).max() > 1e-3
    dso.background = None      # and without one, the flows of the households alone
    np.testing.assert_array_equal(Dso.flows(dso, p, q).p_mw, alone.p_mw)


def _lv_region(background: str, count: int = 92) -> dict:
    """`region`'s markets on the default LV grid: one hourly day, its 92 households."""
    return {"grid.simbench_code": LV_GRID, "grid.locations": "feeders",
            "prosumers.0.count": count, "calendar.mtu_minutes": 60,
            "grid.background": background}


def test_a_run_carries_the_background_in_its_flows_and_tables():
    runs = {b: run_scenario("region", days=1, overrides=_lv_region(b), planner=True,
                            write=False, figures=False) for b in ("none", "simbench")}
    r = runs["simbench"]
    bg = r.model.background
    p, q = bg.day(r.model.calendar, 0)
    series = r.tables["series"]
    np.testing.assert_allclose(series["background_mw"], p.sum(1))
    assert "background_mw" not in runs["none"].tables["series"]
    run = r.summary["run"]["background"]
    assert run["elements"] == 26 and run["mwh"] == pytest.approx(p.sum())
    assert "background" not in runs["none"].summary["run"]
    # the DSO's assessment of no household consumption is the background's own flows
    dso = r.model.dso
    zero = np.zeros_like(p)
    res, _ = dso.assess(zero, zero)
    np.testing.assert_allclose(res.p_mw, dso.flow.solve(p, q).p_mw)
    # the same households, weather and markets: only the grid's flows differ
    a, b = (runs[k].tables["series"] for k in ("none", "simbench"))
    np.testing.assert_array_equal(a["prosumer_load_mw"], b["prosumer_load_mw"])
    assert not np.allclose(a["max_loading"], b["max_loading"])
    assert dictionary.undocumented(r.summary, r.tables) == []
    # the planner's grid rows carry it too, its energy balance does not (the national load's)
    assert r.model.planner_days[0].converged
    assert "planner_system_cost_eur" in r.summary


def test_background_is_refused_where_its_energy_would_vanish(default_data):
    default_data["grid"]["background"] = "simbench"
    with pytest.raises(ScenarioError, match=r"grid\.background = 'simbench': its energy is "
                                            r"the national load's.*not 'closed'"):
        parse_scenario(default_data)


def test_background_is_refused_on_a_grid_without_any(monkeypatch):
    net = _street(background=False)
    empty = Background.of(net, grid_from_pandapower(net, "street"))
    assert empty.elements.empty and empty.p_coef.shape[0] == 0
    monkeypatch.setattr(inputs, "cached", lambda key, build: empty)
    s = with_overrides(load_scenario(find_scenario("region")), {"grid.background": "simbench"})
    with pytest.raises(ScenarioError, match=r"grid\.background = 'simbench': the grid "
                                            r"1-MVLV-semiurb-all-2-sw has no load, sgen or "
                                            "storage outside its households"):
        inputs.load_background(s)


def test_the_planner_holds_the_background_in_its_grid_rows_not_its_energy_balance():
    """test_planner's hand case (a 1 MW / 2 MWh battery at bus 1 behind a 2.5 MW branch, 10
    and 50 EUR/MWh producers over two one-hour MTUs) with 1.5 MW of household load and
    0.5 MW of background at bus 1. The branch sees both: charging stops at 0.5 MW and
    discharging buys back 0.405 MW, as with 2 MW of households. The producers serve the
    households alone: fuel 2 x 10 + 1.095 x 50 = 74.75, wear 0.905. Without the background the
    1 MW charge fits the branch: fuel 2.5 x 10 + 0.69 x 50 = 59.5, wear 1.81."""
    from environment.planner import PlannerDay, solve_day

    grid = SimpleNamespace(downstream=np.array([[0.0, 1.0]]), r_pu=np.array([0.01]),
                           x_pu=np.array([0.01]), v0_pu=np.ones(2), s_max_mva=np.array([2.5]),
                           n_bus=2, n_branch=1)
    base = dict(
        dt_h=1.0, fixed_bus_mw=np.array([[0.0, 1.5], [0.0, 1.5]]), pv_bus_mw=np.zeros((2, 2)),
        q_bus_mvar=np.zeros((2, 2)), system_load_mw=np.zeros(2),
        gen_cost=np.array([10.0, 50.0]), gen_avail_mw=np.array([[5.0, 0.0], [10.0, 10.0]]),
        battery={1: (2.0, 1.0, 1.0, 0.9)}, degradation={1: 1.0}, ev={}, hp={},
        emergency_up_price=3000.0, emergency_down_price=-100.0, value_of_load=1000.0)
    band = np.full(2, 0.5), np.full(2, 1.5)
    out = {}
    for key, bg in (("none", None), ("simbench", np.array([[0.0, 0.5], [0.0, 0.5]]))):
        out[key] = solve_day(PlannerDay(**base, background_bus_mw=bg), LinDistFlow(grid),
                             *band, 1.0, True)
    assert (out["simbench"].fuel, out["simbench"].wear) == pytest.approx((74.75, 0.905))
    assert out["simbench"].grid_constraints == 1 and out["simbench"].unserved_cost == 0.0
    assert (out["none"].fuel, out["none"].wear) == pytest.approx((59.5, 1.81))
    assert out["none"].grid_constraints == 0


def test_background_is_refused_where_households_would_be_in_no_flow():
    """The background leaves every H0 load and home device to the prosumers: 40 members on a
    grid of 92 household connection points would drop 52 households from every flow."""
    from environment.model import FlexMarketModel
    from experiments.plan import resolve

    s = resolve("region", days=1, overrides=_lv_region("simbench", 40))
    with pytest.raises(ScenarioError, match=r"prosumers\[0\]\.count = 40: under "
                                            r"grid\.background 'simbench'.*grid "
                                            r"1-LV-semiurb5--2-sw \(92\).*52 households"):
        FlexMarketModel(s)

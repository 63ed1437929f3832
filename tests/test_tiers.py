"""Distribution regions under transmission nodes (issue 20, item 1): a region's day-ahead bids
in the coupled market, its price and position back, its real-time deviation in its zone's
imbalance, worked by hand on a tiny region; the shipped `ngm` scenario's tiers, the same to
the bit for a seed; bad regions stopped with the field and the value.

The tiny region: 5 households of 876 MWh a year on a flat load series (0.1 MW each, 0.5 MW
together; no PV, battery, EV, heat pump or aggregator), quiet forecasts but a load bias of
-0.2, so that its suppliers buy 0.4 MW day-ahead and it takes 0.5 MW in real time: a
deviation of +0.1 MW in every MTU. No LFM, intraday or platform, no RED actions."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from environment.errors import ScenarioError
from environment.tiers.model import TierModel
from environment.transmission.scenario import parse_tx_scenario
from environment.transmission.zonal_model import transmission_model
from experiments import dictionary
from experiments.headline import run_lines
from experiments.run import run_scenario
from experiments.statistics import distribution_summary

TINY = """
extends: default
name: tiny
data:
  flat: {file: flat.csv, column: kw, unit: kW}
prosumers:
  - name: households
    count: 5
    annual_mwh_mean: 876
    annual_mwh_sd: 0
    load_profiles: [flat]
    pv: {share: 0}
    battery: {share: 0}
    ev: {share: 0}
    heat_pump: {share: 0}
aggregators: []
forecast: {load_error_sd: 0, pv_error_sd: 0, wind_error_sd: 0, idiosyncratic_sd: 0,
           load_bias: -0.2}
dso: {emergency_actions: false}
markets:
  lfm: {enabled: false}
  intraday: {enabled: false}
  platform: {enabled: false}
"""

# Zone A: a_cheap 4 MW at 20, load 1 MW. Zone B: b_gas 1 MW at 50, b_peak 2 MW at 90, load
# 1.8 MW, and the tiny region under node b. Interconnector A -> B, NTC 2 MW. One day.
TWO = {
    "kind": "transmission", "name": "tiers", "start": "2016-01-11T00:00", "periods": 24,
    "zones": [{"name": "A", "tso": "tso_a"}, {"name": "B", "tso": "tso_b"}],
    "nodes": [{"name": "a", "zone": "A"}, {"name": "b", "zone": "B"}],
    "interconnectors": [{"name": "ab", "from": "A", "to": "B", "limit_mw": 2.0}],
    "producers": [
        {"name": "a_cheap", "node": "a", "capacity_mw": 4, "marginal_cost_eur_mwh": 20},
        {"name": "b_gas", "node": "b", "capacity_mw": 1, "marginal_cost_eur_mwh": 50},
        {"name": "b_peak", "node": "b", "capacity_mw": 2, "marginal_cost_eur_mwh": 90}],
    "loads": [{"name": "load_a", "node": "a", "mw": 1.0},
              {"name": "load_b", "node": "b", "mw": 1.8}],
    "balancing": {"sharing": "none"},
}


@pytest.fixture
def tiny(tmp_path) -> str:
    t = pd.date_range("2016-01-10", periods=72, freq="h")
    pd.DataFrame({"time": t, "kw": 1.0}).to_csv(tmp_path / "flat.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(TINY)
    return str(tmp_path / "tiny.yaml")


def with_region(path: str, **changes) -> dict:
    d = copy.deepcopy(TWO)
    d["regions"] = [{"name": "town", "node": "b", "scenario": path}]
    for key, value in changes.items():
        node = d
        *parents, leaf = key.split(".")
        for k in parents:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[leaf] = value
    return d


def run(d) -> tuple[TierModel, dict]:
    m = TierModel(parse_tx_scenario(d)).run()
    return m, m.tables()


def paid(ledger: pd.DataFrame, market: str, payer: str | None = None,
         payee: str | None = None) -> float:
    rows = ledger[ledger["market"] == market]
    if payer is not None:
        rows = rows[rows["payer"] == payer]
    if payee is not None:
        rows = rows[rows["payee"] == payee]
    return float(rows["eur"].sum())


def test_without_the_region_the_interconnector_has_room_and_one_price():
    """The reference: B's 1.8 MW all come from a_cheap over the 2 MW NTC: one price, 20."""
    d = copy.deepcopy(TWO)
    m = transmission_model(parse_tx_scenario(d)).run()
    z, ic = m.tables()["zones"], m.tables()["interconnectors"]
    assert z["da_price_eur_mwh"].unique().tolist() == [20]
    assert ic["flow_da_mw"].to_numpy() == pytest.approx(np.full(24, 1.8))


def test_the_region_s_bids_raise_zone_b_s_import_and_price_and_it_pays_b_s_price(tiny):
    """The region bids 0.4 MW (its suppliers' forecast, 0.1 MWh a quarter-hour, as hourly
    steps of 0.1 MW each: 4 x 0.1 = 0.4 MW) at node b: B needs 1.8 + 0.4 = 2.2 MW, the
    interconnector binds at 2 MW (import +0.2 MW against the 1.8 without it) and B's last
    0.2 MW come from b_gas: B's price 20 -> 50, A's stays 20; rent (50 - 20) x 2 = 60 EUR an
    hour. The region's auction clears at B's price: its suppliers pay 0.1 MWh x 50 = 5 EUR a
    quarter-hour, 0.4 x 24 x 50 = 480 EUR a day, and its account at the node pays the same
    to the coupled market's exchange."""
    m, t = run(with_region(tiny))
    z = t["zones"].set_index(["period", "zone"])
    assert z.xs("A", level="zone")["da_price_eur_mwh"].unique().tolist() == [20]
    assert z.xs("B", level="zone")["da_price_eur_mwh"].unique().tolist() == [50]
    assert z.xs("B", level="zone")["load_mw"].to_numpy() == pytest.approx(np.full(24, 2.2))
    ic = t["interconnectors"]
    assert ic["flow_da_mw"].to_numpy() == pytest.approx(np.full(24, 2.0))
    assert ic["congestion_rent_eur"].to_numpy() == pytest.approx(np.full(24, 60.0))
    r = t["regions"]
    assert len(r) == 96 and (r["zone"] == "B").all()
    assert r["da_price_eur_mwh"].unique().tolist() == [50]
    assert r["da_import_mw"].to_numpy() == pytest.approx(np.full(96, 0.4))
    series = m.regions[0].tables()["series"]
    assert series["da_price"].unique().tolist() == [50]
    led = t["ledger"]
    bought = led[(led["market"] == "dayahead") & (led["payee"] == "town/da_exchange")]
    assert bought["eur"].sum() == pytest.approx(480.0)
    assert bought["price_eur_mwh"].unique().tolist() == [50]
    assert paid(led, "day_ahead", "town/transmission", "exchange") == pytest.approx(480.0)
    assert paid(led, "dayahead", "town/da_exchange", "town/transmission") == \
        pytest.approx(480.0)


def test_the_region_s_deviation_is_zone_b_s_imbalance_balanced_at_the_derived_cost(tiny):
    """Real time: the households take 0.5 MW, 0.1 MW above the day-ahead 0.4 in each MTU;
    the region's TSO agent covers it from the grid above (its up offer: B's price + the 15
    EUR/MWh markup = 65), so the region takes 0.5 MW and its deviation, +0.1 MW, is zone B's
    whole imbalance (the zones' own forecast errors are off). B's TSO balances it alone with
    b_gas's headroom (1 - 0.2 = 0.8 MW at 50): 0.1 x 50 = 5 EUR an hour, 120 EUR a day, and
    charges it to B's real load, 1.8 + 0.5 = 2.3 MW: the region's share 5 x 0.5 / 2.3 an
    hour. Inside the region its suppliers pay 0.1 x 0.25 x 96 = 2.4 MWh x 65 = 156 EUR of
    imbalance."""
    m, t = run(with_region(tiny))
    r = t["regions"]
    assert r["real_import_mw"].to_numpy() == pytest.approx(np.full(96, 0.5))
    assert r["deviation_mw"].to_numpy() == pytest.approx(np.full(96, 0.1))
    z = t["zones"].set_index("zone")
    assert z.loc["B", "imbalance_mw"].to_numpy() == pytest.approx(np.full(24, 0.1))
    assert z.loc["A", "imbalance_mw"].to_numpy() == pytest.approx(np.zeros(24))
    assert z.loc["B", "balancing_shared_eur"].sum() == pytest.approx(120.0)
    led = t["ledger"]
    assert paid(led, "balancing_up", "tso_b", "b_gas") == pytest.approx(120.0)
    assert paid(led, "balancing_charge", "town/transmission", "tso_b") == \
        pytest.approx(24 * 5 * 0.5 / 2.3)
    assert paid(led, "imbalance", payee="town/tso") == pytest.approx(156.0)
    s = run_scenario(parse_tx_scenario(with_region(tiny)), write=False, figures=False).summary
    assert s["national"]["zones"]["B"]["regions_deviation_abs_mwh"] == pytest.approx(2.4)
    assert s["local"]["town"]["deviation_abs_mwh"] == pytest.approx(2.4)
    assert s["local"]["town"]["da_import_mwh"] == pytest.approx(9.6)
    assert s["national"]["zones"]["B"]["balancing_cost_eur"] == pytest.approx(120.0)


def test_with_room_on_the_interconnector_a_shares_its_cheap_reserve(tiny):
    """NTC 2.5 MW: B's 2.2 MW all come from A (one price, 20), leaving 0.3 MW of headroom.
    Under the common merit order A's TSO covers B's 0.1 MW with a_cheap at 20: 2 EUR an
    hour instead of b_gas's 5, a value of sharing of 3 EUR an hour, 72 a day."""
    m, t = run(with_region(tiny, **{"interconnectors.0.limit_mw": 2.5,
                                    "balancing.sharing": "common_merit_order"}))
    z = t["zones"]
    assert z["da_price_eur_mwh"].unique().tolist() == [20]
    assert t["regions"]["da_price_eur_mwh"].unique().tolist() == [20]
    assert z["balancing_alone_eur"].sum() == pytest.approx(120.0)
    assert z["balancing_shared_eur"].sum() == pytest.approx(48.0)
    assert t["interconnectors"]["balancing_flow_mw"].to_numpy() == pytest.approx(np.full(24,
                                                                                         0.1))


@pytest.fixture(scope="module")
def ngm():
    return run_scenario("ngm", days=1, write=False, figures=False)


def test_ngm_has_a_block_per_tier_documented_and_a_headline_per_tier(ngm):
    s = ngm.summary
    assert set(s["local"]) == {"west_lv", "east_lv"}
    assert {v["dso"] for v in s["local"].values()} == {"west_lv/dso", "east_lv/dso"}
    assert set(s["national"]["zones"]) == {"west", "east"}
    assert s["regional"]["sharing"] == "common_merit_order"
    assert dictionary.undocumented(s, ngm.tables) == []
    text = "\n".join(run_lines(s))
    assert "national:" in text and "local:" in text and "west_lv/dso" in text
    # the local block is each region's own summary, read, not re-derived
    for m in ngm.model.regions:
        t = m.tables()
        t["ledger"] = m.ledger.frame()
        own = distribution_summary(m, t)
        v = s["local"][m.config.name]
        assert v["dso_cost_eur"] == own["flexibility"]["dso_cost"]["total_eur"]
        assert v["congestion"]["yellow"] == own["congestion"]["yellow"]
        assert v["imbalance_abs_mwh"] == own["imbalance"]["system_abs_mwh"]
    led = ngm.tables["ledger"]
    # the markets pass money on: the coupled market's exchange and each region's day-ahead
    # exchange end the run at zero
    bal = (led.groupby("payee", observed=True)["eur"].sum()
           .sub(led.groupby("payer", observed=True)["eur"].sum(), fill_value=0.0))
    for account in ("exchange", "west_lv/da_exchange", "east_lv/da_exchange"):
        assert abs(bal[account]) < 1e-6, account


def test_ngm_is_the_same_to_the_bit_for_a_seed(ngm):
    again = run_scenario("ngm", days=1, write=False, figures=False)
    assert set(again.tables) == set(ngm.tables)
    for name, df in ngm.tables.items():
        pd.testing.assert_frame_equal(again.tables[name], df, check_exact=True, obj=name)


@pytest.mark.parametrize(("change", "says"), [
    ({"regions.0.node": "nowhere"}, "regions[0].node = 'nowhere': unknown node"),
    ({"regions.0.scenario": "two_zone_sharing"},
     "regions[0].scenario = 'two_zone_sharing': a transmission scenario"),
    ({"regions.0.overrides": {"calendar.days": 3}},
     "regions[0].overrides.calendar.days = 3: the transmission run sets calendar.days (the "
     "run's periods / 24)"),
    ({"regions.0.overrides": {"calendar": {"start": "2016-01-12", "days": 1}}},
     "regions[0].overrides.calendar = {'start': '2016-01-12', 'days': 1}: the transmission run "
     "sets calendar.start (the run's start date); calendar.days (the run's periods / 24)"),
    ({"regions.0.overrides": {"markets.dayahead.price_cap": 50.0}},
     "regions[0].overrides.markets.dayahead.price_cap = 50.0: the transmission run sets "
     "markets.dayahead.price_cap (the coupled market's, day_ahead.price_cap)"),
    ({"regions.0.overrides": {"markets": {"dayahead": {"price_floor": -10.0}}}},
     "regions[0].overrides.markets = {'dayahead': {'price_floor': -10.0}}: the transmission "
     "run sets markets.dayahead.price_floor"),
    ({"regions.0.overrides": {"planner.enabled": True}},
     "regions[0].overrides.planner.enabled = True: the transmission run sets planner.enabled"),
    ({"regions.0.overrides": {"markets.dayahead.wholesale.kind": "national"}},
     "regions[0].overrides.markets.dayahead.wholesale.kind = 'national': the transmission run "
     "sets markets.dayahead.wholesale (its zone's coupled market)"),
    ({"regions.0.overrides": {"system_load.annual_mwh": 5.0}},
     "regions[0].overrides.system_load.annual_mwh = 5.0: the transmission run sets "
     "system_load"),
    ({"regions.0.overrides": {"producers.0.capacity_mw": 5.0}},
     "regions[0].overrides.producers.0.capacity_mw = 5.0: the transmission run sets producers "
     "(the transmission grid at the node alone"),
    ({"periods": 30}, "periods = 30: a scenario with regions runs whole days"),
    ({"zones.1.tso": "town"}, "regions[0].name = 'town': the region's accounts are named "
                              "town/<account>, and 'town' is a transmission account"),
])
def test_a_bad_region_stops_naming_field_and_value(tiny, change, says):
    with pytest.raises(ScenarioError) as err:
        parse_tx_scenario(with_region(tiny, **change))
    assert says in str(err.value)


@pytest.mark.parametrize("overrides", [{"calendar.mtu_minutes": 60},
                                       {"calendar": {"mtu_minutes": 60}},
                                       {"prosumers.0.count": 4}])
def test_a_region_s_own_settings_beside_the_run_s_are_accepted(tiny, overrides):
    s = parse_tx_scenario(with_region(tiny, **{"regions.0.overrides": overrides}))
    assert s.regions[0].overrides == overrides


def test_a_region_s_placed_scenario_is_checked_as_a_run_would(tiny):
    """A region placed under a node runs `closed` against the coupled market: simbench's
    background (its energy in no transmission load) and `pass_up` without an aggregator that
    could offer anything stop at load, naming the field and value."""
    from environment.tiers.regions import region_scenarios

    s = parse_tx_scenario(with_region("region"))
    with pytest.raises(ScenarioError, match=r"regions\[0\] \('town'.*grid\.background = "
                                            r"'simbench': under a transmission node.*node 'b'"):
        region_scenarios(s)
    s = parse_tx_scenario(with_region(tiny, **{"regions.0.pass_up": True}))
    with pytest.raises(ScenarioError, match=r"regions\[0\].pass_up = True: the national place "
                                            r"takes offers only from aggregators.*aggregators: "
                                            r"none"):
        region_scenarios(s)
    region_scenarios(parse_tx_scenario(with_region(tiny)))      # without pass_up it runs


def test_two_regions_of_one_name_and_a_region_without_zones_are_refused(tiny):
    d = with_region(tiny)
    d["regions"].append({"name": "town", "node": "a", "scenario": tiny})
    with pytest.raises(ScenarioError, match=r"regions\[1\].name = 'town': duplicate region"):
        parse_tx_scenario(d)
    d = with_region(tiny)
    for key in ("zones", "interconnectors"):
        d.pop(key)
    d["nodes"] = [{"name": "a"}, {"name": "b"}]
    with pytest.raises(ScenarioError, match=r"regions = <1 regions>: regions hang under"):
        parse_tx_scenario(d)


def test_a_bad_override_of_a_region_names_the_region(tiny):
    from environment.tiers.regions import region_scenarios

    s = parse_tx_scenario(with_region(tiny, **{"regions.0.overrides": {"prosumers.0.cuont": 3}}))
    with pytest.raises(ScenarioError, match=r"regions\[0\] \('town'.*prosumers.0.cuont"):
        region_scenarios(s)


def test_set_reaches_a_region_s_own_scenario():
    """`--set regions.0.overrides.prosumers.0.count=40` adds an override of region 0's own
    scenario (its overrides are free dotted paths), and the region runs 40 households."""
    from environment.tiers.regions import region_scenarios
    from experiments.plan import resolve

    s = resolve("ngm", overrides={"regions.0.overrides.prosumers.0.count": 40})
    assert s.regions[0].overrides == {"prosumers.0.count": 40}
    placed = region_scenarios(s)
    assert [r.prosumers[0].count for r in placed] == [40, 300]
    assert [r.calendar.start.isoformat() for r in placed] == ["2016-01-11"] * 2
    assert [r.calendar.days for r in placed] == [2, 2]
    assert [r.seed for r in placed] == [101, 102]

"""The wholesale market a region takes its price from: a national merit order whose price the
region's flexible load barely moves (a designed case with a hand-derived price), against the
closed system it moves a lot; exogenous prices from a user's file, refused before any
simulation when the file is missing, too short or holds text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from environment.errors import ScenarioError
from environment.markets.wholesale_region import merit_order_price
from environment.scenario import load_scenario, with_overrides
from environment.scenario_files import find_scenario
from experiments.run import run_scenario

QUIET = {"forecast.load_error_sd": 0.0, "forecast.pv_error_sd": 0.0,
         "forecast.wind_error_sd": 0.0, "forecast.idiosyncratic_sd": 0.0,
         "prosumers.0.count": 40, "calendar.days": 1, "planner.enabled": False}
# Hand case: a flat national load of 1,000 MW (a p.u. series of ones scaled to 8.76 TWh a
# year), base plants of 0.9 x 1,000 MW at 20 EUR/MWh and gas of 0.2 x 1,000 = 200 MW in 100
# blocks of 2 MW whose costs rise in steps of 0.1 from 100.05 to 109.95 EUR/MWh. The region
# buys r MW (0 < r < 100): the gas blocks serve 100 + r MW, so the price is the cost of block
# floor((100 + r) / 2): 100.05 + 0.1 * floor((100 + r) / 2) = 105.05 + 0.1 * floor(r / 2).
NATIONAL = {"kind": "national", "blocks": 100, "fleet": [
    {"technology": "base", "capacity_per_mean_load": 0.9, "cost_min_eur_mwh": 20.0},
    {"technology": "gas", "capacity_per_mean_load": 0.2, "cost_min_eur_mwh": 100.0,
     "cost_max_eur_mwh": 110.0}]}


def _flat_load(tmp_path) -> dict:
    f = tmp_path / "national.csv"
    t = pd.date_range("2016-01-10", periods=72, freq="h")
    pd.DataFrame({"time": t, "load": 1.0}).to_csv(f, index=False)
    return {"national": {"file": str(f), "column": "load", "unit": "p.u."}}


def _national(tmp_path, **more):
    return {**QUIET, "data": _flat_load(tmp_path), "system_load.profile": "national",
            "system_load.annual_mwh": 8.76e6, "markets.dayahead.wholesale": NATIONAL,
            "producers": [{"name": "none", "technology": "none", "capacity_mw": 0.0,
                           "marginal_cost_eur_mwh": 0.0}], **more}


def _region_mw(r) -> np.ndarray:
    """The region's day-ahead purchase per MTU (MW): everyone's position but the national
    load's and the producers'."""
    p = r.tables["positions"]
    region = p[(p["class"].isin(["brps", "aggregators"]))
               & (p["party"] != r.scenario.system_load.brp)]
    return region.groupby("mtu")["position_mwh"].sum().to_numpy() / 0.25


def test_national_price_is_the_hand_derived_merit_order_price(tmp_path):
    r = run_scenario(overrides=_national(tmp_path), write=False, figures=False)
    region = _region_mw(r)
    assert (region > 0).all() and (region < 100).all()
    price = r.tables["series"]["da_price"].to_numpy()
    expected = 105.05 + 0.1 * np.floor(region / 2)
    np.testing.assert_allclose(price, expected, atol=1e-9)
    s = r.scenario.markets.dayahead.wholesale
    for t in (0, 40, 72):
        assert price[t] == pytest.approx(merit_order_price(s, 8.76e6, 1000 + region[t]))


def test_doubling_flexible_load_barely_moves_a_national_price_and_moves_a_closed_one(tmp_path):
    def prices(overrides):
        r = run_scenario(overrides=overrides, write=False, figures=False)
        return r.tables["series"]["da_price"].to_numpy(), _region_mw(r)

    doubled = {"prosumers.0.heat_pump.kw_mean": 6.0}
    p1, r1 = prices(_national(tmp_path))
    p2, r2 = prices(_national(tmp_path, **doubled))
    assert (r2 - r1).max() > 0.05                    # the region does buy more
    # derived: the price moves by 0.1 per 2 MW block crossed, here at most one block
    np.testing.assert_allclose(p2 - p1, 0.1 * (np.floor(r2 / 2) - np.floor(r1 / 2)),
                               atol=1e-9)
    assert np.abs(p2 - p1).max() <= 0.1 + 1e-9
    c1, _ = prices(QUIET)
    c2, _ = prices({**QUIET, **doubled})
    assert np.abs(c2 - c1).max() > 20.0              # the closed system's merit order jumps


def _exogenous(tmp_path, frame: pd.DataFrame | None, **more) -> dict:
    f = tmp_path / "prices.csv"
    if frame is not None:
        frame.to_csv(f, index=False)
    return {"data": {"spot": {"file": str(f), "column": "eur_mwh", "unit": "EUR/MWh"}},
            "markets.dayahead.wholesale": {"kind": "exogenous", "prices": "spot"},
            "planner.enabled": False, **more}


def _hourly(n: int, values=None) -> pd.DataFrame:
    t = pd.date_range("2016-01-11", periods=n, freq="h")
    return pd.DataFrame({"time": t, "eur_mwh": 60 + 30 * np.sin(np.arange(n) / 4)
                         if values is None else values})


def test_exogenous_prices_are_the_clearing_prices(tmp_path):
    frame = _hourly(24)
    r = run_scenario(overrides={**_exogenous(tmp_path, frame), **QUIET}, write=False,
                     figures=False)
    np.testing.assert_allclose(r.tables["series"]["da_price"].to_numpy(),
                               np.repeat(frame["eur_mwh"].to_numpy(), 4), atol=1e-9)


@pytest.mark.parametrize(("frame", "says"), [
    (None, "file not found"),
    (_hourly(10), "wrong length or period"),
    (_hourly(24 * 7, ["60"] * 50 + ["6O"] + ["60"] * 117), "non-numeric value(s) (NaN), at "
                                                             "2016-01-13 02:00 ('6O')"),
])
def test_a_bad_price_file_stops_at_load_naming_file_and_value(tmp_path, frame, says):
    base = load_scenario(find_scenario("default"))
    with pytest.raises(ScenarioError) as err:
        with_overrides(base, _exogenous(tmp_path, frame))
    text = str(err.value)
    assert says in text and "prices.csv" in text


def test_exogenous_prices_need_the_planner_off(tmp_path):
    base = load_scenario(find_scenario("default"))
    with pytest.raises(ScenarioError, match="planner.enabled = True"):
        with_overrides(base, _exogenous(tmp_path, _hourly(24 * 7), **{"planner.enabled": True}))

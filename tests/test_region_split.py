"""A price-taking region's own figures apart from the national system: the cost of supply
counts only what crosses the region's boundary (a hand-derived ledger), its day-ahead part is
the clearing prices times the region's own schedules (positions, not the ledger), and a closed
system has no such block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.region_split import cost_of_supply, region_accounts
from experiments.run import run_scenario

CLASSES = pd.Series({"home": "prosumers", "supplier": "brps", "agg": "aggregators",
                     "dso": "dso", "da_exchange": "market_operators", "tso": "tso",
                     "external": "external", "plant": "producers",
                     "national_retail": "brps"})


def test_cost_of_supply_counts_what_crosses_the_boundary():
    """Hand case. Inside: home, supplier, agg, dso. Rows and what each adds:
    home -> supplier retail 100 (inside: 0); supplier -> da_exchange dayahead 50 (+50);
    da_exchange -> plant dayahead 50 (outside: 0); supplier -> tso imbalance 7 (+7);
    tso -> agg balancing_der 3 (-3); dso -> agg lfm_da 4 (inside: 0); agg -> external
    battery_wear 1 (+1); plant -> external fuel 30 (outside: 0). Total 50 + 7 - 3 + 1 = 55."""
    region = region_accounts(CLASSES, {"plant", "national_retail"})
    assert region == {"home", "supplier", "agg", "dso"}
    rows = [("home", "supplier", "retail", 100.0), ("supplier", "da_exchange", "dayahead", 50.0),
            ("da_exchange", "plant", "dayahead", 50.0), ("supplier", "tso", "imbalance", 7.0),
            ("tso", "agg", "balancing_der", 3.0), ("dso", "agg", "lfm_da", 4.0),
            ("agg", "external", "battery_wear", 1.0), ("plant", "external", "fuel", 30.0)]
    ledger = pd.DataFrame(rows, columns=["payer", "payee", "market", "eur"])
    out = cost_of_supply(ledger, region)
    assert out["total_eur"] == pytest.approx(55.0)
    assert out["by_market_eur"] == pytest.approx({"dayahead": 50.0, "imbalance": 7.0,
                                                  "balancing_der": -3.0,
                                                  "battery_wear": 1.0})


QUIET = {"forecast.load_error_sd": 0.0, "forecast.pv_error_sd": 0.0,
         "forecast.wind_error_sd": 0.0, "forecast.idiosyncratic_sd": 0.0,
         "prosumers.0.count": 40, "calendar.days": 1, "planner.enabled": False,
         "markets.lfm.enabled": False, "markets.intraday.enabled": False,
         "markets.platform.enabled": False, "tso.der_balancing": False}


def test_region_day_ahead_cost_is_prices_times_its_schedules(tmp_path):
    f = tmp_path / "prices.csv"
    t = pd.date_range("2016-01-11", periods=24, freq="h")
    hourly = 60 + 30 * np.sin(np.arange(24) / 4)
    pd.DataFrame({"time": t, "eur_mwh": hourly}).to_csv(f, index=False)
    r = run_scenario(overrides={
        **QUIET, "data": {"spot": {"file": str(f), "column": "eur_mwh", "unit": "EUR/MWh"}},
        "markets.dayahead.wholesale": {"kind": "exogenous", "prices": "spot"}},
        write=False, figures=False)
    region = r.summary["region"]
    p = r.tables["positions"]
    mine = p[p["class"].isin(["brps", "aggregators"]) & (p["party"] != "national_retail")]
    da_mwh = mine.groupby("mtu")["position_mwh"].sum().to_numpy()
    expected = float((np.repeat(hourly, 4) * da_mwh).sum())
    assert expected > 20.0                      # the households do buy
    assert region["paid_outside_by_market_eur"]["dayahead"] == pytest.approx(expected,
                                                                             rel=1e-9)
    assert "retail" not in region["paid_outside_by_market_eur"]      # a transfer inside
    assert region["net_import_mwh"] == pytest.approx(mine["realised_mwh"].sum())
    assert region["cost_of_supply_eur"] == pytest.approx(
        region["paid_outside_eur"] + region["unserved_eur"] + region["violation_eur"])


def test_a_closed_system_has_no_region_block():
    r = run_scenario(overrides=QUIET, write=False, figures=False)
    assert "region" not in r.summary and "national" not in r.summary

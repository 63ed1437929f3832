"""The LEM's congestion before and after (summary `lem.congestion_before/after_mtu_locations`,
`LocalMarket.congestion_before`) on the shipped `lem` scenario's first two days (the second,
2016-06-07, congests the feeders and the transformer with PV reverse flow at D-1).

Before = the DSO's D-1 grid check of the households' plans with their home batteries on the
self-consumption rule; after = the check the DSO ran on what the day-ahead market traded. The
expectations are rebuilt here from the plans, not read from the fields the summary counts."""

from __future__ import annotations

import numpy as np
import pytest

from environment.lemstage import LocalMarket
from experiments.run import run_scenario


def independent_flags(model, ctx, retail: np.ndarray) -> np.ndarray:
    """(T, K) violation flags of a D-1 check of households' metered plans `retail` (N, T),
    assembled here: the aggregators' set-points added at the buses, reactive power of loads and
    heat pumps at the DSO's power factor, the DSO's flows and limits with its YELLOW margin."""
    f, dso = model.fleet, model.dso
    plan = model.device_plan(ctx)
    per_bus = dso.bus_of @ (retail + plan["battery"] + plan["ev"] + plan["hp"])
    hp = np.where(f.enrolled["heat_pump"][:, None], plan["hp"], ctx.forecast.hp)
    q = (dso.bus_of @ (ctx.forecast.load + hp)).T * dso.tan_phi
    return dso.assess(per_bus.T, q, dso.yellow_margin)[1]["violated"]


@pytest.fixture(scope="module")
def runs():
    """Both runs, and per day the independent counts taken in the LEM's gate (after the DSO's
    validation, before any state of charge moves): before from `retail_net` of the forecast
    with the LEM's battery plan set aside (the self-consumption rule), after from that plus the
    managers' shift (plan - rule) of the batteries they re-planned."""
    seen = {True: [], False: []}
    trade = LocalMarket.trade

    def spy(self, ctx):
        m, kept = self.model, self.battery_plan
        self.battery_plan = None
        rule = m.retail_net(ctx.forecast)
        self.battery_plan = kept
        shift = self.battery_shift if self.cfg.hems_battery else 0.0
        seen[self.cfg.hems_battery].append(
            (int(independent_flags(m, ctx, rule).sum()),
             int(independent_flags(m, ctx, rule + shift).sum())))
        return trade(self, ctx)

    mp = pytest.MonkeyPatch()
    mp.setattr(LocalMarket, "trade", spy)
    try:
        out = {hems: run_scenario("lem", days=2, planner=False, write=False, figures=False,
                                  overrides={"markets.lem.hems_battery": hems})
               for hems in (True, False)}
    finally:
        mp.undo()
    return out, seen


def test_without_hems_battery_before_equals_after(runs):
    """The LEM moves no device: the plans before and after are the same, so are their checks,
    row by row and in the summary; the independent check counts the same."""
    out, seen = runs
    r = out[False]
    g, s = r.tables["grid"], r.summary["lem"]
    assert s["battery_shift_mwh"] == 0.0
    np.testing.assert_array_equal(g["forecast_violated_before_lem"], g["forecast_violated"])
    assert s["congestion_before_mtu_locations"] == s["congestion_after_mtu_locations"] > 0
    assert s["forecast_max_loading_before"] == s["forecast_max_loading_after"]
    assert [b for b, _ in seen[False]] == [a for _, a in seen[False]]
    assert sum(a for _, a in seen[False]) == s["congestion_after_mtu_locations"]


def test_with_hems_battery_counts_match_an_independent_check_of_the_plans(runs):
    """With the managers' re-plan: the summary's before and after counts are the independent
    checks' of the rule's plans and of the rule plus the shift, summed over the days; on this
    street the re-plan changes what the DSO sees (the counts or at least some flag differ)."""
    out, seen = runs
    r = out[True]
    g, s = r.tables["grid"], r.summary["lem"]
    assert s["battery_shift_mwh"] > 0
    assert len(seen[True]) == 2
    assert s["congestion_before_mtu_locations"] == sum(b for b, _ in seen[True]) > 0
    assert s["congestion_after_mtu_locations"] == sum(a for _, a in seen[True])
    assert (g["forecast_violated_before_lem"] != g["forecast_violated"]).any()
    assert s["forecast_max_loading_before"] == pytest.approx(
        g["forecast_max_loading_before_lem"].max())

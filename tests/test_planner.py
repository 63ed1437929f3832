"""The planner's sparse LP (`environment.planner`) against the same model written in Pyomo
(`tests/planner_pyomo.py`, the statement it replaced) on simulated days and variants, and on a
case small enough to solve by hand."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from planner_pyomo import solve_day as pyomo_solve_day

import environment.planner_inputs
from environment.grid.lindistflow import LinDistFlow
from environment.planner import PlannerDay, solve_day
from experiments.run import run_scenario

PARTS = ("cost", "fuel", "wear", "emergency", "unserved_cost", "load_to_shed_mwh")

# (scenario, overrides) of the simulated days; 40 households keep each run to seconds; the
# heat-pump share the variants' limits were tightened for
FLEET = {"prosumers.0.count": 40, "prosumers.0.heat_pump.share": 0.45}
RUNS = {"winter": (None, FLEET),
        "summer": (None, {**FLEET, "calendar.start": "2016-06-20"}),
        "congested": ("short_flex", {})}


@pytest.fixture(scope="module")
def planner_inputs() -> dict:
    """The arguments the simulation handed the planner on the first day of each run."""
    inputs = {}
    with pytest.MonkeyPatch.context() as mp:
        for name, (scenario, overrides) in RUNS.items():
            calls = []

            def record(*args, calls=calls):
                calls.append(args)
                return solve_day(*args)

            mp.setattr(environment.planner_inputs, "solve_day", record)
            run_scenario(scenario, days=1, overrides=overrides, planner=True, write=False,
                         figures=False)
            inputs[name] = calls[0]
    return inputs


def _without(day: PlannerDay, *devices: str) -> PlannerDay:
    changes = {d: {} for d in devices}
    if "battery" in devices:
        changes["degradation"] = {}
    return dataclasses.replace(day, **changes)


def _limits(args, loading=None, v_min=None, v_max=None, grid=True) -> tuple:
    """The planner's arguments with other grid limits (a uniform voltage band edge, a loading
    limit) or none."""
    day, flow, lo, hi, limit, _ = args
    return (day, flow, lo if v_min is None else np.full_like(lo, v_min),
            hi if v_max is None else np.full_like(hi, v_max),
            limit if loading is None else loading, grid)


# variant -> (run, change of the planner's arguments, what the day must show: grid rows,
# real shedding, relief left at the value of lost load); the simbench PV profiles are zero on
# the January day and low on the June one, so limits are tightened until rows bind
VARIANTS = {
    "winter-copper-plate": ("winter", lambda a: _limits(a, grid=False), ()),
    "winter-branches": ("winter", lambda a: _limits(a, loading=0.1), ("rows",)),
    "winter-branches-no-batteries": ("winter", lambda a: _limits(
        (_without(a[0], "battery"), *a[1:]), loading=0.1), ("rows",)),
    "winter-branches-batteries-only": ("winter", lambda a: _limits(
        (_without(a[0], "ev", "hp"), *a[1:]), loading=0.08), ("rows",)),
    "winter-undervoltage": ("winter", lambda a: _limits(a, v_min=1.015), ("rows",)),
    "summer-overvoltage": ("summer", lambda a: _limits(a, v_max=1.0253), ("rows",)),
    "congested": ("congested", lambda a: a, ("rows", "shed")),
    "congested-no-flexibility": ("congested", lambda a: (
        _without(a[0], "battery", "ev", "hp"), *a[1:]), ("rows", "shed")),
    "congested-relief": ("congested", lambda a: _limits(a, v_min=1.015),
                         ("rows", "shed", "relief")),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sparse_planner_matches_the_pyomo_statement(planner_inputs, variant):
    """Cost and each of its parts to 1e-6 relative (of the day's cost for parts near zero),
    the load left to shed and whether constraint generation converged; solved again, the
    sparse planner gives the same result to the bit. Rounds and the number of rows may differ
    from Pyomo's: where the LP has several optima HiGHS may return another one, which violates
    other limits before the last round (the undervoltage variant's first optimum kept the band
    in the Pyomo statement when it was written, not in the sparse one)."""
    run, change, shows = VARIANTS[variant]
    args = change(planner_inputs[run])
    new, old = solve_day(*args), pyomo_solve_day(*args)
    for part in PARTS:
        assert getattr(new, part) == pytest.approx(getattr(old, part), rel=1e-6,
                                                   abs=1e-6 * abs(old.cost)), part
    assert new.converged == old.converged
    assert solve_day(*args) == new
    relief = new.load_to_shed_mwh * args[0].value_of_load
    seen = {"rows": new.grid_constraints > 0, "relief": relief > 0,
            "shed": new.unserved_cost > relief + 1e-9}
    assert {k for k, v in seen.items() if v} == set(shows)


def _tiny_flow(s_max_mw: float) -> LinDistFlow:
    """Two buses, the slack and bus 1, one branch; a voltage band no flow here leaves."""
    grid = SimpleNamespace(downstream=np.array([[0.0, 1.0]]), r_pu=np.array([0.01]),
                           x_pu=np.array([0.01]), v0_pu=np.ones(2),
                           s_max_mva=np.array([s_max_mw]), n_bus=2, n_branch=1)
    return LinDistFlow(grid)


def test_one_battery_two_mtus_by_hand():
    """One-hour MTUs; 2 MW of fixed load at bus 1 in both; a producer at 10 EUR/MWh with 5 MW
    in the first MTU only and one at 50 EUR/MWh with 10 MW in both; a battery at bus 1 of
    2 MWh, 1 MW, 1 MWh stored at the start and at the end, efficiency 0.9 each way, wear
    1 EUR/MWh charged or discharged.

    Without grid limits it charges 1 MW in the first MTU (10 + 1 EUR) and discharges the
    0.81 MW that buys back in the second (0.81 x (50 - 1) = 39.69 EUR saved): fuel
    3 x 10 + 1.19 x 50 = 89.5, wear 1.81, cost 91.31.

    With the branch limited to 2.5 MW, the first round's 3 MW is an overload: the second
    round adds that one branch row (2 + charge <= 2.5, cheaper than relief at 1,000 EUR/MWh)
    and charging stops at 0.5 MW, discharging 0.405 MW: fuel 2.5 x 10 + 1.595 x 50 =
    104.75, wear 0.905, cost 105.655, two rounds, one row.

    The same limit as a voltage band instead (r = 0.01 pu, no reactive power): bus 1's
    squared voltage is 1 - 2 x 0.01 x p, so v_min = sqrt(0.95) caps p at 2.5 MW: same cost."""
    t = 2
    day = PlannerDay(
        dt_h=1.0, fixed_bus_mw=np.array([[0.0, 2.0], [0.0, 2.0]]), pv_bus_mw=np.zeros((t, 2)),
        q_bus_mvar=np.zeros((t, 2)), system_load_mw=np.zeros(t),
        gen_cost=np.array([10.0, 50.0]), gen_avail_mw=np.array([[5.0, 0.0], [10.0, 10.0]]),
        battery={1: (2.0, 1.0, 1.0, 0.9)}, degradation={1: 1.0}, ev={}, hp={},
        emergency_up_price=3000.0, emergency_down_price=-100.0, value_of_load=1000.0)
    band = np.full(2, 0.5), np.full(2, 1.5)
    free = solve_day(day, _tiny_flow(2.5), *band, 1.0, False)
    assert (free.cost, free.fuel, free.wear) == pytest.approx((91.31, 89.5, 1.81), abs=1e-9)
    assert (free.rounds, free.grid_constraints) == (1, 0)
    held = solve_day(day, _tiny_flow(2.5), *band, 1.0, True)
    assert (held.cost, held.fuel, held.wear) == pytest.approx((105.655, 104.75, 0.905),
                                                              abs=1e-9)
    assert (held.rounds, held.grid_constraints, held.converged) == (2, 1, True)
    assert held.unserved_cost == held.load_to_shed_mwh == held.emergency == 0.0
    volt = solve_day(day, _tiny_flow(10.0), np.full(2, np.sqrt(0.95)), band[1], 1.0, True)
    assert volt.cost == pytest.approx(105.655, abs=1e-9)
    assert (volt.rounds, volt.grid_constraints) == (2, 1)


@pytest.mark.parametrize("variant", ["winter-copper-plate", "winter-branches",
                                     "summer-overvoltage", "congested", "congested-relief"])
def test_large_grid_start_gives_the_same_optimum(planner_inputs, variant):
    """On grids the flow model handles by tree sweeps (above `DENSE_MAX_BUS` buses) the first
    LP starts from the price-taker basis (`environment.planner_start`); forced on the
    simulated LV grids, whose merit order is sized to the feeder (its flexibility can move
    the price, so the basis need not be optimal), it must reach the optimum of the statement
    that starts from the slack basis: cost and each part to 1e-6 relative (measured: 2e-16 at
    most), the same convergence."""
    run, change, _ = VARIANTS[variant]
    day, flow, *rest = change(planner_inputs[run])
    assert flow.dense
    sweeps = LinDistFlow(flow.grid, dense=False)
    new, old = solve_day(day, sweeps, *rest), solve_day(day, flow, *rest)
    for part in PARTS:
        assert getattr(new, part) == pytest.approx(getattr(old, part), rel=1e-6,
                                                   abs=1e-6 * abs(old.cost)), part
    assert new.converged == old.converged

"""Explicit LFM clearing against hand results and an independent LP; headroom and coupling
rules on hand-made grids."""

import numpy as np
import pyomo.environ as pyo
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyomo.contrib.solver.common.factory import SolverFactory

from environment.grid.headroom import headroom
from environment.markets.lfm import FlexOffers, GridLimits, clear_lfm, location_moves

DT = 0.25


def one_branch(base_mw, limit_mw, k_n=2, t_n=1, sens=(1.0, 0.5)):
    """A single branch carrying `base_mw`; one MW more consumption at location k adds sens[k]."""
    flow = np.zeros((t_n, k_n, 2, 1))
    for k in range(k_n):
        flow[:, k, :, 0] = sens[k]
    return GridLimits(base_p=np.full((t_n, 1), base_mw), base_q=np.zeros((t_n, 1)),
                      base_w=np.ones((t_n, 2)), s_max=np.array([limit_mw]),
                      v_min=np.array([0.5, 0.5]), v_max=np.array([1.5, 1.5]),
                      flow_per_mw=flow, w_per_mw=np.zeros((t_n, k_n, 2, 2)),
                      branch_location=np.zeros(1, int), bus_location=np.zeros(2, int))


def offers(loc, mw, price, direction=None, mtu=None):
    n = len(mw)
    return FlexOffers(np.arange(n), np.asarray(loc), np.zeros(n, int) if mtu is None
                      else np.asarray(mtu), np.ones(n, int) if direction is None
                      else np.asarray(direction), np.asarray(mw, float), np.asarray(price, float))


def test_cheapest_effective_relief_first_pay_as_bid():
    lim = one_branch(base_mw=1.5, limit_mw=1.0)
    o = offers([0, 0, 1], [0.3, 0.4, 2.0], [30.0, 50.0, 20.0])
    res = clear_lfm(o, lim, DT, "pay_as_bid")
    # location 1 relieves 0.5 MW per MW at 20 -> 40 per MW of relief: between 30 and 50
    np.testing.assert_allclose(res.accepted_mw, [0.3, 0.0, 0.4], atol=1e-7)
    np.testing.assert_allclose(res.paid_price, [30.0, 0.0, 20.0])
    assert res.unresolved_mw == pytest.approx(0.0, abs=1e-9)


def test_pay_as_clear_pays_locational_marginal_value():
    lim = one_branch(base_mw=1.5, limit_mw=1.0)
    o = offers([0, 0, 1], [0.3, 0.4, 0.2], [30.0, 50.0, 20.0])
    res = clear_lfm(o, lim, DT, "pay_as_clear")
    # relief needed 0.5: 0.3 @30 at loc 0, 0.1 from loc 1 (0.2 MW), then 0.1 from the 50 offer
    np.testing.assert_allclose(res.accepted_mw, [0.3, 0.1, 0.2], atol=1e-7)
    assert res.location_price[0, 0, 0] == pytest.approx(50.0)
    assert res.location_price[0, 1, 0] == pytest.approx(25.0)
    np.testing.assert_allclose(res.paid_price, [50.0, 50.0, 25.0])


def test_price_cap_excludes_offers_and_leaves_violation_unresolved():
    lim = one_branch(base_mw=1.5, limit_mw=1.0)
    o = offers([0, 0], [0.3, 0.4], [30.0, 500.0])
    res = clear_lfm(o, lim, DT, "pay_as_clear", price_cap=100.0)
    np.testing.assert_allclose(res.accepted_mw, [0.3, 0.0], atol=1e-7)
    assert res.unresolved_mw == pytest.approx(0.2, abs=1e-7)
    assert (res.location_price <= 100.0 + 1e-9).all()


def test_nothing_bought_without_violation():
    res = clear_lfm(offers([0], [1.0], [1.0]), one_branch(0.5, 1.0), DT)
    assert res.accepted_mw.sum() == 0 and res.constraints == 0


def test_down_offers_relieve_reverse_flow():
    lim = one_branch(base_mw=-1.4, limit_mw=1.0)
    o = offers([0, 0], [0.5, 0.5], [10.0, 10.0], direction=[1, -1])
    res = clear_lfm(o, lim, DT)
    np.testing.assert_allclose(res.accepted_mw, [0.0, 0.4], atol=1e-7)


def _pyomo_lfm(base, sens, loc, mw, price, penalty):
    """The same clearing written independently as a Pyomo model (HiGHS): cost and the dual of
    the branch limit (the marginal value of one MW of relief). What the offers leave, the DSO
    sheds at any location at `penalty` per MWh (it relieves the branch by that location's
    sensitivity)."""
    m = pyo.ConcreteModel()
    n = range(len(mw))
    locs = range(len(sens))
    m.a = pyo.Var(n, bounds=lambda _, i: (0, mw[i]))
    m.r = pyo.Var(locs, within=pyo.NonNegativeReals)
    m.obj = pyo.Objective(expr=sum(price[i] * DT * m.a[i] for i in n)
                          + penalty * DT * sum(m.r[k] for k in locs))
    m.lim = pyo.Constraint(expr=base - sum(sens[loc[i]] * m.a[i] for i in n)
                           - sum(sens[k] * m.r[k] for k in locs) <= 1.0)
    res = SolverFactory("highs").solve(m)
    return pyo.value(m.obj), -res.solution_loader.get_duals()[m.lim] / DT


@settings(max_examples=40, deadline=None)
@given(base=st.floats(1.05, 3.0), sens=st.lists(st.floats(0.1, 1.0), min_size=3, max_size=3),
       mw=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), min_size=6, max_size=6),
       price=st.lists(st.integers(1, 200), min_size=6, max_size=6, unique=True))
def test_lfm_matches_independent_pyomo_model(base, sens, mw, price):
    lim = one_branch(base, 1.0, k_n=3, sens=sens)
    loc = [0, 1, 2, 0, 1, 2]
    o = offers(loc, mw, price)
    penalty = 10_000.0
    res = clear_lfm(o, lim, DT, "pay_as_clear", unresolved_cost=penalty)
    cost, relief_value = _pyomo_lfm(base, sens, loc, mw, price, penalty)
    ours = (res.accepted_mw * np.array(price)).sum() * DT + penalty * DT * res.unresolved_mw
    assert ours == pytest.approx(cost, rel=1e-6, abs=1e-6)
    for k in range(3):
        assert res.location_price[0, k, 0] == pytest.approx(relief_value * sens[k], rel=1e-6,
                                                            abs=1e-6)


def test_headroom_keeps_every_location_within_the_shared_limit():
    lim = one_branch(base_mw=0.6, limit_mw=1.0, sens=(1.0, 0.5))
    room = headroom(lim, np.zeros((1, 2, 2)))
    # 0.4 MW of margin split over the two locations that load the branch
    assert room[0, 0, 1] == pytest.approx(0.2)
    assert room[0, 1, 1] == pytest.approx(0.4)
    moves = np.zeros((1, 2, 2))
    moves[0, :, 1] = room[0, :, 1]
    p, _, over = lim.violations(moves)
    assert not over.any() and p[0, 0] == pytest.approx(1.0)


def test_location_moves_split_directions():
    o = offers([0, 0, 1], [0.2, 0.3, 0.5], [1, 1, 1], direction=[1, -1, -1])
    m = location_moves(o, o.mw, 1, 2)
    assert m[0, 0].tolist() == [0.2, 0.3] and m[0, 1].tolist() == [0.0, 0.5]


def test_branches_in_series_are_all_relieved_in_one_clearing():
    """Eight overloaded branches in series, each far more sensitive to the offers than the
    one before it and a little less overloaded per unit of sensitivity: relieving the most
    overloaded branch leaves the next one the most overloaded, so adding one row per round
    (per location and MTU, as the clearing once did) took five rounds here. The clearing adds
    every violated limit at once: one round, no violation left, and the relief is the largest
    excess over sensitivity."""
    n = 8
    sens = 1.8 ** (np.arange(n) - n + 1)           # 0.016 .. 1 MW of flow per MW moved
    excess = (2.0 - 0.01 * np.arange(n)) * sens    # relief needed: 2.0, 1.99, .. MW
    limit = np.full(n, 10.0)
    flow = np.zeros((1, 1, 2, n))
    flow[0, 0, :, :] = sens
    lim = GridLimits(base_p=(limit + excess)[None, :], base_q=np.zeros((1, n)),
                     base_w=np.ones((1, n + 1)), s_max=limit, v_min=np.full(n + 1, 0.5),
                     v_max=np.full(n + 1, 1.5), flow_per_mw=flow,
                     w_per_mw=np.zeros((1, 1, 2, n + 1)), branch_location=np.zeros(n, int),
                     bus_location=np.zeros(n + 1, int))
    o = offers([0], [10.0], [40.0])
    res = clear_lfm(o, lim, DT)
    assert res.accepted_mw[0] == pytest.approx(2.0, rel=1e-9)
    assert res.unresolved_mw == pytest.approx(0.0, abs=1e-9)
    _, _, over = lim.violations(location_moves(o, res.accepted_mw, 1, 1))
    assert not over.any()
    assert res.rounds == 1 and res.constraints == n

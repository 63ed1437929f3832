"""Device physics, pooling, scheduling and balancing activation, checked against hand results
and invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.pool import Pool, allocate
from agents.prosumer import Envelope
from agents.strategies.truthful import schedule_pool
from environment.markets.balancing import BalancingOffers, activate, imbalance_prices

DT = 0.25


def test_allocate_meets_total_within_member_envelopes():
    rng = np.random.default_rng(1)
    n, t = 30, 96
    base = np.where(rng.random((n, t)) < 0.1, 0.0037, 0.0)
    upper = np.cumsum(base, 1) * DT
    lower = np.roll(upper, 16, axis=1)
    lower[:, :16] = 0
    lower[:, -1] = upper[:, -1]
    env = Envelope(lower, upper, np.full((n, t), 0.0037))
    out = allocate(base.sum(0), env, DT)
    assert np.allclose(out.sum(0), base.sum(0))
    cum = np.cumsum(out, 1) * DT
    assert (cum <= upper + 1e-12).all() and (cum >= lower - 1e-12).all()
    assert (out <= 0.0037 + 1e-12).all() and (out >= 0).all()


def test_allocate_falls_short_when_pool_overpromises():
    env = Envelope(np.zeros((1, 2)), np.array([[0.25, 0.25]]), np.ones((1, 2)))
    out = allocate(np.array([2.0, 2.0]), env, DT)
    assert out[0, 0] == pytest.approx(1.0) and out[0, 1] == pytest.approx(0.0)


def _pool(prices_t=8, soc=0.5, e=1.0):
    z = np.zeros(prices_t)
    none = Envelope(z, z, z)
    return Pool(battery_mwh=e, battery_mw=0.5, battery_soc=soc, battery_eta=0.95, ev=none,
                hp=none)


def test_battery_schedule_buys_low_sells_high_and_cycles_back():
    prices = np.array([10, 10, 10, 10, 200, 200, 200, 200], float)
    plan = schedule_pool(_pool(), prices, 1.0, degradation=5.0)
    assert plan["ch"][:4].sum() > 0 and plan["dis"][4:].sum() > 0
    assert plan["ch"][4:].sum() == pytest.approx(0, abs=1e-9)
    assert plan["soc"][-1] == pytest.approx(0.5)
    assert (plan["soc"] <= 1 + 1e-9).all() and (plan["soc"] >= -1e-9).all()


def test_battery_idles_when_spread_does_not_cover_losses_and_wear():
    prices = np.array([100, 100, 100, 100, 104, 104, 104, 104], float)
    plan = schedule_pool(_pool(), prices, 1.0, degradation=5.0)
    assert plan["ch"].sum() + plan["dis"].sum() == pytest.approx(0, abs=1e-9)


def test_ev_pool_shifts_charging_to_cheap_hours_and_delivers_all_energy():
    t = 8
    upper = np.array([0, 1, 2, 2, 2, 2, 2, 2], float)
    lower = np.array([0, 0, 0, 0, 0, 0, 0, 2], float)
    env = Envelope(lower, upper, np.full(t, 1.0))
    z = np.zeros(t)
    pool = Pool(0.0, 0.0, 0.0, 1.0, env, Envelope(z, z, z))
    prices = np.array([50, 50, 50, 50, 50, 5, 5, 50], float)
    plan = schedule_pool(pool, prices, 1.0, 0.0)
    assert plan["ev"].sum() == pytest.approx(2.0)
    assert plan["ev"][5:7].sum() == pytest.approx(2.0)


@settings(max_examples=60, deadline=None)
@given(need=st.lists(st.floats(-3, 3), min_size=1, max_size=6),
       caps=st.lists(st.floats(0, 1), min_size=3, max_size=3))
def test_activation_meets_need_in_merit_order(need, caps):
    need = np.array(need)
    t = len(need)
    offers = BalancingOffers(np.arange(3), np.array([50.0, 30.0, 80.0]),
                             np.tile(np.array(caps)[:, None], (1, t)),
                             np.array([20.0, 40.0, 10.0]),
                             np.tile(np.array(caps)[:, None], (1, t)))
    act = activate(offers, need, 1000.0, -500.0)
    got = act.up_mw.sum(0) - act.down_mw.sum(0) + act.emergency_up_mw - act.emergency_down_mw
    assert np.allclose(got, need)
    for k in range(t):
        if need[k] > 0:
            order = [1, 0, 2]
            used = act.up_mw[order, k]
            full = np.isclose(used, np.array(caps)[order])
            first_partial = np.argmin(full) if not full.all() else 3
            assert np.allclose(used[first_partial + 1:], 0)
    short_p, long_p = imbalance_prices(act, need, np.full(t, 60.0), "single")
    assert np.array_equal(short_p, long_p)


def test_imbalance_price_single_and_dual_hand_case():
    offers = BalancingOffers(np.arange(2), np.array([50.0, 70.0]), np.array([[1.0], [1.0]]),
                             np.array([30.0, 20.0]), np.array([[1.0], [1.0]]))
    act = activate(offers, np.array([1.5]), 1000.0, -500.0)
    assert act.up_mw[:, 0].tolist() == [1.0, 0.5]
    assert act.marginal_up[0] == 70.0
    short_p, long_p = imbalance_prices(act, np.array([1.5]), np.array([40.0]), "dual")
    assert short_p[0] == 70.0 and long_p[0] == 40.0
    act = activate(offers, np.array([-3.0]), 1000.0, -500.0)
    assert act.emergency_down_mw[0] == pytest.approx(1.0)
    assert act.marginal_down[0] == -500.0


def _merit_day():
    """Two MTUs of one hour; 2 MWh offered at 10 EUR/MWh and 5 MWh at 100 in each; fixed
    demand 1 MWh, then 3 MWh."""
    from environment.markets.dayahead import SupplyCurve
    from environment.markets.orders import OrderBook

    offers = OrderBook.from_arrays([1, 2, 1, 2], [0, 0, 1, 1], [100.0, 10.0, 100.0, 10.0],
                                   [-5.0, -2.0, -5.0, -2.0], 2)
    return SupplyCurve(offers, np.array([1.0, 3.0]), -500.0, 4000.0)


def test_supply_curve_cost_by_hand():
    """Serving 1 and 3 MWh: 1 x 10, then 2 x 10 + 1 x 100 = 130 EUR. Moving 1 MWh from the
    second MTU to the first: 2 x 10 twice = 40. Moving 5: 2 x 10 + 4 x 100 = 420, and a net
    surplus of 2 MWh nobody buys, at minus the floor, 1,000: 1,420."""
    s = _merit_day()
    assert s.cost() == pytest.approx(130.0)
    assert s.cost(np.array([1.0, -1.0])) == pytest.approx(40.0)
    assert s.cost(np.array([5.0, -5.0])) == pytest.approx(1420.0)


def test_pool_plan_prices_its_own_impact():
    """A 5 MWh, 5 MW battery, empty, lossless, wear 5 EUR/MWh, on `_merit_day`. As a price
    taker against the prices without it (10, then 100) it would charge 5 MWh and sell them
    back, paying 100 for 4 of the 5 and dumping 2 MWh: 1,420 + 50 wear. Against the merit
    order it charges only the 1 MWh left at 10 and discharges it where it displaces the 100
    step: 2 x 10 + 2 x 10 + 10 wear = 50 EUR, the least any plan can cost."""
    from agents.strategies.truthful import plan_pools

    z = np.zeros(2)
    pool = Pool(battery_mwh=5.0, battery_mw=5.0, battery_soc=0.0, battery_eta=1.0,
                ev=Envelope(z, z, z), hp=Envelope(z, z, z))
    supply = _merit_day()
    taker = schedule_pool(pool, np.array([10.0, 100.0]), 1.0, 5.0, warm=False)
    np.testing.assert_allclose(taker["ch"] - taker["dis"], [5.0, -5.0], atol=1e-9)
    plans, prices = plan_pools({0: pool}, supply, 1.0, 5.0)
    net = plans[0]["ch"] - plans[0]["dis"]
    np.testing.assert_allclose(net, [1.0, -1.0], atol=1e-9)
    assert supply.cost(net) + 5.0 * np.abs(net).sum() == pytest.approx(50.0)
    assert supply.cost(np.array([5.0, -5.0])) + 50.0 == pytest.approx(1470.0)
    assert 10.0 <= prices[0] <= prices[1] - 10.0 + 1e-9 and prices[1] <= 100.0


def test_supply_curve_near_keeps_what_demand_can_reach():
    """Five 1 MWh offers at 10..50 and 2.5 MWh of fixed demand, which moves by at most 0.2:
    the offer at 10 is dispatched whatever happens (fixed supply: demand 1.5 left), the one at
    30 is marginal, 20 and 40 stay beside it (so that a price on a step's edge stays between
    real offers), 50 is never reached. Costs differ by the fixed 10 EUR only; a wider reach
    keeps everything."""
    from environment.markets.dayahead import SupplyCurve
    from environment.markets.orders import OrderBook

    offers = OrderBook.from_arrays(np.arange(5), np.zeros(5, int), [10.0, 20, 30, 40, 50],
                                   -np.ones(5), 1)
    s = SupplyCurve(offers, np.array([2.5]), -500.0, 4000.0)
    near = s.near(np.array([-0.2]), np.array([0.2]))
    np.testing.assert_allclose(near.offers.price, [20.0, 30.0, 40.0])
    np.testing.assert_allclose(near.demand_mwh, [1.5])
    for extra in (-0.2, 0.0, 0.2):
        assert s.cost(np.array([extra])) - near.cost(np.array([extra])) == pytest.approx(10.0)
    assert len(s.near(np.array([-0.6]), np.array([1.6])).offers) == 5


def test_every_party_answers_the_intraday_gate_itself():
    """The intraday gate asks each party through the AgentSet (`parties.map("id_orders")`):
    every party class answers with its own method, and a party that does not trade intraday
    says so."""
    from types import SimpleNamespace

    from agents.aggregator import Aggregator
    from agents.brp import Brp, SystemLoadBrp
    from agents.party import Party
    from agents.producer import Producer

    for cls in (Brp, SystemLoadBrp, Aggregator, Producer):
        assert cls.id_orders is not Party.id_orders, cls.__name__
    with pytest.raises(NotImplementedError, match="does not trade intraday"):
        Party.id_orders(SimpleNamespace(), None)


@pytest.mark.parametrize(("before", "excess", "again"), [
    (10.0, 4.0, True),    # relieved 60 %: buy again
    (10.0, 9.0, False),   # relieved 10 %, less than min_relief: stop
    (10.0, 7.9, True),    # relieved 21 %
    (0.0, 0.0, False),    # nothing left to relieve
])
def test_the_dso_buys_again_only_where_the_last_round_relieved_enough(before, excess, again):
    from types import SimpleNamespace

    from agents.dso import Dso

    dso = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(
        markets=SimpleNamespace(lfm=SimpleNamespace(min_relief=0.2)))))
    assert Dso.buys_again(dso, before, excess) is again

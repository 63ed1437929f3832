"""Flexibility offers deliverable together (issue 15, item 5).

An aggregator's offers of one round may be bought in any part, at any of the round's MTUs,
by any buyer. They are deliverable together when every such purchase, on top of the
commitments made before, leaves its pool a re-plan that honours all of them, with the
rebound at the MTUs nothing was bought at and inside the grid headroom a coupled scheme holds
the re-plan to. The hand cases state their numbers; the property test buys random parts of
random offer sets of random pools and asks the aggregator's own re-plan LP whether it misses
anything."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.aggregator import Aggregator
from agents.deliverable import OfferRound, ahead, budget
from agents.pool import Pool
from agents.prosumer import Envelope
from agents.strategies.truthful import schedule_pool
from environment.markets.lfm import GridLimits, relief_request
from experiments.run import run_scenario

T, DT = 12, 1.0


def _envelope(rng, pmax: float, band: float, t_n: int = T) -> Envelope:
    base = rng.uniform(0, pmax, t_n) * (rng.uniform(size=t_n) < 0.7)
    cum = np.cumsum(base) * DT
    lower, upper = np.maximum(cum - band, 0.0), cum + band
    lower[-1] = upper[-1] = cum[-1]
    one = Envelope(lower[None], upper[None], np.full((1, t_n), pmax)).tightened(DT)
    return one.pooled(np.array([True]))


def _pool(rng) -> Pool:
    e = rng.uniform(0.5, 4.0)
    return Pool(e, e / rng.uniform(1, 4), e * rng.uniform(0, 1), rng.uniform(0.8, 1.0),
                _envelope(rng, rng.uniform(0.1, 1.0), rng.uniform(0, 2)),
                _envelope(rng, rng.uniform(0.1, 1.0), rng.uniform(0, 2)))


def _seller(pool: Pool, plan: dict, fixed: np.ndarray | None = None,
            target: np.ndarray | None = None):
    """An aggregator with one pool at location 0 (what `deliverable` reads of it)."""
    t_n = len(plan["ch"])
    committed = {} if fixed is None else {0: (fixed, target)}
    return SimpleNamespace(plans={0: plan}, pools={0: pool}, committed=committed, n_mtu=t_n)


def _net(plan: dict) -> np.ndarray:
    return plan["ch"] - plan["dis"] + plan["ev"] + plan["hp"]


def _replan(pool, prices, net, fixed, target, room):
    """The re-plan after a purchase: committed MTUs at their targets, the rest within the
    grid headroom `room` (T, 1, 2) around the plan `net` (`flexstage.rebound_bounds`)."""
    hi = np.where(fixed, target, np.inf if room is None else net + room[:, 0, 1])
    lo = np.where(fixed, target, -np.inf if room is None else net - room[:, 0, 0])
    return schedule_pool(pool, prices, DT, 0.0, hi, lo, warm=False)


def _idle_battery(t_n: int, mwh: float, mw: float, soc: float, eta: float) -> tuple:
    zero = Envelope(np.zeros(t_n), np.zeros(t_n), np.zeros(t_n))
    pool = Pool(mwh, mw, soc, eta, zero, zero)
    prices = np.full(t_n, 50.0)
    plan = schedule_pool(pool, prices, DT, 5.0, warm=False)
    assert np.abs(plan["ch"]).sum() + np.abs(plan["dis"]).sum() == pytest.approx(0.0)
    return pool, prices, plan


def test_a_battery_pool_offers_its_energy_room_once_over_two_mtus_and_its_rebound_headroom():
    """An idle battery pool (4 MWh, 2 MW, eta 1, 1 MWh charged, which it must end the day
    with) over six one-hour MTUs; the DSO may buy up to 0.6 MW less consumption at each of
    MTUs 1 and 2 (its request), MTU 0 is no longer tradable (the round's first MTU is 1),
    MTUs 3-5 are free for the rebound.

    - Without grid headroom: discharging at MTUs 1 and 2 draws on the same 1 MWh, so
      together they offer 1 MWh, the earliest first: 0.6 MW at MTU 1, 0.4 at MTU 2 (not
      0.6 + 0.6, what each could do alone).
    - With 0.25 MW of headroom for more consumption at each free MTU (a coupled scheme holds
      the re-plan to it), the charge must be made up within 3 x 0.25 = 0.75 MWh: 0.6 MW at
      MTU 1 and 0.15 at MTU 2.

    No direction is requested down, so nothing is offered down. Buying everything, or any
    part, the re-plan misses nothing; buying 0.01 MW more at MTU 2 is missed."""
    t_n = 6
    pool, prices, plan = _idle_battery(t_n, 4.0, 2.0, 1.0, 1.0)
    request = np.zeros((t_n, 1, 2))
    request[[1, 2], 0, 0] = 0.6
    window = request.any((1, 2))
    seller = _seller(pool, plan)
    ctx = SimpleNamespace(dt_h=DT)
    room = np.full((t_n, 1, 2), np.inf)
    room[3:, 0, 1] = 0.25
    for grid, expected in ((None, [0, 0.6, 0.4, 0, 0, 0]), (room, [0, 0.6, 0.15, 0, 0, 0])):
        up, down = Aggregator.deliverable(seller, ctx, window, 1, grid, request)[0]
        np.testing.assert_allclose(up, expected, atol=1e-6)
        np.testing.assert_allclose(down, 0.0, atol=1e-6)
        net = _net(plan)
        fixed = np.arange(t_n) < 3          # MTU 0 is past, MTUs 1-2 bought
        for share in ((1.0, 1.0), (0.3, 1.0), (1.0, 0.0), (0.5, 0.7)):
            bought = up * np.array([0, share[0], share[1], 0, 0, 0])
            res = _replan(pool, prices, net, fixed, net - bought, grid)
            assert res["missed"].sum() < 1e-6, share
        over = up + np.array([0, 0, 0.01, 0, 0, 0])
        assert _replan(pool, prices, net, fixed, net - over, grid)["missed"].sum() > 1e-3


def test_without_a_request_cap_the_earliest_mtu_takes_the_room_and_earlier_free_mtus_help():
    """The same battery with no cap (the platform may buy anything at MTUs 1 and 2): MTU 1
    takes all 1 MWh of charge (2 MW power would allow 2 MWh). With MTU 0 free too (the
    round starts at MTU 0), the battery can charge there first, up to 2 MW for an hour: 2
    MWh more at the offers' MTUs (the nearest offer first; its charge stays below 4 MWh,
    1 + 2 = 3), so MTU 1 offers its 2 MW in full and MTU 2 the 1 MWh left of the
    pre-charge: 2 + 1 = 3 MWh = 1 MWh held plus 2 charged ahead."""
    t_n = 6
    pool, prices, plan = _idle_battery(t_n, 4.0, 2.0, 1.0, 1.0)
    window = np.isin(np.arange(t_n), [1, 2])
    seller = _seller(pool, plan)
    ctx = SimpleNamespace(dt_h=DT)
    up, _ = Aggregator.deliverable(seller, ctx, window, 1)[0]
    np.testing.assert_allclose(up, [0, 1.0, 0, 0, 0, 0], atol=1e-6)
    up, _ = Aggregator.deliverable(seller, ctx, window, 0)[0]
    np.testing.assert_allclose(up, [0, 2.0, 1.0, 0, 0, 0], atol=1e-6)
    net = _net(plan)
    fixed = np.isin(np.arange(t_n), [1, 2])
    assert _replan(pool, prices, net, fixed, net - up, None)["missed"].sum() < 1e-6


def test_everything_bought_is_the_worst_case_of_the_budget():
    """`budget` by hand: a state that may fall 2 MWh, offers at MTUs 1 and 2 (1.5 MW each,
    one-hour MTUs), a free MTU 3 making up 1 MW, MTU 4 fixed, and the day ending on the plan
    (span 0 at its end). The bound at the end of MTUs 1-2 is what MTU 3 can make up, 1 MWh,
    so the offers are 1.0 at MTU 1 and nothing at MTU 2; the state is 1 MWh below the plan
    at the end of MTUs 1 and 2 and back on it after MTU 3, which uses 1 MW."""
    power = np.array([0.0, 1.5, 1.5, 0.0, 0.0])
    span = np.array([2.0, 2.0, 2.0, 2.0, 0.0])
    drain = np.array([0.0, 0.0, 0.0, 1.0, 0.0])
    window = np.array([False, True, True, False, False])
    free = np.array([False, False, False, True, False])
    offer, used, path = np.zeros(5), np.zeros(5), np.zeros(5)
    budget(power, span, drain, np.full(5, np.inf), window, free, 1.0, 1.0, 1.0, offer, used,
           path)
    np.testing.assert_allclose(offer, [0, 1.0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(used, [0, 0, 0, 1.0, 0], atol=1e-6)
    np.testing.assert_allclose(path, [0, 1.0, 1.0, 0, 0], atol=1e-6)
    # a free MTU 0 before the window (1 MW spare) can take the rebound ahead of the offers,
    # raising the state from its end until the offer's MTU within a room of 0.6 MWh: MTU 1's
    # remaining 0.5 MW, then 0.1 MW at MTU 2 (the room left at MTU 0)
    free[0] = True
    rise = np.zeros(5)
    ahead(power, np.full(5, 0.6), np.array([1.0, 0, 0, 1.0, 0]), np.full(5, np.inf), window,
          free, 1.0, 1.0, 1.0, offer, used, rise)
    np.testing.assert_allclose(offer, [0, 1.5, 0.1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(rise, [0.6, 0.1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(used, [0.6, 0, 0, 1.0, 0], atol=1e-6)


@pytest.mark.parametrize("eta", [1.0, 0.9])
def test_efficiency_is_counted_at_its_worst(eta):
    """A battery moving 1 MWh of consumption away loses up to 1/eta of charge and gets back at
    least eta per MWh moved back: with 1 MWh of charge to lose and a free MTU of 2 MW, the
    offer is eta MW for an hour (1 MWh of charge) and the rebound uses 1/eta MW (restoring
    eta / eta = 1 MWh)."""
    offer, used, path = np.zeros(3), np.zeros(3), np.zeros(3)
    budget(np.array([5.0, 0, 0]), np.array([1.0, 1.0, 0.0]), np.array([0, 2.0, 0]),
           np.full(3, np.inf), np.array([True, False, False]), np.array([False, True, False]),
           1 / eta, eta, 1.0, offer, used, path)
    assert offer[0] == pytest.approx(eta, abs=1e-6)
    assert used[1] == pytest.approx(1 / eta, abs=1e-6)


def test_a_lossy_battery_offers_exactly_what_its_charge_can_deliver():
    """An idle battery (2 MWh, 2 MW, eta 0.8, 1 MWh charged, which it must end the day with)
    over three one-hour MTUs offers at MTU 0 only. Consuming 1 MWh less by discharging costs
    1/eta = 1.25 MWh of charge, so the 1 MWh it holds covers 0.8 MW for the hour; the next
    two hours recharge it. Bought in full the re-plan misses nothing; 1 % more is missed.
    Consuming more is counted at the same worst case (a plan that discharges would gain
    1/eta of charge per MWh by discharging less): 0.8 MW down, where this idle battery,
    which can only charge more (eta per MWh), could take 1/eta = 1.25 MW."""
    pool, prices, plan = _idle_battery(3, 2.0, 2.0, 1.0, 0.8)
    seller = _seller(pool, plan)
    up, down = Aggregator.deliverable(seller, SimpleNamespace(dt_h=DT),
                                      np.array([True, False, False]))[0]
    np.testing.assert_allclose(up, [0.8, 0, 0], atol=1e-6)
    np.testing.assert_allclose(down, [0.8, 0, 0], atol=1e-6)
    fixed = np.array([True, False, False])
    for target, missed in ((-0.8, False), (-0.808, True), (0.8, False), (1.25, False)):
        at = np.array([target, 0.0, 0.0])
        res = schedule_pool(pool, prices, DT, 5.0, np.where(fixed, at, np.inf),
                            np.where(fixed, at, -np.inf), warm=False)
        assert (res["missed"].sum() > 1e-6) == missed, target


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans(), st.booleans(), st.booleans())
def test_any_part_of_an_offer_set_is_delivered_with_earlier_commitments(seed, gridded, earlier,
                                                                         capped):
    """Random pools, plans and windows; with or without grid headroom for the rebound, an
    earlier commitment and a cap per MTU; random parts of the offers bought (both directions
    at once where a window MTU has both): the pool's re-plan misses nothing (1e-6 MW)."""
    rng = np.random.default_rng(seed)
    pool = _pool(rng)
    prices = rng.uniform(10, 100, T)
    plan = schedule_pool(pool, prices, DT, 5.0, warm=False)
    net = _net(plan)
    fixed, target = np.zeros(T, bool), net.copy()
    ctx = SimpleNamespace(dt_h=DT)
    if earlier:  # an earlier round sold a part of what the plan could do at two MTUs
        first = rng.choice(T, 2, replace=False)
        up0, _ = Aggregator.deliverable(_seller(pool, plan), ctx,
                                        np.isin(np.arange(T), first))[0]
        fixed[first] = True
        target[first] = net[first] - up0[first] * rng.uniform(0, 1, 2)
        plan = _replan(pool, prices, net, fixed, target, None)
        assert plan["missed"].sum() < 1e-6
        net = _net(plan)
    room = rng.uniform(0, 0.5, (T, 1, 2)) if gridded else None
    window = rng.uniform(size=T) < 0.4
    cap = rng.uniform(0, 0.5, (T, 1, 2)) if capped else None
    seller = _seller(pool, plan, fixed, target)
    up, down = Aggregator.deliverable(seller, ctx, window, room=room, cap=cap)[0]
    assert (up[~window] == 0).all() and (down[~window] == 0).all()
    assert (up >= 0).all() and (down >= 0).all()
    if capped:
        assert (up <= cap[:, 0, 0] + 1e-12).all() and (down <= cap[:, 0, 1] + 1e-12).all()
    for _ in range(3):
        bought_up = up * rng.uniform(0, 1, T) * (rng.uniform(size=T) < 0.8)
        bought_down = down * rng.uniform(0, 1, T) * (rng.uniform(size=T) < 0.5)
        moved = (bought_up > 0) | (bought_down > 0)
        res = _replan(pool, prices, net, fixed | moved,
                      np.where(moved, net - bought_up + bought_down, target), room)
        assert res["missed"].sum() < 1e-6


def test_the_round_offers_the_dso_request_and_holds_the_rest_for_the_tso():
    """`open_round` on the 6-MTU battery of the first case in a day-ahead round (every MTU
    tradable): the DSO requests 0.6 MW up at MTUs 1 and 2. MTU 1 takes 0.6 of the 1 MWh of
    charge, MTU 2 the 0.4 left and 0.2 more charged ahead at the free MTU 0 (2 MW spare):
    0.6 at both. Without the TSO holding, nothing is offered elsewhere; when it holds
    capacity in the round, every other MTU offers what it could do alone (up: 1 MWh of
    charge for an hour, 1 MW; down: its 2 MW), since nobody activates them in the round."""
    t_n = 6
    pool, _, plan = _idle_battery(t_n, 4.0, 2.0, 1.0, 1.0)
    agg = SimpleNamespace(**vars(_seller(pool, plan)), trades_energy=False)
    agg.deliverable = lambda *a: Aggregator.deliverable(agg, *a)
    agg._each_mtu = lambda ctx: Aggregator._each_mtu(agg, ctx)
    request = np.zeros((t_n, 1, 2))
    request[[1, 2], 0, 0] = 0.6
    ctx = SimpleNamespace(dt_h=DT, da_price=np.full(t_n, 50.0))
    Aggregator.open_round(agg, ctx, OfferRound(request))
    np.testing.assert_allclose(agg.round_boxes[0][0], [0, 0.6, 0.6, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(agg.round_boxes[0][1], 0.0, atol=1e-6)
    Aggregator.open_round(agg, ctx, OfferRound(request, hold=True))
    np.testing.assert_allclose(agg.round_boxes[0][0], [1.0, 0.6, 0.6, 1.0, 1.0, 1.0],
                               atol=1e-6)
    np.testing.assert_allclose(agg.round_boxes[0][1], [2.0, 0, 0, 2.0, 2.0, 2.0], atol=1e-6)


def test_the_dso_requests_at_each_location_what_alone_restores_the_limit_it_relieves_most():
    """One MTU, one branch (limit 10 MW) carrying 10.3 MW of consumption, two locations: one
    MW less consumption at location 0 lowers the flow by 1.0 MW, at location 1 by 0.5 MW
    (half its buses are upstream), so the request is 0.3 MW at location 0 and 0.6 MW at
    location 1, nothing for more consumption. A second MTU within its limit requests
    nothing, and neither does the first where the DSO does not act."""
    flow = np.zeros((2, 2, 2, 1))
    flow[:, 0, :, 0], flow[:, 1, :, 0] = 1.0, 0.5
    lim = GridLimits(base_p=np.array([[10.3], [9.0]]), base_q=np.zeros((2, 1)),
                     base_w=np.ones((2, 2)), s_max=np.array([10.0]),
                     v_min=np.array([0.5, 0.5]), v_max=np.array([1.5, 1.5]),
                     flow_per_mw=flow, w_per_mw=np.zeros((2, 2, 2, 2)),
                     branch_location=np.zeros(1, int), bus_location=np.zeros(2, int))
    req = relief_request(lim)
    np.testing.assert_allclose(req[0, :, 0], [0.3, 0.6], atol=1e-6)
    np.testing.assert_allclose(req[0, :, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(req[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(relief_request(lim, np.array([1])), 0.0, atol=1e-6)


@pytest.mark.parametrize("scheme", ["no_coupling", "conditional", "sequential"])
def test_the_dso_gets_what_it_bought_in_a_congested_january(scheme):
    """Two January days with 1,000 households on the default grid (congested most of the
    day): the aggregator sells the DSO flexibility and misses under 1 % of it (the full
    14-day figures: bench/lfm_delivery.py)."""
    from environment import settlement

    sold = missed = 0.0
    settle = settlement.settle_non_delivery

    def spy(model, ctx):
        nonlocal sold, missed
        for agg in model.aggregators:
            got = ctx.dso_sold.get(agg.unique_id)
            if got is not None:
                sold += got.sum() * ctx.dt_h
                missed += sum(np.minimum(agg.missed_mw(k), got[:, k].sum(1)).sum()
                              for k in agg.plans) * ctx.dt_h
        return settle(model, ctx)

    settlement.settle_non_delivery = spy
    try:
        run_scenario(days=2, overrides={"prosumers.0.count": 1000, "markets.coupling": scheme,
                                        "calendar.start": "2016-01-11"},
                     planner=False, write=False, figures=False)
    finally:
        settlement.settle_non_delivery = settle
    assert sold > 0.05
    assert missed < 0.01 * sold

"""Compensation that changes behaviour (issue 15, item 3): an independent aggregator prices what
it owes the supplier under the regime into its asks (`agents.strategies.compensation`), so the
same activation is bought under `none` and `central` and not under `corrected`.

The round, derived by hand. Two MTUs of 15 minutes; the day-ahead price is 40 EUR/MWh at MTU 0
and 100 at MTU 1. One branch carries 1.5 MW at MTU 0 against a limit of 1.0 (0.5 MW over) and
0.5 MW at MTU 1; location 0 sits behind it (sensitivity 1). The DSO's last resort costs 5,000
EUR/MWh.

* The independent aggregator A (owner 7; activation cost 20 EUR/MWh; every member with one
  supplier whose energy component is 110 EUR/MWh) offers 1 MW up and 1 MW down at location 0
  at both MTUs. What it moves at MTU 0 its devices make up at MTU 1 (the rebound; with two
  MTUs "the day's other MTUs" are MTU 1 alone).
* B (owner 8) offers 1 MW up at location 0 at MTU 0 for 70 EUR/MWh, its whole cost (a load it
  sheds, nothing made up later).

What A owes per MWh moved up at MTU t, o_t = w_t - w_(other MTU), w_t = T_t - [perimeter] *
lambda_t (T: the regime's transfer price):

* `none`: nothing paid, no perimeter: w = (0, 0), o_0 = 0, ask 20.
* `central`: T = lambda, perimeter corrected: w = (0, 0), o_0 = 0, ask 20. (It pays the
  settlement entity 40 per MWh moved at MTU 0 and sells that MWh at 40 in its perimeter, then
  gets 100 back for the rebound and buys it at 100: net nothing.)
* `corrected`: T = 110 both MTUs, perimeter corrected: w = (70, 10), o_0 = 60, ask 80. (The
  110 paid at MTU 0 comes back at MTU 1; what is left is selling the MWh at 40 and buying it
  back at 100. Bought at 20 it would lose 60 per MWh.)
* `contractual` (90): w = (50, -10); `regulated` (70): w = (30, -30); o_0 = 60 both: ask 80.

Its down asks at MTU 0 are 20 - o_0 (clipped at 0): they would worsen the branch and are not
bought; at MTU 1 nothing is violated and the DSO buys nothing.

The DSO needs 0.5 MW of relief at MTU 0, q = 0.5 MW x 0.25 h = 0.125 MWh:

* `none`, `central`: A's ask (20) is cheapest: A moves 0.5 MW. Its cost to society: the
  activation, 20 x 0.125 = 2.5 EUR, and the rebound, 0.125 MWh consumed at 100 instead of 40:
  60 x 0.125 = 7.5 EUR; together 10.0 EUR. The DSO pays 2.5.
* `corrected` (and the other flat prices): B's 70 is below A's 80: B sheds 0.5 MW, 70 x 0.125
  = 8.75 EUR, which the DSO pays.

Welfare (minus the cost to society of relieving the branch; nothing is left unresolved) is
-10.0 EUR under `none` and `central` and -8.75 under `corrected`: corrected is 1.25 EUR better.
Under `none` and `central` the 7.5 EUR of the rebound is somebody else's (the supplier's
imbalance; the settlement entity's transfer), so A's ask leaves it out and the DSO buys the
dearer relief."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from agents.strategies.compensation import owed_per_mwh
from agents.strategies.truthful import TruthfulAggregator
from environment.markets.lfm import FlexOffers, GridLimits, clear_lfm
from environment.scenario import Settlement

DT = 0.25
LAMBDA = np.array([40.0, 100.0])
COST_A, ASK_B, LAST_RESORT = 20.0, 70.0, 5000.0


def _aggregator(regime: str) -> SimpleNamespace:
    settlement = Settlement(compensation=regime)
    model = SimpleNamespace(fleet=SimpleNamespace(brp=np.zeros(4, int)),
                            brps=[SimpleNamespace(energy_component=110.0)],
                            config=SimpleNamespace(settlement=settlement))
    return SimpleNamespace(kind="independent", corrected=settlement.corrects_perimeter,
                           activation_cost=COST_A, model=model, members=np.ones(4, bool))


def _limits() -> GridLimits:
    flow = np.ones((2, 1, 2, 1))
    return GridLimits(base_p=np.array([[1.5], [0.5]]), base_q=np.zeros((2, 1)),
                      base_w=np.ones((2, 2)), s_max=np.array([1.0]),
                      v_min=np.array([0.5, 0.5]), v_max=np.array([1.5, 1.5]),
                      flow_per_mw=flow, w_per_mw=np.zeros((2, 1, 2, 2)),
                      branch_location=np.zeros(1, int), bus_location=np.zeros(2, int))


def _round(regime: str):
    """A's offers priced by the truthful strategy under `regime`, then B's; the DSO clears."""
    agg, ctx, strategy = _aggregator(regime), SimpleNamespace(da_price=LAMBDA), \
        TruthfulAggregator()
    parts = [FlexOffers(np.full(2, 7), np.zeros(2, int), np.arange(2), np.full(2, d),
                        np.ones(2), strategy.flex_prices(agg, ctx, d, LAMBDA, location=0))
             for d in (1, -1)]
    parts.append(FlexOffers(np.array([8]), np.array([0]), np.array([0]), np.array([1]),
                            np.array([1.0]), np.array([ASK_B])))
    offers = FlexOffers.concat(parts)
    return offers, clear_lfm(offers, _limits(), DT, "pay_as_bid",
                             unresolved_cost=LAST_RESORT)


def _welfare(offers: FlexOffers, res) -> float:
    """Minus the cost to society of the relief: A's activation cost and its rebound's energy
    (made up at the other MTU), B's cost, the last resort's."""
    mwh = res.accepted_mw * DT
    a = offers.owner == 7
    rebound = offers.direction * (LAMBDA[1 - offers.mtu] - LAMBDA[offers.mtu])
    cost = np.where(a, COST_A + rebound, ASK_B)
    return -float((mwh * cost).sum()) - res.unresolved_mw * DT * LAST_RESORT


@pytest.mark.parametrize("regime, ask_up", [("none", 20.0), ("central", 20.0),
                                            ("corrected", 80.0), ("contractual", 80.0),
                                            ("regulated", 80.0)])
def test_asks_price_in_what_the_regime_owes(regime, ask_up):
    """A's up ask at MTU 0 (module docstring); at MTU 1 the shift runs the other way (energy
    moved out at 100, made up at 40): o_1 = -60 and the ask is clipped at 0 where flat prices
    apply; the down asks mirror the up ones."""
    offers, _ = _round(regime)
    up0 = (offers.owner == 7) & (offers.direction == 1) & (offers.mtu == 0)
    assert offers.price[up0][0] == pytest.approx(ask_up, abs=1e-9)
    o = owed_per_mwh(Settlement(compensation=regime), 110.0,
                     Settlement(compensation=regime).corrects_perimeter, LAMBDA)
    np.testing.assert_allclose(o, [ask_up - COST_A, COST_A - ask_up], atol=1e-9)
    # by hand: up at MTU 0 and down at MTU 1 ask `ask_up`; the other two 20 - (ask_up - 20),
    # clipped at 0 (none and central: 20 each; the flat prices: 80 and 0)
    other = max(40.0 - ask_up, 0.0)
    for mtu, direction, ask in ((0, 1, ask_up), (0, -1, other), (1, 1, other), (1, -1, ask_up)):
        sel = (offers.owner == 7) & (offers.mtu == mtu) & (offers.direction == direction)
        assert offers.price[sel][0] == pytest.approx(ask, abs=1e-9), (mtu, direction)


def test_activation_happens_under_none_and_central_not_under_corrected():
    """The designed case (module docstring): A's 0.5 MW at MTU 0 is bought under `none` and
    `central`, B's under `corrected`; welfare -10.0, -10.0 and -8.75 EUR: corrected is 1.25
    EUR better, the DSO pays 2.5 EUR under `none` and 8.75 under `corrected`."""
    out = {r: _round(r) for r in ("none", "central", "corrected", "contractual", "regulated")}
    a_up0 = lambda o: (o.owner == 7) & (o.direction == 1) & (o.mtu == 0)  # noqa: E731
    for regime in ("none", "central"):
        offers, res = out[regime]
        np.testing.assert_allclose(res.accepted_mw[a_up0(offers)], [0.5], atol=1e-9)
        np.testing.assert_allclose(res.accepted_mw[offers.owner == 8], [0.0], atol=1e-9)
        assert float((res.accepted_mw * res.paid_price).sum() * DT) == pytest.approx(2.5,
                                                                                   abs=1e-6)
    for regime in ("corrected", "contractual", "regulated"):
        offers, res = out[regime]
        np.testing.assert_allclose(res.accepted_mw[offers.owner == 7], 0.0, atol=1e-9)
        np.testing.assert_allclose(res.accepted_mw[offers.owner == 8], [0.5], atol=1e-9)
        assert float((res.accepted_mw * res.paid_price).sum() * DT) == pytest.approx(8.75,
                                                                                    abs=1e-6)
    welfare = {r: _welfare(*out[r]) for r in out}
    assert welfare["none"] == pytest.approx(-10.0, abs=1e-6)
    assert welfare["central"] == pytest.approx(welfare["none"], abs=1e-6)
    assert welfare["corrected"] == pytest.approx(-8.75, abs=1e-6)
    assert welfare["corrected"] - welfare["none"] == pytest.approx(1.25, abs=1e-6)


def test_an_ask_above_the_cap_is_withheld():
    """With an LFM price cap of 50 EUR/MWh and no B, A's corrected ask (80) would lose money
    at any price the DSO may pay: nothing is bought from it and the 0.125 MWh are left to the
    last resort; under `none` its 20 is bought."""
    for regime, bought in (("none", 0.5), ("corrected", 0.0)):
        offers, _ = _round(regime)
        a = offers.take(offers.owner == 7)
        res = clear_lfm(a, _limits(), DT, "pay_as_bid", price_cap=50.0,
                        unresolved_cost=LAST_RESORT)
        up0 = (a.direction == 1) & (a.mtu == 0)
        np.testing.assert_allclose(res.accepted_mw[up0], [bought], atol=1e-9)
        assert res.unresolved_mw == pytest.approx(0.5 - bought, abs=1e-9)


def test_balancing_asks_follow_the_perimeter_and_the_regime():
    """Producers' convention (EUR/MWh asked for up, paid for down): lambda_t (the energy made
    up later, where the perimeter is its own) + direction x 20 + o_t. Under `none` the energy
    is the supplier's: +-20 alone; under `central` lambda_t +- 20 as before; under
    `corrected` at MTU 0: 40 + 60 +- 20 = 120 / 80, i.e. the later MTU's price +- 20. In real
    time the rebound can only come later: at the last MTU nothing is netted and it owes the
    whole w = 110 - 100 = 10: 100 + 10 +- 20 = 130 / 90."""
    strategy, ctx = TruthfulAggregator(), SimpleNamespace(da_price=LAMBDA)
    for regime, up, down in (("none", [20, 20], [-20, -20]), ("central", [60, 120], [20, 80]),
                             ("corrected", [120, 130], [80, 90])):
        agg = _aggregator(regime)
        np.testing.assert_allclose(strategy.balancing_prices(agg, ctx, 1, LAMBDA), up)
        np.testing.assert_allclose(strategy.balancing_prices(agg, ctx, -1, LAMBDA), down)


def test_real_time_nets_the_rebound_over_later_mtus_only():
    """Four MTUs at 40, 100, 70 and 10 EUR/MWh under `corrected` (110): w = 110 - lambda =
    (70, 10, 40, 100). Over the day's other MTUs o_0 = 70 - 50 = 20; in real time the rebound
    of MTU 0 falls in MTUs 1-3 (the same 20), of MTU 1 in MTUs 2-3: 10 - 70 = -60, of MTU 2
    in MTU 3: 40 - 100 = -60, and the last MTU nets nothing: it owes w = 100."""
    s = Settlement(compensation="corrected")
    lam = np.array([40.0, 100.0, 70.0, 10.0])
    np.testing.assert_allclose(owed_per_mwh(s, 110.0, True, lam, later=True),
                               [20.0, -60.0, -60.0, 100.0], atol=1e-9)
    np.testing.assert_allclose(owed_per_mwh(s, 110.0, True, lam),
                               [70 - 50, 10 - 70, 40 - 60, 100 - 40], atol=1e-9)
    np.testing.assert_allclose(owed_per_mwh(Settlement(compensation="central"), 110.0, True,
                                            lam, later=True), 0.0, atol=1e-9)

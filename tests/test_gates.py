"""The coupling schemes as declared sequences of gates, on one hand-made round whose answer is
derived by hand for each scheme: who buys which MW, at which price, what is refused, sold twice
or counteracting, and the violation left.

The round: one MTU of 15 minutes, one branch carrying 1.5 MW against a limit of 1.0 (0.5 MW
over). Location 0 sits behind the branch (one MW less consumption there is one MW less flow),
location 1 does not (sensitivity 0). The aggregator (owner 7, with a balance perimeter) offers
1 MW each way at each location; at location 0 both ask 20 EUR/MWh, at location 1 both ask 25.
The reference energy price is 100 EUR/MWh. A supplier (owner 1) is long and asks the platform
to sell 0.2 MWh (0.8 MW for the quarter hour) at no less than 70 EUR/MWh (the energy price
less its imbalance premium of 30): a down offer (more consumption) buys energy at the energy
price less its ask, so location 0's at 80 and location 1's at 75. Where an order is partly
accepted its price is the market's.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from test_lfm import DT, one_branch

from environment.coupling import COUPLING, FlexRound, Gate, Scheme, cheapest_up_to, clear_round
from environment.markets.lfm import FlexOffers
from environment.markets.orders import OrderBook

LFM = SimpleNamespace(enabled=True, pricing="pay_as_bid", unresolved_cost_eur_mwh=5000.0)
PLATFORM = SimpleNamespace(enabled=True, brp_premium_eur_mwh=30.0)


def round_(reserve: float = 0.0, yellow_rule: str = "refuse_worsening") -> FlexRound:
    offers = FlexOffers(np.full(4, 7), np.array([0, 0, 1, 1]), np.zeros(4, int),
                        np.array([1, -1, 1, -1]), np.ones(4), np.array([20.0, 20.0, 25.0, 25.0]))
    requests = OrderBook.from_arrays(np.array([1]), [0], [70.0], [-0.2], 1)
    yellow = np.array([[True, False]])
    return FlexRound(one_branch(1.5, 1.0, sens=(1.0, 0.0)), yellow, yellow, np.zeros((1, 2)),
                     offers, np.array([100.0]), requests, DT, LFM, PLATFORM, yellow_rule,
                     reserve, frozenset({7}), 4000.0)


def test_no_coupling_sells_twice_and_counteracts():
    """Two markets on the same flexibility. The DSO buys 0.5 MW of the up offer at location 0
    (20 EUR/MWh, pay-as-bid). The platform, seeing every offer, sells the supplier's 0.2 MWh to
    the dearest buyer, location 0's down offer (80 > 75), which takes 0.8 of its 1 MW: more
    consumption behind the congested branch, at its 80 EUR/MWh. It counteracts 0.5 MW of the
    DSO's relief, and the flow ends at 1.5 - 0.5 + 0.8 = 1.8 MW: 0.8 MW over, worse than
    before the round. (Nothing is sold twice here: the DSO and the platform took different
    offers; `test_no_coupling_sells_one_mw_twice` has that.)"""
    out = clear_round(COUPLING["no_coupling"], round_())
    np.testing.assert_allclose(out.dso.accepted_mw, [0.5, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(out.dso.paid_price[0], 20.0)
    np.testing.assert_allclose(out.platform_accepted_mw, [0, 0.8, 0, 0], atol=1e-9)
    assert out.platform_price[0] == pytest.approx(80.0)
    np.testing.assert_allclose(out.request_accepted_mwh, [-0.2])
    assert out.counteracting_mw[0, 0] == pytest.approx(0.5)
    assert out.double_sold_mw.sum() == pytest.approx(0.0)
    assert out.refused_mw == 0.0


def test_conditional_refuses_the_trade_that_worsens_a_yellow_location():
    """One market: the DSO first (the same 0.5 MW at 20), then the platform at this YELLOW MTU
    only within the headroom the DSO left: after its purchase the branch carries exactly its
    limit, so location 0 may take no more consumption. Location 0's down offer (1 MW) is
    refused, the up offers stay (0.5 MW left at location 0, 1 MW at location 1: they relieve),
    and location 1's down offer (no effect on the branch) is allowed: the supplier sells its
    0.2 MWh there, 0.8 of its 1 MW, at its 75 EUR/MWh. Refused: 1.0 MW; nothing counteracts;
    the flow ends at the limit, 1.0 MW."""
    out = clear_round(COUPLING["conditional"], round_())
    np.testing.assert_allclose(out.dso.accepted_mw, [0.5, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(out.platform_offers.mw, [0.5, 0.0, 1.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(out.platform_accepted_mw, [0, 0, 0, 0.8], atol=1e-9)
    assert out.platform_price[0] == pytest.approx(75.0)
    assert out.refused_mw == pytest.approx(1.0)
    assert out.counteracting_mw.sum() == pytest.approx(0.0)


def test_conditional_pause_stops_trading_at_yellow_locations():
    """`dso.conditional_yellow: pause` (PARITY's explicit-LFM table): no platform trading at a
    YELLOW location at all: location 0's remaining 0.5 MW up and 1 MW down are both kept out,
    refused 1.5 MW; the supplier still sells at location 1 at 75."""
    out = clear_round(COUPLING["conditional"], round_(yellow_rule="pause"))
    np.testing.assert_allclose(out.platform_offers.mw, [0.0, 0.0, 1.0, 1.0], atol=1e-9)
    assert out.refused_mw == pytest.approx(1.5)
    assert out.platform_price[0] == pytest.approx(75.0)


def test_sequential_holds_the_tso_reserve_before_market_use():
    """The DSO first (0.5 MW at 20), then the TSO holds its reserve of 0.4 MW each way from
    what is left within the headroom (up: location 0's remaining 0.5 MW at 20 is cheaper than
    location 1's at 25, so 0.4 MW of it; down: location 0's is refused by the headroom, so 0.4
    MW of location 1's), then the platform gets the rest within the headroom: location 1's
    0.6 MW down. The supplier can sell only 0.6 MW x 0.25 h = 0.15 MWh of its 0.2; its order
    is the marginal one (partly accepted), so the price is its own 70 EUR/MWh."""
    out = clear_round(COUPLING["sequential"], round_(reserve=0.4))
    np.testing.assert_allclose(out.tso_offers.mw, [0.4, 0.0, 0.0, 0.4], atol=1e-9)
    np.testing.assert_allclose(out.platform_offers.mw, [0.1, 0.0, 1.0, 0.6], atol=1e-9)
    np.testing.assert_allclose(out.platform_accepted_mw, [0, 0, 0, 0.6], atol=1e-9)
    np.testing.assert_allclose(out.request_accepted_mwh, [-0.15])
    assert out.platform_price[0] == pytest.approx(70.0)
    assert out.refused_mw == pytest.approx(1.0)
    assert out.counteracting_mw.sum() == pytest.approx(0.0)


def test_no_coupling_sells_one_mw_twice():
    """The supplier short instead, buying 0.2 MWh at up to 130: the platform's cheapest seller
    is location 0's up offer (100 + 20 = 120), 0.8 of its 1 MW, while the DSO bought 0.5 MW of
    the same offer: 1.3 MW sold of 1 MW offered, 0.3 MW twice. Under conditional coupling the
    platform gets only the 0.5 MW the DSO left of it (and location 1's 0.3): nothing twice."""
    def short(r):
        r.requests = OrderBook.from_arrays(np.array([1]), [0], [130.0], [0.2], 1)
        return r

    out = clear_round(COUPLING["no_coupling"], short(round_()))
    np.testing.assert_allclose(out.platform_accepted_mw, [0.8, 0, 0, 0], atol=1e-9)
    assert out.double_sold_mw[0, 0] == pytest.approx(0.3)
    cond = clear_round(COUPLING["conditional"], short(round_()))
    np.testing.assert_allclose(cond.platform_accepted_mw, [0.5, 0, 0.3, 0], atol=1e-9)
    assert cond.double_sold_mw.sum() == pytest.approx(0.0)


def test_a_new_scheme_is_a_new_declaration():
    """A scheme that lets the platform clear first on every offer and the DSO after it, on
    what is left (not one of the seeds': the engine does not care): the platform takes 0.8 MW
    of location 0's down offer (80), and the DSO, clearing after it, needs 0.5 + 0.8 = 1.3
    MW of relief behind the branch, where it has location 0's up offer (1 MW at 20): 0.3 MW
    stays unresolved."""
    platform_first = Scheme("platform_first", (Gate("platform", "all"),
                                               Gate("dso", "remaining")), operator="test")
    out = clear_round(platform_first, round_())
    np.testing.assert_allclose(out.platform_accepted_mw, [0, 0.8, 0, 0], atol=1e-9)
    np.testing.assert_allclose(out.dso.accepted_mw[0], 1.0, atol=1e-9)
    assert out.dso.unresolved_mw == pytest.approx(0.3, abs=1e-9)
    assert "platform_first" not in COUPLING
    assert "1. BRPs and aggregators trade energy from every offer" in platform_first.describe()
    with pytest.raises(ValueError, match="unknown market"):
        Gate("lem")


def test_cheapest_first_up_to_the_need():
    """Per MTU and direction: MTU 0 up offers 0.3 MW at 30, 20 and 25: a need of 0.4 takes
    0.3 at 20 and 0.1 at 25; MTU 1 up, 0.5 at 10: 0.4 of it; MTU 0 down, 0.2 at 5: all."""
    o = FlexOffers(np.arange(5), np.zeros(5, int), np.array([0, 0, 0, 1, 0]),
                   np.array([1, 1, 1, 1, -1]), np.array([0.3, 0.3, 0.3, 0.5, 0.2]),
                   np.array([30.0, 20.0, 25.0, 10.0, 5.0]))
    np.testing.assert_allclose(cheapest_up_to(o, 0.4), [0.0, 0.3, 0.1, 0.4, 0.2])


def test_readme_prints_every_scheme_from_its_declaration():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for scheme in COUPLING.values():
        assert scheme.describe() in readme, scheme.name

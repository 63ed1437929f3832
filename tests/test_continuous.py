"""Continuous intraday trading: price-time priority at the resting order's price, market
orders filled and killed, and properties against the uniform-price auction on random books."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from test_dayahead import CAP, FLOOR, book, order_books
from test_model import check_payments

from environment.markets.continuous import clear_continuous
from environment.markets.dayahead import clear_uniform_price
from environment.markets.orders import OrderBook
from environment.markets.registry import get_clearing
from experiments.run import run_scenario


def test_resting_order_sets_the_price_and_earlier_orders_fill_first():
    # two asks at 40 rest; a bid at 50 crosses and trades at their 40, the earlier ask first;
    # then a market buy takes what is left
    b = book([(0, 40, -10), (0, 40, -10), (0, 50, 12), (0, CAP, 5)])
    c = clear_continuous(b, 1, FLOOR, CAP)
    assert_allclose(c.accepted, [-10, -7, 12, 5])
    assert_allclose(c.order_price, [40, 40, 40, 40])
    assert_allclose(c.volume, [17])
    assert_allclose(c.price, [40])


def test_limit_orders_open_the_book_before_market_orders_arrive():
    # the market sell is listed first but arrives after the session's limit orders: it hits
    # the best bid (60, resting), then the next (55); its rest is cancelled, not rested
    b = book([(0, FLOOR, -15), (0, 55, 10), (0, 60, 3), (0, 70, -1)])
    c = clear_continuous(b, 1, FLOOR, CAP)
    assert_allclose(c.accepted, [-13, 10, 3, 0])
    assert_allclose(c.order_price, [(3 * 60 + 10 * 55) / 13, 55, 60, np.nan])
    assert_allclose(c.curtailed, [2])
    assert_allclose(c.price, [(3 * 60 + 10 * 55) / 13])


def test_arrival_order_matters_and_is_the_books():
    # a bid at 45 meets the ask at 40 if it comes before the bid at 60; the auction trades
    # one unit at the higher gains from trade either way
    rows = [(0, 40, -1), (0, 55, -1), (0, 45, 1), (0, 60, 1)]
    c = clear_continuous(book(rows), 1, FLOOR, CAP)
    assert_allclose(c.volume, [2])
    assert_allclose(c.welfare, [(45 - 40) + (60 - 55)])
    auction = clear_uniform_price(book(rows), 1, FLOOR, CAP)
    assert_allclose(auction.volume, [1])
    assert_allclose(auction.welfare, [60 - 40])
    c2 = clear_continuous(book([rows[0], rows[3], rows[1], rows[2]]), 1, FLOOR, CAP)
    assert_allclose(c2.volume, [1])
    assert_allclose(c2.welfare, [60 - 40])


@settings(max_examples=300, deadline=None)
@given(order_books(max_mtu=5, max_orders=30))
def test_trades_balance_respect_limits_and_never_beat_the_auction(case):
    b, n_mtu = case
    c = clear_continuous(b, n_mtu, FLOOR, CAP)
    limit = np.clip(b.price, FLOOR, CAP)
    buy, sell = b.volume > 0, b.volume < 0
    market = np.where(buy, limit >= CAP, limit <= FLOOR)
    assert (c.accepted * b.volume >= 0).all()
    assert (np.abs(c.accepted) <= np.abs(b.volume) + 1e-9).all()
    # every MWh bought was sold, in the same MTU, and paid as much as the seller received
    assert_allclose(np.bincount(b.mtu, c.accepted, minlength=n_mtu), 0.0, atol=1e-9)
    paid = np.where(c.accepted != 0, c.accepted * c.order_price, 0.0)
    assert_allclose(np.bincount(b.mtu, paid, minlength=n_mtu), 0.0, atol=1e-6 * CAP)
    assert_allclose(c.volume, np.bincount(b.mtu, np.clip(c.accepted, 0, None),
                                          minlength=n_mtu), atol=1e-9)
    # nobody trades beyond its limit price
    traded = c.accepted != 0
    assert (c.order_price[traded & buy] <= limit[traded & buy] + 1e-9).all()
    assert (c.order_price[traded & sell] >= limit[traded & sell] - 1e-9).all()
    # no crossing left among the limit orders that rest; market orders do not rest
    left = np.abs(b.volume) - np.abs(c.accepted) > 1e-9
    for t in range(n_mtu):
        here = (b.mtu == t) & left & ~market
        bids, asks = limit[here & buy], limit[here & sell]
        if bids.size and asks.size:
            assert bids.max() < asks.min()
    assert_allclose(c.curtailed, np.bincount(b.mtu, np.where(market, np.abs(b.volume)
                                                              - np.abs(c.accepted), 0.0),
                                             minlength=n_mtu), atol=1e-9)
    # the auction maximises gains from trade on the same book
    auction = clear_uniform_price(b, n_mtu, FLOOR, CAP)
    assert (c.welfare <= auction.welfare + 1e-6).all()


def test_self_trade_prevention():
    """Producer P's ask (0.1 MWh of headroom at its cost of 42) rests; its bid to buy back 0.3
    at 42 arrives and would cross it: it passes over its own ask and rests. Q's ask at 68
    rests behind P's. A supplier's market buy of 0.05 takes 0.05 from P's ask at 42: volume
    0.05, not 0.15."""
    b = OrderBook.from_arrays([1, 1, 3, 2], [0, 0, 0, 0], [42.0, 42.0, 68.0, CAP],
                              [-0.1, 0.3, -0.2, 0.05], 1)
    c = clear_continuous(b, 1, FLOOR, CAP)
    assert_allclose(c.accepted, [-0.05, 0.0, 0.0, 0.05], atol=1e-12)
    assert_allclose(c.volume, [0.05])
    assert_allclose(c.order_price[[0, 3]], [42.0, 42.0])


@settings(max_examples=300, deadline=None)
@given(order_books(max_mtu=3, max_orders=20), st.integers(1, 3))
def test_nobody_trades_with_itself_continuously(case, n_owners):
    """Random books whose orders belong to one, two or three owners: a single owner trades
    nothing; limit orders of different owners never rest crossed; trades balance."""
    b, n_mtu = case
    owners = np.arange(len(b)) % n_owners
    b = OrderBook.from_arrays(owners, b.mtu, b.price, b.volume, n_mtu)
    c = clear_continuous(b, n_mtu, FLOOR, CAP)
    assert_allclose(np.bincount(b.mtu, c.accepted, minlength=n_mtu), 0.0, atol=1e-9)
    if n_owners == 1:
        assert_allclose(c.volume, 0.0)
    limit = np.clip(b.price, FLOOR, CAP)
    buy, sell = b.volume > 0, b.volume < 0
    market = np.where(buy, limit >= CAP, limit <= FLOOR)
    left = (np.abs(b.volume) - np.abs(c.accepted) > 1e-9) & ~market
    for t in range(n_mtu):
        for o in range(n_owners):
            bids = limit[(b.mtu == t) & left & buy & (owners == o)]
            asks = limit[(b.mtu == t) & left & sell & (owners != o)]
            if bids.size and asks.size:
                assert bids.max() < asks.min()


def test_intraday_trades_continuously_when_the_scenario_says_so():
    """Two days of the default scenario with a continuous intraday market: each trade settled
    at its own price, the exchange and the ledger still net to zero, energy balances, and the
    random arrival order comes from the run's seed without changing its other draws."""
    assert get_clearing("continuous") is clear_continuous
    over = {"markets.intraday.clearing": "continuous"}

    def run():
        return run_scenario(days=2, overrides=over, planner=False, write=False, figures=False)

    r = run()
    s = r.summary
    check_payments(r)
    assert s["ledger"]["exchange_max_abs_eur_per_mtu"] < 1e-6
    led = r.tables["ledger"]
    intraday = led[led["market"] == "intraday"]
    assert len(intraday) and intraday["mwh"].sum() > 0
    # pay-as-bid: one MTU's intraday trades at more than one price
    assert (intraday.groupby("mtu")["price_eur_mwh"].nunique() > 1).any()
    ex = led[(led["payer"] == "id_exchange") | (led["payee"] == "id_exchange")]
    signed = np.where(ex["payee"] == "id_exchange", ex["eur"], -ex["eur"])
    assert np.abs(ex.assign(s=signed).groupby("mtu")["s"].sum()).max() < 1e-6
    series = r.tables["series"]
    assert (series["generation_mw"] - series["demand_mw"]).abs().max() < 1e-6
    again = run()
    assert led.equals(again.tables["ledger"])
    # the arrival order has a random stream of its own: the auction run of the same seed sees
    # the same forecast errors (the second day's price forecast depends on nothing else)
    auction = run_scenario(days=2, planner=False, write=False, figures=False)
    assert_allclose(series["da_price_forecast"], auction.tables["series"]["da_price_forecast"],
                    rtol=0, atol=0)

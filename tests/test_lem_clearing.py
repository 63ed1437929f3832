"""The LEM's clearing rules (environment/markets/lem.py): designed cases with hand-derived
answers and properties of the double auction on random books."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from environment.markets.lem import area_mtu, clear_double_auction
from environment.markets.orders import OrderBook
from environment.markets.registry import CLEARING


def test_two_prosumer_auction_price_and_volume():
    """A buyer bids 0.002 MWh at 330 EUR/MWh (retail 320 + full tariff 70 - local tariff 60),
    a seller asks 0.003 MWh at 80 EUR/MWh (its feed-in). The curves cross: volume = min(0.002,
    0.003) = 0.002 MWh, the buyer accepted in full, the seller partly. Price = midpoint of the
    lowest accepted bid and the highest accepted ask = (330 + 80) / 2 = 205 EUR/MWh."""
    book = OrderBook.from_arrays([0, 1], [0, 0], [330.0, 80.0], [0.002, -0.003], 1)
    c = clear_double_auction(book, 1)
    assert c.volume[0] == 0.002
    assert c.price[0] == 205.0
    np.testing.assert_allclose(c.accepted, [0.002, -0.002])


def test_no_cross_no_trade_and_tie_pro_rata():
    """Bid 50 below ask 80: nothing trades, price NaN. Two asks at the same 80 EUR/MWh
    (0.004 and 0.002 MWh) against one bid of 0.003 at 100: the tie rule shares the marginal
    level pro rata, 0.002 and 0.001; price (100 + 80) / 2 = 90."""
    c = clear_double_auction(OrderBook.from_arrays([0, 1], [0, 0], [50.0, 80.0],
                                                   [0.001, -0.001], 1), 1)
    assert c.volume[0] == 0.0 and np.isnan(c.price[0])
    c = clear_double_auction(OrderBook.from_arrays([0, 1, 2], [0, 0, 0], [100.0, 80.0, 80.0],
                                                   [0.003, -0.004, -0.002], 1), 1)
    np.testing.assert_allclose(c.accepted, [0.003, -0.002, -0.001])
    assert c.price[0] == 90.0


def test_registered_by_name():
    assert CLEARING["double_auction"] is clear_double_auction
    assert "continuous" in CLEARING


def test_areas_are_separate_markets():
    """A buyer in area 0 and a seller in area 1 do not meet: no trade in either."""
    mtu = area_mtu([0, 1], [0, 0], 1)
    c = clear_double_auction(OrderBook.from_arrays([0, 1], mtu, [300.0, 80.0],
                                                   [0.002, -0.002], 2), 2)
    assert c.volume.sum() == 0.0


orders = st.lists(st.tuples(st.integers(0, 2), st.floats(0, 400, allow_nan=False),
                            st.floats(0.0005, 0.01, allow_nan=False), st.booleans()),
                  min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(orders)
def test_auction_properties(rows):
    """Per MTU: volume is the largest feasible one (max over prices p of min(demand at p,
    supply at p)), no accepted buyer pays above its bid nor seller receives below its ask,
    bought equals sold."""
    mtu = np.array([r[0] for r in rows])
    price = np.array([r[1] for r in rows])
    vol = np.array([r[2] * (1 if r[3] else -1) for r in rows])
    book = OrderBook.from_arrays(np.arange(len(rows)), mtu, price, vol, 3)
    c = clear_double_auction(book, 3)
    acc = c.accepted
    for t in range(3):
        m = mtu == t
        bought, sold = acc[m & (acc > 0)].sum(), -acc[m & (acc < 0)].sum()
        assert abs(bought - sold) < 1e-9
        assert abs(c.volume[t] - bought) < 1e-9
        best = max([min(vol[m & (vol > 0) & (price >= p)].sum(),
                        -vol[m & (vol < 0) & (price <= p)].sum()) for p in price[m]],
                   default=0.0)
        assert abs(c.volume[t] - best) < 1e-9
        if c.volume[t] > 0:
            assert np.all(price[m & (acc > 0)] >= c.price[t] - 1e-9)
            assert np.all(price[m & (acc < 0)] <= c.price[t] + 1e-9)
        else:
            assert np.isnan(c.price[t])

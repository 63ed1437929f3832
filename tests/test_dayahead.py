"""Tests of the order book, the clearing registry and the uniform-price auction."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from environment.markets.dayahead import Clearing, clear_uniform_price
from environment.markets.lp_clearing import clear_lp
from environment.markets.orders import OrderBook
from environment.markets.registry import CLEARING, get_clearing, register_clearing

FLOOR, CAP = -500.0, 4000.0


def book(orders, n_mtu=1):
    """Build a book from (mtu, price, volume) rows; owners are the row numbers."""
    mtu, price, volume = zip(*orders, strict=True) if orders else ((), (), ())
    return OrderBook.from_arrays(
        owner=np.arange(len(orders)), mtu=mtu, price=price, volume=volume, n_mtu=n_mtu
    )


def clear(orders, n_mtu=1):
    return clear_uniform_price(book(orders, n_mtu), n_mtu, FLOOR, CAP)


# --- hand-computed auctions -------------------------------------------------------------------


def test_simple_cross_on_partial_sell_step():
    c = clear([(0, 50, 10), (0, 20, -5), (0, 30, -20)])
    assert isinstance(c, Clearing)
    assert_allclose(c.price, [30.0])
    assert_allclose(c.volume, [10.0])
    assert_allclose(c.accepted, [10.0, -5.0, -5.0])
    assert_allclose(c.welfare, [10 * 50 - 5 * 20 - 5 * 30])
    assert_allclose(c.curtailed, [0.0])


def test_partial_buy_step_sets_buy_price():
    c = clear([(0, 50, 10), (0, 40, 10), (0, 20, -15)])
    assert_allclose(c.price, [40.0])
    assert_allclose(c.accepted, [10.0, 5.0, -15.0])
    assert_allclose(c.welfare, [500 + 200 - 300])


def test_vertical_step_takes_midpoint_of_clearing_interval():
    # Both first steps end at 10 MWh; the next buy (25) is below the next sell (35),
    # so every price in [max(20, 25), min(50, 35)] = [25, 35] clears the market.
    c = clear([(0, 50, 10), (0, 25, 5), (0, 20, -10), (0, 35, -5)])
    assert_allclose(c.price, [30.0])
    assert_allclose(c.accepted, [10.0, 0.0, -10.0, 0.0])


def test_vertical_step_without_outside_orders_uses_accepted_prices():
    c = clear([(0, 50, 10), (0, 20, -10)])
    assert_allclose(c.price, [35.0])
    assert_allclose(c.volume, [10.0])


def test_equal_buy_and_sell_price_trades_maximum_volume():
    c = clear([(0, 30, 10), (0, 30, -4)])
    assert_allclose(c.price, [30.0])
    assert_allclose(c.accepted, [4.0, -4.0])


def test_pro_rata_among_tied_sells_and_buys():
    sells = clear([(0, 50, 4), (0, 20, -6), (0, 20, -2), (0, 25, -9)])
    assert_allclose(sells.accepted, [4.0, -3.0, -1.0, 0.0])
    assert_allclose(sells.price, [20.0])
    buys = clear([(0, 50, 6), (0, 50, 2), (0, 10, 9), (0, 20, -4)])
    assert_allclose(buys.accepted, [3.0, 1.0, 0.0, -4.0])
    assert_allclose(buys.price, [50.0])


def test_result_does_not_depend_on_order_position():
    rows = [(0, 50, 6), (1, 50, 2), (0, 20, -6), (0, 20, -2), (1, 10, -1), (0, 50, 1)]
    ref = clear(rows, n_mtu=2)
    perm = [3, 5, 1, 0, 4, 2]
    got = clear([rows[i] for i in perm], n_mtu=2)
    assert_allclose(got.accepted, ref.accepted[perm])
    assert_allclose(got.price, ref.price)
    assert_allclose(got.welfare, ref.welfare)


def test_inelastic_demand_above_supply_hits_cap_and_is_curtailed_pro_rata():
    # A bid above the cap is clipped to it and joins the price-taking level.
    c = clear([(0, CAP, 10), (0, 9999, 5), (0, 100, -4), (0, 200, -2)])
    assert_allclose(c.price, [CAP])
    assert_allclose(c.volume, [6.0])
    assert_allclose(c.accepted, [4.0, 2.0, -4.0, -2.0])
    assert_allclose(c.curtailed, [9.0])
    assert_allclose(c.welfare, [6 * CAP - 400 - 400])


def test_must_run_surplus_hits_floor_and_is_curtailed_pro_rata():
    c = clear([(0, FLOOR, -10), (0, -1000, -10), (0, 30, 5)])
    assert_allclose(c.price, [FLOOR])
    assert_allclose(c.accepted, [-2.5, -2.5, 5.0])
    assert_allclose(c.curtailed, [15.0])


def test_no_trade_empty_sides_and_empty_mtu():
    c = clear(
        [(0, 20, 5), (0, 30, -5), (1, 40, 1), (1, 60, 2), (2, 70, -1), (2, 30, -2)],
        n_mtu=4,
    )
    assert_allclose(c.price, [25.0, 60.0, 30.0, np.nan])
    assert_allclose(c.volume, 0.0)
    assert_allclose(c.accepted, 0.0)
    assert_allclose(c.welfare, 0.0)
    assert_allclose(c.curtailed, 0.0)


def test_zero_volume_orders_are_ignored():
    c = clear([(0, 50, 10), (0, 1, 0.0), (0, 20, -5), (0, 30, -20), (1, 99, 0.0)], n_mtu=2)
    assert_allclose(c.price, [30.0, np.nan])
    assert_allclose(c.accepted, [10.0, 0.0, -5.0, -5.0, 0.0])


def test_empty_book():
    c = clear_uniform_price(OrderBook.empty(), 3)
    assert np.isnan(c.price).all()
    assert c.accepted.shape == (0,)
    assert_allclose(c.volume, 0.0)


def test_independent_mtus_match_lp():
    rows = [(0, 50, 10), (0, 20, -5), (0, 30, -20), (1, CAP, 10), (1, 100, -4), (2, FLOOR, -3)]
    mo = clear(rows, n_mtu=3)
    lp = clear_lp(book(rows, 3), 3, FLOOR, CAP)
    assert_allclose(lp.accepted, mo.accepted, atol=1e-9)
    assert_allclose(lp.price[:2], mo.price[:2])
    assert_allclose(lp.curtailed, mo.curtailed, atol=1e-9)


# --- order book validation and registry -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"price": [1.0, np.nan]}, r"'price' has non-finite .* owner\(s\) \[8\]"),
        ({"volume": [1.0, np.inf]}, r"'volume' has non-finite .* owner\(s\) \[8\]"),
        ({"mtu": [0, 4]}, r"'mtu' has out-of-range .* owner\(s\) \[8\]"),
        ({"mtu": [-1, 0]}, r"'mtu' has negative .* owner\(s\) \[7\]"),
        ({"mtu": [0.5, 1]}, r"'mtu' must hold integers"),
        ({"owner": ["a", "b"]}, r"'owner' must be integer"),
    ],
)
def test_invalid_orders_name_field_and_owner(kwargs, pattern):
    args = {"owner": [7, 8], "mtu": [0, 1], "price": [1.0, 2.0], "volume": [1.0, -1.0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        OrderBook.from_arrays(**args, n_mtu=4)


def test_unequal_lengths_rejected():
    with pytest.raises(ValueError, match="equal length"):
        OrderBook.from_arrays(owner=[1, 2], mtu=[0], price=[1.0, 2.0], volume=[1.0, 2.0])


def test_clearing_validates_book_against_n_mtu():
    b = OrderBook(owner=[3], mtu=[5], price=[1.0], volume=[1.0])
    with pytest.raises(ValueError, match=r"mtu.*owner\(s\) \[3\]"):
        clear_uniform_price(b, 4)


def test_book_is_read_only_and_concat_keeps_order():
    a = OrderBook.from_arrays(owner=1, mtu=[0, 1], price=[10.0, 20.0], volume=[1.0, -1.0])
    b = OrderBook.from_arrays(owner=2, mtu=[1], price=[30.0], volume=[2.0])
    both = OrderBook.concat([a, b, OrderBook.empty()])
    assert both.owner.tolist() == [1, 1, 2]
    assert both.price.tolist() == [10.0, 20.0, 30.0]
    assert len(OrderBook.concat([])) == 0
    with pytest.raises(ValueError):
        both.price[0] = 0.0


def test_registry():
    assert get_clearing("uniform_price") is clear_uniform_price
    with pytest.raises(KeyError, match="uniform_price"):
        get_clearing("no_such_market")
    with pytest.raises(ValueError, match="already registered"):
        register_clearing("uniform_price")(clear_lp)
    assert CLEARING["uniform_price"] is clear_uniform_price


# --- properties --------------------------------------------------------------------------------

# Buy and sell prices come from disjoint grids (sells are offset by 5) so that no buy
# and sell share a price: with such a tie the traded volume itself is not unique
# (any quantity on the overlap has the same welfare) and only welfare could be compared.
# Same-side ties are allowed; they make per-order acceptance non-unique, so accepted
# volumes are compared per (MTU, side, price) level. Bids at or above the cap and offers
# at or below the floor exercise price-taking demand and must-run supply.
BUY_PRICES = st.one_of(st.integers(-40, 300).map(lambda g: 10.0 * g), st.sampled_from([CAP, 5e3]))
SELL_PRICES = st.one_of(
    st.integers(-40, 299).map(lambda g: 10.0 * g + 5.0), st.sampled_from([FLOOR, -800.0])
)
VOLUMES = st.one_of(st.floats(0.01, 100.0), st.just(0.0))


@st.composite
def order_books(draw, max_mtu=4, max_orders=14):
    n_mtu = draw(st.integers(1, max_mtu))
    n = draw(st.integers(0, max_orders))
    rows = []
    for _ in range(n):
        is_buy = draw(st.booleans())
        price = draw(BUY_PRICES if is_buy else SELL_PRICES)
        size = draw(VOLUMES)
        rows.append((draw(st.integers(0, n_mtu - 1)), price, size if is_buy else -size))
    return book(rows, n_mtu), n_mtu


def level_sums(b, accepted):
    """Accepted volume per (mtu, side, clipped price) level, which the optimum fixes."""
    keys = np.stack([b.mtu, np.sign(b.volume), np.clip(b.price, FLOOR, CAP)])
    _, inverse = np.unique(keys, axis=1, return_inverse=True)
    return np.bincount(inverse.ravel(), accepted)


def has_partial_step(b, c, n_mtu):
    """MTUs where some order is accepted strictly between 0 and its volume."""
    size, acc = np.abs(b.volume), np.abs(c.accepted)
    inside = (acc > 1e-6) & (acc < size - 1e-6)
    return np.bincount(b.mtu, inside, minlength=n_mtu) > 0


@settings(max_examples=80, deadline=None)
@given(order_books())
def test_merit_order_matches_lp(case):
    b, n_mtu = case
    mo = clear_uniform_price(b, n_mtu, FLOOR, CAP)
    lp = clear_lp(b, n_mtu, FLOOR, CAP)
    assert_allclose(mo.volume, lp.volume, rtol=0, atol=1e-6)
    assert_allclose(mo.welfare, lp.welfare, rtol=0, atol=1e-6)
    assert_allclose(mo.curtailed, lp.curtailed, rtol=0, atol=1e-6)
    assert_allclose(level_sums(b, mo.accepted), level_sums(b, lp.accepted), rtol=0, atol=1e-6)
    # The LP dual is unique only if an order is strictly inside its bounds (its reduced
    # cost must then be zero, pinning the price to its limit price). On a vertical step
    # any price in the clearing interval is optimal and HiGHS may return either end,
    # while the merit order deliberately picks the midpoint.
    unique = has_partial_step(b, mo, n_mtu)
    assert_allclose(mo.price[unique], lp.price[unique], rtol=0, atol=1e-6)


@settings(max_examples=300, deadline=None)
@given(order_books(max_mtu=6, max_orders=30))
def test_pay_as_clear_payments_balance(case):
    b, n_mtu = case
    c = clear_uniform_price(b, n_mtu, FLOOR, CAP)
    traded = np.bincount(b.mtu, c.accepted, minlength=n_mtu)
    assert_allclose(traded, 0.0, atol=1e-6)
    has_orders = np.bincount(b.mtu, b.volume != 0, minlength=n_mtu) > 0
    assert np.isnan(c.price).tolist() == (~has_orders).tolist()
    payments = np.bincount(b.mtu, c.accepted * np.nan_to_num(c.price[b.mtu]), minlength=n_mtu)
    assert_allclose(payments, 0.0, atol=1e-6 * CAP)
    assert (c.accepted * b.volume >= 0).all()
    assert (np.abs(c.accepted) <= np.abs(b.volume) + 1e-9).all()
    assert ((c.price >= FLOOR) & (c.price <= CAP))[has_orders].all()
    clipped = np.clip(b.price, FLOOR, CAP)
    buy, sell = b.volume > 0, b.volume < 0
    in_money = (buy & (clipped > c.price[b.mtu])) | (sell & (clipped < c.price[b.mtu]))
    out_money = (buy & (clipped < c.price[b.mtu])) | (sell & (clipped > c.price[b.mtu]))
    assert_allclose(c.accepted[in_money], b.volume[in_money])
    assert_allclose(c.accepted[out_money], 0.0)


# --- no self-trades ----------------------------------------------------------------------------


def test_a_party_never_trades_with_itself():
    """Producer P offers 0.1 MWh of headroom at its cost of 42 and bids to buy back 0.3 MWh of
    its schedule at 42; a supplier buys 0.05 at the cap, Q offers 0.2 at 68. At 42 the demand
    (0.35) exceeds the supply (0.1): 0.1 trades at 42, P's sell in full, the supplier's 0.05
    and 0.05 of P's own buy-back. Netted, P sells 0.05 to the supplier: volume 0.05, P -0.05,
    the supplier +0.05, Q nothing, at 42; gains from trade (0.05 x (4000 - 42)) unchanged."""
    b = OrderBook.from_arrays([1, 1, 2, 3], [0, 0, 0, 0],
                              [42.0, 42.0, CAP, 68.0], [-0.1, 0.3, 0.05, -0.2], 1)
    c = clear_uniform_price(b, 1, FLOOR, CAP)
    np.testing.assert_allclose(c.price, [42.0])
    np.testing.assert_allclose(c.accepted, [-0.05, 0.0, 0.05, 0.0], atol=1e-12)
    np.testing.assert_allclose(c.volume, [0.05])
    np.testing.assert_allclose(c.welfare, [0.05 * (CAP - 42.0)])


@st.composite
def shared_owner_books(draw):
    b, n_mtu = draw(order_books())
    owners = draw(st.lists(st.integers(0, 2), min_size=len(b), max_size=len(b)))
    return OrderBook.from_arrays(owners, b.mtu, b.price, b.volume, n_mtu), n_mtu


@settings(max_examples=300, deadline=None)
@given(shared_owner_books())
def test_netting_own_trades_changes_only_the_volume(case):
    """Random books with three owners: each owner ends with buys or sells in an MTU, never
    both, and with the net position and price it would have if each of its orders belonged to
    a different party (every leg trades at the MTU's one price); the volume falls by what the
    owners would have traded with themselves."""
    b, n_mtu = case
    shared = clear_uniform_price(b, n_mtu, FLOOR, CAP)
    apart = clear_uniform_price(OrderBook.from_arrays(np.arange(len(b)), b.mtu, b.price,
                                                      b.volume, n_mtu), n_mtu, FLOOR, CAP)
    np.testing.assert_array_equal(shared.price, apart.price)
    key = b.owner * n_mtu + b.mtu
    size = 3 * n_mtu
    np.testing.assert_allclose(np.bincount(key, shared.accepted, minlength=size),
                               np.bincount(key, apart.accepted, minlength=size), atol=1e-9)
    bought = np.bincount(key, np.clip(shared.accepted, 0, None), minlength=size)
    sold = np.bincount(key, np.clip(-shared.accepted, 0, None), minlength=size)
    assert (np.minimum(bought, sold) <= 1e-12).all()
    own = np.minimum(np.bincount(key, np.clip(apart.accepted, 0, None), minlength=size),
                     np.bincount(key, np.clip(-apart.accepted, 0, None), minlength=size))
    np.testing.assert_allclose(shared.volume.sum(), apart.volume.sum() - own.sum(), atol=1e-9)

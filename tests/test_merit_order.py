"""The one merit-order routine (`balancing.merit_order`) that the TSO's activation and the
TSO-DSO schemes share: its clearing rules on random offers, in both summation orders."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from environment.markets.balancing import merit_order

TOL = 1e-9


@st.composite
def books(draw):
    t_n = draw(st.integers(1, 4))
    n = draw(st.integers(0, 12))
    mtu = np.array(draw(st.lists(st.integers(0, t_n - 1), min_size=n, max_size=n)), dtype=int)
    price = np.array(draw(st.lists(st.sampled_from([-40.0, 0.0, 12.5, 30.0, 30.0, 95.0])
                                   | st.floats(-100, 300), min_size=n, max_size=n)))
    mw = np.array(draw(st.lists(st.floats(0, 5) | st.just(0.0), min_size=n, max_size=n)))
    need = np.array(draw(st.lists(st.floats(0, 20), min_size=t_n, max_size=t_n)))
    return mtu, price, mw, need


@settings(max_examples=300, deadline=None)
@given(book=books(), running_sum=st.booleans())
def test_merit_order_clears_cheapest_first(book, running_sum):
    mtu, price, mw, need = book
    act, marginal = merit_order(mtu, price, mw, need, running_sum=running_sum)
    assert act.shape == mw.shape and marginal.shape == need.shape
    assert (act >= 0).all() and (act <= mw).all()            # never beyond what is offered
    for t in range(len(need)):
        mine = mtu == t
        offered, got = mw[mine].sum(), act[mine].sum()
        assert got == pytest.approx(min(need[t], offered), abs=TOL)   # meets need if it can
        accepted = mine & (act > TOL)
        room = mine & (act < mw - TOL)
        if accepted.any() and room.any():                    # no cheaper offer left with room
            assert price[accepted].max() <= price[room].min()
        for i in np.flatnonzero(accepted):                   # ties: earlier offers fill first
            tied_with_room = np.flatnonzero(room & (price == price[i]))
            assert (tied_with_room >= i).all()
        used = mine & (act > 1e-12)
        if used.any():                                       # marginal = dearest accepted
            assert marginal[t] == price[used].max()
        else:
            assert np.isnan(marginal[t])


@settings(max_examples=100, deadline=None)
@given(book=books())
def test_the_two_summation_orders_agree_to_rounding(book):
    mtu, price, mw, need = book
    per_mtu, _ = merit_order(mtu, price, mw, need)
    running, _ = merit_order(mtu, price, mw, need, running_sum=True)
    np.testing.assert_allclose(per_mtu, running, atol=1e-9)


def test_a_hand_case():
    act, marginal = merit_order(np.array([0, 0, 0, 1]), np.array([50.0, 30.0, 30.0, 10.0]),
                                np.array([1.0, 1.0, 1.0, 2.0]), np.array([1.5, 0.0]))
    assert act.tolist() == [0.0, 1.0, 0.5, 0.0]
    assert marginal[0] == 30.0 and np.isnan(marginal[1])

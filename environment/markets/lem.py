"""The local electricity market's clearing rules (PARITY, seed 003 D4.3 6.3.2 "Local Electricity
Market (LEM)" and 6.3.3 "Local Electricity Market Operator (LEMO)": peer-to-peer trading among
prosumers on a platform the LEMO clears and settles; D4.3 leaves the clearing method open).

Two rules, chosen by `markets.lem.clearing`, both on one book whose MTU index is the pair
(LEM area, MTU) (`area_mtu`), so that every area and MTU is a market of its own:

* `double_auction` (registered here): a periodic k-double auction with k = 1/2. Volume and
  acceptance are the merit order's (`clear_uniform_price`): the largest volume at which the
  bid curve lies on or above the ask curve, orders strictly inside the price accepted in
  full, all orders of one side at the marginal price accepted pro rata (the tie rule: no order
  is preferred for its position in the book). Price rule: the midpoint of the lowest accepted
  bid and the highest accepted ask, so the surplus of the marginal pair is split equally and
  no buyer pays above its bid nor any seller receives below its ask.
* `continuous` (`environment.markets.continuous`, reused as it is): orders arrive in a seeded
  random order, each matched against the best resting order at the resting order's price.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from environment.markets.dayahead import clear_uniform_price
from environment.markets.orders import Clearing, OrderBook
from environment.markets.registry import register_clearing


def area_mtu(area: np.ndarray, mtu: np.ndarray, n_mtu: int) -> np.ndarray:
    """The book's market index of (area, MTU): one auction per LEM area and MTU."""
    return np.asarray(area, np.int64) * n_mtu + np.asarray(mtu, np.int64)


def _extreme(ufunc: np.ufunc, mtu: np.ndarray, values: np.ndarray, n_mtu: int,
             fill: float) -> np.ndarray:
    """(n_mtu,) `ufunc` (minimum or maximum) of `values` per MTU, `fill` where none: as
    `ufunc.at` gives it, several times faster on a LEM book (a stable sort of small integers
    and one reduction)."""
    out = np.full(n_mtu, fill)
    if len(mtu) == 0:
        return out
    idx = np.argsort(mtu.astype(np.int16) if n_mtu < 2 ** 15 else mtu, kind="stable")
    mtu, values = mtu[idx], values[idx]
    bounds = np.searchsorted(mtu, np.arange(n_mtu + 1))
    present = bounds[1:] > bounds[:-1]
    out[present] = ufunc.reduceat(values, bounds[:-1][present])
    return out


@register_clearing("double_auction")
def clear_double_auction(book: OrderBook, n_mtu: int, price_floor: float = -500.0,
                         price_cap: float = 4000.0) -> Clearing:
    """Uniform-price k-double auction (k = 1/2) per MTU of `book`; see the module docstring.
    An MTU without trade has price NaN."""
    base = clear_uniform_price(book, n_mtu, price_floor, price_cap, tie_price="midpoint")
    if len(book) == 0:
        return base
    price = np.clip(book.price, price_floor, price_cap)
    acc = base.accepted
    low_bid = _extreme(np.minimum, book.mtu[acc > 0], price[acc > 0], n_mtu, np.inf)
    high_ask = _extreme(np.maximum, book.mtu[acc < 0], price[acc < 0], n_mtu, -np.inf)
    traded = np.isfinite(low_bid) & np.isfinite(high_ask)
    mid = np.where(traded, 0.5 * (np.where(traded, low_bid, 0) + np.where(traded, high_ask, 0)),
                   np.nan)
    return dataclasses.replace(base, price=mid)

"""Uniform-price (pay-as-clear) day-ahead auction on a copper plate.

Each MTU is an independent auction of stepwise bid and offer curves. The
clearing is computed for all MTUs at once: orders are sorted by (mtu, price) and
the demand and supply curves are evaluated with cumulative sums per MTU segment,
which keeps a 96-MTU session with a few hundred orders well below a millisecond.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from environment.markets.orders import Clearing, OrderBook, net_own_trades
from environment.markets.registry import register_clearing

__all__ = ["Clearing", "SupplyCurve", "VOLUME_TOL", "clear_uniform_price"]

VOLUME_TOL = 1e-9
"""MWh below which an acceptance counts as exact; absorbs cumulative-sum rounding
so that "partially accepted" (which decides the price) is not triggered by noise."""


@dataclass(frozen=True)
class SupplyCurve:
    """The merit order a flexible buyer expects to be cleared against: the sell offers and the
    demand that does not respond to price (MWh per MTU, + consumption), within the auction's
    price bounds. Unserved demand is valued at the cap, unsold must-run at the floor."""

    offers: OrderBook
    demand_mwh: np.ndarray
    price_floor: float
    price_cap: float

    def plus(self, extra_mwh: np.ndarray) -> SupplyCurve:
        """The same offers with `extra_mwh` more fixed demand."""
        return dataclasses.replace(self, demand_mwh=self.demand_mwh + extra_mwh)

    def cost(self, extra_mwh: np.ndarray | float = 0.0) -> float:
        """EUR to serve the fixed demand plus `extra_mwh` per MTU from the cheapest offers, the
        rest at the cap (unserved); net surplus costs minus the floor per MWh (unsold)."""
        d = self.demand_mwh + extra_mwh
        o = self.offers
        price = np.clip(o.price, self.price_floor, self.price_cap)
        order = np.lexsort((price, o.mtu))
        mtu, price, vol = o.mtu[order], price[order], -o.volume[order]
        total = np.bincount(mtu, vol, minlength=len(d))
        before = np.cumsum(vol) - vol - (np.cumsum(total) - total)[mtu]
        used = np.clip(d[mtu] - before, 0.0, vol)
        return float((price * used).sum() + self.price_cap * np.clip(d - total, 0, None).sum()
                     - self.price_floor * np.clip(-d, 0, None).sum())

    def near(self, lo_mwh: np.ndarray, hi_mwh: np.ndarray) -> SupplyCurve:
        """The same curve for demand that stays within `lo_mwh`..`hi_mwh` (MWh per MTU) of
        the fixed demand: offers dispatched in full at either end become fixed supply, offers
        never reached are dropped, one of each kept beside the range so that the price of an
        MTU whose demand ends on a step's edge stays between real offers. An LP over the
        result has the solutions and prices of one over the whole curve, with fewer columns."""
        o = self.offers
        order = np.lexsort((np.clip(o.price, self.price_floor, self.price_cap), o.mtu))
        mtu, vol = o.mtu[order], -o.volume[order]
        total = np.bincount(mtu, vol, minlength=len(self.demand_mwh))
        start = np.cumsum(vol) - vol - (np.cumsum(total) - total)[mtu]
        end = start + vol
        below = end <= (self.demand_mwh + lo_mwh)[mtu]
        above = start >= (self.demand_mwh + hi_mwh)[mtu]
        first = np.r_[True, mtu[1:] != mtu[:-1]]
        last = np.r_[mtu[1:] != mtu[:-1], True]
        keep = ~below & ~above
        keep |= below & (last | ~np.r_[below[1:], False])      # the last one below
        keep |= above & (first | ~np.r_[True, above[:-1]])     # the first one above
        fixed = np.bincount(mtu, np.where(keep, 0.0, np.where(below, vol, 0.0)),
                            minlength=len(self.demand_mwh))
        kept = np.sort(order[keep])
        offers = OrderBook(o.owner[kept], o.mtu[kept], o.price[kept], o.volume[kept])
        return dataclasses.replace(self, offers=offers, demand_mwh=self.demand_mwh - fixed)

    def book(self) -> OrderBook:
        """The offers with the fixed demand as price-taking orders."""
        t = len(self.demand_mwh)
        d = self.demand_mwh
        return OrderBook.concat([self.offers, OrderBook.from_arrays(
            -1, np.arange(t), np.where(d >= 0, self.price_cap, self.price_floor), d, t)])


def _empty_clearing(n: int, n_mtu: int) -> Clearing:
    zeros = np.zeros(n_mtu)
    return Clearing(
        price=np.full(n_mtu, np.nan),
        volume=zeros,
        accepted=np.zeros(n),
        welfare=zeros.copy(),
        curtailed=zeros.copy(),
    )


def _snap(acc: np.ndarray, level: np.ndarray) -> np.ndarray:
    acc = np.where(acc >= level - VOLUME_TOL, level, acc)
    return np.where(acc <= VOLUME_TOL, 0.0, acc)


@register_clearing("uniform_price")
def clear_uniform_price(
    book: OrderBook,
    n_mtu: int,
    price_floor: float = -500.0,
    price_cap: float = 4000.0,
    tie_price: str = "midpoint",
) -> Clearing:
    """Clear ``book`` by merit order, maximising gains from trade in every MTU.

    The traded volume is the largest quantity at which the demand curve still lies
    on or above the supply curve. Orders priced strictly better than the clearing
    price are fully accepted; all orders of one side sharing the marginal price
    are accepted pro rata, so the outcome does not depend on order position.
    A party's accepted buys are netted against its own accepted sells of the same MTU
    (`net_own_trades`): nobody trades with itself, and the volume reported is traded between
    distinct parties. The price is the marginal order's price when a step is partially
    accepted, otherwise (a tie: demand meets supply exactly at a step) a price of the
    interval of market-clearing prices: its midpoint with ``tie_price="midpoint"``,
    its lower end with ``"marginal_offer"`` (with inelastic demand, the most
    expensive accepted offer: the merit-order convention and ASSUME's pay-as-clear).
    See the module tests for the corner cases: one-sided MTUs get the best price of
    the present side, empty MTUs get NaN. Limit prices are clipped to
    ``[price_floor, price_cap]``; demand at the cap is price-taking and supply at
    the floor is must-run, and their unaccepted volume is reported as curtailed.
    """
    if not price_floor < price_cap:
        raise ValueError(f"price_floor {price_floor} must be below price_cap {price_cap}")
    if tie_price not in ("midpoint", "marginal_offer"):
        raise ValueError(f"tie_price {tie_price!r}: expected 'midpoint' or 'marginal_offer'")
    if n_mtu < 0:
        raise ValueError(f"n_mtu must be non-negative, got {n_mtu}")
    book.validate(n_mtu)
    live = np.flatnonzero(book.volume != 0.0)
    if live.size == 0:
        return _empty_clearing(len(book), n_mtu)

    whole = live.size == len(book)   # no zero order (a LEM book): no copies
    mtu, price, vol = (book.mtu, book.price, book.volume) if whole else \
        (book.mtu[live], book.price[live], book.volume[live])
    price = np.clip(price, price_floor, price_cap)
    order = np.lexsort((price, mtu))
    at = order if whole else live[order]   # the sorted orders' places in the book
    mtu, price, vol = mtu[order], price[order], vol[order]
    m = len(vol)
    buy = vol > 0
    vb = np.where(buy, vol, 0.0)
    vs = np.where(buy, 0.0, -vol)
    cb = np.concatenate(([0.0], np.cumsum(vb)))
    cs = np.concatenate(([0.0], np.cumsum(vs)))

    # The curves step at price levels, (mtu, price) pairs: what follows is computed once per
    # level, [g0, g1) its orders and [s0, s1) its MTU's (a LEM book has a few levels per MTU
    # for tens of thousands of orders), then each order takes its level's share of its side.
    new_level = np.empty(m, dtype=bool)
    new_level[0] = True
    new_level[1:] = (mtu[1:] != mtu[:-1]) | (price[1:] != price[:-1])
    g0 = np.flatnonzero(new_level)
    g1 = np.append(g0[1:], m)
    level_id = np.repeat(np.arange(len(g0)), g1 - g0)
    l_mtu, l_price = mtu[g0], price[g0]
    bounds = np.searchsorted(mtu, np.arange(n_mtu + 1))
    s0, s1 = bounds[l_mtu], bounds[l_mtu + 1]
    n_buy = np.bincount(level_id, buy, minlength=len(g0))
    has_buy, has_sell = n_buy > 0, n_buy < g1 - g0
    l_bounds = np.searchsorted(l_mtu, np.arange(n_mtu + 1))
    present = l_bounds[1:] > l_bounds[:-1]
    reduce_starts = l_bounds[:-1][present]

    def seg_reduce(ufunc: np.ufunc, values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(n_mtu, fill)
        out[present] = ufunc.reduceat(values, reduce_starts)
        return out

    demand_at = cb[s1] - cb[g0]
    supply_at = cs[g1] - cs[s0]
    traded = seg_reduce(np.maximum, np.minimum(demand_at, supply_at), 0.0)
    q = traded[l_mtu]

    level_buy = cb[g1] - cb[g0]
    level_sell = cs[g1] - cs[g0]
    acc_buy = _snap(np.clip(q - (cb[s1] - cb[g1]), 0.0, level_buy), level_buy)
    acc_sell = _snap(np.clip(q - (cs[g0] - cs[s0]), 0.0, level_sell), level_sell)
    # a level can cancel to zero in the cumulative sums when its volume is tiny
    share_buy = np.divide(acc_buy, level_buy, out=np.zeros_like(level_buy), where=level_buy > 0)
    share_sell = np.divide(acc_sell, level_sell, out=np.zeros_like(level_sell),
                           where=level_sell > 0)
    acc = vol * np.where(buy, share_buy[level_id], share_sell[level_id])

    neg_inf = np.full(len(g0), -np.inf)
    pos_inf = np.full(len(g0), np.inf)
    buy_acc, sell_acc = acc_buy > 0.0, acc_sell > 0.0
    sell_marginal = seg_reduce(np.maximum, np.where(sell_acc & (acc_sell < level_sell) & has_sell,
                                                    l_price, neg_inf), -np.inf)
    buy_marginal = seg_reduce(np.maximum, np.where(buy_acc & (acc_buy < level_buy) & has_buy,
                                                   l_price, neg_inf), -np.inf)
    # the interval's ends: the highest rejected buy or accepted sell, the lowest accepted buy
    # or rejected sell
    lower = seg_reduce(np.maximum, np.where((has_buy & ~buy_acc) | (has_sell & sell_acc),
                                            l_price, neg_inf), -np.inf)
    upper = seg_reduce(np.minimum, np.where((has_buy & buy_acc) | (has_sell & ~sell_acc),
                                            l_price, pos_inf), np.inf)
    lo_ok, up_ok = np.isfinite(lower), np.isfinite(upper)
    with np.errstate(invalid="ignore"):
        interval = np.where(
            lo_ok & up_ok,
            0.5 * (lower + upper) if tie_price == "midpoint" else lower,
            np.where(lo_ok, lower, np.where(up_ok, upper, np.nan)),
        )
    clearing_price = np.where(
        np.isfinite(sell_marginal),
        sell_marginal,
        np.where(np.isfinite(buy_marginal), buy_marginal, interval),
    )

    inflexible = np.where(buy, price >= price_cap, price <= price_floor)
    curtailed = np.bincount(mtu, np.where(inflexible, np.abs(vol - acc), 0.0), minlength=n_mtu) \
        if inflexible.any() else np.zeros(n_mtu)
    accepted = np.zeros(len(book))
    acc = acc + 0.0  # no -0.0 for rejected sells
    accepted[at] = acc
    netted = net_own_trades(book, accepted)
    if netted is not accepted:
        accepted, acc = netted, netted[at]
    return Clearing(
        price=clearing_price,
        volume=np.bincount(mtu, np.clip(acc, 0, None), minlength=n_mtu),
        accepted=accepted,
        welfare=np.bincount(mtu, acc * price, minlength=n_mtu),
        curtailed=curtailed,
    )

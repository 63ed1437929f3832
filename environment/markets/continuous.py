"""Continuous trading (the EU target model's intraday market, SIDC/XBID): an order book per MTU
matched as orders arrive, each trade at the price of the order that was resting in the book
(price-time priority), pay-as-bid rather than pay-as-clear. Self-trade prevention: an
arriving order passes over its owner's own resting orders (they keep their place in the
book), as the exchanges' self-trade prevention does, so no party trades with itself.

A session opens with the limit orders (priced inside the price band: producers' headroom and
buy-backs at marginal cost), entered in the order of the book and matched against each other
where they cross; the price-taking orders (buys at the price cap, sells at the floor: the
suppliers closing a forecast deviation) then arrive as market orders, take what the book
offers and have their rest cancelled (reported as curtailed), since a resting order at the
cap or floor would set an absurd price for whoever came next. Arrival order matters, so the
book's order is the arrival order: the intraday stage shuffles it with the run's random
generator (`in_arrival_order`).

Reported per MTU: the volume-weighted average trade price (as exchanges publish an index) and
volume; per order, the average price it traded at (`Clearing.order_price`), which settlement
books. Gains from trade are counted at limit prices as for the auction, so they can only be
lower than the uniform-price auction's on the same book (it maximises them).
"""

from __future__ import annotations

import heapq

import numpy as np

from environment.markets.dayahead import VOLUME_TOL
from environment.markets.orders import Clearing, OrderBook
from environment.markets.registry import register_clearing


@register_clearing("continuous")
def clear_continuous(book: OrderBook, n_mtu: int, price_floor: float = -500.0,
                     price_cap: float = 4000.0) -> Clearing:
    """Match ``book`` continuously, MTU by MTU, in the order of its orders (see the module
    docstring): limit orders first, then the price-taking ones as fill-and-kill."""
    if not price_floor < price_cap:
        raise ValueError(f"price_floor {price_floor} must be below price_cap {price_cap}")
    book.validate(n_mtu)
    price = np.clip(book.price, price_floor, price_cap)
    vol, owner = book.volume, book.owner
    buy = vol > 0
    market = np.where(buy, price >= price_cap, price <= price_floor)
    filled = np.zeros(len(book))
    paid = np.zeros(len(book))            # EUR/MWh x MWh traded, per order
    traded = np.zeros(n_mtu)
    value = np.zeros(n_mtu)               # price x volume of the trades, for the average
    live = np.flatnonzero(vol != 0.0)
    arrival = np.concatenate([live[~market[live]], live[market[live]]])
    arrival = arrival[np.argsort(book.mtu[arrival], kind="stable")]  # by MTU, in arrival order
    mtus, starts = np.unique(book.mtu[arrival], return_index=True)
    groups = np.split(arrival, starts[1:]) if len(mtus) else []
    for t, orders in zip(mtus, groups, strict=True):
        bids: list = []   # (-price, seq, order) max-heap by price, then time
        asks: list = []   # (price, seq, order)
        for seq, i in enumerate(orders):
            rest = abs(vol[i])
            own, other = (bids, asks) if buy[i] else (asks, bids)
            skipped = []  # the owner's own resting orders: never matched with it
            while rest > VOLUME_TOL and other:
                key, _, j = other[0]
                p = key if buy[i] else -key  # asks keyed by price, bids by -price
                if (p > price[i]) if buy[i] else (p < price[i]):
                    break
                if owner[j] == owner[i]:
                    skipped.append(heapq.heappop(other))
                    continue
                q = min(rest, abs(vol[j]) - filled[j])
                for k in (i, j):
                    filled[k] += q
                    paid[k] += q * p
                traded[t] += q
                value[t] += q * p
                rest -= q
                if abs(vol[j]) - filled[j] <= VOLUME_TOL:
                    heapq.heappop(other)
            for entry in skipped:
                heapq.heappush(other, entry)
            if rest > VOLUME_TOL and not market[i]:
                heapq.heappush(own, (-price[i] if buy[i] else price[i], seq, i))
    accepted = np.sign(vol) * filled
    with np.errstate(invalid="ignore", divide="ignore"):
        order_price = np.where(filled > 0, paid / filled, np.nan)
        mtu_price = np.where(traded > 0, value / traded, np.nan)
    return Clearing(
        price=mtu_price,
        volume=traded,
        accepted=accepted + 0.0,
        welfare=np.bincount(book.mtu, accepted * price, minlength=n_mtu),
        curtailed=np.bincount(book.mtu, np.where(market, np.abs(vol) - filled, 0.0),
                              minlength=n_mtu),
        order_price=order_price,
    )


clear_continuous.in_arrival_order = True

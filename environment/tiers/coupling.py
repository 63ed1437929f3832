"""A region's day-ahead order book in the coupled market, and the coupled outcome back as the
region's auction result.

The coupled market (environment/transmission/zones.py `clear_coupled`) clears hourly offer
steps against fixed nodal load. A region's orders are per MTU (k = 60 / mtu_minutes a
period) and signed (> 0 buy). Each becomes one hourly step at its node, priced as bid:

* an order of v MWh in an MTU of hour h is an hourly step of |v| MW (= |v| MWh in the hour:
  its energy kept, its power spread over the hour, 1/k of its MW), so the hour's energy is
  the sum of its MTUs' and each MTU's price limit still counts where the price is set;
* a sell is an offer of |v| at its price; a buy is fixed load v at the node plus an offer of v
  at its price (not consuming: above its price the market prefers to leave it unserved), so
  accepted buy = v - that offer's accepted MW.

Each order's acceptance in the coupling is its acceptance in the region's own auction, which
clears at the zone's price of the hour: the region is a price taker there, but its bids were
in the coupling, and its accepted net position is what its node sees. The stand-in exchange
(environment/tiers/regions.py) takes no part in the coupling; in the region's auction it takes
the other side of the region's net position (sells what the region buys, buys what it sells).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from environment.markets.orders import Clearing, OrderBook, net_own_trades


@dataclass(frozen=True)
class Steps:
    """A region's orders as coupling steps: the orders of the book they come from (`rows`),
    the hour of the day each falls in, price, MW; and the region's fixed load per hour (its
    buys' MWh)."""

    rows: np.ndarray
    hour: np.ndarray
    price: np.ndarray
    mw: np.ndarray
    buy: np.ndarray
    fixed_mw: np.ndarray


def coupling_steps(book: OrderBook, stand_in: int, per_hour: int, hours: int) -> Steps:
    """The region's book (MTUs of one day) as hourly steps; `stand_in` owns orders that stay
    out (the exchange standing for the grid above)."""
    rows = np.flatnonzero(book.owner != stand_in)
    vol = book.volume[rows]
    hour = book.mtu[rows] // per_hour
    buy = vol > 0
    return Steps(rows, hour, book.price[rows], np.abs(vol), buy,
                 np.bincount(hour, np.where(buy, vol, 0.0), hours))


def accepted_orders(steps: Steps, taken_mw: np.ndarray) -> np.ndarray:
    """Each step's order accepted (signed MWh, > 0 bought) from the MW the coupling took of
    its step."""
    return np.where(steps.buy, steps.mw - taken_mw, -taken_mw)


def region_clearing(book: OrderBook, steps: Steps, accepted: np.ndarray, stand_in: int,
                    price: np.ndarray, floor: float, cap: float) -> Clearing:
    """The region's auction outcome: its orders accepted as in the coupling, the stand-in
    exchange on the other side of the net, every MTU at `price` (the zone's price of its
    hour). Welfare and curtailment as the uniform-price auction counts them (the stand-in's
volume, which stands for the whole grid above, is not curtailed demand)."""
    n_mtu = len(price)
    acc = np.zeros(len(book))
    acc[steps.rows] = accepted
    net = np.bincount(book.mtu, acc, n_mtu)
    mine = np.flatnonzero(book.owner == stand_in)
    sells, buys = mine[book.volume[mine] < 0], mine[book.volume[mine] > 0]
    first_sell = sells[np.unique(book.mtu[sells], return_index=True)[1]]
    first_buy = buys[np.unique(book.mtu[buys], return_index=True)[1]]
    acc[first_sell] = -np.clip(net[book.mtu[first_sell]], 0, None)
    acc[first_buy] = np.clip(-net[book.mtu[first_buy]], 0, None)
    acc = net_own_trades(book, acc + 0.0)
    limit = np.clip(book.price, floor, cap)
    inflexible = np.where(book.volume > 0, book.price >= cap, book.price <= floor) \
        & (book.owner != stand_in)
    return Clearing(
        price=np.asarray(price, float),
        volume=np.bincount(book.mtu, np.clip(acc, 0, None), n_mtu),
        accepted=acc,
        welfare=np.bincount(book.mtu, acc * limit, n_mtu),
        curtailed=np.bincount(book.mtu, np.where(inflexible, np.abs(book.volume - acc), 0.0),
                              n_mtu))


def fixed(clearing: Clearing):
    """A clearing mechanism returning `clearing` whatever it is given (the region's auction
    for a day the coupled market already cleared)."""
    def clear(book, n_mtu, floor, cap):
        return clearing
    return clear

"""Order book and clearing result shared by all market-clearing mechanisms.

Orders are kept column-wise in numpy arrays so that clearing can be vectorised
across market time units (MTUs) instead of looping over Python objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_FIELDS = ("owner", "mtu", "price", "volume")


def _frozen_array(values, dtype, field: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"OrderBook field {field!r} must be 1-D, got shape {arr.shape}")
    if np.issubdtype(dtype, np.integer) and arr.size and not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"OrderBook field {field!r} must be integer, got dtype {arr.dtype}")
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise ValueError(
                f"OrderBook field {field!r} must hold integers, got {arr[bad][:5].tolist()}"
            )
    out = np.array(arr, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class OrderBook:
    """All orders of one auction session, one entry per order.

    ``volume`` is signed (> 0 buy, < 0 sell) so that a single array carries the
    side; zero-volume orders are allowed because agents often submit fixed-shape
    books where some MTUs are empty. Arrays are copied and made read-only so a
    book cannot change after it was submitted.
    """

    owner: np.ndarray
    mtu: np.ndarray
    price: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        dtypes = (np.int64, np.int64, np.float64, np.float64)
        for field, dtype in zip(_FIELDS, dtypes, strict=True):
            object.__setattr__(self, field, _frozen_array(getattr(self, field), dtype, field))
        lengths = {f: len(getattr(self, f)) for f in _FIELDS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"OrderBook fields must have equal length, got {lengths}")

    def __len__(self) -> int:
        return len(self.volume)

    @property
    def is_buy(self) -> np.ndarray:
        return self.volume > 0

    @property
    def is_sell(self) -> np.ndarray:
        return self.volume < 0

    def validate(self, n_mtu: int | None = None) -> OrderBook:
        """Check values a clearing cannot cope with; return self for chaining.

        The error names the field and the owners concerned so that a faulty agent
        can be identified from a simulation log.
        """
        checks = [
            ("price", ~np.isfinite(self.price), "non-finite"),
            ("volume", ~np.isfinite(self.volume), "non-finite"),
            ("mtu", self.mtu < 0, "negative"),
        ]
        if n_mtu is not None:
            checks.append(("mtu", self.mtu >= n_mtu, f"out-of-range (n_mtu={n_mtu})"))
        for field, bad, what in checks:
            if bad.any():
                owners = np.unique(self.owner[bad]).tolist()
                values = getattr(self, field)[bad][:5].tolist()
                raise ValueError(
                    f"OrderBook field {field!r} has {what} values {values} from owner(s) {owners}"
                )
        return self

    @classmethod
    def from_arrays(cls, owner, mtu, price, volume, n_mtu: int | None = None) -> OrderBook:
        """Build and validate a book; scalars for ``owner`` are broadcast."""
        n = len(np.atleast_1d(volume))
        owner = np.broadcast_to(np.asarray(owner), (n,)) if np.ndim(owner) == 0 else owner
        return cls(owner=owner, mtu=mtu, price=price, volume=volume).validate(n_mtu)

    @classmethod
    def empty(cls) -> OrderBook:
        return cls(owner=[], mtu=[], price=[], volume=[])

    def arrived(self, clear, rng: np.random.Generator) -> OrderBook:
        """The book in the order its orders reach a mechanism that matches them as they
        arrive (`in_arrival_order`, continuous trading): a random permutation drawn from
        `rng`. Auctions get the book as it is."""
        if not getattr(clear, "in_arrival_order", False):
            return self
        perm = rng.permutation(len(self))
        return OrderBook(**{f: getattr(self, f)[perm] for f in _FIELDS})

    @classmethod
    def concat(cls, books: Iterable[OrderBook]) -> OrderBook:
        """Merge the books of several agents into the session book."""
        books = list(books)
        if not books:
            return cls.empty()
        return cls(**{f: np.concatenate([getattr(b, f) for b in books]) for f in _FIELDS})


def net_own_trades(book: OrderBook, accepted: np.ndarray) -> np.ndarray:
    """`accepted` (signed, per order of `book`) with each owner's accepted buys netted against
    its own accepted sells in the same MTU, pro rata over its orders: no party trades with
    itself. In a uniform-price auction both legs settle at the same price, so netting changes
    no party's position or payment, only the volume reported as traded (a producer that offers
    its headroom and bids to buy back its schedule at the same marginal cost is on both sides
    when it sets the price). Where nothing is netted, `accepted` itself comes back (without
    -0.0)."""
    if len(book) == 0:
        return accepted
    key = book.owner * (int(book.mtu.max()) + 1) + book.mtu
    low = int(key.min())
    if int(key.max()) - low < 64 * len(key) + 4096:
        # where no owner has both an accepted buy and an accepted sell in one MTU (a LEM book:
        # one order per household and MTU) there is nothing to net; x * 1.0 is x
        mark = np.zeros(int(key.max()) - low + 1, bool)
        mark[key[accepted > 0] - low] = True
        if not mark[key[accepted < 0] - low].any():
            return accepted if not np.signbit(accepted[accepted == 0]).any() else accepted + 0.0
    key = np.unique(key, return_inverse=True)[1]
    bought = np.bincount(key, np.clip(accepted, 0, None))
    sold = np.bincount(key, np.clip(-accepted, 0, None))
    own = np.minimum(bought, sold)
    keep_buy = np.divide(bought - own, bought, out=np.ones_like(bought), where=bought > 0)
    keep_sell = np.divide(sold - own, sold, out=np.ones_like(sold), where=sold > 0)
    return accepted * np.where(accepted > 0, keep_buy[key], keep_sell[key]) + 0.0


@dataclass(frozen=True, eq=False)
class Clearing:
    """Outcome of clearing one session.

    Shared by all mechanisms so that settlement and agents do not depend on which
    one was used. ``accepted`` has the sign of the order (buy > 0, sell < 0).
    ``welfare`` is the gains from trade at the (bound-clipped) limit prices and
    ``curtailed`` the unaccepted volume of price-taking demand and must-run
    supply, both per MTU. ``order_price`` is the price each order traded at where
    that is not the MTU's ``price`` (pay-as-bid continuous trading: its average
    over the order's trades, NaN where it traded nothing); None for pay-as-clear.
    """

    price: np.ndarray
    volume: np.ndarray
    accepted: np.ndarray
    welfare: np.ndarray
    curtailed: np.ndarray
    order_price: np.ndarray | None = None

    def paid_price(self, book: OrderBook) -> np.ndarray:
        """EUR/MWh each order of ``book`` settles at."""
        return self.price[book.mtu] if self.order_price is None else self.order_price

    @property
    def n_mtu(self) -> int:
        return len(self.price)

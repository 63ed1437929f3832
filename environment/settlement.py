"""Booking of every market's payments as ledger rows (one function per kind of settlement)."""

from __future__ import annotations

import numpy as np

from environment.ledger import Ledger


def book_auction(led: Ledger, book, clearing, market: str, exchange: int, account_of: dict,
                 mtu0: int) -> None:
    """Exchange trading: buyers pay the exchange, the exchange pays sellers, each at the price
    its order settles at (the clearing price of an auction, its own trades' in continuous
    trading)."""
    if len(book) == 0:
        return
    payer = np.array([account_of[o] for o in book.owner])
    price = clearing.paid_price(book)
    acc = clearing.accepted
    buy, sell = acc > 0, acc < 0
    led.pay(payer[buy], exchange, market, mtu0 + book.mtu[buy], acc[buy], price[buy])
    led.pay(exchange, payer[sell], market, mtu0 + book.mtu[sell], -acc[sell], price[sell])


def book_imbalance(led: Ledger, party_accounts: np.ndarray, imbalance_mwh: np.ndarray,
                   price_short: np.ndarray, price_long: np.ndarray, tso: int,
                   mtus: np.ndarray) -> None:
    """Short parties pay the TSO the short price, long ones are paid the long price."""
    acct = np.broadcast_to(party_accounts[:, None], imbalance_mwh.shape)
    t = np.broadcast_to(mtus, imbalance_mwh.shape)
    short = imbalance_mwh < 0
    led.pay(acct[short], tso, "imbalance", t[short], -imbalance_mwh[short],
            np.broadcast_to(price_short, imbalance_mwh.shape)[short])
    led.pay(tso, acct[~short], "imbalance", t[~short], imbalance_mwh[~short],
            np.broadcast_to(price_long, imbalance_mwh.shape)[~short])


def book_balancing(led: Ledger, provider_accounts: np.ndarray, act, tso: int, external: int,
                   mtus: np.ndarray, dt_h: float, emergency_up: float,
                   emergency_down: float) -> None:
    """Pay-as-clear balancing energy; emergency assistance is bought from outside."""
    if len(provider_accounts):
        shape = act.up_mw.shape
        prov = np.broadcast_to(provider_accounts[:, None], shape)
        t = np.broadcast_to(mtus, shape)
        led.pay(tso, prov, "balancing", t, act.up_mw * dt_h,
                np.broadcast_to(act.marginal_up, shape))
        led.pay(prov, tso, "balancing", t, act.down_mw * dt_h,
                np.broadcast_to(act.marginal_down, shape))
    led.pay(tso, external, "balancing_emergency", mtus, act.emergency_up_mw * dt_h, emergency_up)
    led.pay(external, tso, "balancing_emergency", mtus, act.emergency_down_mw * dt_h,
            emergency_down)


def book_flexibility(led: Ledger, buyer: int, seller_accounts: np.ndarray, market: str,
                     mtus: np.ndarray, mwh: np.ndarray, price: np.ndarray,
                     operator: int | None = None, fee: float = 0.0) -> None:
    """A buyer pays sellers for activated flexibility, through an independent market operator
    (who keeps `fee` EUR/MWh) when there is one."""
    if operator is None:
        led.pay(buyer, seller_accounts, market, mtus, mwh, price)
        return
    led.pay(buyer, operator, market, mtus, mwh, price + fee)
    led.pay(operator, seller_accounts, market, mtus, mwh, price)

"""Intraday market on day D: periodic uniform-price auctions (`uniform_price`), or continuous
trading in an order book matched as orders arrive (`continuous`,
`environment.markets.continuous`), chosen by `markets.intraday.clearing`.

Each session covers the MTUs from its gate (session hour plus lead time) to the end of the day.
Parties trade the difference between their updated forecast and their position: suppliers with
price-taking orders, producers offering their headroom and buying back their schedule at
marginal cost. Mechanisms come from the same registry as the day-ahead market's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from environment.markets.orders import OrderBook


@dataclass(frozen=True)
class Session:
    index: int
    first_mtu: int
    error_share: float


def sessions(cfg, mtu_per_day: int) -> list[Session]:
    """Sessions of one day from the scenario (gate hours, lead time, forecast error shares)."""
    per_hour = mtu_per_day // 24
    out = []
    for i, (hour, share) in enumerate(zip(cfg.gate_hours, cfg.forecast_error_share,
                                          strict=True)):
        first = min(mtu_per_day, int(round((hour + cfg.lead_time_h) * per_hour)))
        if first < mtu_per_day:
            out.append(Session(i, first, share))
    return out


def producer_orders(producer, scheduled_mw: np.ndarray, offered_mw: np.ndarray,
                    session: Session, dt_h: float, sell_price) -> OrderBook:
    """Sell the headroom left of the capacity it offers at its strategy's `sell_price`, and buy
    back scheduled output at marginal cost (buying back at cost saves fuel; an exchange's
    strategy names its own `buyback_price`), for the session's MTUs. Prices are one number
    or one per MTU of the day."""
    t = np.arange(session.first_mtu, len(scheduled_mw))
    head = np.clip(offered_mw[t] - scheduled_mw[t], 0, None) * dt_h
    back = np.clip(scheduled_mw[t], 0, None) * dt_h
    n = len(t)
    buyback = getattr(producer.strategy, "buyback_price", None)
    back_price = producer.marginal_cost if buyback is None else buyback(producer)
    day = len(scheduled_mw)
    return OrderBook.from_arrays(
        owner=np.full(2 * n, producer.unique_id), mtu=np.concatenate([t, t]),
        price=np.r_[np.broadcast_to(np.asarray(sell_price, float), day)[t],
                    np.broadcast_to(np.asarray(back_price, float), day)[t]],
        volume=np.concatenate([-head, back]), n_mtu=len(scheduled_mw))


def deviation_orders(owner: int, deviation_mwh: np.ndarray, session: Session, floor: float,
                     cap: float) -> OrderBook:
    """Price-taking orders closing a forecast deviation (+: buy) from the session's gate on."""
    t = np.arange(session.first_mtu, len(deviation_mwh))
    dev = deviation_mwh[t]
    keep = np.abs(dev) > 1e-12
    return OrderBook.from_arrays(owner=np.full(int(keep.sum()), owner), mtu=t[keep],
                                 price=np.where(dev[keep] > 0, cap, floor), volume=dev[keep],
                                 n_mtu=len(deviation_mwh))

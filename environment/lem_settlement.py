"""Settlement of the LEM's trades after real time (PARITY D4.3 6.3.3: the LEMO clears and
settles the LEM and invoices the energy traded among prosumers), and its table of the day.

The LEMO is the central counterparty: each buyer pays it its trades' price per MWh and it pays
each seller its own (ledger market `lem`; the rows net to zero on its account, as an exchange's
do) plus its fee per MWh from the side(s) the scenario names (`lem_fee`, its revenue). Under
the implicit LFM the buyer pays the DSO the locational grid price on the MWh it bought and the
seller the negative of it on the MWh it sold (`lem_grid_price`). The local network tariff and
the smaller retail volume are booked with the retail bills (`settlement.settle_retail`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from environment.markets.lem import area_mtu


def settle_lem(model, ctx) -> None:
    """Book the day's LEM payments from `ctx.lem` (the trades RED/BLACK left standing) and
    record its table; sets `ctx.lem.settled_mw`, which the retail bills read.

    The LEMO invoices each household once a day per side (bought, sold), like the retail
    bills: MWh and EUR summed over the day's MTUs, the price their ratio. Per-MTU rows for
    every household-MTU that traded made the ledger of a 1,000-household year ~20 million rows
    (3.7 GB); the per-MTU volumes and prices are in the `lem_areas` table."""
    lem, market, led, dt = ctx.lem, model.lem, model.ledger, ctx.dt_h
    lem.settled_mw = market.cancel_red(lem, ctx.realtime.light)
    pa, op, dso = model.prosumer_account, market.account, model.dso.account
    priced = bool(np.any(lem.grid_price))
    n = lem.settled_mw.shape[0]
    for side, payer_is_household in ((lem.settled_mw > 0, True), (lem.settled_mw < 0, False)):
        i, t = np.nonzero(side)
        mwh_it = np.abs(lem.settled_mw[i, t]) * dt
        mwh = np.bincount(i, mwh_it, minlength=n)
        who = np.flatnonzero(mwh > 0)
        if len(who) == 0:
            continue
        mwh = mwh[who]
        price = np.bincount(i, mwh_it * lem.price[i, t], minlength=n)[who] / mwh
        grid = np.bincount(i, mwh_it * lem.grid_price[i, t], minlength=n)[who] / mwh \
            if priced else None
        if payer_is_household:
            led.pay(pa[who], op, "lem", ctx.mtu0, mwh, price)
            led.pay(pa[who], op, "lem_fee", ctx.mtu0, mwh, market.fee_buyer)
            if priced:
                led.pay(pa[who], dso, "lem_grid_price", ctx.mtu0, mwh, grid)
        else:
            led.pay(op, pa[who], "lem", ctx.mtu0, mwh, price)
            led.pay(pa[who], op, "lem_fee", ctx.mtu0, mwh, market.fee_seller)
            if priced:
                led.pay(pa[who], dso, "lem_grid_price", ctx.mtu0, mwh, -grid)
    record_lem(model, ctx)


def peer_supply_mw(ctx) -> np.ndarray:
    """(N, T) MW of a household's grid import that came from its peers: what it bought on the
    LEM, up to what it imported (it pays the local tariff on this, the full one on the rest)."""
    return np.minimum(np.clip(ctx.realtime.prosumer_net, 0, None),
                      np.clip(ctx.lem.settled_mw, 0, None))


def record_lem(model, ctx) -> None:
    """The `lem_areas` table: per MTU and LEM area, energy matched and settled, its value, the
    area's consumption and the parts of it from the households' own generation and from peers,
    and the grid locations where YELLOW paused the LEM."""
    lem, market, rt, dt = ctx.lem, model.lem, ctx.realtime, ctx.dt_h
    n, t = lem.matched_mw.shape
    a, size = market.n_areas, market.n_areas * t
    key = area_mtu(market.area[:, None], np.arange(t)[None, :], t).ravel()

    def per_area(x: np.ndarray) -> np.ndarray:
        return np.bincount(key, np.asarray(x, float).ravel(), size) if n else np.zeros(size)

    net = rt.prosumer_net
    exported = np.clip(-net, 0, None)
    own = np.clip(rt.prof.pv - exported, 0, None)        # generation used behind the meter
    bought = np.clip(lem.settled_mw, 0, None)
    paused = np.zeros((a, t))
    if lem.paused.size:
        for k in range(lem.paused.shape[1]):
            areas = np.unique(market.area[market.location == k])
            paused[areas] += lem.paused[:, k]
    cols = {} if market.battery_shift is None else {
        "battery_shift_mwh": per_area(np.abs(market.battery_shift) * dt)}
    model.records.setdefault("lem_areas", []).append(pd.DataFrame({
        "mtu": ctx.mtu0 + np.tile(np.arange(t), a),
        "area": np.repeat(np.arange(a), t),
        "matched_mwh": per_area(np.clip(lem.matched_mw, 0, None) * dt),
        "traded_mwh": per_area(bought * dt),
        "traded_eur": per_area(np.nan_to_num(lem.price) * bought * dt),
        "consumption_mwh": per_area((np.clip(net, 0, None) + own) * dt),
        "own_generation_mwh": per_area(own * dt),
        "peer_supply_mwh": per_area(peer_supply_mw(ctx) * dt),
        "paused_locations": paused.ravel().astype(np.int64),
        **cols,
    }))

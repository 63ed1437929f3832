"""Booking of every market's payments as ledger rows (one function per kind of settlement),
and the day's settlement after real time (`settle_day`): imbalance, balancing energy, fuel,
retail bills, aggregator-supplier compensation, LFM non-delivery and balancing capacity."""

from __future__ import annotations

import numpy as np

from agents.producer import Producer
from environment.ledger import Ledger
from environment.lem_settlement import peer_supply_mw, settle_lem

# accounts of the market operators and the outside world every run holds
EXTERNAL = "external"
EXCHANGE = "da_exchange"
SYSTEM_CONSUMERS = "system_consumers"
SETTLEMENT_ENTITY = "settlement_entity"
ID_EXCHANGE = "id_exchange"
PLATFORM = "flex_platform"
LFM_OPERATOR = "lfm_operator"


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


def settle_day(model, ctx) -> None:
    """Every payment of the day after real time (`ctx.realtime`), in a fixed order: the
    parties' and the DSO's imbalance, the producers' balancing energy and fuel, the retail
    bills, compensation, LFM non-delivery and the TSO's balancing capacity."""
    rt, led, dt, tso = ctx.realtime, model.ledger, ctx.dt_h, model.tso
    mtus = ctx.mtu0 + np.arange(ctx.n_mtu)
    accounts = np.array([p.account for p in model.parties])
    book_imbalance(led, accounts, rt.imbalance_mw * dt, rt.price_short, rt.price_long,
                   tso.account, mtus)
    if np.any(rt.dso_imbalance):
        book_imbalance(led, np.array([model.dso.account]), rt.dso_imbalance[None, :] * dt,
                       rt.price_short, rt.price_long, tso.account, mtus)
    book_balancing(led, np.array([model.account_of[u] for u in rt.offers.provider], int),
                   rt.act, tso.account, led.id(EXTERNAL), mtus, dt,
                   tso.cfg.emergency_price_eur_mwh, tso.emergency_down_price)
    for i, p in enumerate(model.parties):
        if isinstance(p, Producer):
            led.pay(p.account, led.id(EXTERNAL), "fuel", mtus,
                    (rt.balancing[i] - rt.realised[i]) * dt, p.marginal_cost)
    if ctx.lem is not None:
        settle_lem(model, ctx)
    settle_retail(model, ctx)
    settle_compensation(model, ctx)
    settle_non_delivery(model, ctx)
    capacity = model.config.tso.capacity_price_eur_mw_h
    if capacity > 0:
        for uid, held in ctx.tso_offers.items():
            led.pay(tso.account, model.account_of[uid], "balancing_capacity",
                    ctx.mtu0 + held.mtu, held.mw * dt, capacity)


def settle_non_delivery(model, ctx) -> None:
    """An aggregator pays the DSO a penalty per MWh of its LFM commitments that its plan
    could not honour: what it missed at an MTU-location, up to what the DSO bought from
    it there (a miss of a TSO or platform commitment is settled as imbalance)."""
    pen = model.config.markets.lfm.non_delivery_penalty_eur_mwh
    if pen <= 0:
        return
    for agg in model.aggregators:
        sold = ctx.dso_sold.get(agg.unique_id)
        if sold is None:
            continue
        missed = sum((np.minimum(agg.missed_mw(k), sold[:, k].sum(1))
                      for k in agg.plans), np.zeros(ctx.n_mtu))
        model.ledger.pay(agg.account, model.dso.account, "lfm_penalty",
                         ctx.mtu0 + np.arange(ctx.n_mtu), missed * ctx.dt_h, pen)


def settle_compensation(model, ctx) -> None:
    """Compensation for the energy independent aggregators moved out of (or into) each
    supplier's perimeter, per MTU (seed 001 4.2): the aggregator pays the supplier per MWh
    its customers consumed below the declared baseline (and is paid per MWh above) at the
    regime's price; under `central` a neutral settlement entity pays the supplier the DA
    price and charges the aggregator the same."""
    st = model.config.settlement
    if st.compensation == "none":
        return
    led, mtus = model.ledger, ctx.mtu0 + np.arange(ctx.n_mtu)
    for agg in model.aggregators:
        if agg.kind != "independent":
            continue
        taken = -agg.moved_by_brp() * ctx.dt_h
        for b, brp in enumerate(model.brps):
            if st.compensation == "central":
                central = led.id(SETTLEMENT_ENTITY)
                led.pay(agg.account, central, "compensation", mtus, taken[b], ctx.da_price)
                led.pay(central, brp.account, "compensation", mtus, taken[b], ctx.da_price)
                continue
            price = {"contractual": st.contractual_price_eur_mwh,
                     "regulated": st.regulated_price_eur_mwh,
                     "corrected": brp.energy_component}[st.compensation]
            led.pay(agg.account, brp.account, "compensation", mtus, taken[b], price)


def _enrolled(f, real: dict, kinds=("battery", "ev", "heat_pump")) -> np.ndarray:
    """(N, T) MW of the devices of `kinds` an aggregator controls (zero elsewhere)."""
    key = {"battery": "battery", "ev": "ev", "heat_pump": "hp"}
    out = None
    for k in kinds:
        mw = np.where(f.enrolled[k][:, None], real[key[k]], 0.0)
        out = mw if out is None else out + mw
    return out


def settle_retail(model, ctx) -> None:
    """Daily bills per prosumer: supplier import and feed-in (less what the LEM settled),
    network tariff on grid import (the local one on energy from peers),
    aggregator energy and flexibility fees, locational tariffs (implicit LFM) and RED
    compensation."""
    led, f, dt, grid = model.ledger, model.fleet, ctx.dt_h, model.grid
    if f.n == 0:
        return
    rt, adders, dso = ctx.realtime, ctx.adders, model.dso
    real, red, day_mtu = rt.real, rt.red, ctx.mtu0
    inside = np.isin(f.aggregator, [a.index for a in model.aggregators
                                    if a.in_supplier_perimeter])
    net = ctx.retail_net + np.where(inside[:, None], _enrolled(f, real), 0.0)
    if ctx.lem is not None:   # the supplier covers only what the LEM did not
        net = net - ctx.lem.settled_mw
    imp = np.clip(net, 0, None).sum(1) * dt
    exp = np.clip(-net, 0, None).sum(1) * dt
    brp_acct = np.array([b.account for b in model.brps])[f.brp]
    retail = np.array([b.retail_price for b in model.brps])[f.brp]
    feed = np.array([b.feed_in for b in model.brps])[f.brp]
    pa = model.prosumer_account
    led.pay(pa, brp_acct, "retail", day_mtu, imp, retail)
    led.pay(brp_acct, pa, "feed_in", day_mtu, exp, feed)
    grid_import = np.clip(rt.prosumer_net, 0, None)
    if ctx.lem is not None:   # energy from peers pays the local tariff instead of the full one
        local = peer_supply_mw(ctx)
        grid_import = grid_import - local
        led.pay(pa, dso.account, "network_tariff_local", day_mtu, local.sum(1) * dt,
                model.config.markets.lem.local_tariff_eur_mwh)
    grid_import = grid_import.sum(1) * dt
    led.pay(pa, dso.account, "network_tariff", day_mtu, grid_import, dso.tariff)
    sysb = model.system_brp
    sys_mwh = sysb.realised_mw(ctx).sum() * dt
    led.pay(led.id(SYSTEM_CONSUMERS), sysb.account, "retail", day_mtu, sys_mwh,
            sysb.retail_price)
    for agg in model.aggregators:
        m = agg.members
        if not m.any():
            continue
        if not agg.in_supplier_perimeter:
            energy = _enrolled(f, real, ("ev", "heat_pump"))[m].sum(1) * dt
            led.pay(pa[m], agg.account, "aggregator_energy", day_mtu, energy, retail[m])
        n_dev = sum(f.enrolled[d][m].astype(int) for d in f.enrolled)
        led.pay(agg.account, pa[m], "flexibility_fee", day_mtu, n_dev, agg.fee)
        b = f.enrolled["battery"] & m
        throughput = np.abs(real["battery"][b]).sum() * dt
        led.pay(agg.account, led.id(EXTERNAL), "battery_wear", day_mtu, throughput,
                agg.degradation)
        if np.any(adders):
            loc = grid.bus_location[f.bus]
            consumed = np.zeros((ctx.n_mtu, grid.n_locations))
            own_dev = _enrolled(f, real)
            for k in range(grid.n_locations):
                consumed[:, k] = own_dev[m & (loc == k)].sum(0)
            tk, kk = np.nonzero(adders)
            led.pay(agg.account, dso.account, "implicit_tariff", ctx.mtu0 + tk,
                    consumed[tk, kk] * dt, adders[tk, kk])
    cfg = model.config.dso
    if red is not None and red["curtailed_mwh"].any():
        led.pay(dso.account, pa, "red_compensation", day_mtu, red["curtailed_mwh"],
                cfg.red_compensation_eur_mwh)
    if red is not None and red["direct_mwh"].any():
        for agg in model.aggregators:   # direct control of contracted devices: the
            mwh = red["direct_mwh"][agg.members].sum()   # contract holder is paid
            if mwh > 0:
                led.pay(dso.account, agg.account, "red_direct_control", day_mtu, mwh,
                        cfg.direct_control_eur_mwh)

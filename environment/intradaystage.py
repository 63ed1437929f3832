"""Day D: periodic intraday auctions with forecasts that improve towards delivery. Every party
answers a session with its own orders (`Party.id_orders`, in the parties' fixed order); the
first session also runs the intraday LFM and the BRPs' flexibility platform, where the
suppliers ask to close their updated deviations (`Brp.platform_orders`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.brp import Brp
from agents.prosumer import DayProfiles
from environment.day import DayContext
from environment.flexstage import flex_round
from environment.markets.intraday import Session, sessions
from environment.markets.orders import OrderBook
from environment.settlement import ID_EXCHANGE, book_auction


@dataclass(frozen=True)
class IntradayGate:
    """What a party sees of an intraday session: the day so far, the session, and the
    suppliers' updated forecast of their customers' net consumption `retail` (N, T)."""

    ctx: DayContext
    session: Session
    retail: np.ndarray


def intraday(model, ctx) -> None:
    """The day's sessions in order: forecasts updated by the session's share of the day's
    errors, the first session's flexibility round, then each party's orders, cleared by the
    scenario's mechanism; positions, payments, volumes and prices."""
    cfg = model.config.markets
    f, dt, t_n = model.fleet, ctx.dt_h, ctx.n_mtu
    slot = model.party_slot
    err = ctx.errors
    load_err = (err["load"][f.brp] if f.n else np.zeros((0, t_n))) \
        + model.config.forecast.load_bias
    clear = model.clear_id
    for s in sessions(cfg.intraday, t_n):
        a = ctx.profiles
        prof = DayProfiles(
            load=a.load * np.clip(1 + s.error_share * (load_err + err["idio"]), 0, None),
            pv=a.pv * np.clip(1 + s.error_share * err["pv"], 0, None),
            ev=a.ev,
            hp=np.clip(a.hp * (1 + s.error_share * load_err), 0, f.hp_mw[:, None]),
        )
        gate = IntradayGate(ctx, s, model.retail_net(prof))
        if s.index == 0 and (cfg.lfm.intraday or cfg.platform.enabled):
            requests = platform_requests(model, gate) if cfg.platform.enabled else None
            flex_round(model, ctx, "id", gate.retail, prof, requests, ctx.yellow, s.first_mtu)
        book = OrderBook.concat(model.parties.map("id_orders", gate)).arrived(
            clear, model.arrival_rng)
        if len(book) == 0:
            continue
        res = clear(book, t_n, ctx.price_floor, ctx.price_cap)
        rows = np.array([slot[o] for o in book.owner])
        np.add.at(ctx.position, (rows, book.mtu), res.accepted / dt)
        book_auction(model.ledger, book, res, "intraday", model.ledger.id(ID_EXCHANGE),
                     model.account_of, ctx.mtu0)
        traded = np.zeros(t_n)
        np.add.at(traded, book.mtu, np.clip(res.accepted, 0, None))
        ctx.id_volume += traded
        first = s.first_mtu
        ctx.id_price[first:] = np.where(np.isfinite(res.price[first:]), res.price[first:],
                                        ctx.id_price[first:])


def platform_requests(model, gate: IntradayGate) -> OrderBook:
    """The suppliers' requests to the BRPs' flexibility platform, in their fixed order."""
    return OrderBook.concat(model.parties.select(agent_type=Brp).map("platform_orders", gate))

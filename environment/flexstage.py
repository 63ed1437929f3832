"""The day's flexibility rounds: the day-ahead LFM, and the intraday LFM with the BRPs'
flexibility platform (in the first intraday session, `environment.intradaystage`). What the
DSO buys (where, how much, whether again, availability or activations) is the DSO's decision
(`agents.dso.Dso`); which buyer may use which MW is decided by the coupling scheme
(`environment.coupling`); this module clears each round and applies the outcome to agents,
positions and the ledger."""

from __future__ import annotations

import numpy as np
from numba import njit

from agents.deliverable import OfferRound
from agents.prosumer import DayProfiles
from environment.coupling import COUPLING, FlexOutcome, FlexRound, clear_round
from environment.grid.headroom import headroom
from environment.markets.lfm import FlexOffers, GridLimits, location_delta, location_moves
from environment.markets.orders import OrderBook
from environment.settlement import LFM_OPERATOR, PLATFORM, book_flexibility


def flex_round(model, ctx, stage: str, retail: np.ndarray, prof: DayProfiles,
               requests: OrderBook | None = None,
               regime_yellow: np.ndarray | None = None, first_mtu: int = 0) -> np.ndarray:
    """Clear one flexibility round under the scenario's coupling scheme and apply it: the DSO's
    purchases and the platform trades become commitments the aggregators re-plan around,
    platform energy moves between perimeters, every payment is booked.

    The DSO then validates the re-planned schedules on the full grid model and buys again
    where the rebound or its location-level view of the offers left a violation, up to
    `markets.lfm.rounds` times (no platform in these re-checks) and only while the last round
    relieved at least `markets.lfm.min_relief` of the forecast excess over the limits (where
    what it bought is undone by the rebound or not delivered, buying it again would not help).
    Each round opens with what the aggregators are told of it (`OfferRound`: the DSO's
    request, `relief_request`; the platform; the TSO's holding; the headroom the re-plans are
    held to), so that their offers in it are deliverable together (`Aggregator.open_round`).
    Returns the violations the DSO saw first, (T, K)."""
    cfg = model.config
    mk = cfg.markets
    dso = model.dso
    first = excess = None
    for i in range(1 + mk.lfm.rounds):
        _, flows, flags = model.forecast_grid(ctx, retail, prof)
        violated = dso.congestion(flags, stage, first_mtu)
        if first is None:
            first = violated
        if i > 0 and not violated.any():
            break
        before, excess = excess, dso.excess_mw(flows, first_mtu)
        if i > 0 and not dso.buys_again(before, excess):
            break
        regime = dso.regime(violated, regime_yellow)
        reserve = cfg.tso.der_reserve_mw if stage == "da" and cfg.tso.der_balancing else 0.0
        limits = dso.grid_limits(flows, bus_flexibility(model, ctx))
        platform = mk.platform.enabled and i == 0 and requests is not None and len(requests) > 0
        offered = OfferRound(dso.relief_request(limits, violated), first_mtu, platform,
                             i == 0 and reserve > 0 and any(
                                 g.market == "tso" for g in COUPLING[mk.coupling].gates),
                             rebound_room(model, limits, regime))
        for agg in model.aggregators:
            agg.open_round(ctx, offered)
        if dso.reserves_availability(stage):
            _availability_round(model, ctx, limits, violated, regime, dso.availability_fee(),
                                excess)
            break   # nothing was activated: a re-check would see the same forecast
        reserved = None
        if dso.activates_reserved(stage, i):   # what it holds first
            reserved = FlexOffers.concat([a.reserved_offers(ctx) for a in model.aggregators])
        _one_round(model, ctx, stage, limits, violated, regime,
                   requests if i == 0 else None, reserve if i == 0 else 0.0, excess,
                   reserved)
        if reserved is not None:
            for agg in model.aggregators:
                agg.release()
    return first


def rebound_room(model, limits: GridLimits, regime: np.ndarray,
                 moves: np.ndarray | None = None) -> np.ndarray | None:
    """(T, K, 2) each aggregator's share of the grid headroom (`shared_headroom`) left after
    a round's `moves` (none: what its offers' rebound may use at MTUs nothing is bought at),
    where the scheme's later gates respect the grid and the round manages a YELLOW regime
    `regime` (T, K): the re-plans after the round stay inside it. None where they are free."""
    gates = COUPLING[model.config.markets.coupling].gates
    if not (regime.any() and any(g.restriction != "none" for g in gates)):
        return None
    t_n, k_n = regime.shape
    return shared_headroom(model, limits,
                           np.zeros((t_n, k_n, 2)) if moves is None else moves)


def shared_headroom(model, limits: GridLimits, moves: np.ndarray) -> np.ndarray:
    """(T, K, 2) the grid headroom left after `moves` (`headroom`), split evenly among the
    aggregators at each location."""
    present = np.maximum(aggregators_present(model), 1.0)
    return headroom(limits, moves) / present[None, :, None]


def _flex_round(model, ctx, limits, violated, regime, requests, tso_reserve, offers=None,
                reserved=None):
    """The round as the coupling scheme clears it against the grid `limits`, from the
    aggregators' offers (priced by their strategies, after they saw the round's published
    congestion and stage)."""
    cfg = model.config
    mk = cfg.markets
    model.published_congestion = violated if mk.lfm.publish_congestion else None
    if offers is None:
        offers = FlexOffers.concat([a.flex_offers(ctx) for a in model.aggregators
                                    if a.unique_id not in ctx.lfm_excluded])
    r = FlexRound(limits, violated, regime, ctx.dso_bought, offers, ctx.da_price,
                  requests or OrderBook.empty(), ctx.dt_h, mk.lfm, mk.platform,
                  cfg.dso.conditional_yellow, tso_reserve,
                  frozenset(a.unique_id for a in model.aggregators if a.trades_energy),
                  mk.flex_price_cap, reserved, mk.dayahead.tie_price)
    out = clear_round(COUPLING[mk.coupling], r)
    model.note_truncation("lfm", out.dso is not None and not out.dso.converged)
    return out


def _availability_round(model, ctx, limits, violated, regime, fee, excess) -> None:
    """Day-ahead LFM with availability payments (conditional products): the DSO reserves
    flexibility against its D-1 forecast, weighing each offer at its activation ask plus the
    availability fee per MW and hour, pays the fee on what it reserved, and activates from it
    in the intraday LFM (at the ask) only what the updated forecast needs. Reserved capacity
    is offered to nobody else until then."""
    ctx.flex_stage = "da"
    model.published_congestion = violated if model.config.markets.lfm.publish_congestion \
        else None
    asks = FlexOffers.concat([a.flex_offers(ctx) for a in model.aggregators
                              if a.unique_id not in ctx.lfm_excluded])
    out = _flex_round(model, ctx, limits, violated, regime, None, 0.0,
                      asks.with_price(asks.price + fee))
    if out.dso is None:
        _record_round(model, ctx, "da_availability", out, ctx.n_mtu, excess)
        return
    mw = out.dso.accepted_mw
    for agg in model.aggregators:
        sel = (asks.owner == agg.unique_id) & (mw > 1e-9)
        if sel.any():
            agg.reserve(asks.take(sel), mw[sel])
    acc = mw > 1e-9
    led, cfg = model.ledger, model.config.markets.lfm
    sellers = np.array([model.account_of[u] for u in asks.owner[acc]], int)
    operator = led.id(LFM_OPERATOR) if cfg.operator == "independent" else None
    book_flexibility(led, model.dso.account, sellers, "lfm_reservation",
                     ctx.mtu0 + asks.mtu[acc], mw[acc] * ctx.dt_h, fee, operator)
    _record_round(model, ctx, "da_availability", out, ctx.n_mtu, excess)


def _one_round(model, ctx, stage, limits, violated, regime, requests, tso_reserve, excess,
               reserved=None):
    t_n, k_n = ctx.n_mtu, model.grid.n_locations
    ctx.flex_stage = stage
    out = _flex_round(model, ctx, limits, violated, regime, requests, tso_reserve,
                      reserved=reserved)
    moved = np.zeros((t_n, k_n, 2))
    if out.dso is not None:
        ctx.dso_bought = ctx.dso_bought + location_delta(out.dso_offers, out.dso.accepted_mw,
                                                          t_n, k_n)
        moved += location_moves(out.dso_offers, out.dso.accepted_mw, t_n, k_n)
        o, mw = out.dso_offers, out.dso.accepted_mw
        for owner in np.unique(o.owner[mw > 1e-9]):
            sel = (mw > 1e-9) & (o.owner == owner)
            sold = ctx.dso_sold.setdefault(int(owner), np.zeros((t_n, k_n, 2)))
            sold += location_moves(o.take(sel), mw[sel], t_n, k_n)
    if len(out.platform_offers):
        moved += location_moves(out.platform_offers, out.platform_accepted_mw, t_n, k_n)
    # a scheme whose later gates respect the grid re-plans the rebound inside the headroom
    _commit(model, ctx, out, rebound_room(model, limits, regime, moved))
    _book_round(model, ctx, stage, out)
    _record_round(model, ctx, stage, out, t_n, excess)
    return out


def bus_flexibility(model, ctx) -> np.ndarray:
    """(T, B, 2) MW the aggregators' devices at each bus could move less (0) or more (1)
    around their current plan: where an activation at a location would physically happen."""
    f, plan = model.fleet, model.device_plan(ctx)
    out = np.zeros((ctx.n_mtu, model.grid.n_bus, 2))
    _bus_flexibility(model.flex_rows, f.bus, f.enrolled["battery"], f.enrolled["ev"],
                     f.enrolled["heat_pump"], f.batt_mw, plan["battery"], plan["ev"],
                     plan["hp"], ctx.ev_env.pmax, ctx.hp_env_forecast.pmax, out)
    return out


@njit(cache=True)
def _bus_flexibility(rows, bus, bat, ev, hp, batt_mw, p_bat, p_ev, p_hp, ev_pmax, hp_pmax,
                     out):
    """Summed per bus in the order of `rows`: one pass over the enrolled prosumers instead of
    a dozen (N, T) temporaries and two sparse products."""
    for i in rows:
        b = bus[i]
        for t in range(out.shape[0]):
            up = (batt_mw[i] + p_bat[i, t] if bat[i] else 0.0) \
                + (p_ev[i, t] if ev[i] else 0.0) + (p_hp[i, t] if hp[i] else 0.0)
            down = (batt_mw[i] - p_bat[i, t] if bat[i] else 0.0) \
                + (max(ev_pmax[i, t] - p_ev[i, t], 0.0) if ev[i] else 0.0) \
                + (max(hp_pmax[i, t] - p_hp[i, t], 0.0) if hp[i] else 0.0)
            out[t, b, 0] += max(up, 0.0)
            out[t, b, 1] += max(down, 0.0)


def _activation_delta(out: FlexOutcome, owner: int, t_n: int, k: int) -> np.ndarray:
    """(T,) change of an aggregator's consumption at location k committed in this round."""
    d = np.zeros(t_n)
    for offers, mw in ((out.dso_offers, out.dso.accepted_mw if out.dso else None),
                       (out.platform_offers, out.platform_accepted_mw)):
        if mw is None or not len(offers):
            continue
        sel = (offers.owner == owner) & (offers.location == k) & (mw > 0)
        np.add.at(d, offers.mtu[sel], -offers.direction[sel] * mw[sel])
    return d


def aggregators_present(model) -> np.ndarray:
    """(K,) how many aggregators have a pool at each location (they share its headroom)."""
    present = np.zeros(model.grid.n_locations)
    for agg in model.aggregators:
        present[list(agg.plans)] += 1
    return present


def rebound_bounds(net: np.ndarray, room: np.ndarray | None,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """(net_max, net_min) for a re-plan of location k around its net plan `net`: within its
    share of the grid headroom `room` (T, K, 2, `shared_headroom`), or unbounded without one."""
    if room is None:
        return np.full(len(net), np.inf), np.full(len(net), -np.inf)
    return net + room[:, k, 1], net - room[:, k, 0]


def _commit(model, ctx, out: FlexOutcome, room: np.ndarray | None) -> None:
    """Activations become commitments the aggregators re-plan around. Under a coupled scheme
    the rebound must also stay inside the grid headroom left at every other MTU (shared among
    the aggregators present at a location), so that moving energy away from one congested MTU
    cannot overload another; uncoupled markets know nothing of the grid."""
    t_n = ctx.n_mtu
    slot = model.party_slot
    for agg in model.aggregators:
        changed = {}
        nets = agg.location_net_mw()
        for k in agg.plans:
            delta = _activation_delta(out, agg.unique_id, t_n, k)
            if np.abs(delta).max() > 1e-9:
                agg.commit(k, np.abs(delta) > 1e-9, nets[k] + delta)
                changed[k] = rebound_bounds(nets[k], room, k)
        if changed:
            agg.redispatch(ctx, changed)
        if len(out.platform_offers):
            sel = out.platform_offers.owner == agg.unique_id
            energy = np.zeros(t_n)
            np.add.at(energy, out.platform_offers.mtu[sel],
                      out.platform_offers.direction[sel] * out.platform_accepted_mw[sel])
            ctx.position[slot[agg.unique_id]] -= energy
        held = out.tso_offers.take(out.tso_offers.owner == agg.unique_id)
        if len(held) and held.mw.any():
            earlier = ctx.tso_offers.get(agg.unique_id)
            ctx.tso_offers[agg.unique_id] = (held if earlier is None
                                             else FlexOffers.concat([earlier, held]))
            agg.hold(held)
    if len(out.requests):
        for owner, mwh, t in zip(out.requests.owner, out.request_accepted_mwh,
                                 out.requests.mtu, strict=True):
            ctx.position[slot[owner], t] += mwh / ctx.dt_h


def _book_round(model, ctx, stage: str, out: FlexOutcome) -> None:
    led, dt, cfg = model.ledger, ctx.dt_h, model.config.markets.lfm
    acct = model.account_of
    operator = led.id(LFM_OPERATOR) if cfg.operator == "independent" else None
    if out.dso is not None:
        acc = out.dso.accepted_mw > 0
        o = out.dso_offers.take(acc)
        sellers = np.array([acct[u] for u in o.owner], int)
        mtus = ctx.mtu0 + o.mtu
        book_flexibility(led, model.dso.account, sellers, f"lfm_{stage}", mtus,
                         out.dso.accepted_mw[acc] * dt, out.dso.paid_price[acc], operator,
                         cfg.operator_fee_eur_mwh)
        fee = cfg.operator_fee_eur_mwh if operator is not None else 0.0
        model.dso.charge(o.location, out.dso.accepted_mw[acc] * dt
                         * (out.dso.paid_price[acc] + fee), mtus)
    if len(out.platform_offers) and out.platform_accepted_mw.any():
        plat = led.id(PLATFORM)
        o, mw = out.platform_offers, out.platform_accepted_mw
        sel = mw > 0
        sellers = np.array([acct[u] for u in o.owner[sel]], int)
        energy = o.direction[sel] * mw[sel] * dt
        price = out.platform_price[o.mtu[sel]]
        led.pay(plat, sellers, "platform", ctx.mtu0 + o.mtu[sel], energy, price)
        req = out.requests
        if len(req):
            payer = np.array([acct[u] for u in req.owner], int)
            led.pay(payer, plat, "platform", ctx.mtu0 + req.mtu, out.request_accepted_mwh,
                    out.platform_price[req.mtu])


def _record_round(model, ctx, stage: str, out: FlexOutcome, t_n: int, excess: float) -> None:
    k_n = model.grid.n_locations
    cols = {}
    for name, offers, mw in (("dso", out.dso_offers,
                              out.dso.accepted_mw if out.dso else np.zeros(len(out.dso_offers))),
                             ("platform", out.platform_offers, out.platform_accepted_mw),
                             ("tso_held", out.tso_offers, out.tso_offers.mw)):
        for d, lab in ((1, "up"), (-1, "down")):
            a = np.zeros((t_n, k_n))
            if len(offers):
                sel = offers.direction == d
                np.add.at(a, (offers.mtu[sel], offers.location[sel]), mw[sel])
            cols[f"{name}_{lab}_mw"] = a.ravel()
    price = out.dso.location_price if out.dso else np.zeros((t_n, k_n, 2))
    up, down = price[:, :, 0].ravel(), price[:, :, 1].ravel()
    late = {"double_sold_mw": out.double_sold_mw.ravel(),
            "counteracting_mw": out.counteracting_mw.ravel()}
    # only MTU-locations where something was bought, held or priced (NaN counting as 0);
    # selected before a frame is built, since most of a day's are idle
    moved = np.nansum(np.abs(np.stack([*cols.values(), *late.values()])), axis=0)
    active = np.flatnonzero(moved + (np.where(np.isnan(up), 0.0, up)
                                     + np.where(np.isnan(down), 0.0, down)) > 0)
    if len(active):
        # columns, made one frame at the end of the run (`FlexMarketModel.tables`)
        model.records.setdefault("flex", []).append({
            "mtu": (ctx.mtu0 + np.repeat(np.arange(t_n), k_n))[active],
            "stage": np.full(len(active), stage, dtype=object),
            "location": np.tile(np.array(model.grid.locations, dtype=object), t_n)[active],
            **{name: v[active] for name, v in cols.items()},
            "lfm_price_up": up[active],
            "lfm_price_down": down[active],
            "platform_price": np.repeat(out.platform_price, k_n)[active],
            **{name: v[active] for name, v in late.items()},
        })
    ctx.round_stats.append({"stage": stage, "excess_mw": excess,
                            "unresolved_mw": out.dso.unresolved_mw if out.dso else 0.0,
                            "refused_mw": out.refused_mw})

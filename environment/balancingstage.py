"""Real-time balancing with DER: aggregators' flexibility in the TSO's balancing market, under
the scenario's TSO-DSO coordination scheme (`markets.tso_dso_scheme`, the SmartNet schemes of
`environment.markets.tso_dso`).

The day is cleared in blocks of `tso.der_block_hours`, in order. For each block the TSO and
the DSO see a preview of real time (the aggregators' current plans, the realised weather and
demand): the system imbalance, the distribution grid's flows and, for shared balancing, the
distribution area's deviation from its agreed interface schedule. Activated DER become
commitments: the aggregator re-plans with everything up to the end of the block fixed, so an
activation changes device set-points and states of charge, and its rebound falls in later
blocks, where it is part of the imbalance the next block balances. Under a scheme that
respects distribution limits the DSO then previews the block again on the members' set-points
and, while a limit of the block is still broken there, clears it again (`RECHECKS`).

What the TSO asks for and how the block is cleared is the TSO's (`Tso.activate`), whether the
DSO clears it again the DSO's (`Dso.still_broken`); this module applies and books the outcome.

Producers' balancing energy is only tentative here: after realisation the TSO activates
producers on what is left (`environment.model`), and the imbalance price is set by the
marginal bid activated in either pass.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from environment.flexstage import bus_flexibility, rebound_bounds, shared_headroom
from environment.markets.lfm import FlexOffers, location_moves
from environment.markets.tso_dso import GRID_AWARE
from environment.settlement import book_flexibility


def der_balancing(model, ctx) -> None:
    """Clear the day's balancing blocks with DER bids and apply the activations."""
    cfg = model.config
    t_n = ctx.n_mtu
    open_activations(model, ctx)
    aggs = [a for a in model.aggregators if a.offers_balancing]
    if not cfg.tso.der_balancing or not aggs:
        return
    aware = cfg.markets.tso_dso_scheme in GRID_AWARE
    block = max(1, int(round(cfg.tso.der_block_hours / ctx.dt_h)))
    preview = None
    for start in range(0, t_n, block):
        mtus = np.arange(start, min(t_n, start + block))
        left = None     # the last clearing's violation left (MW summed, EUR)
        for rnd in range(1 + (RECHECKS if aware else 0)):
            if preview is None:  # else nothing was activated since: nothing changed
                preview = model.preview_realtime(ctx)
            if rnd and not model.dso.still_broken(limits_of(model, ctx, preview), mtus):
                break
            res = _clear_block(model, ctx, preview, limits_of(model, ctx, preview), mtus, aggs,
                               aware, tso_need=rnd == 0)
            if res is None:
                break
            # a re-check replaces the violation the last clearing left: count it once
            left = (res.unresolved_mw, res.unresolved_mw * res.unresolved_eur_mw)
            if not res.moved:
                break
            preview = None
        if left is not None:
            ctx.balancing_cost["unresolved_mw"] += float(left[0])
            ctx.balancing_cost["procurement"] += float(left[1])


def open_activations(model, ctx) -> None:
    """The day's activation arrays, opened once: commitments made before the blocks (the
    zone's TSO's, environment/tiers/national.py) stay in them."""
    if ctx.der_tso is not None:
        return
    t_n, k_n = ctx.n_mtu, model.grid.n_locations
    ctx.der_tso = np.zeros((len(model.parties), t_n))
    ctx.der_dso = np.zeros((len(model.parties), t_n))
    ctx.der_price = np.full(t_n, np.nan)
    ctx.counteracting = np.zeros((t_n, k_n))
    ctx.dso_realtime_mw = np.zeros(t_n)
    ctx.balancing_cost = {"tso": 0.0, "dso": 0.0, "procurement": 0.0, "unresolved_mw": 0.0}


def commit_tso(model, ctx, der: FlexOffers, mw: np.ndarray, price: np.ndarray,
               market: str, limits=None) -> None:
    """Activations `mw` of the bids `der` bought for the grid above (+ up) before the day's
    blocks, committed as the region's TSO's at their MTUs only (bought before real time, so
    the rebound may fall at any MTU not committed, within the DSO's headroom around `limits`
    where given) and paid by the region's
    TSO at `price` (EUR per MWh moved) under `market`. Its cost is kept apart from the blocks'
    (`balancing_cost["passed_up"]`): the zone's TSO pays it back."""
    open_activations(model, ctx)
    if not (mw > 1e-9).any():
        return
    t_n, k_n = ctx.n_mtu, model.grid.n_locations
    room = None if limits is None else shared_headroom(model, limits,
                                                       location_moves(der, mw, t_n, k_n))
    res = SimpleNamespace(der_tso_mw=mw, der_dso_mw=np.zeros(len(mw)))
    fixed = np.zeros(t_n, bool)
    fixed[der.mtu[mw > 1e-9]] = True
    _apply(model, ctx, der, res, np.arange(t_n), room, fixed)
    sel = mw > 1e-9
    book_flexibility(model.ledger, model.tso.account,
                     np.array([model.account_of[u] for u in der.owner[sel]], int), market,
                     ctx.mtu0 + der.mtu[sel], mw[sel] * ctx.dt_h, price[sel])
    ctx.balancing_cost["passed_up"] = ctx.balancing_cost.get("passed_up", 0.0) + float(
        (mw[sel] * price[sel]).sum() * ctx.dt_h)


def limits_of(model, ctx, preview: dict):
    """The distribution grid around a preview's flows, kept with the preview."""
    lim = preview.get("limits")
    if lim is None:
        lim = preview["limits"] = model.dso.grid_limits(
            model.dso.flows(preview["p_bus"], preview["q_bus"]), bus_flexibility(model, ctx))
    return lim


RECHECKS = 3
"""Under a grid-aware scheme the DSO re-checks each block after its activations are applied:
the aggregators' members deliver a re-planned pool only as far as their own envelopes allow
(`Aggregator.setpoints`), so the flows they leave can differ from what the clearing saw. While
a limit of the block is still broken on the members' set-points the block is cleared again
against them, at most this many times (`centralized` leaves distribution limits to others and
is cleared once)."""


def _clear_block(model, ctx, preview: dict, limits, mtus: np.ndarray, aggs, aware: bool,
                 tso_need: bool = True):
    """Clear one block against `preview`, apply and book it; the scheme's result with
    ``moved`` (anything activated) and ``unresolved_eur_mw`` (what one MW of violation left
    costs), or None without bids. Costs are added to `ctx.balancing_cost` but for the
    violation left, which the caller counts once per block. A re-check (`tso_need` False)
    clears for the DSO alone: the preview adds the TSO's earlier activations back to the
    system imbalance, and the need they met must not be bought twice."""
    t_n, k_n = ctx.n_mtu, model.grid.n_locations
    # under a scheme that respects distribution limits the rebound after the block must fit
    # the headroom nothing activated leaves (the block's own moves are at its MTUs)
    room = shared_headroom(model, limits, np.zeros((t_n, k_n, 2))) if aware else None
    der = FlexOffers.concat([a.flex_offers(ctx, balancing=True, mtus=mtus, room=room)
                             for a in aggs])
    if not len(der):
        return None
    der, problem, res = model.tso.activate(ctx, preview, limits, der, mtus, tso_need)
    activated = res.der_tso_mw + res.der_dso_mw
    moved = bool((activated > 1e-9).any())
    if moved:
        _apply(model, ctx, der, res, mtus, shared_headroom(
            model, limits, location_moves(der, activated, t_n, k_n)) if aware else None)
    _book(model, ctx, der, res)
    used = np.zeros(t_n)
    np.add.at(used, der.mtu, res.der_tso_mw)
    ctx.der_price = np.where(used > 1e-9, res.system_price, ctx.der_price)
    ctx.counteracting += res.counteracting_mw
    per_mw = problem.unresolved_cost * problem.dt_h
    for key, val in (("tso", res.tso_cost_eur), ("dso", res.dso_cost_eur),
                     ("procurement", res.procurement_cost_eur - per_mw * res.unresolved_mw)):
        ctx.balancing_cost[key] += float(val)
    return SimpleNamespace(moved=moved, unresolved_mw=res.unresolved_mw, unresolved_eur_mw=per_mw)


def _apply(model, ctx, der: FlexOffers, res, mtus: np.ndarray,
           room: np.ndarray | None, fixed: np.ndarray | None = None) -> None:
    """Activated DER become commitments; everything before the block's end is past. Under a
    scheme that respects distribution limits the rebound is re-planned inside the grid
    headroom `room` (T, K, 2) left after the block's activations, each aggregator's share of
    it at a location (as in `flexstage._commit`). Committed: the MTUs before the block's end,
    or `fixed` (T,) where given.

    `ctx.der_tso`/`ctx.der_dso` keep the MW activated per party (+ up). With a perimeter of
    its own, the aggregator's imbalance is corrected by both (`realtime.corrections`):
    the TSO bought that energy from it, and the DSO is balance responsible for energy it moves
    in real time (as for RED actions)."""
    t_n = ctx.n_mtu
    end = int(mtus[-1]) + 1
    slot = model.party_slot
    for agg in model.aggregators:
        mine = der.owner == agg.unique_id
        if not mine.any():
            continue
        total = res.der_tso_mw + res.der_dso_mw
        if not (total[mine] > 1e-9).any():
            continue
        changed = {}
        nets = agg.location_net_mw()
        for k in agg.plans:
            sel = mine & (der.location == k) & (total > 1e-9)
            if not sel.any():
                continue
            delta = np.zeros(t_n)
            np.add.at(delta, der.mtu[sel], -der.direction[sel] * total[sel])
            past = np.arange(t_n) < end if fixed is None else fixed
            agg.commit(k, past, nets[k] + delta)
            changed[k] = rebound_bounds(nets[k], room, k)
        agg.redispatch(ctx, changed)
        i = slot[agg.unique_id]
        for arr, mw in ((ctx.der_tso, res.der_tso_mw), (ctx.der_dso, res.der_dso_mw)):
            up = np.zeros(t_n)
            np.add.at(up, der.mtu[mine], der.direction[mine] * mw[mine])
            arr[i] += up
            if agg.trades_energy and arr is ctx.der_dso:
                ctx.dso_realtime_mw += up


def _book(model, ctx, der: FlexOffers, res) -> None:
    """Each accepted DER bid is paid by the TSO for the part it used at the TSO's price and
    by the DSO for the rest at the DSO's (EUR per MWh moved; negative: the provider pays,
    e.g. for downward energy it consumes)."""
    led, dt = model.ledger, ctx.dt_h
    acct = np.array([model.account_of[u] for u in der.owner], int)
    mtus = ctx.mtu0 + der.mtu
    for buyer, mw, price, market in (
            (model.tso.account, res.der_tso_mw, res.der_tso_price, "balancing_der"),
            (model.dso.account, res.der_dso_mw, res.der_dso_price, "lfm_realtime")):
        sel = mw > 1e-9
        if sel.any():
            book_flexibility(led, buyer, acct[sel], market, mtus[sel], mw[sel] * dt,
                             price[sel])

"""The national place (seed 000's national balance place; SmartNet's shared balancing at each
TSO-DSO interface, seed 004): the flexibility a region's local place did not clear is offered
up to its zone's TSO with its DSO's limits attached, and the zone's TSO activates it in one
merit order with its producers' balancing offers, inside the regional place's sharing option
(environment/markets/regional.py: the regions' DER offers are offers of their zone).

It runs hour by hour through a day, after every region's intraday and before their real time
(`TierModel.step`), for the regions with `pass_up`:

1. the region previews its real time (`FlexMarketModel.preview_realtime`); its aggregators
   with a balance perimeter of their own (they answer for the energy they move, so the
   region's own TSO does not see an activation as an imbalance to undo) offer their remaining
   balancing flexibility over the hour's MTUs (`Aggregator.flex_offers(balancing=True)`, the
   rebound within the DSO's headroom), bids above the flexibility price cap left out;
2. one hourly offer per aggregator, location and direction: the MW it holds over the whole
   hour (the least of its MTUs'), at the highest of their asks;
3. the DSO's limit: per location and direction the headroom its grid leaves around the
   preview's flows (`environment.grid.headroom`, the least over the hour); a location's offers
   beyond it are cut, dearest first (a merit order takes the cheapest first, so cutting in
   price order is the same as capping the location's total: `within_limits`);
4. the zones' own imbalances of the hour (their loads' and renewables' forecast errors, drawn
   before the run, so known now; the regions' deviations are not) are balanced under the
   scenario's sharing option with the producers' offers (as in real time: the headroom left
   by the coupled day-ahead schedule, at marginal cost) and the DER offers (`clear_hour`);
5. accepted DER are committed in their region as its TSO's activations at the hour's MTUs
   (`balancingstage.commit_tso`: the DER blocks that follow keep them) and paid as bid, as
   the producers are: `<region>/tso` pays the aggregator (`balancing_national`) and the
   zone's TSO pays `<region>/tso` (`national_der` in the transmission ledger) and charges its
   zone's loads (`balancing_charge`).

In real time the activations are in the regions' deviations: the zone's imbalance is smaller
by them and its producers activate less. The value of the pass-up, per zone and hour, is the
sharing's cost without the DER offers minus with them (DER payments included) on the zones'
own imbalances; the rebound (in the regions' later deviations) is not in it, and the
coupled day-ahead schedule stands for the redispatched one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from environment import balancingstage
from environment.flexstage import shared_headroom
from environment.grid.headroom import headroom
from environment.markets.lfm import FlexOffers
from environment.markets.regional import TOL, BalancingPeriod, share

HOURS = 24


@dataclass(frozen=True)
class HourOffers:
    """A region's offers of one hour: per hourly offer its `group` rows in `der` (the MTU
    bids it stands for), location, direction, MW and ask (EUR per MWh moved)."""

    der: FlexOffers
    group: np.ndarray
    location: np.ndarray
    direction: np.ndarray
    mw: np.ndarray
    price: np.ndarray


def hourly(der: FlexOffers) -> HourOffers:
    """The MTU bids of one hour as hourly offers (module docstring, step 2)."""
    if not len(der):
        e = np.zeros(0, int)
        return HourOffers(der, e, e, e, np.zeros(0), np.zeros(0))
    key = np.stack([der.owner, der.location, der.direction])
    uniq, group = np.unique(key, axis=1, return_inverse=True)
    group = group.ravel()
    n = uniq.shape[1]
    mw = np.full(n, np.inf)
    price = np.full(n, -np.inf)
    np.minimum.at(mw, group, der.mw)
    np.maximum.at(price, group, der.price)
    return HourOffers(der, group, uniq[1], uniq[2], np.where(np.isfinite(mw), mw, 0.0), price)


def within_limits(location: np.ndarray, direction: np.ndarray, price: np.ndarray,
                  mw: np.ndarray, limit_mw: np.ndarray) -> np.ndarray:
    """Offers' MW cut so that each location's total per direction stays within the DSO's
    limit `limit_mw` (K, 2: less, more consumption), the cheapest kept first."""
    out = np.zeros(len(mw))
    d = np.where(direction > 0, 0, 1)
    order = np.lexsort((price, d, location))
    left = {}
    for i in order:
        key = (int(location[i]), int(d[i]))
        room = left.get(key, max(float(limit_mw[key]), 0.0))
        out[i] = min(mw[i], room)
        left[key] = room - out[i]
    return out


@dataclass(frozen=True)
class NationalHour:
    """An hour of the national place: DER MW accepted per offer, and per zone the DER
    payments and the value of the pass-up (cost without the DER offers minus with them)."""

    der_mw: np.ndarray
    der_cost_eur: np.ndarray
    value_eur: np.ndarray


def clear_hour(option: str, p: BalancingPeriod, zone: np.ndarray, direction: np.ndarray,
               price: np.ndarray, mw: np.ndarray) -> NationalHour:
    """The zones' imbalances `p` balanced under the sharing `option` with DER offers of their
    `zone` added: up (+1, less consumption) at their ask, down (-1, more consumption) as
    offers paying the TSO minus their ask."""
    z, k = p.zones, len(p.offer_zone)
    up = direction > 0
    q = dataclasses.replace(
        p, offer_zone=np.concatenate([p.offer_zone, zone]),
        up_price=np.concatenate([p.up_price, np.where(up, price, 0.0)]),
        up_mw=np.concatenate([p.up_mw, np.where(up, mw, 0.0)]),
        down_price=np.concatenate([p.down_price, np.where(up, 0.0, -price)]),
        down_mw=np.concatenate([p.down_mw, np.where(up, 0.0, mw)]))
    with_der = share(option, q)
    taken = with_der.up_mw[k:] + with_der.down_mw[k:]
    taken[taken < TOL] = 0.0
    cost = np.bincount(zone, taken * price, z)
    if not taken.any():
        return NationalHour(taken, cost, np.zeros(z))
    return NationalHour(taken, cost, share(option, p).shared_eur - with_der.shared_eur)


def zones_hour(tx, h: int) -> BalancingPeriod:
    """Hour `h` of the run as the national place sees it (module docstring, step 4): the
    zones' own imbalances and the producers' offers around the coupled schedule."""
    z = tx.zones
    final = tx.coupled.mw[h]
    own = np.ones(len(tx.load_zone), bool)
    own[tx.region_row] = False
    share_load = tx.load_share[:, h]
    load_err = share_load * tx.load_error[0, h][tx.load_zone]
    ren = tx.renewable
    scheduled = final.copy()
    scheduled[ren] = np.clip(final[ren] * (1 + tx.renewable_error[0, h][tx.prod_zone[ren]]),
                             0, tx.capacity[ren])
    need = (np.bincount(tx.load_zone[own], load_err[own], z.n)
            - np.bincount(tx.prod_zone, scheduled - final, z.n))
    offer = ~ren
    flow = tx.coupled.flow[h]
    return BalancingPeriod(
        need, tx.prod_zone[offer], tx.cost[h][offer], (tx.capacity - final)[offer],
        tx.cost[h][offer], final[offer], z.ic_from, z.ic_to, np.maximum(z.fwd_mw - flow, 0.0),
        np.maximum(z.back_mw + flow, 0.0), *tx.emergency)


class RegionOffers:
    """A region's side of the national place through one day: its offers hour by hour and
    the commitment of what its zone's TSO accepted."""

    def __init__(self, model, ctx):
        self.m, self.ctx = model, ctx
        self.k = 60 // model.calendar.mtu_minutes
        self.aggs = [a for a in model.aggregators if a.offers_balancing and a.trades_energy]
        self.preview = self.limits = None
        balancingstage.open_activations(model, ctx)

    def offers(self, h: int) -> tuple[HourOffers, np.ndarray]:
        """Hour `h`'s offers within the DSO's limits, and the MW cut by them."""
        m, ctx = self.m, self.ctx
        if self.preview is None:
            self.preview = m.preview_realtime(ctx)
            self.limits = balancingstage.limits_of(m, ctx, self.preview)
        mtus = np.arange(h * self.k, (h + 1) * self.k)
        t_n, k_n = ctx.n_mtu, m.grid.n_locations
        none = np.zeros((t_n, k_n, 2))
        room = shared_headroom(m, self.limits, none)
        der = FlexOffers.concat([a.flex_offers(ctx, balancing=True, mtus=mtus, room=room)
                                 for a in self.aggs])
        der = der.with_mw(np.where(der.price <= m.config.markets.flex_price_cap, der.mw, 0.0))
        hour = hourly(der)
        limit = headroom(self.limits, none)[mtus].min(0)
        kept = within_limits(hour.location, hour.direction, hour.price, hour.mw, limit)
        return dataclasses.replace(hour, mw=kept), hour.mw - kept

    def commit(self, hour: HourOffers, accepted: np.ndarray) -> None:
        """The accepted hourly MW as the region's TSO's activations at each MTU of the hour,
        paid at the hourly ask."""
        if not (accepted > 0).any():
            return
        balancingstage.commit_tso(self.m, self.ctx, hour.der, accepted[hour.group],
                                  hour.price[hour.group], "balancing_national", self.limits)
        self.preview = self.limits = None


def pass_up_day(model, d: int, ctxs: list) -> None:
    """Day `d` of the national place for the regions with `pass_up` (module docstring)."""
    tx = model.tx
    on = [i for i, r in enumerate(model.config.regions) if r.pass_up]
    sides = {i: RegionOffers(model.regions[i], ctxs[i]) for i in on}
    option = model.config.balancing.sharing
    for h in range(HOURS):
        t = d * HOURS + h
        hours = {i: s.offers(h) for i, s in sides.items()}
        zone = np.concatenate([np.full(len(hours[i][0].mw), tx.region_zone[i], int)
                               for i in on])
        cols = [np.concatenate([getattr(hours[i][0], f) for i in on])
                for f in ("direction", "price", "mw")]
        period = zones_hour(tx, t)
        out = clear_hour(option, period, zone, *cols)
        at = np.cumsum([0, *(len(hours[i][0].mw) for i in on)])
        for j, i in enumerate(on):
            hour, cut = hours[i]
            acc = out.der_mw[at[j]:at[j + 1]]
            sides[i].commit(hour, acc)
            tx.pass_up(t, i, hour, cut, acc)
        tx.national_hour(t, zone, period.short_mw, out)

"""Coupling of grid- and market-oriented flexibility: who may buy which MW, in which order.

The three schemes of seed 001 section 6.2 (Table 2) and PARITY D4.3 6.3.5 (Tables 15/16), each a
function registered by name; a scenario picks one with `markets.coupling`.

* ``no_coupling``: a DSO market (the DSO the only buyer) and a separate platform for BRPs and
  aggregators clear independently on the same offered flexibility. Nothing stops one MW being
  sold twice, or a platform trade undoing what the DSO bought; both are detected and reported.
* ``conditional`` (USEF / BDEW traffic light): one platform. GREEN: free trading. YELLOW (an
  MTU whose day-ahead validation forecast a violation, or whose updated forecast does): the
  DSO buys first, and platform trades that would push a flow or voltage past its limit, i.e.
  re-create or worsen the violation, are refused (``dso.conditional_yellow: pause`` stops
  platform trading at YELLOW locations altogether, PARITY's explicit-LFM Table 15). RED: the
  DSO overrides markets by direct control and pays regulated compensation; BLACK: the
  constrained area is disconnected (real time, `environment.flexstage.red_actions`).
* ``sequential`` (SmartNet / [65]): one platform cleared in stages: the DSO first, then a share
  of the remaining offers to the TSO for balancing, then the rest to BRPs. When the DSO stage
  had congestion to manage, later stages only get what fits in the grid headroom it left, so
  they never undo it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from environment.markets.lfm import (
    FlexOffers,
    GridLimits,
    LfmResult,
    clear_lfm,
    location_delta,
    location_moves,
)
from environment.markets.orders import OrderBook

COUPLING: dict[str, Callable] = {}


def register_coupling(name: str):
    def deco(fn):
        COUPLING[name] = fn
        return fn

    return deco


@dataclass
class FlexRound:
    """One flexibility stage (day-ahead LFM, or intraday LFM + platform)."""

    limits: GridLimits
    yellow: np.ndarray            # (T, K) violations the DSO acts on in this round
    regime_yellow: np.ndarray     # (T, K) YELLOW regime (day-ahead or current forecast)
    prior_dso: np.ndarray         # (T, K) extra consumption the DSO bought in earlier rounds
    offers: FlexOffers            # aggregators' location-tagged flexibility
    energy_price: np.ndarray      # (T,) reference energy price (forecast or DA)
    requests: OrderBook           # BRPs' energy requests on the platform (+ buy)
    dt_h: float
    lfm: object                   # scenario markets.lfm
    platform: object              # scenario markets.platform
    activation_cost: dict         # aggregator unique_id -> EUR/MWh
    yellow_rule: str = "refuse_worsening"
    tso_share: float = 0.0
    energy_traders: frozenset | None = None   # owners with a balance perimeter (None: all)
    price_cap: float | None = None            # no DSO purchase paid above (None: no cap)
    reserved: FlexOffers | None = None        # availability the DSO bought at D-1: its alone

    @property
    def dso_offers(self) -> FlexOffers:
        """What the DSO may buy from: every offer, and the availability it holds."""
        return self.offers if self.reserved is None else FlexOffers.concat(
            [self.offers, self.reserved])


@dataclass
class FlexOutcome:
    dso: LfmResult | None
    dso_offers: FlexOffers
    platform_offers: FlexOffers
    platform_accepted_mw: np.ndarray      # per platform offer (MW, direction of the offer)
    platform_price: np.ndarray            # (T,) EUR/MWh
    requests: OrderBook
    request_accepted_mwh: np.ndarray      # per request order, signed (+ bought)
    tso_offers: FlexOffers                # capacity held for the TSO (sequential)
    double_sold_mw: np.ndarray = field(default=None)   # (T, K)
    counteracting_mw: np.ndarray = field(default=None)  # (T, K)
    refused_mw: float = 0.0


def _dso_stage(r: FlexRound, offers: FlexOffers) -> LfmResult | None:
    if not r.lfm.enabled or not r.yellow.any():
        return None
    mtus = np.flatnonzero(r.yellow.any(1))
    return clear_lfm(offers, r.limits, r.dt_h, r.lfm.pricing, r.price_cap,
                     r.lfm.unresolved_cost_eur_mwh, mtus)


def _platform(r: FlexRound, offers: FlexOffers):
    """BRP energy requests against aggregator flexibility, uniform price per MTU; only
    aggregators with a balance perimeter of their own can sell energy.

    An offer is priced by its owner's strategy, as in the LFM (`FlexOffers.price`, EUR/MWh
    asked per MWh moved; truthful: the activation cost): an up offer (consume less) sells
    the energy it frees at its energy value plus that ask, a down offer buys at the energy
    value less it."""
    from environment.markets.registry import get_clearing

    t_n = len(r.energy_price)
    if r.energy_traders is not None:
        offers = offers.with_mw(np.where(np.isin(offers.owner, list(r.energy_traders)),
                                         offers.mw, 0.0))
    if not r.platform.enabled or len(r.requests) == 0 or len(offers) == 0:
        return np.zeros(len(offers)), np.full(t_n, np.nan), np.zeros(len(r.requests))
    price = r.energy_price[offers.mtu] + offers.direction * offers.price
    agg = OrderBook.from_arrays(offers.owner, offers.mtu, price,
                                -offers.direction * offers.mw * r.dt_h, t_n)
    book = OrderBook.concat([agg, r.requests])
    res = get_clearing("uniform_price")(book, t_n)
    n = len(offers)
    return np.abs(res.accepted[:n]) / r.dt_h, res.price, res.accepted[n:]


def headroom(limits: GridLimits, moves: np.ndarray) -> np.ndarray:
    """(T, K, 2) MW a location may still move less (0) or more (1) consumption after
    activations `moves` (T, K, 2) without breaking a branch or voltage limit; each limit's
    margin is split over the locations that push it, so stages that respect it cannot jointly
    exceed it. The last answer is kept with the limits: a round without platform trades asks
    twice for the same moves."""
    last = limits.memo.get("headroom")
    if last is not None and np.array_equal(last[0], moves):
        return last[1].copy()
    room = _headroom(limits, moves)
    limits.memo["headroom"] = (moves.copy(), room.copy())
    return room


def _headroom(limits: GridLimits, moves: np.ndarray) -> np.ndarray:
    p, w, _ = limits.violations(moves)
    t_n, k_n = moves.shape[:2]
    out = np.full((t_n, k_n, 2), np.inf)
    p_lim = limits.p_lim()
    tables = limits.memo.get("sharing")
    if tables is None:  # they depend only on the linear maps
        tables = limits.memo["sharing"] = tuple(
            (a, *_pushing(a, eps, first)) for a, eps, first in (
                (np.ascontiguousarray(limits.flow_per_mw), 1e-12, 0),
                (np.ascontiguousarray(limits.w_per_mw), 1e-15, 1)))
    (flow, f_up, f_down), (volt, v_up, v_down) = tables
    _shared_room(flow, 1e-12, 0, f_up, f_down, np.clip(p_lim - p, 0, None),
                 np.clip(p_lim + p, 0, None), out)
    _shared_room(volt, 1e-15, 1, v_up, v_down, np.clip(limits.v_max ** 2 - w, 0, None),
                 np.clip(w - limits.v_min ** 2, 0, None), out)
    return out


@njit(cache=True)
def _pushing(table, eps, first):
    """(T, 2, E) how many locations push each element (a branch flow or a bus's squared
    voltage, from index `first`) up and down per MTU as they move less (d = 0) or more (1)
    consumption; `table` (T, K, 2, E) holds the effects of one MW more consumption."""
    t_n, k_n, _, n_el = table.shape
    n_up = np.zeros((t_n, 2, n_el))
    n_down = np.zeros((t_n, 2, n_el))
    for t in range(t_n):
        for d in range(2):
            sgn = -1.0 if d == 0 else 1.0
            for k in range(k_n):
                for x in range(first, n_el):
                    v = sgn * table[t, k, d, x]
                    if v > eps:
                        n_up[t, d, x] += 1.0
                    elif v < -eps:
                        n_down[t, d, x] += 1.0
    return n_up, n_down


@njit(cache=True)
def _shared_room(table, eps, first, n_up, n_down, up, down, out):
    """Per MTU, direction and location, the least over the elements its move pushes of the
    element's margin (`up`: to its upper limit, `down`: to its lower) split evenly over the
    locations pushing it, in MW of the location's move; kept in `out` (T, K, 2) where less
    than what is there. A location that pushes nothing keeps its entry (inf: unbounded)."""
    t_n, k_n, _, n_el = table.shape
    for t in range(t_n):
        for d in range(2):
            sgn = -1.0 if d == 0 else 1.0
            for k in range(k_n):
                best = out[t, k, d]
                for x in range(first, n_el):
                    v = sgn * table[t, k, d, x]
                    if v > eps:
                        r = up[t, x] * (1.0 / (n_up[t, d, x] * v))
                    elif v < -eps:
                        r = down[t, x] * (1.0 / (n_down[t, d, x] * -v))
                    else:
                        continue
                    if r < best:
                        best = r
                out[t, k, d] = best


def _cap(offers: FlexOffers, room: np.ndarray) -> FlexOffers:
    """Scale offers down so that, per MTU, location and direction, together they fit `room`."""
    d = np.where(offers.direction > 0, 0, 1)
    total = np.zeros(room.shape)
    np.add.at(total, (offers.mtu, offers.location, d), offers.mw)
    key = (offers.mtu, offers.location, d)
    scale = np.where(total[key] > room[key], room[key] / np.maximum(total[key], 1e-12), 1.0)
    return offers.with_mw(offers.mw * scale)


def _remaining(offers: FlexOffers, used: np.ndarray) -> FlexOffers:
    return offers.with_mw(np.clip(offers.mw - used, 0, None))


def _outcome(r, dso, dso_offers, plat_offers, plat_mw, plat_price, req_acc, tso_offers,
             refused=0.0) -> FlexOutcome:
    t_n, k_n = r.yellow.shape
    out = FlexOutcome(dso, dso_offers, plat_offers, plat_mw, plat_price, r.requests, req_acc,
                      tso_offers, refused_mw=refused)
    dso_mw = dso.accepted_mw if dso is not None else np.zeros(len(dso_offers))
    sold = np.zeros((t_n, k_n, 2))
    cap = np.zeros((t_n, k_n, 2))
    for offers, mw in ((dso_offers, dso_mw), (plat_offers, plat_mw)):
        d = np.where(offers.direction > 0, 0, 1)
        np.add.at(sold, (offers.mtu, offers.location, d), mw)
    everything = r.dso_offers
    d = np.where(everything.direction > 0, 0, 1)
    np.add.at(cap, (everything.mtu, everything.location, d), everything.mw)
    out.double_sold_mw = np.clip(sold - cap, 0, None).sum(2)
    dso_dp = location_delta(dso_offers, dso_mw, t_n, k_n) + r.prior_dso
    plat_dp = location_delta(plat_offers, plat_mw, t_n, k_n)
    out.counteracting_mw = np.where(dso_dp * plat_dp < 0,
                                    np.minimum(np.abs(dso_dp), np.abs(plat_dp)), 0.0)
    return out


def _empty(offers: FlexOffers) -> FlexOffers:
    return offers.take(np.zeros(len(offers), bool))


@register_coupling("no_coupling")
def no_coupling(r: FlexRound) -> FlexOutcome:
    dso = _dso_stage(r, r.dso_offers)
    plat_mw, plat_price, req = _platform(r, r.offers)
    return _outcome(r, dso, r.dso_offers, r.offers, plat_mw, plat_price, req, _empty(r.offers))


def _dso_first(r: FlexRound):
    """The DSO clears first; returns its result, the MW it used per offer (of `r.offers`),
    its moves (T, K, 2; from the availability it holds too) and what is left."""
    t_n, k_n = r.yellow.shape
    everything = r.dso_offers
    dso = _dso_stage(r, everything)
    used_all = dso.accepted_mw if dso is not None else np.zeros(len(everything))
    used = used_all[:len(r.offers)]
    return (dso, used, location_moves(everything, used_all, t_n, k_n),
            _remaining(r.offers, used))


@register_coupling("conditional")
def conditional(r: FlexRound) -> FlexOutcome:
    dso, _, moves, rest = _dso_first(r)
    yellow_mtu = r.regime_yellow.any(1)[rest.mtu]
    if r.yellow_rule == "pause":
        allowed = np.where(r.regime_yellow[rest.mtu, rest.location], 0.0, rest.mw)
    else:
        room = headroom(r.limits, moves)
        allowed = np.where(yellow_mtu, _cap(rest, room).mw, rest.mw)
    refused = float((rest.mw - allowed).sum())
    plat = rest.with_mw(allowed)
    plat_mw, plat_price, req = _platform(r, plat)
    return _outcome(r, dso, r.dso_offers, plat, plat_mw, plat_price, req, _empty(r.offers),
                    refused)


@register_coupling("sequential")
def sequential(r: FlexRound) -> FlexOutcome:
    dso, used, moves, rest = _dso_first(r)
    if r.regime_yellow.any():
        rest = _cap(rest, headroom(r.limits, moves))
    tso = rest.with_mw(rest.mw * r.tso_share)
    plat = rest.with_mw(rest.mw - tso.mw)
    plat_mw, plat_price, req = _platform(r, plat)
    refused = float((_remaining(r.offers, used).mw - rest.mw).sum())
    return _outcome(r, dso, r.dso_offers, plat, plat_mw, plat_price, req, tso, refused)

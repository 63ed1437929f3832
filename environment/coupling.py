"""Coupling of grid- and market-oriented flexibility: who may buy which MW, in which order.

The three schemes of seed 001 section 6.2 (Table 2) and PARITY D4.3 6.3.5 (Tables 15/16), each a
declaration (`Scheme`: its gates, in order, and its real-time regime) registered by name in
`COUPLING`, read by one engine (`clear_round`); a scenario picks one with `markets.coupling`.
A new scheme is a new declaration; `describe` prints a scheme's sequence (the README's table
is made from it).

A gate is one market of a flexibility round (day-ahead LFM, or intraday LFM and platform):

* ``dso``: the DSO buys location-tagged relief where its forecast breaks a limit (`clear_lfm`),
  from the offers and the availability it holds;
* ``tso``: the TSO holds, of what is left, the cheapest up to its reserve need
  (`tso.der_reserve_mw` upward and downward per MTU, in the day-ahead round) for real-time
  balancing;
* ``platform``: BRPs and aggregators with a balance perimeter trade energy against the
  aggregators' flexibility (`clear_platform`).

Each gate takes either every offer (``all``: nothing stops one MW being sold twice) or what
the gates before it left (``remaining``), within a restriction inherited from them:
``headroom`` (what fits in the grid headroom their activations left, where a violation was
managed: a later gate never undoes an earlier one), ``yellow`` (at MTUs under the YELLOW
regime, `dso.conditional_yellow`: refuse what would push a flow or voltage past its limit,
or pause trading at YELLOW locations) or none. Double-sold MW and trades counteracting the
DSO are measured under every scheme.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from environment.grid.headroom import cap_to_room, headroom
from environment.markets.lfm import (
    FlexOffers,
    GridLimits,
    LfmResult,
    clear_lfm,
    location_delta,
    location_moves,
)
from environment.markets.orders import OrderBook


@dataclass(frozen=True)
class Gate:
    """One market of a round: who buys (`market`), from which offers (`offers`: all, or what
    earlier gates left) and within which restriction (none, headroom, yellow)."""

    market: str
    offers: str = "remaining"
    restriction: str = "none"

    def __post_init__(self):
        if self.market not in ("dso", "tso", "platform") or self.offers not in (
                "all", "remaining") or self.restriction not in ("none", "headroom", "yellow"):
            raise ValueError(f"gate {self}: unknown market, offers or restriction")


@dataclass(frozen=True)
class Scheme:
    """A coupling scheme: its gates in order, the market operator, and what the DSO may do in
    real time beyond the emergency curtailment every scheme has (`dso.emergency_actions`):
    ``direct_control`` of the contracted resources (USEF's red regime) first."""

    name: str
    gates: tuple[Gate, ...]
    operator: str
    realtime: str = "curtail"
    source: str = ""

    def describe(self) -> str:
        """The scheme's sequence in words, one line per gate (the README prints it)."""
        words = {"dso": "the DSO buys relief", "tso": "the TSO holds its reserve",
                 "platform": "BRPs and aggregators trade energy"}
        taken = {"all": "from every offer", "remaining": "from what is left"}
        limit = {"none": "", "headroom": ", within the headroom earlier gates left",
                 "yellow": ", refusing what worsens a YELLOW limit"}
        lines = [f"{self.name}: {self.source}", f"  operator: {self.operator}"]
        lines += [f"  {i}. {words[g.market]} {taken[g.offers]}{limit[g.restriction]}"
                  for i, g in enumerate(self.gates, start=1)]
        lines.append("  real time: " + ("direct control of contracted devices, then emergency "
                                        "curtailment" if self.realtime == "direct_control"
                                        else "emergency curtailment"))
        return "\n".join(lines)


COUPLING: dict[str, Scheme] = {}


def register_coupling(scheme: Scheme) -> Scheme:
    COUPLING[scheme.name] = scheme
    return scheme


register_coupling(Scheme(
    "no_coupling", (Gate("dso", "all"), Gate("platform", "all")),
    operator="the DSO runs its market, an independent one the platform",
    source="seed 001 Table 2, a DSO market and a separate trading platform"))
register_coupling(Scheme(
    "conditional", (Gate("dso", "all"), Gate("platform", "remaining", "yellow")),
    operator="one market, an independent operator", realtime="direct_control",
    source="seed 001 6.2, USEF / BDEW traffic light"))
register_coupling(Scheme(
    "sequential", (Gate("dso", "all"), Gate("tso", "remaining", "headroom"),
                   Gate("platform", "remaining", "headroom")),
    operator="one market, an independent operator",
    source="seed 001 6.2 and its [65], the DSO first, then the TSO, then market use"))


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
    yellow_rule: str = "refuse_worsening"
    tso_reserve_mw: float = 0.0  # upward and downward DER capacity the TSO holds per MTU
    energy_traders: frozenset | None = None   # owners with a balance perimeter (None: all)
    price_cap: float | None = None            # no DSO purchase paid above (None: no cap)
    reserved: FlexOffers | None = None        # availability the DSO bought at D-1: its alone
    tie_price: str = "marginal_offer"         # the platform's tie rule (the day-ahead one's)

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


def _dso_stage(r: FlexRound, offers: FlexOffers, moves: np.ndarray) -> LfmResult | None:
    """The DSO's purchase against the flows left after the earlier gates' `moves` (none when
    it clears first, as in the seeds' schemes): it acts where it saw violations and where the
    earlier gates made new ones."""
    limits, act = r.limits, r.yellow.any(1)
    if moves.any():
        limits = limits.after(moves)
        act = act | limits.broken()
    if not r.lfm.enabled or not act.any():
        return None
    return clear_lfm(offers, limits, r.dt_h, r.lfm.pricing, r.price_cap,
                     r.lfm.unresolved_cost_eur_mwh, np.flatnonzero(act))


def clear_platform(r: FlexRound, offers: FlexOffers):
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
    res = get_clearing("uniform_price")(book, t_n, tie_price=r.tie_price)
    n = len(offers)
    return np.abs(res.accepted[:n]) / r.dt_h, res.price, res.accepted[n:]


def cheapest_up_to(offers: FlexOffers, need_mw: float) -> np.ndarray:
    """MW taken of each offer when, per MTU and direction, the cheapest are taken first (ties
    in offer order) until `need_mw`."""
    order = np.lexsort((np.arange(len(offers)), offers.price, offers.direction, offers.mtu))
    mw = offers.mw[order]
    group = offers.mtu[order] * 2 + (offers.direction[order] < 0)
    done = np.cumsum(mw) - mw                       # MW before each offer, over all groups
    first = np.r_[True, group[1:] != group[:-1]]
    before = done - np.maximum.accumulate(np.where(first, done, 0.0))
    out = np.zeros(len(offers))
    out[order] = np.clip(need_mw - before, 0, mw)
    return out


def _remaining(offers: FlexOffers, used: np.ndarray) -> FlexOffers:
    return offers.with_mw(np.clip(offers.mw - used, 0, None))


def _restrict(r: FlexRound, gate: Gate, pool: FlexOffers, moves: np.ndarray) -> FlexOffers:
    """`pool` within the gate's restriction, given the earlier gates' moves (T, K, 2)."""
    if gate.restriction == "headroom" and r.regime_yellow.any():
        return cap_to_room(pool, headroom(r.limits, moves))
    if gate.restriction == "yellow":
        if r.yellow_rule == "pause":
            return pool.with_mw(np.where(r.regime_yellow[pool.mtu, pool.location], 0.0,
                                         pool.mw))
        capped = cap_to_room(pool, headroom(r.limits, moves))
        return pool.with_mw(np.where(r.regime_yellow.any(1)[pool.mtu], capped.mw, pool.mw))
    return pool


def clear_round(scheme: Scheme, r: FlexRound) -> FlexOutcome:
    """Run the scheme's gates in order on one round. A gate taking ``remaining`` offers gets
    what the gate before it left of its own pool (restricted in turn by its own rule)."""
    t_n, k_n = r.yellow.shape
    empty = r.offers.take(np.zeros(len(r.offers), bool))
    dso, tso, dso_offers = None, empty, r.dso_offers
    plat, plat_mw = empty, np.zeros(0)
    plat_price, req = np.full(t_n, np.nan), np.zeros(len(r.requests))
    moves = np.zeros((t_n, k_n, 2))
    left, refused = r.offers, 0.0
    for gate in scheme.gates:
        pool = r.offers if gate.offers == "all" else left
        if gate.market == "dso":
            dso_offers = pool if r.reserved is None else FlexOffers.concat([pool, r.reserved])
            dso = _dso_stage(r, dso_offers, moves)
            used = dso.accepted_mw if dso is not None else np.zeros(len(dso_offers))
            moves = moves + location_moves(dso_offers, used, t_n, k_n)
            left = _remaining(pool, used[:len(pool)])
            continue
        allowed = _restrict(r, gate, pool, moves)
        refused += float((pool.mw - allowed.mw).sum())
        if gate.market == "tso":
            tso = allowed.with_mw(cheapest_up_to(allowed, r.tso_reserve_mw))
            left = allowed.with_mw(allowed.mw - tso.mw)
        else:
            plat = allowed
            plat_mw, plat_price, req = clear_platform(r, plat)
            moves = moves + location_moves(plat, plat_mw, t_n, k_n)
            left = allowed.with_mw(np.clip(allowed.mw - plat_mw, 0, None))
    return _outcome(r, dso, dso_offers, plat, plat_mw if len(plat) else np.zeros(0),
                    plat_price, req, tso, refused)


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



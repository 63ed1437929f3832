"""Explicit local flexibility market (LFM): the DSO buys location-tagged flexibility at least
cost subject to its grid limits (PARITY D4.3 6.1-6.3; seed 001 section 5.3).

Offers are blocks (owner, location, MTU, direction, MW, price). Direction +1 ("up") lowers
consumption at the location, -1 ("down") raises it. An activation at a location spreads over its
buses by participation factors per MTU and direction (where the flexible devices able to move
that way are at that MTU), so its effect on every branch flow and bus voltage follows from
LinDistFlow's linear maps. Clearing is an LP (HiGHS) built by constraint generation: only
limits that the base schedule or a trial clearing violates become constraints. Each round is
solved from scratch: re-solving from the last round's basis is faster, but where offers tie
it can settle on another of the equally cheap clearings (18 of a year's 3,161 did), so results
would depend on the solve path. Limits the offers cannot restore are left to slack, priced at
the DSO's cost of unresolved violations: that residual is what real time sees as RED.

Pricing: pay-as-bid (each accepted offer its own price) or pay-as-clear, where every accepted
offer earns the locational marginal value of its relief (from the duals), capped at the price
cap. Reservation payments (conditional products) add EUR per MW and hour on the accepted
volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from environment.solver import solve_lp

TOL = 1e-6
MAX_ROUNDS = 10


@dataclass(frozen=True)
class FlexOffers:
    owner: np.ndarray      # agent unique_id
    location: np.ndarray   # index into grid.locations
    mtu: np.ndarray        # 0..T-1 within the day
    direction: np.ndarray  # +1 up (less consumption), -1 down (more consumption)
    mw: np.ndarray
    price: np.ndarray      # EUR/MWh asked

    def __len__(self) -> int:
        return len(self.mw)

    @classmethod
    def concat(cls, parts: list[FlexOffers]) -> FlexOffers:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls(*(np.zeros(0, int) for _ in range(4)), np.zeros(0), np.zeros(0))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("owner", "location", "mtu", "direction", "mw", "price")))

    def take(self, mask: np.ndarray) -> FlexOffers:
        return FlexOffers(self.owner[mask], self.location[mask], self.mtu[mask],
                          self.direction[mask], self.mw[mask], self.price[mask])

    def with_mw(self, mw: np.ndarray) -> FlexOffers:
        return FlexOffers(self.owner, self.location, self.mtu, self.direction, mw, self.price)


@dataclass(frozen=True)
class LfmResult:
    accepted_mw: np.ndarray       # per offer
    paid_price: np.ndarray        # EUR/MWh per offer (0 where not accepted)
    location_price: np.ndarray    # (T, K, 2) marginal value of up (0) and down (1) relief
    unresolved_mw: float          # slack left: relief the offers could not provide (MW-MTU)
    constraints: int
    rounds: int

    @property
    def cost_eur_per_h(self) -> np.ndarray:
        return self.accepted_mw * self.paid_price


@dataclass(frozen=True)
class GridLimits:
    """What an LFM clears against: base flows and the linear maps of a location's activation."""

    base_p: np.ndarray        # (T, L) branch active flow of the schedules
    base_q: np.ndarray        # (T, L) branch reactive flow (held)
    base_w: np.ndarray        # (T, B) squared voltages
    s_max: np.ndarray         # (L,) MVA limit (already times loading limit)
    v_min: np.ndarray
    v_max: np.ndarray
    flow_per_mw: np.ndarray   # (T, K, 2, L) flow change per MW more consumption at location k
    w_per_mw: np.ndarray      # (T, K, 2, B) squared-voltage change, spread as direction d moves
    branch_location: np.ndarray  # (L,) location of each branch
    bus_location: np.ndarray     # (B,) location of each bus

    def p_lim(self) -> np.ndarray:
        """(T, L) active-power limit of each branch at its held reactive flow (read-only)."""
        return self._p_lim

    @cached_property
    def _p_lim(self) -> np.ndarray:
        # computed once per limits: violation checks and headroom ask for it many times
        p_lim = np.sqrt(np.clip(self.s_max[None, :] ** 2 - self.base_q ** 2, 0, None))
        p_lim.flags.writeable = False
        return p_lim

    @cached_property
    def headroom_terms(self) -> list[tuple]:
        """Per direction d (0 less, 1 more consumption) and limit (branch upper and lower,
        voltage lower and upper): the margin's kind, each location's use of it per MW (T, K,
        X), whether the location pushes it, how many locations push it, and the use with 1
        where it does not push (a safe divisor). They depend only on the linear maps, so
        `environment.coupling.headroom` computes them once per limits."""
        terms = []
        for d, sgn in ((0, -1.0), (1, 1.0)):
            for kind, table, sign, eps in (("p_hi", self.flow_per_mw, 1.0, 1e-12),
                                           ("p_lo", self.flow_per_mw, -1.0, 1e-12),
                                           ("w_lo", self.w_per_mw, -1.0, 1e-15),
                                           ("w_hi", self.w_per_mw, 1.0, 1e-15)):
                coef = sign * sgn * table[:, :, d, :]
                if table is self.w_per_mw:
                    coef[:, :, 0] = 0.0
                pushing = coef > eps
                sharing = np.maximum(pushing.sum(1, keepdims=True), 1)
                terms.append((d, kind, pushing, sharing, np.where(pushing, coef, 1)))
        return terms

    def violations(self, moves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flows, squared voltages and the boolean (T, L) overload map after activations
        `moves` (T, K, 2): MW of less (0) and more (1) consumption per location."""
        signed = np.stack([-moves[..., 0], moves[..., 1]], axis=-1)
        p = self.base_p + np.einsum("tkd,tkdl->tl", signed, self.flow_per_mw)
        w = self.base_w + np.einsum("tkd,tkdb->tb", signed, self.w_per_mw)
        return p, w, np.abs(p) > self.p_lim() + TOL


def participation(grid, weights: np.ndarray, flow) -> tuple[np.ndarray, np.ndarray]:
    """(T, K, 2, L) and (T, K, 2, B) effects of one MW more consumption at each location,
    spread over the location's buses in proportion to `weights` (T, B, 2): how much each bus
    can move less (0) or more (1) at that MTU; uniform where a location has none."""
    t_n = weights.shape[0]
    k_n = grid.n_locations
    sens = flow.sensitivities()
    flow_mw = np.empty((t_n, k_n, 2, sens.ptdf.shape[1]))
    w_mw = np.empty((t_n, k_n, 2, sens.R.shape[1]))
    for k in range(k_n):
        buses = np.flatnonzero(grid.bus_location == k)
        buses = buses[buses != 0] if len(buses) > 1 else buses
        wk = weights[:, buses, :].astype(float)
        total = wk.sum(1, keepdims=True)
        spread = np.divide(wk, total, out=np.full_like(wk, 1.0 / len(buses)), where=total > 0)
        spread = np.ascontiguousarray(np.moveaxis(spread, 2, 1))   # (T, 2, buses of k)
        # only the location's own buses carry weight: multiplying by their rows alone skips
        # the zeros of the other buses (a seventh of the work, the same sums)
        flow_mw[:, k] = spread @ sens.ptdf[buses]
        w_mw[:, k] = -2.0 * (spread @ sens.R[buses])
    return flow_mw, w_mw


def clear_lfm(offers: FlexOffers, limits: GridLimits, dt_h: float, pricing: str = "pay_as_bid",
              price_cap: float | None = None, unresolved_cost: float = 10_000.0,
              mtus: np.ndarray | None = None) -> LfmResult:
    """Least-cost relief of the forecast violations in `limits` from `offers`.

    `mtus` restricts which MTUs the DSO acts on (e.g. only YELLOW ones); default: all."""
    if pricing not in ("pay_as_bid", "pay_as_clear"):
        raise ValueError(f"markets.lfm.pricing = {pricing!r}: expected pay_as_bid or pay_as_clear")
    t_n, k_n = limits.base_p.shape[0], limits.flow_per_mw.shape[1]
    n = len(offers)
    act = np.ones(t_n, bool) if mtus is None else np.isin(np.arange(t_n), mtus)
    price = offers.price if price_cap is None else np.minimum(offers.price, price_cap)
    usable = (offers.mw > TOL) & act[offers.mtu] if n else np.zeros(0, bool)
    if price_cap is not None and n:
        usable &= offers.price <= price_cap + TOL
    empty = LfmResult(np.zeros(n), np.zeros(n), np.zeros((t_n, k_n, 2)), 0.0, 0, 0)
    p0, w0, over0 = limits.violations(np.zeros((t_n, k_n, 2)))
    w_lo, w_hi = limits.v_min ** 2, limits.v_max ** 2
    volt0 = (w0 < w_lo - TOL) | (w0 > w_hi + TOL)
    volt0[:, 0] = False
    if not ((over0.any(1) | volt0.any(1)) & act).any():
        return empty

    idx = np.flatnonzero(usable)
    cuts = _Cuts(limits, offers, idx, act)
    cuts.add_violations(p0, w0, over0)
    n_u = len(idx)
    lower, upper = np.zeros(n_u), offers.mw[idx].astype(float)
    rounds = 0
    while True:
        r_n = cuts.n
        c = np.concatenate([price[idx] * dt_h, unresolved_cost * dt_h * cuts.scale])
        res = solve_lp(c, a_ub=cuts.matrix(n_u), b_ub=cuts.rhs,
                       lower=np.concatenate([lower, np.zeros(r_n)]),
                       upper=np.concatenate([upper, np.full(r_n, np.inf)]), what="LFM clearing")
        rounds += 1
        acc = np.zeros(n)
        acc[idx] = res.x[:n_u]
        p, w, over = limits.violations(location_moves(offers, acc, t_n, k_n))
        if rounds >= MAX_ROUNDS or not cuts.add_violations(p, w, over):
            break
    mu = -res.ineqlin.marginals / dt_h
    live = np.flatnonzero(np.abs(mu) >= 1e-12)
    coef = cuts.effects(live)
    ms = (mu[live] * cuts.sign[live])[:, None]
    loc_price = np.zeros((t_n, k_n, 2))  # summed row by row, in the order the rows were made
    np.add.at(loc_price[:, :, 0], cuts.t[live], ms * coef[:, :, 0])
    np.add.at(loc_price[:, :, 1], cuts.t[live], -(ms * coef[:, :, 1]))
    loc_price = np.clip(loc_price, 0, None)
    if price_cap is not None:
        loc_price = np.minimum(loc_price, price_cap)
    accepted = acc > TOL
    if pricing == "pay_as_bid":
        paid = np.where(accepted, price, 0.0)
    else:
        d = np.where(offers.direction > 0, 0, 1)
        paid = np.where(accepted, np.maximum(loc_price[offers.mtu, offers.location, d], price),
                        0.0)
    slack = float(res.x[n_u:] @ cuts.scale)
    return LfmResult(np.where(accepted, acc, 0.0), paid, loc_price, slack, cuts.n, rounds)


class _Segments:
    """Elements (branches or buses) grouped by location, for per-location maxima over all
    MTUs at once."""

    def __init__(self, location: np.ndarray):
        self.order = np.argsort(location, kind="stable")
        loc = location[self.order]
        self.start = np.flatnonzero(np.r_[True, loc[1:] != loc[:-1]]) if len(loc) else \
            np.zeros(0, int)
        self.location = loc[self.start]
        self.size = np.diff(np.r_[self.start, len(loc)])

    def worst(self, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Location, MTU and element of the largest `gap` (T, X) per MTU and location where it
        exceeds TOL, ordered by MTU then location; the first element on ties, as a stable
        sort would give."""
        if not len(self.start):
            return (np.zeros(0, int),) * 3
        g = gap[:, self.order]
        top = np.fmax.reduceat(g, self.start, axis=1)                     # (T, S)
        rank = np.where(g == np.repeat(top, self.size, axis=1), np.arange(g.shape[1]),
                        g.shape[1])
        first = np.minimum.reduceat(rank, self.start, axis=1)
        t, s = np.nonzero(top > TOL)
        return self.location[s], t, self.order[first[t, s]]


class _Cuts:
    """The grid rows of the LFM clearing, generated as violations appear (constraint
    generation). Row i reads sign * (base + sum coef * a) <= bound + slack_i, with a over the
    usable offers and one slack column per row after them.

    Rows are kept as arrays and made a whole round at a time with numpy: per MTU and location
    the worst violated branch and the worst bus below and above its voltage band that have no
    row yet, ordered by location, MTU and kind (branch, low, high voltage)."""

    def __init__(self, limits: GridLimits, offers: FlexOffers, idx: np.ndarray,
                 act: np.ndarray):
        self.lim, self.act = limits, act
        t_n, l_n = limits.base_p.shape
        b_n = limits.base_w.shape[1]
        self.p_lim = limits.p_lim()
        self.w_lo, self.w_hi = limits.v_min ** 2, limits.v_max ** 2
        self.o_k = offers.location[idx]
        self.o_d = np.where(offers.direction[idx] > 0, 0, 1)
        self.o_dir = offers.direction[idx].astype(float)
        o_t = offers.mtu[idx]
        self.by_t = np.argsort(o_t, kind="stable")   # usable offers grouped by MTU
        count = np.bincount(o_t, minlength=t_n)
        self.t_count, self.t_start = count, np.cumsum(count) - count
        self.branch_seg = _Segments(limits.branch_location)
        self.bus_seg = _Segments(limits.bus_location)
        self.has_l = np.zeros((t_n, l_n, 2), bool)   # row exists for sign -1 (0) / +1 (1)
        self.has_v = np.zeros((t_n, b_n, 2), bool)   # row exists below (0) / above (1) band
        self.t = np.zeros(0, int)
        self.kind = np.zeros(0, int)   # 0 branch flow, 1 squared voltage
        self.j = np.zeros(0, int)
        self.sign = np.zeros(0)
        self.rhs = np.zeros(0)
        self.scale = np.zeros(0)
        # per round: row, column (usable offer), coefficient
        self._entries = ([np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)])

    @property
    def n(self) -> int:
        return len(self.t)

    def effects(self, rows: np.ndarray) -> np.ndarray:
        """(rows, K, 2) effect of one MW at each location and direction on each row's flow or
        squared voltage."""
        out = np.empty((len(rows), self.lim.flow_per_mw.shape[1], 2))
        line = self.kind[rows] == 0
        t, j = self.t[rows], self.j[rows]
        out[line] = self.lim.flow_per_mw[t[line], :, :, j[line]]
        out[~line] = self.lim.w_per_mw[t[~line], :, :, j[~line]]
        return out

    def add_violations(self, p: np.ndarray, w: np.ndarray, over: np.ndarray) -> int:
        """Add the worst violated branch and bus per MTU and location (constraint generation
        adds the rest if they are still violated after the next solve); returns how many."""
        act = self.act[:, None]
        line_sign = np.where(p > 0, 1.0, -1.0)
        excess = np.where(over & act, np.abs(p) - self.p_lim, -np.inf)
        excess[np.where(p > 0, self.has_l[..., 1], self.has_l[..., 0])] = -np.inf
        lo = np.where(act, self.w_lo - w, -np.inf)
        hi = np.where(act, w - self.w_hi, -np.inf)
        lo[:, 0] = hi[:, 0] = -np.inf
        lo[self.has_v[..., 0]] = -np.inf
        hi[self.has_v[..., 1]] = -np.inf
        found = []   # (location, MTU, order, kind, element, sign)
        for order, (gap, seg) in enumerate(((excess, self.branch_seg), (lo, self.bus_seg),
                                            (hi, self.bus_seg))):
            k, t, j = seg.worst(gap)
            sign = line_sign[t, j] if order == 0 else np.full(len(t), 2.0 * order - 3.0)
            found.append((k, t, np.full(len(t), order), np.full(len(t), min(order, 1)), j,
                          sign))
        k, t, order, kind, j, sign = (np.concatenate(x) for x in zip(*found, strict=True))
        if not len(t):
            return 0
        o = np.lexsort((order, t, k))
        self._add(t[o], kind[o], j[o], sign[o])
        return len(o)

    def _add(self, t, kind, j, sign) -> None:
        lim = self.lim
        line = kind == 0
        self.has_l[t[line], j[line], (sign[line] > 0).astype(int)] = True
        self.has_v[t[~line], j[~line], (sign[~line] > 0).astype(int)] = True
        v = ~line
        base, bound = np.empty(len(t)), np.empty(len(t))
        base[line] = sign[line] * lim.base_p[t[line], j[line]]
        bound[line] = self.p_lim[t[line], j[line]]
        base[v] = sign[v] * lim.base_w[t[v], j[v]]
        bound[v] = np.where(sign[v] < 0, -self.w_lo[j[v]], self.w_hi[j[v]])
        scale = np.ones(len(t))
        if v.any():
            top = np.abs(lim.w_per_mw[t[v], :, :, j[v]]).max(axis=(1, 2))
            scale[v] = 1.0 / np.maximum(top, 1e-9)
        # entries: every usable offer of the row's MTU, in offer order
        count = self.t_count[t]
        row = np.repeat(np.arange(len(t)), count)
        within = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
        pos = self.by_t[np.repeat(self.t_start[t], count) + within]
        k, d = self.o_k[pos], self.o_d[pos]
        value = np.empty(len(row))
        lr = line[row]
        value[lr] = lim.flow_per_mw[t[row[lr]], k[lr], d[lr], j[row[lr]]]
        value[~lr] = lim.w_per_mw[t[row[~lr]], k[~lr], d[~lr], j[row[~lr]]]
        self._entries[0].append(self.n + row)
        self._entries[1].append(pos)
        self._entries[2].append(-sign[row] * self.o_dir[pos] * value)
        self.t = np.concatenate([self.t, t])
        self.kind = np.concatenate([self.kind, kind])
        self.j = np.concatenate([self.j, j])
        self.sign = np.concatenate([self.sign, sign])
        self.rhs = np.concatenate([self.rhs, bound - base])
        self.scale = np.concatenate([self.scale, scale])

    def matrix(self, n_u: int) -> sp.csc_array:
        """The rows as a sparse matrix over the usable offers and one slack per row."""
        r_n = self.n
        row, col, val = (np.concatenate(x) for x in self._entries)
        return sp.csc_array((np.concatenate([val, -np.ones(r_n)]),
                             (np.concatenate([row, np.arange(r_n)]),
                              np.concatenate([col, n_u + np.arange(r_n)]))),
                            shape=(r_n, n_u + r_n))


def location_moves(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K, 2) MW of less (0) and more (1) consumption from activations `mw` of `offers`."""
    out = np.zeros((t_n, k_n, 2))
    np.add.at(out, (offers.mtu, offers.location, np.where(offers.direction > 0, 0, 1)), mw)
    return out


def location_delta(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K) net extra consumption caused by activations."""
    m = location_moves(offers, mw, t_n, k_n)
    return m[..., 1] - m[..., 0]

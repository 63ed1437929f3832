"""Explicit local flexibility market (LFM): the DSO buys location-tagged flexibility at least
cost subject to its grid limits (PARITY D4.3 6.1-6.3; seed 001 section 5.3).

Offers are blocks (owner, location, MTU, direction, MW, price). Direction +1 ("up") lowers
consumption at the location, -1 ("down") raises it. An activation at a location spreads over its
buses by participation factors per MTU and direction (where the flexible devices able to move
that way are at that MTU), so its effect on every branch flow and bus voltage follows from
LinDistFlow's linear maps. Clearing is an LP (HiGHS) built by constraint generation: only
limits that the base schedule or a trial clearing violates become constraints, added as rows
to the same LP, which re-solves from the last round's basis. Limits the offers cannot restore
are left to slack, priced at the DSO's cost of unresolved violations: that residual is what
real time sees as RED.

Pricing: pay-as-bid (each accepted offer its own price) or pay-as-clear, where every accepted
offer earns the locational marginal value of its relief (from the duals), capped at the price
cap. With availability payments (conditional products) the day-ahead round reserves
capacity and the intraday round activates from it (`environment.flexstage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from environment.grid.location_effects import LocationEffects, effects_at, moved_by
from environment.grid.shed import pairs
from environment.solver import InfeasibleError, WarmLP

TOL = 1e-6
MAX_ROUNDS = 10
ELASTIC = 1.0
"""Cost per MW-equivalent of a limit left broken, against the last resort's per MW shed.
Elastic slacks are added only where an LP without them is infeasible (held reactive flows
alone can break a voltage band): a slack counts a row's violation as relief for that row
alone, so the LP still prefers relief that serves several limits, and what it optimises is
what it reports."""


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

    def with_price(self, price: np.ndarray) -> FlexOffers:
        return FlexOffers(self.owner, self.location, self.mtu, self.direction, self.mw, price)


@dataclass(frozen=True)
class LfmResult:
    accepted_mw: np.ndarray       # per offer
    paid_price: np.ndarray        # EUR/MWh per offer (0 where not accepted)
    location_price: np.ndarray    # (T, K, 2) marginal value of up (0) and down (1) relief
    unresolved_mw: float          # load to shed left: what the offers could not relieve
    constraints: int              # (MW summed over MTUs)
    rounds: int
    converged: bool = True        # False: stopped at MAX_ROUNDS with a limit violated

    @property
    def cost_eur_per_h(self) -> np.ndarray:
        return self.accepted_mw * self.paid_price


@dataclass(frozen=True)
class GridLimits:
    """What an LFM clears against: base flows and the linear maps of a location's activation
    (dense arrays, or on a grid of tree sweeps `LocationEffects`, read the same way)."""

    base_p: np.ndarray        # (T, L) branch active flow of the schedules
    base_q: np.ndarray        # (T, L) branch reactive flow (held)
    base_w: np.ndarray        # (T, B) squared voltages
    s_max: np.ndarray         # (L,) MVA limit (already times loading limit)
    v_min: np.ndarray
    v_max: np.ndarray
    flow_per_mw: np.ndarray | LocationEffects  # (T, K, 2, L) flow change per MW more
    w_per_mw: np.ndarray | LocationEffects     # consumption at location k; (T, K, 2, B)
                                               # squared-voltage change, spread as d moves
    branch_location: np.ndarray  # (L,) location of each branch
    bus_location: np.ndarray     # (B,) location of each bus
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # answers kept

    def at(self, mtus: np.ndarray) -> GridLimits:
        """The limits of some MTUs only (in that order)."""
        return GridLimits(self.base_p[mtus], self.base_q[mtus], self.base_w[mtus], self.s_max,
                          self.v_min, self.v_max, effects_at(self.flow_per_mw, mtus),
                          effects_at(self.w_per_mw, mtus), self.branch_location, self.bus_location)

    def p_lim(self) -> np.ndarray:
        """(T, L) active-power limit of each branch at its held reactive flow (read-only)."""
        return self._p_lim

    @cached_property
    def _p_lim(self) -> np.ndarray:
        # computed once per limits: violation checks and headroom ask for it many times
        p_lim = np.sqrt(np.clip(self.s_max[None, :] ** 2 - self.base_q ** 2, 0, None))
        p_lim.flags.writeable = False
        return p_lim

    def violations(self, moves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flows, squared voltages and the boolean (T, L) overload map after activations
        `moves` (T, K, 2): MW of less (0) and more (1) consumption per location."""
        signed = np.stack([-moves[..., 0], moves[..., 1]], axis=-1)
        p = self.base_p + moved_by(signed, self.flow_per_mw)
        w = self.base_w + moved_by(signed, self.w_per_mw)
        return p, w, np.abs(p) > self.p_lim() + TOL

    def broken(self) -> np.ndarray:
        """(T,) whether a branch or (non-slack) voltage limit is broken at each MTU beyond TOL,
        at the base flows."""
        w = self.base_w[:, 1:]
        return ((np.abs(self.base_p) > self.p_lim() + TOL).any(1)
                | (w > self.v_max[1:] ** 2 + TOL).any(1) | (w < self.v_min[1:] ** 2 - TOL).any(1))

    def after(self, moves: np.ndarray) -> GridLimits:
        """The same grid around the flows left after activations `moves`."""
        p, w, _ = self.violations(moves)
        return GridLimits(p, self.base_q, w, self.s_max, self.v_min, self.v_max,
                          self.flow_per_mw, self.w_per_mw, self.branch_location,
                          self.bus_location)


def participation(grid, weights: np.ndarray, flow) -> tuple[np.ndarray | LocationEffects,
                                                           np.ndarray | LocationEffects]:
    """(T, K, 2, L) and (T, K, 2, B) effects of one MW more consumption at each location,
    spread over the location's buses in proportion to `weights` (T, B, 2): how much each bus
    can move less (0) or more (1) at that MTU; uniform where a location has none. Under tree
    sweeps (large grids) as `LocationEffects`: per location only the flows on its paths and
    the voltages of the span they cover, in memory linear in the buses."""
    t_n = weights.shape[0]
    ptdf_k, r_k, buses_k = flow.location_maps
    sweeps = not getattr(flow, "dense", True)
    if sweeps:
        flows, volts = [], []
    else:
        flow_mw = np.empty((t_n, grid.n_locations, 2, grid.n_bus - 1))
        w_mw = np.empty((t_n, grid.n_locations, 2, grid.n_bus))
    w = np.ascontiguousarray(np.moveaxis(weights, 2, 1), dtype=float)   # (T, 2, B)
    for k, buses in enumerate(buses_k):
        wk = w[:, :, buses]
        total = wk.sum(2, keepdims=True)
        spread = np.divide(wk, total, out=np.full_like(wk, 1.0 / len(buses)), where=total > 0)
        # only the location's own buses carry weight: multiplying by their rows alone skips
        # the zeros of the other buses; one 2-D product, not one per MTU
        flat = spread.reshape(2 * t_n, len(buses))
        if sweeps:
            f, branches, dw, nearest = flow.span_effects(flat, buses)
            on_path = np.full(grid.n_bus - 1, -1)
            on_path[branches] = np.arange(len(branches))
            flows.append((f, on_path))
            volts.append((dw, nearest))
            continue
        flow_mw[:, k] = (flat @ ptdf_k[k]).reshape(t_n, 2, -1)
        w_mw[:, k] = (flat @ r_k[k]).reshape(t_n, 2, -1)
    if sweeps:
        return LocationEffects.of(flows), LocationEffects.of(volts)
    return flow_mw, w_mw


def relief_request(limits: GridLimits, mtus: np.ndarray | None = None) -> np.ndarray:
    """(T, K, 2) the most the DSO's clearing (`clear_lfm`, acting at `mtus`; default: all) may
    buy at each location, less (0) and more (1) consumption: at an MTU that breaks a limit,
    the MW that alone would restore the limit it relieves most (its excess over one MW's
    effect there), zero where it relieves none. What a DSO's flexibility request states
    (USEF's FlexRequest per congestion point). Enough wherever one limit binds per MTU; where
    the DSO also restores a second limit with a move that worsens the first (an overvoltage
    fixed by consuming more behind an overloaded line) the first needs more than this, and
    the difference is left unresolved (`LfmResult.unresolved_mw`, counted as load to shed)."""
    t_n, k_n = limits.base_p.shape[0], limits.flow_per_mw.shape[1]
    out = np.zeros((t_n, k_n, 2))
    act = np.ones(t_n, bool) if mtus is None else np.isin(np.arange(t_n), mtus)
    p, w = limits.base_p, limits.base_w
    excess = np.abs(p) - limits.p_lim()
    low, high = limits.v_min ** 2 - w, w - limits.v_max ** 2
    low[:, 0] = high[:, 0] = 0.0   # the slack bus
    sign = np.array([-1.0, 1.0])   # a MW less (0) or more (1) consumption
    # only broken limits ask for relief: the maps are read at those (MTU, element) pairs alone
    for gap, maps, flip in ((excess, limits.flow_per_mw, -np.sign(p)),
                            (low, limits.w_per_mw, 1.0), (high, limits.w_per_mw, -1.0)):
        t, j = np.nonzero((gap > TOL) & act[:, None])
        if not len(t):
            continue
        effect = sign * maps[t, :, :, j] * (flip if np.isscalar(flip)
                                            else flip[t, j][:, None, None])
        mw = np.divide(gap[t, j][:, None, None], effect, out=np.zeros(effect.shape),
                       where=effect > 1e-12)
        first = np.flatnonzero(np.diff(t, prepend=-1))   # t ascends (row-major nonzero)
        out[t[first]] = np.maximum(out[t[first]], np.maximum.reduceat(mw, first))
    return out


def clear_lfm(offers: FlexOffers, limits: GridLimits, dt_h: float, pricing: str = "pay_as_bid",
              price_cap: float | None = None, unresolved_cost: float = 10_000.0,
              mtus: np.ndarray | None = None) -> LfmResult:
    """Least-cost relief of the forecast violations in `limits` from `offers`.

    What the offers cannot relieve is left to the DSO's last resort (`GridCuts`: shedding or
    curtailing at a location) at `unresolved_cost` per MWh: `unresolved_mw` is that load to
    shed. Offers above `price_cap` are not bought, and no accepted offer is paid more than it.

    `mtus` restricts which MTUs the DSO acts on (e.g. only YELLOW ones); default: all."""
    if pricing not in ("pay_as_bid", "pay_as_clear"):
        raise ValueError(f"markets.lfm.pricing = {pricing!r}: expected pay_as_bid or pay_as_clear")
    t_n, k_n = limits.base_p.shape[0], limits.flow_per_mw.shape[1]
    n = len(offers)
    act = np.ones(t_n, bool) if mtus is None else np.isin(np.arange(t_n), mtus)
    empty = LfmResult(np.zeros(n), np.zeros(n), np.zeros((t_n, k_n, 2)), 0.0, 0, 0)
    w_lo, w_hi = limits.v_min ** 2, limits.v_max ** 2
    volt0 = (limits.base_w < w_lo - TOL) | (limits.base_w > w_hi + TOL)
    volt0[:, 0] = False
    need = ((np.abs(limits.base_p) > limits.p_lim() + TOL).any(1) | volt0.any(1)) & act
    if not need.any():
        return empty
    # Only MTUs with a violation to relieve take part: a row involves the offers of its own
    # MTU alone, so activations elsewhere cannot help, and the DSO buys only where it needs.
    sub_t = np.flatnonzero(need)
    lim = limits.at(sub_t)
    s_n = len(sub_t)
    at = np.full(t_n, -1)
    at[sub_t] = np.arange(s_n)
    usable = (offers.mw > TOL) & need[offers.mtu] if n else np.zeros(0, bool)
    if price_cap is not None and n:
        usable &= offers.price <= price_cap + TOL
    idx = np.flatnonzero(usable)
    n_u = len(idx)
    sub = FlexOffers(offers.owner[idx], offers.location[idx], at[offers.mtu[idx]],
                     offers.direction[idx], offers.mw[idx], offers.price[idx])
    cuts = GridCuts(lim, sub, relief_cost=unresolved_cost * dt_h)
    cuts.add_violations(lim.base_p, lim.base_w, np.abs(lim.base_p) > lim.p_lim() + TOL)
    lp = WarmLP(np.concatenate([sub.price * dt_h, cuts.x_cost]), cuts.matrix(n_u),
                np.full(cuts.n, -np.inf), cuts.rhs, np.zeros(n_u + cuts.n_extra),
                np.concatenate([sub.mw, np.full(cuts.n_extra, np.inf)]), what="LFM clearing",
                presolve=False)  # halves a winter clearing (10 -> 5 ms)
    rounds = 0
    while True:
        try:
            res = lp.solve()
        except InfeasibleError:
            c_old = cuts.n_extra
            cuts.make_elastic()
            lp.add_cols(*cuts.new_columns(c_old, cuts.n))
            res = lp.solve()
        rounds += 1
        p, w, over = lim.violations(location_moves(sub, res.x[:n_u], s_n, k_n)
                                    + cuts.relief_moves(res.x[n_u:]))
        r_old, c_old = cuts.n, cuts.n_extra
        if rounds >= MAX_ROUNDS or not cuts.add_violations(p, w, over):
            break
        lp.add_cols(*cuts.new_columns(c_old, r_old))
        lp.add_rows(cuts.matrix(n_u, r_old), np.full(cuts.n - r_old, -np.inf), cuts.rhs[r_old:])
    converged = rounds < MAX_ROUNDS or not over.any()
    acc = np.zeros(n)
    acc[idx] = res.x[:n_u]
    mu = -res.marginals / dt_h
    live = np.flatnonzero(np.abs(mu) >= 1e-12)
    coef = cuts.effects(live)
    ms = (mu[live] * cuts.sign[live])[:, None]
    loc_price = np.zeros((t_n, k_n, 2))  # summed row by row, in the order the rows were made
    np.add.at(loc_price[:, :, 0], sub_t[cuts.t[live]], ms * coef[:, :, 0])
    np.add.at(loc_price[:, :, 1], sub_t[cuts.t[live]], -(ms * coef[:, :, 1]))
    # the marginal value of relief at a location: never negative, never above the cap (nor
    # above the last resort's price, which relieves there too)
    loc_price = np.clip(loc_price, 0, price_cap)
    accepted = acc > TOL
    if pricing == "pay_as_bid":
        paid = np.where(accepted, offers.price, 0.0)
    else:
        d = np.where(offers.direction > 0, 0, 1)
        clear = np.maximum(loc_price[offers.mtu, offers.location, d], offers.price)
        paid = np.where(accepted, clear if price_cap is None else np.minimum(clear, price_cap),
                        0.0)
    unresolved = cuts.unresolved_mw(res.x[n_u:])
    return LfmResult(np.where(accepted, acc, 0.0), paid, loc_price, unresolved, cuts.n, rounds,
                     converged)


def unresolved_mw(limits: GridLimits, moves: np.ndarray, unresolved_cost: float,
                  mtus: np.ndarray | None = None) -> float:
    """What the DSO's last resort would have to shed (MW summed over MTUs) to restore the
    limits after activations `moves` (T, K, 2): the LFM's measure of what is left."""
    return clear_lfm(FlexOffers.concat([]), limits.after(moves), 1.0,
                     unresolved_cost=unresolved_cost, mtus=mtus).unresolved_mw


class GridCuts:
    """The grid rows of an LFM clearing, generated as violations appear (constraint
    generation), and the columns they open after the offers. Row i reads
    sign * (base + sum coef * x) <= bound over the usable offers and those columns.

    The columns are the DSO's last resort at `relief_cost` per MWh: shedding load (up) or
    curtailing injection (down) without limit at a location, spread over its buses like its
    flexibility (the participation maps). They are what the DSO weighs buying against, so a
    violation costs what relieving it at one location costs, however many limits in series it
    breaks: the location-level form of the least load to shed. A row opens them where they
    relieve it (the direction that helps, at each location that moves it). Where even they
    cannot restore a limit (held reactive flows alone can break a voltage band), every row
    gets an elastic slack (`make_elastic`, `ELASTIC` per MW-equivalent).

    Rows are kept as arrays and made a whole round at a time with numpy: every violated branch
    (in the direction of its flow) and every bus below or above its voltage band that has no
    row yet, ordered by location, MTU and kind (branch, low, high voltage), then element.
    Adding all of them at once, not only the worst per MTU and location, matters under heavy
    congestion: a location's branches in series are relieved by different amounts, and one
    row per round left a winter clearing of a 1,000-household feeder unconverged after ten
    rounds, with violations the LP never saw."""

    def __init__(self, limits: GridLimits, offers: FlexOffers, relief_cost: float = 0.0):
        self.lim = limits
        t_n, l_n = limits.base_p.shape
        b_n = limits.base_w.shape[1]
        self.p_lim = limits.p_lim()
        self.w_lo, self.w_hi = limits.v_min ** 2, limits.v_max ** 2
        self.o_k = offers.location
        self.o_d = np.where(offers.direction > 0, 0, 1)
        self.o_dir = offers.direction.astype(float)
        o_t = offers.mtu
        self.by_t = np.argsort(o_t, kind="stable")   # usable offers grouped by MTU
        count = np.bincount(o_t, minlength=t_n)
        self.t_count, self.t_start = count, np.cumsum(count) - count
        self.has_l = np.zeros((t_n, l_n, 2), bool)   # row exists for sign -1 (0) / +1 (1)
        self.has_v = np.zeros((t_n, b_n, 2), bool)   # row exists below (0) / above (1) band
        self.t = np.zeros(0, int)
        self.kind = np.zeros(0, int)   # 0 branch flow, 1 squared voltage
        self.j = np.zeros(0, int)
        self.sign = np.zeros(0)
        self.rhs = np.zeros(0)
        self._eff = np.zeros((0, limits.flow_per_mw.shape[1], 2))
        # per round: row, column (usable offer), coefficient
        self._entries = ([np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)])
        # the columns after the offers, in the order made: relief at (MTU, location, d: 0 up,
        # 1 down), or the elastic slack of row `x_row`; x_mw: MW(-equivalent) per unit
        self.relief_cost = relief_cost
        self.has_r = np.zeros((t_n, limits.flow_per_mw.shape[1], 2), bool)
        self.x_t, self.x_k, self.x_d, self.x_row = (np.zeros(0, int) for _ in range(4))
        self.x_mw, self.x_cost = np.zeros(0), np.zeros(0)
        self.elastic = False

    @property
    def n(self) -> int:
        return len(self.t)

    @property
    def n_extra(self) -> int:
        return len(self.x_t)

    def effects(self, rows: np.ndarray) -> np.ndarray:
        """(rows, K, 2) effect of one MW at each location and direction on each row's flow or
        squared voltage."""
        return self._eff[rows]

    def _gather(self, t: np.ndarray, kind: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(rows, K, 2) `effects` of new rows, read once from the maps: the rows' effects are
        asked for again every round (strided gathers from (T, K, 2, L) maps)."""
        out = np.empty((len(t), self.lim.flow_per_mw.shape[1], 2))
        line = kind == 0
        out[line] = self.lim.flow_per_mw[t[line], :, :, j[line]]
        out[~line] = self.lim.w_per_mw[t[~line], :, :, j[~line]]
        return out

    def add_violations(self, p: np.ndarray, w: np.ndarray, over: np.ndarray,
                       active: np.ndarray | None = None) -> int:
        """Add a row for every violated branch and bus limit that has none yet, at the MTUs
        `active` (default: all the limits hold), and the columns they open; returns how many
        rows."""
        line = over & ~np.where(p > 0, self.has_l[..., 1], self.has_l[..., 0])
        lo = (w < self.w_lo - TOL) & ~self.has_v[..., 0]
        hi = (w > self.w_hi + TOL) & ~self.has_v[..., 1]
        lo[:, 0] = hi[:, 0] = False
        if active is not None:
            line &= active[:, None]
            lo &= active[:, None]
            hi &= active[:, None]
        if not (line.any() or lo.any() or hi.any()):   # the usual last round: nothing new
            return 0
        line_sign = np.where(p > 0, 1.0, -1.0)
        found = []   # (location, MTU, order, kind, element, sign)
        for order, (mask, where) in enumerate(((line, self.lim.branch_location),
                                               (lo, self.lim.bus_location),
                                               (hi, self.lim.bus_location))):
            t, j = np.nonzero(mask)
            sign = line_sign[t, j] if order == 0 else np.full(len(t), 2.0 * order - 3.0)
            found.append((where[j], t, np.full(len(t), order), np.full(len(t), min(order, 1)),
                          j, sign))
        k, t, order, kind, j, sign = (np.concatenate(x) for x in zip(*found, strict=True))
        if not len(t):
            return 0
        o = np.lexsort((j, order, t, k))
        r0 = self.n
        self._add(t[o], kind[o], j[o], sign[o])
        self._open(np.arange(r0, self.n))
        return len(o)

    def _open(self, rows: np.ndarray) -> None:
        """Relief columns the new `rows` need (where one MW there moves the row towards its
        bound), and their elastic slacks once the LP has needed them."""
        # coefficient of relief in the row: -sign * direction * effect of more consumption
        coef = -self.sign[rows][:, None, None] * np.array([1.0, -1.0]) * self.effects(rows)
        r, k, d = np.nonzero(coef < -1e-12)
        t = self.t[rows][r]
        fresh = np.zeros(self.has_r.shape, bool)
        fresh[t, k, d] = ~self.has_r[t, k, d]
        t, k, d = np.nonzero(fresh)
        self.has_r[t, k, d] = True
        self._extend(t, k, d, np.full(len(t), -1), np.ones(len(t)),
                     np.full(len(t), self.relief_cost))
        if self.elastic:
            self._elastic(rows)

    def _extend(self, t, k, d, row, mw, cost) -> None:
        self.x_t, self.x_k, self.x_d, self.x_row, self.x_mw, self.x_cost = (
            np.concatenate([a, b]) for a, b in ((self.x_t, t), (self.x_k, k), (self.x_d, d),
                                                (self.x_row, row), (self.x_mw, mw),
                                                (self.x_cost, cost)))

    def make_elastic(self) -> None:
        """From now on every row has an elastic slack. Called when an LP without them is
        infeasible: no relief restores some limit."""
        if not self.elastic:
            self.elastic = True
            self._elastic(np.arange(self.n))

    def _elastic(self, rows: np.ndarray) -> None:
        # MW-equivalent of a row's unit: the largest effect of one MW at any location
        unit = 1.0 / np.maximum(np.abs(self.effects(rows)).max(axis=(1, 2)), 1e-9)
        z = np.zeros(len(rows), int)
        self._extend(self.t[rows], z, z, rows, unit, self.relief_cost * ELASTIC * unit)

    def relief_moves(self, x: np.ndarray) -> np.ndarray:
        """(T, K, 2) MW of less (0) and more (1) consumption from relief column values `x`."""
        out = np.zeros(self.has_r.shape)
        r = self.x_row < 0
        np.add.at(out, (self.x_t[r], self.x_k[r], self.x_d[r]), x[r])
        return out

    def unresolved_mw(self, x: np.ndarray) -> float:
        """MW (summed over MTUs) of relief, and MW-equivalents of limits left broken."""
        return float(x @ self.x_mw)

    def new_columns(self, col0: int, rows: int):
        """Columns `col0`.. for `WarmLP.add_cols`: cost, bounds and their entries in the LP's
        first `rows` rows."""
        n = self.n_extra - col0
        return (self.x_cost[col0:], np.zeros(n), np.full(n, np.inf),
                self.extra_matrix(0, col0, rows))

    def extra_matrix(self, row0: int, col0: int = 0, row1: int | None = None) -> sp.csr_array:
        """Entries of the columns `col0`.. on rows `row0`..`row1` (default: every row)."""
        row1 = self.n if row1 is None else row1
        rows = np.arange(row0, row1)
        xt, xk, xd, xr = self.x_t[col0:], self.x_k[col0:], self.x_d[col0:], self.x_row[col0:]
        relief = np.flatnonzero(xr < 0)
        ri, ci = pairs(self.t[rows], xt[relief], self.has_r.shape[0])
        ci = relief[ci]
        eff = self._eff[rows[ri], xk[ci], xd[ci]]
        val = -self.sign[rows[ri]] * np.where(xd[ci] == 0, 1.0, -1.0) * eff
        nz = np.abs(val) > 0
        el = np.flatnonzero((xr >= row0) & (xr < row1))
        return sp.csr_array((np.concatenate([val[nz], -np.ones(len(el))]),
                             (np.concatenate([ri[nz], xr[el] - row0]),
                              np.concatenate([ci[nz], el]))),
                            shape=(row1 - row0, len(xt)))

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
        self._eff = np.concatenate([self._eff, self._gather(t, kind, j)])

    def offer_matrix(self, n_u: int, start: int = 0) -> sp.csr_array:
        """Rows `start`.. over the usable offers."""
        row, col, val = (np.concatenate(x) for x in self._entries)
        keep = row >= start
        return sp.csr_array((val[keep], (row[keep] - start, col[keep])),
                            shape=(self.n - start, n_u))

    def matrix(self, n_u: int, start: int = 0) -> sp.csr_array:
        """Rows `start`.. over the usable offers and every column after them."""
        return sp.hstack([self.offer_matrix(n_u, start), self.extra_matrix(start)],
                         format="csr")


def location_moves(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K, 2) MW of less (0) and more (1) consumption from activations `mw` of `offers`."""
    out = np.zeros((t_n, k_n, 2))
    np.add.at(out, (offers.mtu, offers.location, np.where(offers.direction > 0, 0, 1)), mw)
    return out


def location_delta(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K) net extra consumption caused by activations."""
    m = location_moves(offers, mw, t_n, k_n)
    return m[..., 1] - m[..., 0]

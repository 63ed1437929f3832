"""Explicit local flexibility market (LFM): the DSO buys location-tagged flexibility at least
cost subject to its grid limits (PARITY D4.3 6.1-6.3; seed 001 section 5.3).

Offers are blocks (owner, location, MTU, direction, MW, price). Direction +1 ("up") lowers
consumption at the location, -1 ("down") raises it. An activation at a location spreads over its
buses by participation factors per MTU and direction (where the flexible devices able to move
that way are at that MTU), so its effect on every branch flow and bus voltage follows from
LinDistFlow's linear maps. Clearing is an LP (HiGHS) built by constraint generation: only
limits that the base schedule or a trial clearing violates become constraints, added as rows
(`lfm_cuts.GridCuts`) to the same LP, which re-solves from the last round's basis. Limits the
offers cannot restore are left to slack, priced at the DSO's cost of unresolved violations:
that residual is what real time sees as RED.

Pricing: pay-as-bid (each accepted offer its own price) or pay-as-clear, where every accepted
offer earns the locational marginal value of its relief (from the duals), capped at the price
cap. With availability payments (conditional products) the day-ahead round reserves
capacity and the intraday round activates from it (`environment.flexstage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from environment.grid.location_effects import LocationEffects, effects_at, moved_by
from environment.markets.lfm_cuts import TOL, GridCuts
from environment.solver import InfeasibleError, WarmLP

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
        out = GridLimits(p, self.base_q, w, self.s_max, self.v_min, self.v_max,
                         self.flow_per_mw, self.w_per_mw, self.branch_location,
                         self.bus_location)
        if "_p_lim" in self.__dict__:   # the same reactive flows: the same limits
            out.__dict__["_p_lim"] = self._p_lim
        return out


def participation(grid, weights: np.ndarray, flow) -> tuple[np.ndarray | LocationEffects,
                                                           np.ndarray | LocationEffects]:
    """(T, K, 2, L) and (T, K, 2, B) effects of one MW more consumption at each location,
    spread over the location's buses in proportion to `weights` (T, B, 2): how much each bus
    can move less (0) or more (1) at that MTU; uniform where a location has none. Under tree
    sweeps (large grids) as `LocationEffects`: per location only the flows on its paths and
    the voltages of the span they cover, in memory linear in the buses."""
    if not getattr(flow, "dense", True):
        return flow.location_spans.effects(weights)
    t_n = weights.shape[0]
    ptdf_k, r_k, buses_k = flow.location_maps
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
        flow_mw[:, k] = (flat @ ptdf_k[k]).reshape(t_n, 2, -1)
        w_mw[:, k] = (flat @ r_k[k]).reshape(t_n, 2, -1)
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
    limits after activations `moves` (T, K, 2): the LFM's measure of what is left. Only the
    MTUs `mtus` (default: all) count, so only their flows are moved (rows are independent)."""
    if mtus is not None:
        rows = np.unique(mtus)
        limits, moves = limits.at(rows), moves[rows]
    return clear_lfm(FlexOffers.concat([]), limits.after(moves), 1.0,
                     unresolved_cost=unresolved_cost).unresolved_mw


def location_moves(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K, 2) MW of less (0) and more (1) consumption from activations `mw` of `offers`."""
    out = np.zeros((t_n, k_n, 2))
    np.add.at(out, (offers.mtu, offers.location, np.where(offers.direction > 0, 0, 1)), mw)
    return out


def location_delta(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K) net extra consumption caused by activations."""
    m = location_moves(offers, mw, t_n, k_n)
    return m[..., 1] - m[..., 0]

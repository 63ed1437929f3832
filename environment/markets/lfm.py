"""Explicit local flexibility market (LFM): the DSO buys location-tagged flexibility at least
cost subject to its grid limits (PARITY D4.3 6.1-6.3; seed 001 section 5.3).

Offers are blocks (owner, location, MTU, direction, MW, price). Direction +1 ("up") lowers
consumption at the location, -1 ("down") raises it. An activation at a location spreads over its
buses by participation factors per MTU and direction (where the flexible devices able to move
that way are at that MTU), so its effect on every branch flow and bus voltage follows from
LinDistFlow's linear maps. Clearing is an LP (Pyomo +
HiGHS) built by constraint generation: only limits that the base schedule or a trial clearing
violates become constraints. Limits the offers cannot restore are left to slack, priced at the
DSO's cost of unresolved violations: that residual is what real time sees as RED.

Pricing: pay-as-bid (each accepted offer its own price) or pay-as-clear, where every accepted
offer earns the locational marginal value of its relief (from the duals), capped at the price
cap. Reservation payments (conditional products) add EUR per MW and hour on the accepted
volume.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        return np.sqrt(np.clip(self.s_max[None, :] ** 2 - self.base_q ** 2, 0, None))

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
    w = np.zeros((t_n, k_n, 2, grid.n_bus))
    for k in range(k_n):
        buses = np.flatnonzero(grid.bus_location == k)
        buses = buses[buses != 0] if len(buses) > 1 else buses
        wk = weights[:, buses, :].astype(float)
        total = wk.sum(1, keepdims=True)
        spread = np.divide(wk, total, out=np.full_like(wk, 1.0 / len(buses)), where=total > 0)
        w[:, k, :, buses] = np.moveaxis(spread, 1, 0)
    sens = flow.sensitivities()
    return w @ sens.ptdf, -2.0 * (w @ sens.R)


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
    o_t, o_k = offers.mtu[idx], offers.location[idx]
    o_d = np.where(offers.direction[idx] > 0, 0, 1)
    o_dir = offers.direction[idx].astype(float)
    by_t = {int(t): np.flatnonzero(o_t == t) for t in np.unique(o_t)}
    p_lim = limits.p_lim()
    rows: list[tuple] = []          # (t, kind, j, sign, offer positions, coefficients)
    rhs: list[float] = []
    scale: list[float] = []
    added: set = set()

    def add(t: int, kind: str, j: int, sign: float) -> bool:
        """Row: sign * (base + sum coef * a) <= bound + slack."""
        key = (t, kind, j, sign)
        if key in added:
            return False
        added.add(key)
        table = limits.flow_per_mw if kind == "l" else limits.w_per_mw
        pos = by_t.get(t, np.zeros(0, int))
        coef = -sign * o_dir[pos] * table[t, o_k[pos], o_d[pos], j]
        if kind == "l":
            base, bound = sign * limits.base_p[t, j], p_lim[t, j]
            scale.append(1.0)
        else:
            base = sign * limits.base_w[t, j]
            bound = -w_lo[j] if sign < 0 else w_hi[j]
            scale.append(1.0 / max(float(np.abs(table[t, :, :, j]).max()), 1e-9))
        rows.append((t, kind, j, sign, pos, coef))
        rhs.append(bound - base)
        return True

    def add_violations(p, w, over) -> int:
        """Add the worst violated branch and bus per MTU and location (constraint generation
        adds the rest if they are still violated after the next solve)."""
        new = 0
        excess = np.where(over & act[:, None], np.abs(p) - p_lim, -np.inf)
        lo = np.where(act[:, None], w_lo - w, -np.inf)
        hi = np.where(act[:, None], w - w_hi, -np.inf)
        lo[:, 0] = hi[:, 0] = -np.inf
        for k in range(k_n):
            br = np.flatnonzero(branch_loc == k)
            bu = np.flatnonzero(bus_loc == k)
            for t in np.flatnonzero(act):
                for j in br[np.argsort(-excess[t, br], kind="stable")]:
                    if excess[t, j] <= TOL:
                        break
                    if add(int(t), "l", int(j), 1.0 if p[t, j] > 0 else -1.0):
                        new += 1
                        break
                for gap, sign in ((lo, -1.0), (hi, 1.0)):
                    for j in bu[np.argsort(-gap[t, bu], kind="stable")]:
                        if gap[t, j] <= TOL:
                            break
                        if add(int(t), "v", int(j), sign):
                            new += 1
                            break
        return new

    branch_loc, bus_loc = limits.branch_location, limits.bus_location
    add_violations(p0, w0, over0)
    n_u = len(idx)
    rounds = 0
    while True:
        r_n = len(rows)
        cols = [np.concatenate([r[4] for r in rows] + [np.zeros(0, int)]),
                n_u + np.arange(r_n)]
        row_ix = [np.concatenate([np.full(len(r[4]), i) for i, r in enumerate(rows)]
                                 + [np.zeros(0, int)]), np.arange(r_n)]
        vals = [np.concatenate([r[5] for r in rows] + [np.zeros(0)]), -np.ones(r_n)]
        a_ub = sp.csr_array((np.concatenate(vals),
                             (np.concatenate(row_ix), np.concatenate(cols))),
                            shape=(r_n, n_u + r_n))
        c = np.concatenate([price[idx] * dt_h, unresolved_cost * dt_h * np.asarray(scale)])
        bounds = [(0.0, float(m)) for m in offers.mw[idx]] + [(0.0, None)] * r_n
        res = solve_lp(c, a_ub=a_ub, b_ub=np.asarray(rhs), bounds=bounds, what="LFM clearing")
        rounds += 1
        acc = np.zeros(n)
        acc[idx] = res.x[:n_u]
        p, w, over = limits.violations(location_moves(offers, acc, t_n, k_n))
        if rounds >= MAX_ROUNDS or not add_violations(p, w, over):
            break
    marginal = res.ineqlin.marginals
    loc_price = np.zeros((t_n, k_n, 2))
    for (t, kind, j, sign, _pos, _coef), mu_raw in zip(rows, marginal, strict=True):
        mu = -mu_raw / dt_h
        if abs(mu) < 1e-12:
            continue
        coef = (limits.flow_per_mw if kind == "l" else limits.w_per_mw)[t, :, :, j]
        loc_price[t, :, 0] += mu * sign * coef[:, 0]
        loc_price[t, :, 1] -= mu * sign * coef[:, 1]
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
    slack = float(res.x[n_u:] @ np.asarray(scale))
    return LfmResult(np.where(accepted, acc, 0.0), paid, loc_price, slack, len(rows), rounds)


def location_moves(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K, 2) MW of less (0) and more (1) consumption from activations `mw` of `offers`."""
    out = np.zeros((t_n, k_n, 2))
    np.add.at(out, (offers.mtu, offers.location, np.where(offers.direction > 0, 0, 1)), mw)
    return out


def location_delta(offers: FlexOffers, mw: np.ndarray, t_n: int, k_n: int) -> np.ndarray:
    """(T, K) net extra consumption caused by activations."""
    m = location_moves(offers, mw, t_n, k_n)
    return m[..., 1] - m[..., 0]

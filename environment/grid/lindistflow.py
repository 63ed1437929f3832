"""Lossless linearised DistFlow (Baran & Wu) power flow on a radial ``Grid``.

Branch flows are sums of downstream consumption and squared voltages fall by
``2 (r P + x Q)`` per branch, so a whole year of quarter hours is a few matrix products; the same
linear maps are handed to LP-based agents (DSO, planner) as constraints.

Small grids (at most ``DENSE_MAX_BUS`` buses, every LV feeder simbench ships) use dense
bus-by-branch matrices: BLAS products are the fastest there. Larger ones (simbench's MV+LV
grids, 9,102 buses) use tree sweeps (``environment.grid.radial``): time and memory linear in the
number of buses, rows of the maps computed when an LP asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from environment.grid.network import Grid
from environment.grid.radial import CommonPath, RadialSweeps
from environment.grid.spans import LocationSpans

DEFAULT_CHUNK = 8760
DENSE_MAX_BUS = 1000


@dataclass(frozen=True, eq=False)
class FlowResult:
    """Per-MTU branch flows (upstream -> downstream) and bus voltages."""

    p_mw: np.ndarray
    q_mvar: np.ndarray
    loading: np.ndarray
    v_pu: np.ndarray


@dataclass(frozen=True, eq=False)
class Sensitivities:
    """Linear maps of consumption ``p, q`` (T, B) (positive = load) to flows and squared voltages.

    ``flow = p @ ptdf`` (same for q), ``w = w0 - 2 (p @ R + q @ X)`` with ``w = v**2``; voltage
    limits are linear as ``v_min**2 <= w <= v_max**2``. The slack column of ``ptdf`` is zero.
    """

    ptdf: np.ndarray
    R: np.ndarray
    X: np.ndarray
    w0: np.ndarray

    @property
    def dw_dp(self) -> np.ndarray:
        """(B, B) change of squared voltage per MW consumed at each bus."""
        return -2.0 * self.R

    @property
    def dw_dq(self) -> np.ndarray:
        """(B, B) change of squared voltage per Mvar consumed at each bus."""
        return -2.0 * self.X


@dataclass(frozen=True, eq=False)
class Violations:
    """Per-MTU, per-location grid state a DSO's traffic light is built from (shape (T, K)).

    ``overload_mwh`` is the worst branch's apparent power above its limit times the MTU length
    (MVA h counted as MWh): the flexibility volume needed to relieve that location.
    """

    locations: tuple[str, ...]
    max_loading: np.ndarray
    v_min_pu: np.ndarray
    v_max_pu: np.ndarray
    overload_mwh: np.ndarray
    overloaded: np.ndarray
    undervoltage: np.ndarray
    overvoltage: np.ndarray

    @property
    def any(self) -> np.ndarray:
        """(T, K) True where a location violates a thermal or voltage limit."""
        return self.overloaded | self.undervoltage | self.overvoltage


class LinDistFlow:
    """Precomputed LinDistFlow for one grid; ``solve`` is vectorised over MTUs.

    ``dense`` (default: at most ``DENSE_MAX_BUS`` buses, or a grid without ``parent_bus``)
    keeps the (B, L) and (B, B) maps in memory; otherwise every map is a tree sweep."""

    def __init__(self, grid: Grid, chunk_size: int = DEFAULT_CHUNK, dense: bool | None = None):
        self.grid = grid
        self.chunk_size = int(chunk_size)
        parent = getattr(grid, "parent_bus", None)
        if dense is None:
            dense = parent is None or grid.n_bus <= DENSE_MAX_BUS
        elif not dense and parent is None:
            raise ValueError("tree sweeps need the grid's parent_bus")
        self.dense = bool(dense)
        self._w0 = np.asarray(grid.v0_pu, dtype=float) ** 2
        with np.errstate(divide="ignore"):
            self._inv_s_max = np.where(grid.s_max_mva > 0, 1.0 / grid.s_max_mva, 0.0)
        self._r = np.array(grid.r_pu, dtype=float)
        self._x = np.array(grid.x_pu, dtype=float)
        maps = (self._w0, self._inv_s_max, self._r, self._x)
        if self.dense:
            self.sweeps = None
            d = np.asarray(grid.downstream, dtype=float)
            self._ptdf = np.ascontiguousarray(d.T)
            self._R = d.T @ (grid.r_pu[:, None] * d)
            self._X = d.T @ (grid.x_pu[:, None] * d)
            maps += (self._ptdf, self._R, self._X)
        else:
            self.sweeps = RadialSweeps(parent)
        for a in maps:
            a.setflags(write=False)

    @cached_property
    def location_maps(self) -> tuple[list, list, list]:
        """Per grid location: the rows of the flow map and of the squared-voltage map
        (-2 R) for the buses an activation there spreads over (all its buses but the slack,
        unless that is all it has), and those buses. The LFM's participation factors multiply
        only these rows. The map rows are None under tree sweeps."""
        buses_k = []
        for k in range(self.grid.n_locations):
            buses = np.flatnonzero(self.grid.bus_location == k)
            buses_k.append(buses[buses != 0] if len(buses) > 1 else buses)
        if not self.dense:
            return [None] * len(buses_k), [None] * len(buses_k), buses_k
        return ([np.ascontiguousarray(self._ptdf[b]) for b in buses_k],
                [np.ascontiguousarray(-2.0 * self._R[b]) for b in buses_k], buses_k)

    @cached_property
    def location_spans(self) -> LocationSpans:
        """Under tree sweeps, the spans of every location's buses (`location_maps`): the
        LFM's effect tables of all locations in one pass (`LocationSpans.effects`)."""
        return LocationSpans(self.sweeps, self.location_maps[2], self._r)

    def sensitivities(self) -> Sensitivities:
        """Linear flow and squared-voltage maps for optimisation models (read-only arrays).

        Dense (B, L) and (B, B) arrays: under tree sweeps they are built on each call, which
        large grids should avoid (``downstream_rows``, ``r_rows``, ``x_rows`` give rows)."""
        if self.dense:
            return Sensitivities(ptdf=self._ptdf, R=self._R, X=self._X, w0=self._w0)
        every = np.arange(self.grid.n_bus)
        return Sensitivities(ptdf=np.ascontiguousarray(self.downstream_rows(every[:-1]).T),
                             R=self.r_rows(every), X=self.x_rows(every), w0=self._w0)

    @property
    def w0(self) -> np.ndarray:
        """(B,) squared no-load voltages."""
        return self._w0

    def downstream_rows(self, branches) -> np.ndarray:
        """(n, B) rows of the downstream matrix: 1 on the buses each branch feeds."""
        if self.dense:
            return self._ptdf.T[branches]
        return self.sweeps.subtree_rows(branches)

    def r_rows(self, buses) -> np.ndarray:
        """(n, B) rows of R (common-path resistance): squared voltages fall by 2 R p."""
        return self._R[buses] if self.dense else self.sweeps.path_rows(self._r, buses)

    def x_rows(self, buses) -> np.ndarray:
        """(n, B) rows of X (common-path reactance)."""
        return self._X[buses] if self.dense else self.sweeps.path_rows(self._x, buses)

    def common_r(self):
        """R, read as ``R[rows, cols]`` elementwise: the (B, B) array or a ``CommonPath``."""
        return self._R if self.dense else CommonPath(self.sweeps, self._r)

    def subtree_end(self) -> np.ndarray:
        """(L,) one past the last bus each branch feeds (subtrees are contiguous)."""
        if self.dense:
            return np.arange(1, self.grid.n_bus) + np.asarray(self._ptdf.T, bool).sum(1)
        return self.sweeps.end[1:].copy()

    def _as_2d(self, a, name: str) -> np.ndarray:
        a = np.atleast_2d(np.asarray(a, dtype=float))
        if a.ndim != 2 or a.shape[1] != self.grid.n_bus:
            raise ValueError(f"{name} must have shape (T, {self.grid.n_bus}), got {a.shape}")
        return a

    def solve(self, p_mw, q_mvar=None) -> FlowResult:
        """Flows and voltages for net consumption ``p_mw``, ``q_mvar`` of shape (T, B).

        Positive = load, negative = injection. A 1-D input is one MTU. Squared voltages below zero
        (only under absurd loads) are clipped so ``v_pu`` stays finite.
        """
        p = self._as_2d(p_mw, "p_mw")
        q = np.zeros_like(p) if q_mvar is None else self._as_2d(q_mvar, "q_mvar")
        if q.shape != p.shape:
            raise ValueError(f"q_mvar shape {q.shape} differs from p_mw shape {p.shape}")
        if not self.dense:
            fp, fq, loading, v = self.sweeps.power_flow(p, q, self._r, self._x,
                                                        self._inv_s_max, self._w0)
            return FlowResult(p_mw=fp, q_mvar=fq, loading=loading, v_pu=v)
        n_t, n_l = p.shape[0], self.grid.n_branch
        flow_p = np.empty((n_t, n_l))
        flow_q = np.empty((n_t, n_l))
        loading = np.empty((n_t, n_l))
        v = np.empty((n_t, self.grid.n_bus))
        step = max(self.chunk_size, 1)
        for start in range(0, n_t, step):
            sl = slice(start, start + step)
            np.matmul(p[sl], self._ptdf, out=flow_p[sl])
            np.matmul(q[sl], self._ptdf, out=flow_q[sl])
            np.multiply(flow_p[sl], flow_p[sl], out=loading[sl])
            loading[sl] += flow_q[sl] * flow_q[sl]
            np.sqrt(loading[sl], out=loading[sl])
            loading[sl] *= self._inv_s_max
            w = p[sl] @ self._R
            w += q[sl] @ self._X
            w *= -2.0
            w += self._w0
            np.sqrt(np.maximum(w, 0.0, out=w), out=v[sl])
        return FlowResult(p_mw=flow_p, q_mvar=flow_q, loading=loading, v_pu=v)


def violations(result: FlowResult, grid: Grid, mtu_hours: float = 0.25) -> Violations:
    """Reduce a ``FlowResult`` to per-location maxima, minima, overload energy and limit masks.

    Voltage limits are checked per bus before reducing, since the HV slack and LV buses carry
    different bands. Locations without branches report zero loading.
    """
    n_t = result.v_pu.shape[0]
    n_k = grid.n_locations
    max_loading = np.zeros((n_t, n_k))
    overload = np.zeros((n_t, n_k))
    v_min = np.full((n_t, n_k), np.nan)
    v_max = np.full((n_t, n_k), np.nan)
    under = np.zeros((n_t, n_k), dtype=bool)
    over = np.zeros((n_t, n_k), dtype=bool)
    excess = np.maximum(result.loading - 1.0, 0.0) * grid.s_max_mva * mtu_hours
    below = result.v_pu < grid.v_min_pu
    above = result.v_pu > grid.v_max_pu
    for k in range(n_k):
        branches = np.flatnonzero(grid.branch_location == k)
        if len(branches):
            max_loading[:, k] = result.loading[:, branches].max(axis=1)
            overload[:, k] = excess[:, branches].max(axis=1)
        buses = np.flatnonzero(grid.bus_location == k)
        if len(buses):
            v_min[:, k] = result.v_pu[:, buses].min(axis=1)
            v_max[:, k] = result.v_pu[:, buses].max(axis=1)
            under[:, k] = below[:, buses].any(axis=1)
            over[:, k] = above[:, buses].any(axis=1)
    return Violations(
        locations=grid.locations,
        max_loading=max_loading,
        v_min_pu=v_min,
        v_max_pu=v_max,
        overload_mwh=overload,
        overloaded=max_loading > 1.0,
        undervoltage=under,
        overvoltage=over,
    )

"""Grid headroom: how much more (or less) consumption each location may take at each MTU after
some activations, without breaking a branch or voltage limit, shared among the locations that
push each limit. Later market stages that stay within it cannot undo what earlier ones
resolved (sequential coupling, conditional coupling's refusal of worsening trades, the rebound
of activated flexibility under grid-aware TSO-DSO schemes)."""

from __future__ import annotations

import numpy as np
from numba import njit

from environment.grid.location_effects import LocationEffects
from environment.grid.room import shared_room
from environment.markets.lfm import FlexOffers, GridLimits


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
    if not isinstance(limits.w_per_mw, LocationEffects):
        return _dense_room(limits, moves)
    # On a large grid an MTU's headroom depends on that MTU's moves alone, and a round moves
    # a few MTUs: the headroom without moves is kept with the limits and only the moved MTUs
    # are computed again (on the limits of those MTUs alone).
    base = limits.memo.get("unmoved")
    if base is None:
        base = limits.memo["unmoved"] = _span_room(limits, None)
    out = base.copy()
    moved = np.flatnonzero(moves.any((1, 2)))
    if len(moved):
        out[moved] = _span_room(limits.at(moved), moves[moved])
    return out


def _span_room(limits: GridLimits, moves: np.ndarray | None) -> np.ndarray:
    """`_dense_room` from `LocationEffects` (`grid.room`), after `moves` (None: none)."""
    p, w = (limits.base_p, limits.base_w) if moves is None else limits.violations(moves)[:2]
    out = np.full((len(p), limits.w_per_mw.shape[1], 2), np.inf)
    p_lim = limits.p_lim()
    shared_room(limits.flow_per_mw, 1e-12, 0, p_lim, p, -p_lim, out)
    shared_room(limits.w_per_mw, 1e-15, 1, np.broadcast_to(limits.v_max ** 2, w.shape), w,
                np.broadcast_to(limits.v_min ** 2, w.shape), out)
    return out


def _dense_room(limits: GridLimits, moves: np.ndarray) -> np.ndarray:
    # without moves the flows are the base ones: adding their zero effect (finite maps) could
    # only turn a -0.0 into 0.0, which no margin below tells apart
    p, w = (limits.violations(moves)[:2] if moves.any()
            else (limits.base_p, limits.base_w))
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


def cap_to_room(offers: FlexOffers, room: np.ndarray) -> FlexOffers:
    """Scale offers down so that, per MTU, location and direction, together they fit `room`."""
    d = np.where(offers.direction > 0, 0, 1)
    total = np.zeros(room.shape)
    np.add.at(total, (offers.mtu, offers.location, d), offers.mw)
    key = (offers.mtu, offers.location, d)
    scale = np.where(total[key] > room[key], room[key] / np.maximum(total[key], 1e-12), 1.0)
    return offers.with_mw(offers.mw * scale)

"""An aggregator's pool: its members' flexibility at one location as one virtual device of
each kind, and the least-laxity split of a pooled schedule back over the members."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from agents.prosumer import Envelope


@dataclass
class Pool:
    """An aggregator's flexibility for one day as one virtual device of each kind."""

    battery_mwh: float
    battery_mw: float
    battery_soc: float
    battery_eta: float
    ev: Envelope
    hp: Envelope
    lp: object = field(default=None, init=False, repr=False, compare=False)  # its WarmLP


def allocate(total: np.ndarray, env: Envelope, dt_h: float) -> np.ndarray:
    """Split a pooled schedule over members, least laxity first.

    Each MTU every member first gets what keeps it above its lower cumulative bound; the rest
    is shared in proportion to the headroom below its upper bound and power limit. Where the
    pool's relaxation promised more than the members can do, the split falls short."""
    return least_laxity(*members_by_mtu(env), np.ascontiguousarray(total, dtype=float),
                        float(dt_h)).T


def members_by_mtu(env: Envelope, members: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The (`members`') pmax, upper and lower bounds MTU-major, as `least_laxity` reads them."""
    sel = slice(None) if members is None else members
    return tuple(np.ascontiguousarray(getattr(env, a)[sel].T, dtype=float)
                 for a in ("pmax", "upper", "lower"))


@njit(cache=True)
def least_laxity(pmax, upper, lower, total, dt_h):
    """The least-laxity split, MTU by MTU: it is sequential in time (each step depends on
    what members already got), so it is compiled rather than vectorised."""
    t_n, n = pmax.shape
    out = np.zeros((t_n, n))
    cum = np.zeros(n)
    cap = np.empty(n)
    must = np.empty(n)
    for k in range(t_n):
        need, room = 0.0, 0.0
        for i in range(n):
            c = max(min(pmax[k, i], (upper[k, i] - cum[i]) / dt_h), 0.0)
            cap[i] = c
            must[i] = min(max((lower[k, i] - cum[i]) / dt_h, 0.0), c)
            need += must[i]
            room += c - must[i]
        rest = total[k] - need
        frac = min(1.0, rest / room) if rest > 0 and room > 0 else 0.0
        for i in range(n):
            v = must[i] + frac * (cap[i] - must[i])
            out[k, i] = v
            cum[i] += v * dt_h
    return out

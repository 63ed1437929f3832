"""A power flow's extremes per grid location in one compiled pass over branches and buses.

The DSO's assessment (`Dso.assess`) reduces each flow to its locations: the most loaded
branch, its overload and direction, and the lowest and highest voltage. Reading each
location's columns with numpy costs a gather of its branches and buses per location (thirty
on the region's 9,102 buses, nine times a day); one pass does it for all. Maxima and minima
are exact, and the first most loaded branch is the one numpy's argmax picks, so the results
are numpy's to the bit."""

from __future__ import annotations

import numpy as np
from numba import njit


def location_extremes(loading: np.ndarray, p_mw: np.ndarray, v_pu: np.ndarray,
                      branch_location: np.ndarray, bus_location: np.ndarray, k_n: int,
                      loading_limit: float, s_max: np.ndarray) -> tuple[np.ndarray, ...]:
    """(T, K) per location: the largest branch loading, the largest overload MW
    (loading above `loading_limit` x `s_max`), +1/-1 as the most loaded branch carries
    consumption or reverse flow, and the least and largest voltage of its buses but the slack.
    A location without branches has 0, 0, +1; one without buses 1.0 and 1.0."""
    t_n = loading.shape[0]
    out = (np.zeros((t_n, k_n)), np.zeros((t_n, k_n)), np.ones((t_n, k_n)),
           np.ones((t_n, k_n)), np.ones((t_n, k_n)))
    _extremes(np.ascontiguousarray(loading), np.ascontiguousarray(p_mw),
              np.ascontiguousarray(v_pu), np.asarray(branch_location, dtype=np.int64),
              np.asarray(bus_location, dtype=np.int64), float(loading_limit),
              np.asarray(s_max, dtype=float), *out)
    return out


@njit(cache=True)
def _extremes(loading, p, v, branch_loc, bus_loc, limit, s_max, max_loading, over_mw,
              consuming, v_lo, v_hi):
    t_n, k_n = max_loading.shape
    best = np.empty(k_n)
    worst = np.empty(k_n, dtype=np.int64)
    over = np.empty(k_n)
    lo = np.empty(k_n)
    hi = np.empty(k_n)
    for t in range(t_n):
        worst[:] = -1
        lo[:] = np.inf
        hi[:] = -np.inf
        for br in range(loading.shape[1]):
            k = branch_loc[br]
            if k < 0 or k >= k_n:
                continue
            x = loading[t, br]
            ex = max(x - limit, 0.0) * s_max[br]
            if worst[k] < 0 or x > best[k]:
                if worst[k] < 0:
                    over[k] = ex
                best[k], worst[k] = x, br
            if ex > over[k]:
                over[k] = ex
        for j in range(1, v.shape[1]):
            k = bus_loc[j]
            if k < 0 or k >= k_n:
                continue
            lo[k] = min(lo[k], v[t, j])
            hi[k] = max(hi[k], v[t, j])
        for k in range(k_n):
            if worst[k] >= 0:
                max_loading[t, k] = best[k]
                over_mw[t, k] = over[k]
                consuming[t, k] = 1.0 if p[t, worst[k]] >= 0 else -1.0
            if lo[k] <= hi[k]:
                v_lo[t, k] = lo[k]
                v_hi[t, k] = hi[k]

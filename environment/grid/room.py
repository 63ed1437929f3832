"""Headroom shared among locations on a large grid, from `LocationEffects` in one compiled pass
per MTU: `grid.headroom`'s counts and least margins without the dense (T, K, 2, E) table.

Per MTU and direction, an element's (branch flow's or bus voltage's) margin to its limit is
split evenly over the locations that push it, and a location's room is the least such share
over the elements it pushes. A location's effects come in runs of consecutive elements that
read one value (a bus off the location's span moves as much as its nearest ancestor on it, and
in preorder a subtree is one range), so:

* the count of locations pushing each element is a difference array over the runs, summed
  once per MTU and direction (never stored for the whole day);
* where that count is the same along a run, the least of margin x (1 / (count x v)) over the
  run is its least margin times that factor (rounding is monotone): bit for bit the least over
  its elements, read from range-minimum tables in O(1) per run. Short runs, and runs the count
  changes along, are read element by element.

The margins are computed here from the flows, values the numpy version clipped at zero one
array at a time, with the same operations."""

from __future__ import annotations

import numpy as np
from numba import njit

from environment.grid.location_effects import LocationEffects

LONG_RUN = 16   # runs at least this long take their least margin from range-minimum tables
BLOCK = 32      # block length of those tables


def shared_room(effects: LocationEffects, eps: float, first: int, hi: np.ndarray,
                value: np.ndarray, lo: np.ndarray, out: np.ndarray) -> None:
    """Into `out` (T, K, 2), where less than what is there: per MTU, location and direction
    (less, more consumption) the least over the elements (from index `first`) it pushes by
    more than `eps` of the element's margin, up to `hi` (T, E) above and down to `lo` (T, E)
    below `value` (T, E), shared evenly among the locations pushing it, in MW of the
    location's move."""
    runs = effects.runs
    _shared_room(effects.values, runs.ptr, runs.start, runs.end, runs.column, eps, first,
                 hi, value, lo, out, LONG_RUN)


@njit(cache=True)
def _shared_room(values, run_ptr, run_start, run_end, run_column, eps, first, hi, value, lo,
                 out, long_run):
    t_n, k_n = values.shape[0], len(run_ptr) - 1
    n_el = value.shape[1]
    has_long = False
    for r in range(len(run_start)):
        if run_end[r] - max(run_start[r], first) >= long_run:
            has_long = True
    n_blk = (n_el + BLOCK - 1) // BLOCK
    levels = 1
    while (1 << levels) <= n_blk:
        levels += 1
    margin = np.empty((2, n_el))
    pre = np.empty((2, n_el))
    suf = np.empty((2, n_el))
    table = np.empty((2, levels, n_blk))
    step = np.empty((2, n_el + 1), dtype=np.int64)
    count = np.empty((2, n_el), dtype=np.int64)
    changes = np.empty((2, n_el), dtype=np.int64)
    for t in range(t_n):
        for x in range(n_el):
            margin[0, x] = max(hi[t, x] - value[t, x], 0.0)
            margin[1, x] = max(value[t, x] - lo[t, x], 0.0)
        if has_long:
            for s in range(2):
                _build_range_min(margin[s], pre[s], suf[s], table[s])
        for d in range(2):
            sgn = -1.0 if d == 0 else 1.0
            _count(values[t, d], run_start, run_end, run_column, sgn, eps, first, step,
                   count, changes)
            for k in range(k_n):
                best = out[t, k, d]
                for r in range(run_ptr[k], run_ptr[k + 1]):
                    a, b = max(run_start[r], first), run_end[r]
                    if a >= b:
                        continue
                    v = sgn * values[t, d, run_column[r]]
                    if v > eps:
                        s = 0
                    elif v < -eps:
                        s, v = 1, -v
                    else:
                        continue
                    if b - a == 1:
                        q = margin[s, a] * (1.0 / (count[s, a] * v))
                    elif b - a >= long_run and changes[s, b - 1] == changes[s, a]:
                        q = _range_min(margin[s], pre[s], suf[s], table[s], a, b) * (
                            1.0 / (count[s, a] * v))
                    else:
                        q = np.inf
                        for x in range(a, b):
                            q = min(q, margin[s, x] * (1.0 / (count[s, x] * v)))
                    if q < best:
                        best = q
                out[t, k, d] = best


@njit(cache=True)
def _count(values, run_start, run_end, run_column, sgn, eps, first, step, count, changes):
    """Per element: how many locations push it up (row 0) and down (row 1), and how often
    that count changed before it."""
    step[:] = 0
    for r in range(len(run_start)):
        a, b = max(run_start[r], first), run_end[r]
        if a >= b:
            continue
        v = sgn * values[run_column[r]]
        s = 0 if v > eps else (1 if v < -eps else -1)
        if s >= 0:
            step[s, a] += 1
            step[s, b] -= 1
    for s in range(2):
        c = 0
        n_chg = 0
        for x in range(count.shape[1]):
            if x > 0 and step[s, x] != 0:
                n_chg += 1
            c += step[s, x]
            count[s, x] = c
            changes[s, x] = n_chg


@njit(cache=True)
def _build_range_min(a, pre, suf, table):
    """Tables answering the least of `a` over any range in O(1): per element the least from
    its block's start (`pre`) and to its block's end (`suf`), and a sparse table of the
    blocks' least values (row j: over 2**j blocks from each)."""
    n = len(a)
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        m = np.inf
        for x in range(lo, hi):
            m = min(m, a[x])
            pre[x] = m
        m = np.inf
        for x in range(hi - 1, lo - 1, -1):
            m = min(m, a[x])
            suf[x] = m
        table[0, lo // BLOCK] = m
    n_blk = (n + BLOCK - 1) // BLOCK
    j = 1
    while (1 << j) <= n_blk:
        half = 1 << (j - 1)
        for b in range(n_blk - (1 << j) + 1):
            table[j, b] = min(table[j - 1, b], table[j - 1, b + half])
        j += 1


@njit(cache=True)
def _range_min(a, pre, suf, table, lo, hi):
    """The least of a[lo:hi] (lo < hi) from `_build_range_min`'s tables."""
    b_lo, b_hi = lo // BLOCK, (hi - 1) // BLOCK
    if b_lo == b_hi:
        m = np.inf
        for x in range(lo, hi):
            m = min(m, a[x])
        return m
    m = min(suf[lo], pre[hi - 1])
    if b_hi - b_lo > 1:
        left, right = b_lo + 1, b_hi - 1
        j = 0
        while (2 << j) <= right - left + 1:
            j += 1
        m = min(m, table[j, left], table[j, right - (1 << j) + 1])
    return m

"""The effect of one MW at each grid location on every branch flow or bus voltage, per MTU and
direction, held the way a radial grid makes it: per location over the span of its paths from
the slack.

On a large grid the dense (T, K, 2, E) table is hundreds of MB per clearing (simbench's MV+LV
region: 30 locations by 9,102 buses by 96 MTUs), almost all of it zeros (flows off a
location's paths do not move) or repeats (a bus off the paths moves with its nearest ancestor
on them). `LocationEffects` keeps one column per span element and, per location and element,
which column holds its value: memory linear in the buses. It reads like the dense array
(`shape`, numpy indexing, `np.asarray`), building only the MTUs and elements read, and applies
moves, counts and shares limits without forming it. Values are copies of the same numbers,
and sums run in the dense product's order, so results are bit-identical to the dense table."""

from __future__ import annotations

import copy

import numpy as np
from numba import njit


class LocationEffects:
    """(T, K, 2, E) effects: entry [t, k, d, e] is ``values[t, d, column[k, e]]``, or 0 where
    ``column[k, e]`` is -1 (element e does not move when location k does)."""

    ndim = 4
    dtype = np.dtype(float)

    def __init__(self, values: np.ndarray, column: np.ndarray):
        self.values = values     # (T, 2, N) the locations' span columns, side by side
        self.column = column     # (K, E) column of each location's element, -1: none
        self.shape = (values.shape[0], column.shape[0], 2, column.shape[1])
        # per location its elements that move and their columns (in element order), so that
        # loops skip the rest
        moving = column >= 0
        self._ptr = np.r_[0, np.cumsum(moving.sum(1))]
        self._element = np.flatnonzero(moving) % column.shape[1]
        self._column = column[moving]
        # and the same as runs of consecutive elements reading one column (a bus off a
        # location's span reads its nearest ancestor's: a run is a whole subtree in preorder),
        # over which counts and least margins are taken per run rather than per element
        new = np.ones(len(self._column), bool)
        new[1:] = (np.diff(self._element) != 1) | (np.diff(self._column) != 0)
        new[self._ptr[:-1][self._ptr[:-1] < len(new)]] = True
        starts = np.flatnonzero(new)
        self._run_ptr = np.searchsorted(starts, self._ptr)
        self._run_start = self._element[starts]
        self._run_end = self._run_start + np.diff(np.r_[starts, len(new)])
        self._run_column = self._column[starts]

    def with_values(self, values: np.ndarray) -> LocationEffects:
        """The same layout (columns, runs) over other values (T', 2, N): built once per grid,
        not per clearing."""
        out = copy.copy(self)
        out.values = values
        out.shape = (values.shape[0], *self.shape[1:])
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def at(self, mtus) -> LocationEffects:
        """The effects of some MTUs only (in that order)."""
        return self.with_values(self.values[mtus])

    def block(self, mtus: np.ndarray, elements: np.ndarray) -> np.ndarray:
        """The dense (len(mtus), K, 2, len(elements)) table of some MTUs and elements."""
        vals = self.values[mtus]
        out = np.zeros((len(mtus), self.shape[1], 2, len(elements)))
        for k in range(self.shape[1]):
            col = self.column[k, elements]
            on = np.flatnonzero(col >= 0)
            out[:, k][..., on] = vals[:, :, col[on]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self.block(np.arange(self.shape[0]), np.arange(self.shape[3]))
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (5 - len(key)) + key[i + 1:]
        key = key + (slice(None),) * (4 - len(key))
        (mtus, t_key), (elements, e_key) = (_read(key[0], self.shape[0]),
                                            _read(key[3], self.shape[3]))
        # an index reading rows in order, the only one not a slice, reads the block whole
        # (no copy of it)
        if _in_order(mtus, t_key) and all(isinstance(k, slice) for k in key[1:]):
            t_key = slice(None)
        if _in_order(elements, e_key) and all(isinstance(k, slice) for k in key[:3]):
            e_key = slice(None)
        return self.block(mtus, elements)[t_key, key[1], key[2], e_key]

    def applied(self, signed: np.ndarray) -> np.ndarray:
        """(T, E) sum over locations and directions of ``signed`` (T, K, 2) MW times the
        effects: ``einsum("tkd,tkde->te")``, summed in its order."""
        out = np.zeros((self.shape[0], self.shape[3]))
        _applied(self.values, self._ptr, self._element, self._column,
                 np.ascontiguousarray(signed, dtype=float), out)
        return out

    def pushing(self, eps: float, first: int) -> tuple[np.ndarray, np.ndarray]:
        """How many locations push each element (from index `first`) up and down per MTU as
        they move less (d = 0) or more (1) consumption (`grid.headroom`): (T, 2, 2, E) counts
        (axis 2: up, down) and, per element, how often the count changed before it (a run of
        elements with one count reads its least margin at once in `shared_room`)."""
        return _pushing(self.values, self._run_ptr, self._run_start, self._run_end,
                        self._run_column, self.shape[3], eps, first)

    def shared_room(self, eps: float, first: int, counts: np.ndarray, changes: np.ndarray,
                    up: np.ndarray, down: np.ndarray, out: np.ndarray) -> None:
        """`grid.headroom`'s least margin per MTU, location and direction, into `out`, with
        `pushing`'s counts."""
        _shared_room(self.values, self._run_ptr, self._run_start, self._run_end,
                     self._run_column, eps, first, counts, changes, up, down, out, LONG_RUN)


def effects_at(effects: np.ndarray | LocationEffects, mtus) -> np.ndarray | LocationEffects:
    """A dense table's or `LocationEffects`' rows of some MTUs (in that order)."""
    return effects.at(mtus) if isinstance(effects, LocationEffects) else effects[mtus]


def moved_by(signed: np.ndarray, effects: np.ndarray | LocationEffects) -> np.ndarray:
    """(T, E) change of every element under ``signed`` (T, K, 2) MW per location and
    direction, from a dense table or `LocationEffects`."""
    if isinstance(effects, LocationEffects):
        return effects.applied(signed)
    return np.einsum("tkd,tkde->te", signed, effects)


def _read(index, n: int) -> tuple[np.ndarray, object]:
    """The positions an index of one axis reads, and the index that reads them again from a
    block holding those positions alone (so slices, integers and arrays keep numpy's
    semantics, advanced indices on several axes included)."""
    if isinstance(index, slice):
        return np.arange(n)[index], slice(None)
    a = np.asarray(index)
    a = np.flatnonzero(a) if a.dtype == bool else a.astype(np.int64)
    a = np.where(a < 0, a + n, a)
    if a.ndim == 0:
        return a.reshape(1), 0
    used, inverse = np.unique(a, return_inverse=True)
    return used, inverse.reshape(a.shape)


def _in_order(used: np.ndarray, index) -> bool:
    return (isinstance(index, np.ndarray) and index.ndim == 1
            and np.array_equal(index, np.arange(len(used))))


@njit(cache=True)
def _applied(values, ptr, element, column, signed, out):
    t_n, k_n = signed.shape[0], signed.shape[1]
    for t in range(t_n):
        for k in range(k_n):
            for d in range(2):
                s = signed[t, k, d]
                if s == 0.0:
                    continue
                for i in range(ptr[k], ptr[k + 1]):
                    out[t, element[i]] += s * values[t, d, column[i]]


@njit(cache=True)
def _pushing(values, run_ptr, run_start, run_end, run_column, n_el, eps, first):
    # each run that pushes adds one over its elements: a difference array, summed once per
    # MTU and direction
    t_n, k_n = values.shape[0], len(run_ptr) - 1
    counts = np.zeros((t_n, 2, 2, n_el), dtype=np.int32)
    changes = np.zeros((t_n, 2, 2, n_el), dtype=np.int32)
    step = np.zeros((2, n_el + 1), dtype=np.int32)
    for t in range(t_n):
        for d in range(2):
            sgn = -1.0 if d == 0 else 1.0
            step[:] = 0
            for k in range(k_n):
                for r in range(run_ptr[k], run_ptr[k + 1]):
                    lo = max(run_start[r], first)
                    if lo >= run_end[r]:
                        continue
                    v = sgn * values[t, d, run_column[r]]
                    s = 0 if v > eps else (1 if v < -eps else -1)
                    if s >= 0:
                        step[s, lo] += 1
                        step[s, run_end[r]] -= 1
            for s in range(2):
                c = 0
                n_chg = 0
                for x in range(n_el):
                    if step[s, x] != 0 and x > 0:
                        n_chg += 1
                    c += step[s, x]
                    counts[t, d, s, x] = c
                    changes[t, d, s, x] = n_chg
    return counts, changes


LONG_RUN = 16   # runs at least this long take their least margin from `_RangeMin` tables
BLOCK = 32      # block length of those tables


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


@njit(cache=True)
def _shared_room(values, run_ptr, run_start, run_end, run_column, eps, first, counts, changes,
                 up, down, out, long_run):
    # A run's elements move by one value v: where the count of locations pushing them is the
    # same along the run, the least of margin * (1 / (n * v)) is the least margin times it
    # (rounding is monotone), bit for bit the least over the elements; elsewhere (and on
    # short runs) the elements are read one by one.
    t_n, k_n = values.shape[0], len(run_ptr) - 1
    n_el = up.shape[1]
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
    for t in range(t_n):
        margin[0] = up[t]
        margin[1] = down[t]
        if has_long:
            for s in range(2):
                _build_range_min(margin[s], pre[s], suf[s], table[s])
        for d in range(2):
            sgn = -1.0 if d == 0 else 1.0
            for k in range(k_n):
                best = out[t, k, d]
                for r in range(run_ptr[k], run_ptr[k + 1]):
                    lo, hi = max(run_start[r], first), run_end[r]
                    if lo >= hi:
                        continue
                    v = sgn * values[t, d, run_column[r]]
                    if v > eps:
                        s = 0
                    elif v < -eps:
                        s, v = 1, -v
                    else:
                        continue
                    if hi - lo == 1:
                        q = margin[s, lo] * (1.0 / (counts[t, d, s, lo] * v))
                    elif hi - lo >= long_run and changes[t, d, s, hi - 1] == changes[t, d, s, lo]:
                        q = _range_min(margin[s], pre[s], suf[s], table[s], lo, hi) * (
                            1.0 / (counts[t, d, s, lo] * v))
                    else:
                        q = np.inf
                        for x in range(lo, hi):
                            q = min(q, margin[s, x] * (1.0 / (counts[t, d, s, x] * v)))
                    if q < best:
                        best = q
                out[t, k, d] = best

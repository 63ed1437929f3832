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
from typing import NamedTuple

import numpy as np
from numba import njit


class Runs(NamedTuple):
    """Per location (`ptr`, K + 1) its runs: elements `start` to `end` (excluded) that all
    read `column`."""

    ptr: np.ndarray
    start: np.ndarray
    end: np.ndarray
    column: np.ndarray


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
        first = self._element[starts]
        self.runs = Runs(np.searchsorted(starts, self._ptr), first,
                         first + np.diff(np.r_[starts, len(new)]), self._column[starts])

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

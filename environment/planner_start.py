"""A starting basis for the planner's first LP on large grids, from the region being a price
taker.

Profiled on the `region` scenario (9,102 buses, some 3,100 device pools, 1.4 million columns),
the first round, without grid rows, takes about 95% of the planner's day: dual simplex from
the slack basis needs some 250,000 iterations (125,000 after presolve), one or more per pool
and MTU, each on a 300,000-row factorisation. Grid rows are few (about ten a day) and re-solve
in about a second. Where the national merit order sets the price, the pools barely move the
marginal producer, so at that price each pool's own LP (its state rows alone, costed at the
price) is the whole problem: solved pool by pool (some 100 rows each, microseconds a pivot)
and stitched together with the merit-order dispatch, the pools' bases form a basis of the day's
LP that is optimal when every MTU's marginal producer stays inside its range. HiGHS starts
from it and verifies it, or moves on from it where the pools pushed a producer to its limit,
so the optimum is the LP's own, not an approximation.
"""

from __future__ import annotations

import highspy
import numpy as np
import scipy.sparse as sp

from environment.solver import fresh_highs, timed

LOWER, BASIC, UPPER = 0, 1, 2   # HiGHS's basis statuses (kLower, kBasic, kUpper)
_SOLVER: list = []   # one HiGHS instance for the pools' LPs, kept for the process


def price_taker_basis(a: sp.csr_array, c: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                      rhs: np.ndarray, blocks: list, merit: np.ndarray) -> tuple:
    """Column and row statuses of a basis for `min c x, a x = rhs, lower <= x <= upper`
    whose last T rows are the energy balance. `blocks` are the pools, each (its state rows,
    its columns: entries only in those rows and the balance); `merit` (K, T) the columns
    that supply each balance row (producers, then emergency energy up), each row's entry +1
    and upper bound its capacity. Every other column enters the balance only and stays at
    the bound its reduced cost asks."""
    t_n = merit.shape[1]
    m, n = a.shape
    bal = a[m - t_n:]
    y = _merit_price(c, upper, rhs[m - t_n:], merit)
    d = c - bal.T @ y
    x = np.where(d >= 0, lower, upper)
    col = np.where(d >= 0, LOWER, UPPER).astype(np.int8)
    row = np.full(m, LOWER, np.int8)
    if not _SOLVER:
        _SOLVER.append(fresh_highs())
        _SOLVER[0].setOptionValue("presolve", "off")   # 2.5 times the simplex on these
    state = sp.csc_array(a[:m - t_n])
    local = np.zeros(m - t_n, np.int32)
    for rows, _ in blocks:
        local[rows] = np.arange(len(rows))
    for rows, cols in blocks:
        if not len(rows):
            continue
        sub = _columns(state, cols, local, len(rows))
        xs, cs, rs = timed(_solve_block, _SOLVER[0], d[cols], sub, rhs[rows], lower[cols],
                           upper[cols])
        x[cols], col[cols], row[rows] = xs, cs, rs
    x[merit.ravel()] = 0.0
    demand = rhs[m - t_n:] - bal @ x
    col[merit.ravel()] = _merit_dispatch(c, upper, demand, merit).ravel()
    return col, row


def _columns(a: sp.csc_array, cols: np.ndarray, local: np.ndarray, m: int) -> tuple:
    """The CSC arrays (start, index, value) of columns `cols` of `a`, rows renumbered by
    `local`: scipy's fancy indexing allocates the full width on every call."""
    starts, ends = a.indptr[cols], a.indptr[cols + 1]
    counts = ends - starts
    ptr = np.r_[0, np.cumsum(counts)]
    take = np.arange(ptr[-1]) - np.repeat(ptr[:-1] - starts, counts)
    return ptr[:-1].astype(np.int32), local[a.indices[take]], a.data[take], m


def _merit_price(c, upper, demand, merit) -> np.ndarray:
    """(T,) cost of the marginal supplier of each balance row at `demand`."""
    status = _merit_dispatch(c, upper, demand, merit)
    k = np.argmax(status == BASIC, axis=0)
    return c[merit[k, np.arange(merit.shape[1])]]


def _merit_dispatch(c, upper, demand, merit) -> np.ndarray:
    """(K, T) statuses of the suppliers dispatched in merit order to `demand`: the marginal
    one basic, cheaper ones at capacity, dearer ones at zero (the last one marginal if
    demand exceeds the rest)."""
    k_n, t_n = merit.shape
    cost, cap = c[merit], np.minimum(upper[merit], np.finfo(float).max)
    order = np.argsort(cost, axis=0, kind="stable")
    cum = np.cumsum(np.take_along_axis(cap, order, axis=0), axis=0)
    pos = np.minimum((cum < demand[None, :]).sum(0), k_n - 1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k_n)[:, None].repeat(t_n, 1), axis=0)
    return np.where(rank < pos, UPPER, np.where(rank == pos, BASIC, LOWER)).astype(np.int8)


def _solve_block(h, cost, a: tuple, rhs, lower, upper) -> tuple:
    """One pool's LP at the price (`a` its columns as `_columns` gives them): its solution
    and its basis's column and row statuses."""
    start, index, value, m = a
    h.passModel(len(cost), m, len(value), int(highspy.MatrixFormat.kColwise),
                int(highspy.ObjSense.kMinimize), 0.0, np.asarray(cost, float),
                np.asarray(lower, float), np.asarray(upper, float), np.asarray(rhs, float),
                np.asarray(rhs, float), start, index, value, np.zeros(len(cost), np.int32))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return np.clip(0.0, lower, upper), np.full(len(cost), LOWER), np.full(len(rhs), BASIC)
    basis = h.getBasis()
    return (np.asarray(h.getSolution().col_value),
            np.array(basis.col_status, np.int8), np.array(basis.row_status, np.int8))

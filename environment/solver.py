"""One entry point to the LP solver (HiGHS) so that time inside solvers is measured in one place."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace

import highspy
import numpy as np
import scipy.sparse as sp


@dataclass
class SolverClock:
    seconds: float = 0.0
    calls: int = 0

    def add(self, seconds: float) -> None:
        self.seconds += seconds
        self.calls += 1


CLOCK = SolverClock()


class InfeasibleError(RuntimeError):
    """A market or schedule LP without a feasible solution; the message names the problem."""


_BANNER_SHOWN: list = []


def _highs():
    """A fresh, quiet HiGHS instance: no state carries over from one LP (or run) to the next.
    HiGHS prints its banner when the first instance of a process is made; that one is
    silenced at the file-descriptor level."""
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            try:
                h = highspy.Highs()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
        _BANNER_SHOWN.append(True)
    h.setOptionValue("output_flag", False)
    # no "threads" option: HiGHS keeps one thread scheduler per process, and asking for a
    # different size than a previous (e.g. Pyomo's) instance started is an error
    return h


def _colwise(mats: list, n: int) -> sp.csc_array:
    """The constraint blocks stacked as one column-wise matrix in canonical form (sorted row
    indices, no duplicates); a single block already in that form is used as it is."""
    if not mats:
        return sp.csc_array((0, n))
    if len(mats) == 1 and sp.issparse(mats[0]) and mats[0].format == "csc" \
            and mats[0].has_canonical_format:
        return mats[0]
    return sp.vstack([sp.csr_array(m) for m in mats], format="csc")


def solve_lp(c, a_eq=None, b_eq=None, a_ub=None, b_ub=None, bounds=None, what: str = "LP",
             lower=None, upper=None, a=None, row_lower=None, row_upper=None):
    """Minimise c @ x subject to a_eq x = b_eq, a_ub x <= b_ub and bounds, with HiGHS through
    highspy (scipy's wrapper costs more than small LPs take to solve). Returns x and the row
    marginals (d objective / d right-hand side) as `eqlin.marginals` and `ineqlin.marginals`.

    Column bounds are either `bounds`, (low, high) pairs with None for unbounded as in scipy,
    or the arrays `lower` and `upper` (+-inf for unbounded), which spare building a list of
    pairs for large LPs; default 0 <= x.

    Rows can instead be given as one matrix `a` with `row_lower <= a x <= row_upper` (+-inf
    where open), for callers that keep a constant constraint matrix: a canonical CSC matrix is
    handed to HiGHS without being stacked or converted again. Their marginals are then
    `marginals`."""
    t0 = time.perf_counter()
    c = np.asarray(c, float)
    n = len(c)
    mats, lo, hi = [], [], []
    if a_eq is not None:
        mats.append(a_eq)
        lo.append(np.asarray(b_eq, float))
        hi.append(np.asarray(b_eq, float))
    if a_ub is not None:
        mats.append(a_ub)
        hi.append(np.asarray(b_ub, float))
        lo.append(np.full(len(hi[-1]), -highspy.kHighsInf))
    if a is not None:
        mats, lo, hi = [a], [np.asarray(row_lower, float)], [np.asarray(row_upper, float)]
    a = _colwise(mats, n)
    if lower is not None or upper is not None:
        col_lo = np.zeros(n) if lower is None else np.asarray(lower, float)
        col_hi = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    elif bounds is None:
        col_lo, col_hi = np.zeros(n), np.full(n, highspy.kHighsInf)
    else:
        bnd = np.array([(0.0 if b[0] is None else b[0], np.inf if b[1] is None else b[1])
                        for b in bounds], float).reshape(n, 2)
        col_lo, col_hi = bnd[:, 0], np.minimum(bnd[:, 1], highspy.kHighsInf)
    h = _highs()
    # the array form of passModel hands numpy buffers to HiGHS; filling a HighsLp's fields
    # converts every array element by element
    h.passModel(n, a.shape[0], len(a.data), int(highspy.MatrixFormat.kColwise),
                int(highspy.ObjSense.kMinimize), 0.0, c, col_lo, col_hi,
                np.concatenate(lo) if lo else np.zeros(0),
                np.concatenate(hi) if hi else np.zeros(0),
                a.indptr.astype(np.int32, copy=False), a.indices.astype(np.int32, copy=False),
                a.data.astype(float, copy=False), np.zeros(n, np.int32))  # all continuous
    h.run()
    status = h.getModelStatus()
    CLOCK.add(time.perf_counter() - t0)
    if status != highspy.HighsModelStatus.kOptimal:
        raise InfeasibleError(f"{what}: HiGHS status {h.modelStatusToString(status)}")
    sol = h.getSolution()
    duals = np.asarray(sol.row_dual)
    n_eq = 0 if a_eq is None else a_eq.shape[0]
    return SimpleNamespace(x=np.asarray(sol.col_value), marginals=duals, eqlin=SimpleNamespace(
        marginals=duals[:n_eq]), ineqlin=SimpleNamespace(marginals=duals[n_eq:]))


def timed(fn, *args, **kwargs):
    """Run a solver call outside `solve_lp` (e.g. Pyomo) and book its time on the clock."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        CLOCK.add(time.perf_counter() - t0)

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
_SPARE: list = []  # emptied HiGHS instances of dropped LPs, for the next ones

# HiGHS instances ask for one thread: the LPs here are solved by serial simplex, and with the
# number left open HiGHS counts the machine's cores again (reading /sys files) at every run,
# some 8% of a 0.5 ms warm re-solve. HiGHS keeps one thread scheduler per process and refuses
# an instance asking for another size than the one it started with (one left open takes any),
# so the first instance checks that one thread is accepted and, where something else in the
# process started HiGHS with more, the option is dropped.
HIGHS_OPTIONS = {"threads": 1}


def _highs():
    """A new, quiet HiGHS instance (`WarmLP` re-uses emptied ones: no model, basis, solution
    or option of one LP carries over to the next). HiGHS prints its banner when the first
    instance of a process is made; that one is silenced at the file-descriptor level."""
    if _BANNER_SHOWN:
        return _quiet(highspy.Highs())
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
    h = _quiet(h)
    h.addVar(0.0, 1.0)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        HIGHS_OPTIONS.pop("threads", None)
    h.clearModel()
    h.resetOptions()
    return _quiet(h)


def highs_options() -> dict:
    """The options every HiGHS instance of the process is given (Pyomo's in the tests'
    reference models as well), once the first instance has checked them."""
    if not _BANNER_SHOWN:
        _SPARE.append(_highs())
    return dict(HIGHS_OPTIONS)


def fresh_highs():
    """A new quiet HiGHS instance with the process's options, for callers that pass their
    own models (`environment.planner_start`'s small LPs)."""
    return _highs()


def _quiet(h):
    h.setOptionValue("output_flag", False)
    for key, value in HIGHS_OPTIONS.items():
        h.setOptionValue(key, value)
    return h


def _colwise(mats: list, n: int) -> sp.csc_array:
    """The constraint blocks stacked as one column-wise matrix in canonical form (sorted row
    indices, no duplicates); a single block is converted directly (used as it is if already
    in that form)."""
    if not mats:
        return sp.csc_array((0, n))
    if len(mats) == 1 and sp.issparse(mats[0]):
        m = mats[0] if mats[0].format == "csc" else sp.csc_array(mats[0])
        if not m.has_canonical_format:
            m = m.copy()
            m.sum_duplicates()
        return m
    return sp.vstack([sp.csr_array(m) for m in mats], format="csc")


def solve_lp(c, a_eq=None, b_eq=None, a_ub=None, b_ub=None, bounds=None, what: str = "LP",
             lower=None, upper=None, a=None, row_lower=None, row_upper=None,
             presolve: bool = True):
    """Minimise c @ x subject to a_eq x = b_eq, a_ub x <= b_ub and bounds, with HiGHS through
    highspy (scipy's wrapper costs more than small LPs take to solve). Returns x and the row
    marginals (d objective / d right-hand side) as `eqlin.marginals` and `ineqlin.marginals`.

    Column bounds are either `bounds`, (low, high) pairs with None for unbounded as in scipy,
    or the arrays `lower` and `upper` (+-inf for unbounded), which spare building a list of
    pairs for large LPs; default 0 <= x.

    Rows can instead be given as one matrix `a` with `row_lower <= a x <= row_upper` (+-inf
    where open), for callers that keep a constant constraint matrix: a canonical CSC matrix is
    handed to HiGHS without being stacked or converted again. Their marginals are then
    `marginals`. `presolve=False` skips HiGHS's presolve (see `WarmLP`)."""
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
    if lower is not None or upper is not None:
        col_lo = np.zeros(n) if lower is None else np.asarray(lower, float)
        col_hi = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    elif bounds is None:
        col_lo, col_hi = np.zeros(n), np.full(n, highspy.kHighsInf)
    else:
        bnd = np.array([(0.0 if b[0] is None else b[0], np.inf if b[1] is None else b[1])
                        for b in bounds], float).reshape(n, 2)
        col_lo, col_hi = bnd[:, 0], np.minimum(bnd[:, 1], highspy.kHighsInf)
    res = WarmLP(c, _colwise(mats, n), np.concatenate(lo) if lo else np.zeros(0),
                 np.concatenate(hi) if hi else np.zeros(0), col_lo, col_hi, what,
                 presolve).solve()
    n_eq = 0 if a_eq is None else a_eq.shape[0]
    res.eqlin = SimpleNamespace(marginals=res.marginals[:n_eq])
    res.ineqlin = SimpleNamespace(marginals=res.marginals[n_eq:])
    return res


def timed(fn, *args, **kwargs):
    """Run a solver call outside `solve_lp` (e.g. Pyomo) and book its time on the clock."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        CLOCK.add(time.perf_counter() - t0)


class WarmLP:
    """One LP kept in a HiGHS instance across re-solves that change its costs or bounds (and
    add rows): HiGHS restarts simplex from the last optimal basis instead of from scratch, a
    few iterations instead of hundreds for a re-plan that moves a handful of bounds.

    Where the LP has several optimal solutions the one returned depends on the basis it starts
    from, so results follow the sequence of solves, which is itself deterministic. Rows are
    `row_lower <= a x <= row_upper`; marginals as `solve_lp`'s `marginals`. `presolve=False`
    skips HiGHS's presolve on the first solve (later ones start from a basis without it),
    which pays for LPs with many rows that presolve cannot reduce."""

    def __init__(self, c, a, row_lower, row_upper, lower, upper, what: str = "LP",
                 presolve: bool = True, key=None):
        t0 = time.perf_counter()
        self.what = what
        self.key = key  # what the caller built it for (it checks before re-using it)
        a = _colwise([a], len(c))
        self.c, self.lower, self.upper = (np.array(v, float) for v in (c, lower, upper))
        self.row_lower, self.row_upper = (np.array(v, float) for v in (row_lower, row_upper))
        self.h = _SPARE.pop() if _SPARE else _highs()
        self.presolve = presolve
        if not presolve:
            self.h.setOptionValue("presolve", "off")
        # the array form of passModel hands numpy buffers to HiGHS; filling a HighsLp's fields
        # converts every array element by element
        self.h.passModel(len(self.c), a.shape[0], len(a.data),
                         int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize),
                         0.0, self.c, self.lower, self.upper, self.row_lower, self.row_upper,
                         a.indptr.astype(np.int32, copy=False),
                         a.indices.astype(np.int32, copy=False),
                         a.data.astype(float, copy=False), np.zeros(len(self.c), np.int32))
        CLOCK.seconds += time.perf_counter() - t0

    def __del__(self):
        """The HiGHS instance is emptied and kept for the next LP: making one (with its
        Python callbacks) costs about what a warm re-solve does."""
        h = getattr(self, "h", None)
        if h is not None and _SPARE is not None and len(_SPARE) < 64:
            h.clearModel()
            h.resetOptions()
            _SPARE.append(_quiet(h))

    @staticmethod
    def _changed(old: np.ndarray, new) -> np.ndarray | None:
        new = np.asarray(new, float)
        diff = np.flatnonzero(~((old == new) | (np.isnan(old) & np.isnan(new))))
        if len(diff):
            old[diff] = new[diff]
            return diff.astype(np.int32)
        return None

    def add_cols(self, cost, lower, upper, a=None) -> None:
        """New columns after the existing ones, with entries `a` (existing rows x new
        columns) in the existing rows, or none."""
        t0 = time.perf_counter()
        cost, lower, upper = (np.asarray(v, float) for v in (cost, lower, upper))
        if a is None:
            self.h.addCols(len(cost), cost, lower, upper, 0, np.zeros(len(cost), np.int32),
                           np.zeros(0, np.int32), np.zeros(0))
        else:
            a = sp.csc_array(a)
            a.sort_indices()
            self.h.addCols(len(cost), cost, lower, upper, len(a.data),
                           a.indptr[:-1].astype(np.int32), a.indices.astype(np.int32),
                           a.data.astype(float))
        self.c, self.lower, self.upper = (np.concatenate([a, b]) for a, b in (
            (self.c, cost), (self.lower, lower), (self.upper, upper)))
        CLOCK.seconds += time.perf_counter() - t0

    def add_rows(self, a, row_lower, row_upper) -> None:
        """New rows `row_lower <= a x <= row_upper` after the existing ones; `a` spans every
        column."""
        t0 = time.perf_counter()
        a = sp.csr_array(a)
        a.sort_indices()
        lo, hi = np.asarray(row_lower, float), np.asarray(row_upper, float)
        self.h.addRows(a.shape[0], lo, hi, len(a.data), a.indptr[:-1].astype(np.int32),
                       a.indices.astype(np.int32), a.data.astype(float))
        self.row_lower = np.concatenate([self.row_lower, lo])
        self.row_upper = np.concatenate([self.row_upper, hi])
        CLOCK.seconds += time.perf_counter() - t0

    def set_basis(self, col_status: np.ndarray, row_status: np.ndarray) -> None:
        """Start the next solve from this basis (HiGHS status codes per column and row)."""
        t0 = time.perf_counter()
        codes = [highspy.HighsBasisStatus(k) for k in range(5)]
        basis = highspy.HighsBasis()
        basis.col_status = [codes[k] for k in col_status.tolist()]
        basis.row_status = [codes[k] for k in row_status.tolist()]
        basis.valid = True
        self.h.setBasis(basis)
        CLOCK.seconds += time.perf_counter() - t0

    @staticmethod
    def _union(a, b) -> np.ndarray | None:
        if a is None or b is None:
            return a if b is None else b
        return np.union1d(a, b).astype(np.int32)

    def solve(self, c=None, lower=None, upper=None, row_lower=None, row_upper=None,
              fallbacks: tuple = ()):
        """Apply what changed since the last solve and re-solve from its basis. Should HiGHS
        stop without an optimum, each option set of `fallbacks` (over the LP's own options,
        which are restored afterwards) is tried in turn from scratch, without a basis: HiGHS
        occasionally gives up on a grown LP that a cold solve under other options settles."""
        t0 = time.perf_counter()
        h = self.h
        if c is not None and (i := self._changed(self.c, c)) is not None:
            h.changeColsCost(len(i), i, self.c[i])
        if lower is not None or upper is not None:
            i = self._union(None if lower is None else self._changed(self.lower, lower),
                            None if upper is None else self._changed(self.upper, upper))
            if i is not None:
                h.changeColsBounds(len(i), i, self.lower[i], self.upper[i])
        if row_lower is not None or row_upper is not None:
            i = self._union(
                None if row_lower is None else self._changed(self.row_lower, row_lower),
                None if row_upper is None else self._changed(self.row_upper, row_upper))
            if i is not None:
                h.changeRowsBounds(len(i), i, self.row_lower[i], self.row_upper[i])
        h.run()
        status = h.getModelStatus()
        for options in fallbacks:
            if status == highspy.HighsModelStatus.kOptimal:
                break
            status = self._cold_run(options)
        CLOCK.add(time.perf_counter() - t0)
        if status != highspy.HighsModelStatus.kOptimal:
            raise InfeasibleError(f"{self.what}: HiGHS status {h.modelStatusToString(status)}")
        sol = h.getSolution()
        return SimpleNamespace(x=np.asarray(sol.col_value), marginals=np.asarray(sol.row_dual))

    def _cold_run(self, options: dict):
        """One run without a basis under `options`; HiGHS's model status."""
        h = self.h
        h.clearSolver()
        for key, value in options.items():
            h.setOptionValue(key, value)
        h.run()
        status = h.getModelStatus()
        h.resetOptions()
        _quiet(h)
        if not self.presolve:
            h.setOptionValue("presolve", "off")
        return status

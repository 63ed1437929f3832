"""One entry point to the LP solver (HiGHS) so that time inside solvers is measured in one place."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize
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


def solve_lp(c, a_eq=None, b_eq=None, a_ub=None, b_ub=None, bounds=None, what: str = "LP"):
    """Minimise c @ x with HiGHS; returns the scipy result (x, eqlin/ineqlin marginals)."""
    t0 = time.perf_counter()
    res = scipy.optimize.linprog(
        np.asarray(c, float),
        A_ub=None if a_ub is None else sp.csr_array(a_ub), b_ub=b_ub,
        A_eq=None if a_eq is None else sp.csr_array(a_eq), b_eq=b_eq,
        bounds=bounds, method="highs",
    )
    CLOCK.add(time.perf_counter() - t0)
    if res.status != 0:
        raise InfeasibleError(f"{what}: HiGHS status {res.status}: {res.message}")
    return res


def timed(fn, *args, **kwargs):
    """Run a solver call outside `solve_lp` (e.g. Pyomo) and book its time on the clock."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        CLOCK.add(time.perf_counter() - t0)

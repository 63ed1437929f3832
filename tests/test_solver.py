"""The warm-started LP: re-solves after changed bounds, costs and added rows reach the same
optimum as a cold solve of the changed LP."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from environment.solver import InfeasibleError, WarmLP, solve_lp


def _lp(seed: int, n: int = 30, m: int = 20):
    rng = np.random.default_rng(seed)
    a = sp.random(m, n, density=0.3, random_state=rng, format="csc") + sp.eye(m, n)
    return rng, -rng.random(n), sp.csc_array(a), rng.uniform(1, 3, m)


def _cold(c, a, hi, upper):
    return solve_lp(c, a=a, row_lower=np.full(a.shape[0], -np.inf), row_upper=hi,
                    lower=np.zeros(len(c)), upper=upper)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_warm_resolve_matches_cold_solve(seed):
    rng, c, a, hi = _lp(seed)
    n, m = len(c), a.shape[0]
    upper = np.full(n, 2.0)
    lp = WarmLP(c, a, np.full(m, -np.inf), hi, np.zeros(n), upper)
    x0 = lp.solve().x
    assert c @ x0 == pytest.approx(c @ _cold(c, a, hi, upper).x, abs=1e-9)
    hi2 = hi * rng.uniform(0.5, 1.0, m)
    c2 = c + rng.normal(0, 0.1, n)
    upper2 = upper * rng.uniform(0.5, 1.0, n)
    x1 = lp.solve(c=c2, upper=upper2, row_upper=hi2).x
    assert c2 @ x1 == pytest.approx(c2 @ _cold(c2, a, hi2, upper2).x, abs=1e-9)
    assert (a @ x1 <= hi2 + 1e-9).all() and (x1 <= upper2 + 1e-9).all()


def test_added_rows_and_columns_reach_the_full_lp_optimum():
    rng, c, a, hi = _lp(3)
    n, m = len(c), a.shape[0]
    upper = np.full(n, 2.0)
    lp = WarmLP(c, a[:10], np.full(10, -np.inf), hi[:10], np.zeros(n), upper)
    lp.solve()
    # the other rows, each with a slack column priced at 100 that lets it be broken
    lp.add_cols(np.full(m - 10, 100.0), np.zeros(m - 10), np.full(m - 10, np.inf))
    rows = sp.hstack([a[10:], -sp.eye(m - 10)]).tocsr()
    lp.add_rows(rows, np.full(m - 10, -np.inf), hi[10:])
    x = lp.solve().x
    full = sp.vstack([sp.hstack([a[:10], sp.csc_array((10, m - 10))]), rows]).tocsc()
    ref = solve_lp(np.r_[c, np.full(m - 10, 100.0)], a=full, row_lower=np.full(m, -np.inf),
                   row_upper=hi, lower=np.zeros(n + m - 10),
                   upper=np.r_[upper, np.full(m - 10, np.inf)])
    assert np.r_[c, np.full(m - 10, 100.0)] @ x == pytest.approx(
        np.r_[c, np.full(m - 10, 100.0)] @ ref.x, abs=1e-9)


def test_a_solve_without_optimum_is_retried_from_scratch_under_the_fallbacks():
    """A re-solve that stops early (here at an iteration limit of 0, standing in for a
    numerical failure) is tried again without a basis under each fallback in turn; the LP's
    own options are back afterwards and without fallbacks the failure is raised."""
    _, c, a, hi = _lp(5)
    n, m = len(c), a.shape[0]
    lp = WarmLP(c, a, np.full(m, -np.inf), hi, np.zeros(n), np.full(n, 2.0), presolve=False)
    lp.h.setOptionValue("simplex_iteration_limit", 0)
    with pytest.raises(InfeasibleError, match="Iteration limit"):
        lp.solve()
    x = lp.solve(fallbacks=({"simplex_iteration_limit": 10**6},)).x
    ref = _cold(c, a, hi, np.full(n, 2.0)).x
    assert c @ x == pytest.approx(c @ ref, abs=1e-9)
    assert lp.h.getOptionValue("simplex_iteration_limit")[1] == 2**31 - 1   # HiGHS's default
    assert lp.h.getOptionValue("presolve")[1] == "off"


def _fresh_process(code: str) -> str:
    """Run `code` in a new interpreter (HiGHS's thread scheduler outlives its instances)."""
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_one_thread_unless_something_else_started_highs_with_more():
    """HiGHS keeps one thread scheduler per process and refuses an instance asking for another
    size: where something else started it with two threads before the first LP here, the
    one-thread option is dropped instead of every LP failing."""
    solve = """
from environment.solver import highs_options, solve_lp
print(highs_options(), solve_lp([1.0, -1.0], bounds=[(0, 1), (0, 2)]).x.tolist())
"""
    assert _fresh_process(solve) == "{'threads': 1} [0.0, 2.0]"
    assert _fresh_process("""
import highspy
h = highspy.Highs()
h.setOptionValue("output_flag", False)
h.setOptionValue("threads", 2)
h.addVar(0.0, 1.0)
h.run()
""" + solve) == "{} [0.0, 2.0]"

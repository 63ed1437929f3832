"""The market environment: Mesa model, calendar, markets, grid, ledger and scenario schema."""

import os
import sys

# The matrices here are small (a feeder, a day): multithreaded BLAS only adds contention, and
# runs are parallelised one level up (sweeps). Must be set before numpy is first imported.
_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# the user's own choice stands, in whichever variable it was given (OpenBLAS reads its own
# variable before OMP_NUM_THREADS, so a 1 there would override it)
_USER_SET = next((os.environ[v] for v in _BLAS_VARS if v in os.environ), None)
for _var in _BLAS_VARS:
    os.environ.setdefault(_var, _USER_SET or "1")
if "numpy" in sys.modules and _USER_SET is None:
    # numpy came first (a notebook, a user's script, a Dask worker): its BLAS threads are up
    # already and the variables above come too late; a run would take some 1.7x as long
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")

# numba's compiled functions (cache=True) go to the user's cache, beside the derived simbench
# data, not into __pycache__ of the source tree (read-only installs, clean checkouts).
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(
    os.environ.get("FLEXMARKETS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                       "flexmarkets"), "numba"))

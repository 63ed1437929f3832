"""The market environment: Mesa model, calendar, markets, grid, ledger and scenario schema."""

import os

# The matrices here are small (a feeder, a day): multithreaded BLAS only adds contention, and
# runs are parallelised one level up (sweeps). Must be set before numpy is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# numba's compiled functions (cache=True) go to the user's cache, beside the derived simbench
# data, not into __pycache__ of the source tree (read-only installs, clean checkouts).
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(
    os.environ.get("FLEXMARKETS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                       "flexmarkets"), "numba"))

"""Experiments: CLI, runs, sweeps, results store, reports and the browser view."""

import environment  # noqa: F401  (first: single-threaded BLAS before numpy loads)

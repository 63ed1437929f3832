"""Autonomous agents: prosumers, aggregators, BRPs, producers, DSO and TSO; strategies/."""

import environment  # noqa: F401  (first: single-threaded BLAS before numpy loads)

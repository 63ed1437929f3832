"""How the process takes memory for a simulation: pages kept, not asked for again and again.

A large grid's day makes and drops hundreds of arrays of 5 to 30 MB (an MTU by bus table of
the region is 7 MB). Two defaults then cost more time in the kernel than the simulation's own
code, on virtual machines where a page fault is dear (the region: 3.3 s of system time in a
2-day run against 7.3 s of user time):

* numpy advises transparent huge pages for every array of 4 MB or more; where the kernel
  compacts memory to find one on each fault (defrag = madvise), most of that time is there;
* glibc hands an array above its mmap threshold back to the system when it is freed, and the
  next array of that size faults all its pages in again.

`keep_pages` turns the first off and raises glibc's thresholds, so freed arrays stay in the
heap for the next ones (system time 0.5 s in the same run, peak memory unchanged). It changes
no number a run computes."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import numpy as np

M_TRIM_THRESHOLD = -1     # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20   # glibc's largest: arrays up to 32 MB come from the heap
TRIM_THRESHOLD = 512 << 20  # free memory at the heap's top kept for the next arrays


def keep_pages() -> None:
    """Set the process's allocation as the module docstring says (Linux and glibc; a no-op
    elsewhere). Safe to call more than once."""
    # numpy's own switch (what NUMPY_MADVISE_HUGEPAGE=0 sets when numpy is imported)
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    advise = getattr(multiarray, "_set_madvise_hugepage", None)
    if advise is not None:
        advise(False)
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)

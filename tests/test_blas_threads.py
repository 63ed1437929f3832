"""Runs use one BLAS thread (small matrices; parallelism is one level up, in sweeps) whether
numpy was imported before flexmarkets or not, unless the user chose a number: numpy first
(a notebook, a script, a Dask worker) made a 1,000-household run take 1.7x as long."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("{first}import environment; import numpy; from threadpoolctl import threadpool_info; "
         "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))")


def blas_threads(first: str, **env) -> int:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], check=True,
                         capture_output=True, text=True, env={**clean, **env})
    return int(out.stdout.strip())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS has one thread anyway")
@pytest.mark.parametrize("first", ["", "import numpy; "])
def test_one_blas_thread_whoever_imported_numpy_first(first):
    assert blas_threads(first) == 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS has one thread anyway")
@pytest.mark.parametrize("first", ["", "import numpy; "])
@pytest.mark.parametrize("var", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"])
def test_the_users_own_thread_count_stands(first, var):
    assert blas_threads(first, **{var: "2"}) == 2

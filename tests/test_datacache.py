"""The derived-data cache is keyed on the code that derives the data, and numba's compiled
functions are cached under the user's cache, not in the source tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from environment import datacache

ROOT = Path(__file__).resolve().parent.parent


def test_changed_derivation_code_builds_a_new_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEXMARKETS_CACHE", str(tmp_path))

    def build_v1():
        return {"rows": [1, 2, 3]}

    def build_v2():
        return {"rows": [1, 2, 3, 4]}    # the same name, other code: another derivation

    assert datacache.cached("thing", build_v1) == {"rows": [1, 2, 3]}
    assert datacache.cached("thing", build_v2) == {"rows": [1, 2, 3, 4]}
    entries = sorted(p.name for p in datacache.cache_dir().glob("thing*.pkl"))
    assert len(entries) == 1, entries            # the superseded entry is gone
    calls = []

    def build_counted():
        calls.append(1)
        return 5

    datacache.cached("other", build_counted)
    datacache.cached("other", build_counted)
    assert calls == [1]                          # the same code: served from the cache


def test_the_digest_follows_project_functions_the_build_calls():
    from environment import inputs
    from environment.grid import network

    digest = datacache.code_digest(inputs._grid_and_households)
    assert digest != datacache.code_digest(network.load_simbench_grid)
    assert len(digest) == 12


def test_numba_cache_is_under_the_user_cache(tmp_path):
    code = ("import environment, numba, os; "
            "print(numba.config.CACHE_DIR); print(os.environ['NUMBA_CACHE_DIR'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"FLEXMARKETS_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin",
                              "HOME": str(tmp_path)}, check=True).stdout.split()
    assert out == [str(tmp_path / "numba")] * 2


def test_no_compiled_numba_files_in_the_source_tree(default_run):
    stray = [p for p in ROOT.glob("*/**/__pycache__/*.nb[ic]")
             if ".venv" not in p.parts]
    assert not stray, stray[:3]

"""`LocationEffects` (the LFM's effects per location under tree sweeps) reads, applies moves and
shares headroom bit for bit as the dense (T, K, 2, E) table it stands for."""

from __future__ import annotations

import numpy as np
import pytest

from environment.grid import room
from environment.grid.from_pandapower import load_simbench_grid
from environment.grid.headroom import headroom
from environment.grid.lindistflow import LinDistFlow
from environment.grid.location_effects import LocationEffects
from environment.markets.lfm import GridLimits, participation


@pytest.fixture(scope="module")
def tables():
    grid = load_simbench_grid("1-LV-rural1--0-sw")
    flow = LinDistFlow(grid, dense=False)
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.0, 1.0, (6, grid.n_bus, 2))
    weights[:, rng.random(grid.n_bus) < 0.4] = 0.0
    weights[2] = 0.0
    f, w = participation(grid, weights, flow)
    assert isinstance(f, LocationEffects) and isinstance(w, LocationEffects)
    p = np.abs(rng.normal(0.0, 0.02, (6, grid.n_bus)))
    res = flow.solve(p, 0.2 * p)
    return grid, res, f, w


def test_indexing_reads_as_the_dense_table(tables):
    _, _, f, w = tables
    for eff in (f, w):
        dense = np.asarray(eff)
        assert dense.shape == eff.shape
        t = np.array([4, 1, 4, 0])
        j = np.array([3, 0, 7, 3])
        k = np.array([0, 1, 1, 2]) % eff.shape[1]
        d = np.array([0, 1, 0, 1])
        rows = np.array([5, 2, 2])
        for key in (np.array([3, 1]), np.array([True, False, True, False, False, True]),
                    (t, slice(None), slice(None), j), (t, k, d, j), (Ellipsis, rows),
                    (2, slice(None), 1), slice(1, 4), -1):
            np.testing.assert_array_equal(eff[key], dense[key])
        np.testing.assert_array_equal(np.asarray(eff.at(np.array([5, 0]))), dense[[5, 0]])


@pytest.mark.parametrize("long_run", [2, 16, 10**9])
def test_moves_and_headroom_are_the_dense_ones(tables, long_run, monkeypatch):
    """Bit for bit, whether runs of elements read their least margin from the range-minimum
    tables (runs from `long_run` elements) or element by element."""
    monkeypatch.setattr(room, "LONG_RUN", long_run)
    grid, res, f, w = tables
    rng = np.random.default_rng(4)
    moves = rng.uniform(0.0, 0.01, f.shape[:3])
    moves[rng.random(moves.shape) < 0.5] = 0.0

    def limits(flow_per_mw, w_per_mw):
        return GridLimits(res.p_mw, res.q_mvar, res.v_pu ** 2, 0.3 * grid.s_max_mva,
                          np.full(grid.n_bus, 0.97), np.full(grid.n_bus, 1.03), flow_per_mw,
                          w_per_mw, grid.branch_location, grid.bus_location)

    sparse, dense = limits(f, w), limits(np.asarray(f), np.asarray(w))
    for a, b in zip(sparse.violations(moves), dense.violations(moves), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(headroom(sparse, moves), headroom(dense, moves))
    np.testing.assert_array_equal(headroom(sparse.at(np.array([1, 3])), moves[[1, 3]]),
                                  headroom(dense.at(np.array([1, 3])), moves[[1, 3]]))

"""Tree-sweep LinDistFlow (large grids) against the dense bus-by-branch matrices and by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from environment.grid.from_pandapower import load_simbench_grid
from environment.grid.lindistflow import DENSE_MAX_BUS, LinDistFlow
from environment.grid.radial import CommonPath, RadialSweeps
from environment.grid.shed import ShedMaps, least_shed
from environment.markets.lfm import participation

# slack 0 - branch 0 (r 0.1, x 0.01) - bus 1; bus 1 feeds bus 2 (branch 1, r 0.2, x 0.02)
# and bus 3 (branch 2, r 0.3, x 0.03); bus 3 feeds bus 4 (branch 3, r 0.4, x 0.04)
PARENT = np.array([-1, 0, 1, 1, 3])
R = np.array([0.1, 0.2, 0.3, 0.4])
X = R / 10


def _tiny(s_max: float = 10.0):
    return SimpleNamespace(parent_bus=PARENT, r_pu=R, x_pu=X, v0_pu=np.ones(5),
                           s_max_mva=np.full(4, s_max), n_bus=5, n_branch=4,
                           n_locations=1, bus_location=np.zeros(5, int))


def test_sweeps_by_hand():
    t = RadialSweeps(PARENT)
    np.testing.assert_array_equal(t.end, [5, 5, 3, 5, 5])
    # consumption 1, 2, 3, 4 MW at buses 1..4: branch 0 carries all, branch 2 buses 3 and 4
    p = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(t.down_sum(p), [10.0, 2.0, 7.0, 4.0])
    # path resistance from the slack: 0, 0.1, 0.1 + 0.2, 0.1 + 0.3, 0.1 + 0.3 + 0.4
    np.testing.assert_allclose(t.path_sum(R), [0.0, 0.1, 0.3, 0.4, 0.8])
    np.testing.assert_array_equal(t.ancestor([2, 4, 4, 0], [4, 3, 4, 2]), [1, 3, 4, 0])
    common = CommonPath(t, R)
    # R[2, 4]: only branch 0 is on both paths; R[4, 3]: branches 0 and 2; R[4, 4]: all three
    np.testing.assert_allclose(common[np.array([2, 4, 4]), np.array([4, 3, 4])],
                               [0.1, 0.4, 0.8])
    np.testing.assert_allclose(common[np.array([4])],
                               [[0.0, 0.1, 0.1, 0.4, 0.8]])
    np.testing.assert_array_equal(t.subtree_rows([0, 2]), [[0, 1, 1, 1, 1], [0, 0, 0, 1, 1]])
    # the paths to bus 2: buses 0, 1, 2 and branches 0, 1; buses 3 and 4 hang off bus 1
    span = t.span(np.array([2]))
    np.testing.assert_array_equal(span.nodes, [0, 1, 2])
    np.testing.assert_array_equal(span.branches, [0, 1])
    np.testing.assert_array_equal(span.nodes[span.nearest], [0, 1, 2, 1, 1])
    with pytest.raises(ValueError):
        RadialSweeps(np.array([-1, 2, 0]))   # a parent numbered after its child


def test_flow_by_hand_both_ways():
    """0.1 MW and 0.05 Mvar at bus 4 only: every branch on its path (0, 2, 3) carries them and
    w falls by 2 (r P + x Q) per branch: at bus 4 by 2 * 0.8 * 0.1 * (1 + 0.05) = 0.168."""
    p = np.array([[0.0, 0.0, 0.0, 0.0, 0.1]])
    for dense in (True, False):
        grid = _tiny()
        if dense:
            grid.downstream = RadialSweeps(PARENT).subtree_rows(np.arange(4))
        res = LinDistFlow(grid, dense=dense).solve(p, 0.5 * p)
        np.testing.assert_allclose(res.p_mw, [[0.1, 0.0, 0.1, 0.1]])
        np.testing.assert_allclose(res.q_mvar, [[0.05, 0.0, 0.05, 0.05]])
        w_drop = 2.0 * np.array([0.0, 0.1, 0.1, 0.4, 0.8]) * 0.1 * 1.05
        np.testing.assert_allclose(res.v_pu[0] ** 2, 1.0 - w_drop)


@pytest.fixture(scope="module",
                params=["1-LV-semiurb5--2-sw", "1-LV-rural3--2-sw", "1-MV-rural--2-sw"])
def both(request):
    grid = load_simbench_grid(request.param)
    assert grid.n_bus <= DENSE_MAX_BUS
    dense, sweep = LinDistFlow(grid), LinDistFlow(grid, dense=False)
    assert dense.dense and not sweep.dense and sweep.sweeps is not None
    return grid, dense, sweep


def test_sweeps_match_the_dense_maps(both):
    grid, dense, sweep = both
    rng = np.random.default_rng(1)
    p = rng.normal(0.0, 0.01, (50, grid.n_bus))
    q = 0.3 * p + rng.normal(0.0, 0.001, p.shape)
    a, b = dense.solve(p, q), sweep.solve(p, q)
    for f in ("p_mw", "q_mvar", "loading", "v_pu"):
        np.testing.assert_allclose(getattr(b, f), getattr(a, f), rtol=1e-12, atol=1e-14)
    sd, ss = dense.sensitivities(), sweep.sensitivities()
    for f in ("ptdf", "R", "X", "w0"):
        np.testing.assert_allclose(getattr(ss, f), getattr(sd, f), rtol=1e-12, atol=1e-15)
    buses = rng.integers(0, grid.n_bus, 40)
    branches = rng.integers(0, grid.n_branch, 40)
    np.testing.assert_allclose(sweep.r_rows(buses), sd.R[buses], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sweep.x_rows(buses), sd.X[buses], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(sweep.downstream_rows(branches), sd.ptdf.T[branches])
    np.testing.assert_array_equal(sweep.subtree_end(), dense.subtree_end())
    other = rng.integers(0, grid.n_bus, 40)
    np.testing.assert_allclose(sweep.common_r()[buses, other], sd.R[buses, other],
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(grid.downstream, sd.ptdf.T)


def test_participation_and_shed_match_the_dense_maps(both):
    grid, dense, sweep = both
    rng = np.random.default_rng(2)
    weights = rng.uniform(0.0, 1.0, (12, grid.n_bus, 2))
    weights[:, rng.random(grid.n_bus) < 0.3] = 0.0     # buses without flexibility
    weights[3] = 0.0                                    # an MTU spread uniformly
    fd, wd = participation(grid, weights, dense)
    fs, ws = participation(grid, weights, sweep)
    np.testing.assert_allclose(fs, fd, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ws, wd, rtol=1e-12, atol=1e-15)

    # a day loaded until branches and voltages break: the least load to shed is the same
    p = np.abs(rng.normal(0.0, 0.05, (8, grid.n_bus)))
    p /= dense.solve(p, 0.2 * p).loading.max()     # the most loaded branch at its rating
    res = dense.solve(p, 0.2 * p)
    p_lim = np.broadcast_to(0.5 * grid.s_max_mva, res.p_mw.shape)
    w_lo, w_hi = np.full(grid.n_bus, 0.95 ** 2), np.full(grid.n_bus, 1.05 ** 2)
    shed = [least_shed(ShedMaps.of(grid, f), res.p_mw, res.v_pu ** 2, p_lim, w_lo, w_hi).mw
            for f in (dense, sweep)]
    assert shed[0].sum() > 0
    np.testing.assert_allclose(shed[1], shed[0], rtol=1e-9, atol=1e-9)

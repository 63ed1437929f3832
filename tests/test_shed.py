"""The grid-violation measure: the least load to shed (or injection to curtail) that restores
every limit, on small radial feeders whose answers are derived by hand."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from environment.grid.from_pandapower import grid_from_pandapower
from environment.grid.lindistflow import LinDistFlow
from environment.grid.shed import ShedMaps, least_shed
from environment.solver import solve_lp


def feeder(parents: list[int]):
    """A 0.4 kV radial net: bus i (1..n) hangs below bus parents[i-1]; lines of 0.1 ohm."""
    net = pp.create_empty_network()
    for i in range(len(parents) + 1):
        pp.create_bus(net, 0.4, name=f"n{i}", index=i)
    pp.create_ext_grid(net, 0, vm_pu=1.0)
    for i, parent in enumerate(parents, start=1):
        pp.create_line_from_parameters(net, parent, i, 1.0, r_ohm_per_km=0.1, x_ohm_per_km=0.0,
                                       c_nf_per_km=0.0, max_i_ka=1.0)
    grid = grid_from_pandapower(net, "hand")
    flow = LinDistFlow(grid)
    return grid, flow, ShedMaps.of(grid, flow)


def measure(grid, flow, maps, load_mw, p_lim, v_min=0.0, v_max=9.0):
    """Least shed for consumption `load_mw` per internal bus (one MTU) and branch limits."""
    res = flow.solve(np.asarray(load_mw, float)[None, :])
    w_lo = np.full(grid.n_bus, v_min ** 2)
    w_hi = np.full(grid.n_bus, v_max ** 2)
    return least_shed(maps, res.p_mw, res.v_pu ** 2, np.asarray(p_lim, float)[None, :],
                      w_lo, w_hi), res


def test_branches_in_series_count_once():
    """0 - 1 - 2 - 3 in series, 0.5 MW at each of buses 1-3: flows 1.5, 1.0, 0.5 MW against
    limits 1.0, 0.6, 0.3. Summed overloads: 0.5 + 0.4 + 0.2 = 1.1 MW. Shedding 0.5 MW at bus 3
    lowers all three flows to 1.0, 0.5, 0.0: every limit holds, and no less will do since the
    first branch alone needs 0.5 MW less below it. Load to shed: 0.5 MW."""
    grid, flow, maps = feeder([0, 1, 2])
    shed, res = measure(grid, flow, maps, [0, 0.5, 0.5, 0.5], [1.0, 0.6, 0.3])
    excess = np.clip(np.abs(res.p_mw) - [1.0, 0.6, 0.3], 0, None).sum()
    assert excess == pytest.approx(1.1)
    assert shed.per_mtu[0] == pytest.approx(0.5, abs=1e-9)
    assert (shed.mw >= -1e-12).all()            # consumption is shed, nothing curtailed


def test_two_feeders_under_a_transformer():
    """Busbar 1 below the transformer branch, feeders to buses 2 and 3 with 1.0 MW each.
    Limits: transformer 1.2, feeders 0.8 and 0.7 -> overloads 0.8, 0.2, 0.3 (sum 1.3). Each
    feeder needs its own 0.2 and 0.3 MW; together 0.5 MW < the transformer's 0.8, so 0.3 MW
    more anywhere below it: 0.8 MW. With a transformer limit of 1.6 (overload 0.4) the feeders'
    0.5 MW relieve it too: 0.5 MW."""
    grid, flow, maps = feeder([0, 1, 1])
    shed, _ = measure(grid, flow, maps, [0, 0, 1.0, 1.0], [1.2, 0.8, 0.7])
    assert shed.per_mtu[0] == pytest.approx(0.8, abs=1e-9)
    shed, _ = measure(grid, flow, maps, [0, 0, 1.0, 1.0], [1.6, 0.8, 0.7])
    assert shed.per_mtu[0] == pytest.approx(0.5, abs=1e-9)
    k = shed.per_location(grid.bus_location, grid.n_locations)
    assert k.sum() == pytest.approx(0.5, abs=1e-9)


def test_reverse_flow_is_curtailed_injection():
    """1.5 MW injected at the end of a two-line feeder with limits 1.0 and 1.2: the reverse
    flows of 1.5 MW need 0.5 MW less injection below the first line, at least 0.3 of it at
    bus 2 (the sign of the change is negative: consumption added back). Summed overloads:
    0.5 + 0.3 = 0.8 MW."""
    grid, flow, maps = feeder([0, 1])
    shed, _ = measure(grid, flow, maps, [0, 0, -1.5], [1.0, 1.2])
    assert shed.per_mtu[0] == pytest.approx(0.5, abs=1e-9)
    assert (shed.mw <= 1e-12).all() and shed.mw[0, 2] <= -0.3 + 1e-9


def test_undervoltage_is_shed_at_the_weakest_bus():
    """Squared voltages fall by 2 sum_c R[b, c] p_c; shedding x MW at bus c raises w_b by
    2 R[b, c] x. With a band that only the feeder end (bus 2) leaves, by a gap g in squared
    voltage, the least shed is at bus 2 itself (R[2, 2] is the largest entry of its row):
    x = g / (2 R[2, 2])."""
    grid, flow, maps = feeder([0, 1])
    load = np.array([0, 0.01, 0.01])
    res = flow.solve(load[None, :])
    w = res.v_pu[0] ** 2
    r22 = flow.sensitivities().R[2, 2]
    gap = 0.001
    v_min = np.sqrt(w[2] + gap)
    assert w[1] > v_min ** 2                         # bus 1 within the band
    shed, _ = measure(grid, flow, maps, load, [9.0, 9.0], v_min=v_min)
    assert shed.per_mtu[0] == pytest.approx(gap / (2 * r22), rel=1e-6)
    assert shed.mw[0, 2] == pytest.approx(gap / (2 * r22), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_candidate_buses_lose_nothing_against_every_bus(data):
    """Random radial feeders with random loads (all consumption) and limits: the LP over
    candidate buses and undominated rows gives the same least shed as an LP with a change
    allowed at every bus and a row for every violated limit (the domination argument of
    `environment.grid.shed`)."""
    n = data.draw(st.integers(2, 9), label="buses")
    parents = [data.draw(st.integers(0, i - 1)) for i in range(1, n)]
    grid, flow, maps = feeder(parents)
    load = np.concatenate([[0.0], data.draw(st.lists(st.floats(0.0, 1.0), min_size=n - 1,
                                                     max_size=n - 1))])
    p_lim = np.array(data.draw(st.lists(st.floats(0.05, 3.0), min_size=n - 1, max_size=n - 1)))
    res = flow.solve(load[None, :])
    w = res.v_pu[0] ** 2
    v_min = float(np.sqrt(np.quantile(w[1:], data.draw(st.floats(0.0, 1.0)))))
    shed, _ = measure(grid, flow, maps, load, p_lim, v_min=v_min)
    # full LP: shed y >= 0 at every non-slack bus; for each violated branch p - D y <= p_lim,
    # for each bus below its band w + 2 R y >= v_min^2
    d = np.asarray(grid.downstream)[:, 1:]
    r = flow.sensitivities().R[1:, 1:]
    over = res.p_mw[0] > p_lim + 1e-6
    low = w[1:] < v_min ** 2 - 1e-6
    if not over.any() and not low.any():
        assert shed.per_mtu[0] == 0.0
        return
    ref = solve_lp(np.ones(n - 1), a_ub=np.vstack([-d[over], -2 * r[low]]),
                   b_ub=np.concatenate([(p_lim - res.p_mw[0])[over],
                                        (w[1:] - v_min ** 2)[low]]))
    assert shed.per_mtu[0] == pytest.approx(ref.x.sum(), abs=1e-7)

"""Grid construction from simbench and LinDistFlow, checked against pandapower's AC power flow."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandapower as pp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from environment.grid.from_pandapower import (
    grid_from_pandapower,
    load_simbench_grid,
    simbench_net,
)
from environment.grid.lindistflow import LinDistFlow, violations
from environment.grid.network import TRAFO_LOCATION

LV_CODES = ["1-LV-semiurb5--2-sw", "1-LV-rural3--2-sw"]
MV_CODE = "1-MV-rural--2-sw"

# Tolerances against AC. Observed maxima over the 4 snapshots of both LV grids (simbench nominal
# values, and profile rows scaled to 30/60/85 % max loading): |dv| 0.0024 pu; active flow error
# 3.0 % of the AC sending-end flow on branches carrying >= 10 % of their rating in the profile
# snapshots, but up to 6 % in the nominal snapshot, where every load, PV unit and battery is at
# full power at once and subtree losses are large next to the small net flow; hence the criterion
# |dp| <= 3 % |p_ac| + 2 % of the rating, whose second term reaches 1.04 % at most.
# |dloading| 0.031 (AC loading is current based, LinDistFlow's is S / S_max at nominal voltage).
V_TOL_PU = 0.01
FLOW_REL_TOL = 0.03
FLOW_ABS_TOL_OF_RATING = 0.02
LOADING_TOL = 0.05


def _bus_pq(net, grid) -> tuple[np.ndarray, np.ndarray]:
    """Net consumption per internal bus from the net's own loads, sgens and storages."""
    p = np.zeros(grid.n_bus)
    q = np.zeros(grid.n_bus)
    for table, sign in (("load", 1.0), ("sgen", -1.0), ("storage", 1.0)):
        df = net[table][net[table].in_service]
        buses = grid.load_bus(df.bus.to_numpy())
        np.add.at(p, buses, sign * (df.p_mw * df.scaling).to_numpy())
        np.add.at(q, buses, sign * (df.q_mvar * df.scaling).to_numpy())
    return p, q


def _run_ac(net, grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AC voltages, sending-end active flows and loadings mapped to internal indices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, numba=False)
    v = net.res_bus.vm_pu.reindex(grid.bus_pp_index).to_numpy()
    p_send = np.zeros(grid.n_branch)
    loading = np.zeros(grid.n_branch)
    for l_, (kind, members) in enumerate(zip(grid.branch_kind, grid.branch_pp_members,
                                             strict=True)):
        res = net.res_line if kind == "line" else net.res_trafo
        ends = ("p_to_mw", "p_from_mw") if kind == "line" else ("p_lv_mw", "p_hv_mw")
        col = ends[0] if grid.branch_pp_reversed[l_] else ends[1]
        p_send[l_] = res.loc[list(members), col].sum()
        loading[l_] = res.loc[list(members), "loading_percent"].max() / 100.0
    return v, p_send, loading


def _snapshots(code: str):
    """Nominal elements, then three profile rows scaled to 30/60/85 % max LinDistFlow loading."""
    import simbench

    net = simbench_net(code)
    grid = load_simbench_grid(code)
    yield "nominal", copy.deepcopy(net)
    prof = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    tables = [("load", "p_mw"), ("load", "q_mvar"), ("sgen", "p_mw"), ("storage", "p_mw")]
    tables = [t for t in tables if t in prof and len(net[t[0]])]
    p = np.zeros((len(prof[("load", "p_mw")]), grid.n_bus))
    q = np.zeros_like(p)
    for table, col in tables:
        sign = -1.0 if table == "sgen" else 1.0
        target = p if col == "p_mw" else q
        target += sign * prof[(table, col)].to_numpy() @ grid.incidence(net[table].bus)
    max_loading = LinDistFlow(grid).solve(p, q).loading.max(axis=1)
    rows = {
        "median": (int(np.argsort(max_loading)[len(max_loading) // 2]), 0.3),
        "feed-in": (int(np.argmin(p[:, 1:].sum(axis=1))), 0.6),
        "peak load": (int(np.argmax(p[:, 1:].sum(axis=1))), 0.85),
    }
    for label, (row, target) in rows.items():
        scale = target / max_loading[row]
        snap = copy.deepcopy(net)
        for table, col in tables:
            snap[table][col] = prof[(table, col)].iloc[row].to_numpy() * scale
            snap[table]["scaling"] = 1.0
        yield f"{label} row {row} x{scale:.2f}", snap


def ac_errors(code: str) -> dict[str, dict[str, float]]:
    """Worst LinDistFlow-vs-AC deviations per snapshot (also used to report the accuracy)."""
    grid = load_simbench_grid(code)
    lin = LinDistFlow(grid)
    out = {}
    for label, net in _snapshots(code):
        p, q = _bus_pq(net, grid)
        res = lin.solve(p, q)
        v_ac, p_ac, loading_ac = _run_ac(net, grid)
        flow_err = np.abs(res.p_mw[0] - p_ac)
        carrying = np.abs(p_ac) >= 0.1 * grid.s_max_mva
        out[label] = {
            "v_err_pu": float(np.abs(res.v_pu[0] - v_ac).max()),
            "flow_excess_of_rating": float(
                np.max((flow_err - FLOW_REL_TOL * np.abs(p_ac)) / grid.s_max_mva)
            ),
            "flow_rel_err_loaded": float(np.max(flow_err[carrying] / np.abs(p_ac[carrying]),
                                                initial=0.0)),
            "loading_err": float(np.abs(res.loading[0] - loading_ac).max()),
            "max_loading_ac": float(loading_ac.max()),
            "v_min_ac": float(v_ac.min()),
        }
    return out


@pytest.mark.parametrize("code", [*LV_CODES, MV_CODE])
def test_tree_is_consistent(code):
    grid = load_simbench_grid(code)
    n_bus, n_branch = grid.n_bus, grid.n_branch
    assert n_branch == n_bus - 1
    assert grid.bus_pp_index[0] == simbench_net(code).ext_grid.bus.iloc[0]
    assert np.array_equal(np.bincount(grid.branch_to, minlength=n_bus), [0] + [1] * (n_bus - 1))
    assert np.all(grid.depth[grid.branch_to] == grid.depth[grid.branch_from] + 1)
    assert np.array_equal(grid.parent_bus[grid.branch_to], grid.branch_from)

    d = grid.downstream
    assert d.shape == (n_branch, n_bus)
    assert np.all(d[:, 0] == 0)
    assert np.all(d[np.arange(n_branch), grid.branch_to] == 1)
    assert np.array_equal(d.sum(axis=0), grid.depth)
    for l_ in range(n_branch):
        children = np.flatnonzero(grid.branch_from == grid.branch_to[l_])
        expected = d[children].sum(axis=0)
        expected[grid.branch_to[l_]] += 1
        assert np.array_equal(d[l_], expected)

    assert grid.locations[0] == TRAFO_LOCATION
    assert len(grid.locations) >= 2
    assert set(np.unique(grid.bus_location)) == set(range(grid.n_locations))
    assert np.array_equal(grid.branch_location, grid.bus_location[grid.branch_to])
    assert grid.bus_location[0] == 0
    assert np.all(grid.branch_location[grid.branch_kind == "trafo"] == 0)
    for k in range(1, grid.n_locations):
        buses = grid.location_buses(k)
        heads = buses[grid.bus_location[grid.parent_bus[buses]] != k]
        assert len(heads) == 1, "a feeder is one subtree"
        assert grid.bus_location[grid.parent_bus[heads[0]]] == 0
        assert grid.branch_kind[heads[0] - 1] == "line"
    first_lines = [grid.branch_pp_index[grid.location_buses(k)[0] - 1]
                   for k in range(1, grid.n_locations)]
    assert first_lines == sorted(first_lines)

    assert len(set(grid.bus_names)) == n_bus
    assert all(grid.bus_index[name] == i for i, name in enumerate(grid.bus_names))
    assert all(grid.load_bus(b) == i for i, b in enumerate(grid.bus_pp_index))
    assert np.all(grid.r_pu > 0) and np.all(grid.x_pu > 0) and np.all(grid.s_max_mva > 0)
    assert grid.xy.shape == (n_bus, 2) and np.isfinite(grid.xy).all()
    assert np.all(grid.v_min_pu < 1) and np.all(grid.v_max_pu > 1)
    with pytest.raises(ValueError):
        grid.downstream[0, 0] = 1.0


def test_trafo_parameters_and_tap():
    net = simbench_net("1-LV-rural3--2-sw")
    grid = load_simbench_grid("1-LV-rural3--2-sw")
    tr = net.trafo.iloc[0]
    assert tr.tap_pos == -1 and tr.tap_changer_type == "Ratio"
    (l_,) = np.flatnonzero(grid.branch_kind == "trafo")
    assert grid.r_pu[l_] == pytest.approx(tr.vkr_percent / 100 / tr.sn_mva)
    z = np.hypot(grid.r_pu[l_], grid.x_pu[l_])
    assert z == pytest.approx(tr.vk_percent / 100 / tr.sn_mva)
    assert grid.s_max_mva[l_] == pytest.approx(tr.sn_mva)
    assert grid.v_slack_pu == pytest.approx(net.ext_grid.vm_pu.iloc[0])
    lv = grid.load_bus(tr.lv_bus)
    assert grid.v0_pu[lv] == pytest.approx(grid.v_slack_pu / (1 - 0.025))
    line = net.line.loc[grid.branch_pp_index[grid.branch_kind == "line"][0]]
    vn = net.bus.vn_kv[line.from_bus]
    m = grid.branch_pp_index.tolist().index(line.name)
    assert grid.r_pu[m] == pytest.approx(line.r_ohm_per_km * line.length_km / vn**2)
    assert grid.s_max_mva[m] == pytest.approx(np.sqrt(3) * vn * line.max_i_ka)


def test_parallel_trafos_are_merged():
    grid = load_simbench_grid(MV_CODE)
    net = simbench_net(MV_CODE)
    (l_,) = np.flatnonzero(grid.branch_kind == "trafo")
    assert len(grid.branch_pp_members[l_]) == 2
    assert grid.s_max_mva[l_] == pytest.approx(net.trafo.sn_mva.sum())
    assert grid.load_bus(net.trafo.hv_bus.iloc[1]) == 0


@pytest.mark.parametrize("code", LV_CODES)
def test_lindistflow_matches_ac_power_flow(code):
    errors = ac_errors(code)
    assert len(errors) == 4
    for label, e in errors.items():
        assert e["v_err_pu"] < V_TOL_PU, (label, e)
        assert e["flow_excess_of_rating"] < FLOW_ABS_TOL_OF_RATING, (label, e)
        assert e["loading_err"] < LOADING_TOL, (label, e)
    assert max(e["max_loading_ac"] for e in errors.values()) > 0.8


def test_solve_year_shapes_chunks_and_sensitivities():
    grid = load_simbench_grid("1-LV-semiurb5--2-sw")
    rng = np.random.default_rng(0)
    n_t = 35040
    p = rng.normal(0.0, 0.003, (n_t, grid.n_bus))
    q = 0.3 * p
    p[:, 0] = q[:, 0] = 0.0
    res = LinDistFlow(grid).solve(p, q)
    assert res.p_mw.shape == res.q_mvar.shape == res.loading.shape == (n_t, grid.n_branch)
    assert res.v_pu.shape == (n_t, grid.n_bus)
    assert np.isfinite(res.v_pu).all()

    small = LinDistFlow(grid, chunk_size=1000).solve(p[:2500], q[:2500])
    np.testing.assert_allclose(small.v_pu, res.v_pu[:2500])
    np.testing.assert_allclose(small.p_mw, res.p_mw[:2500])

    sens = LinDistFlow(grid).sensitivities()
    np.testing.assert_allclose(sens.R, sens.R.T)
    np.testing.assert_allclose(sens.X, sens.X.T)
    assert sens.ptdf.shape == (grid.n_bus, grid.n_branch)
    np.testing.assert_allclose(p[:100] @ sens.ptdf, res.p_mw[:100])
    w = sens.w0 + p[:100] @ sens.dw_dp + q[:100] @ sens.dw_dq
    np.testing.assert_allclose(np.sqrt(w), res.v_pu[:100])
    np.testing.assert_allclose(res.loading, np.hypot(res.p_mw, res.q_mvar) / grid.s_max_mva)

    one = LinDistFlow(grid).solve(p[7], q[7])
    np.testing.assert_allclose(one.v_pu[0], res.v_pu[7])
    with pytest.raises(ValueError):
        LinDistFlow(grid).solve(np.zeros((3, grid.n_bus + 1)))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_sign_conventions(sign):
    grid = load_simbench_grid("1-LV-rural3--2-sw")
    leaf = int(np.argmax(grid.depth))
    p = np.zeros(grid.n_bus)
    p[leaf] = sign * 0.02
    res = LinDistFlow(grid).solve(p, 0.3 * p)
    upstream = grid.downstream[:, leaf] == 1
    assert np.all(sign * res.p_mw[0, upstream] > 0)
    assert np.all(res.p_mw[0, ~upstream] == 0)
    path = [leaf]
    while path[-1] != 0:
        path.append(int(grid.parent_bus[path[-1]]))
    dv = res.v_pu[0] - grid.v0_pu
    assert sign * dv[leaf] < 0
    steps = np.diff(dv[path[::-1]])
    assert np.all(sign * steps < 0)
    off_path = np.setdiff1d(np.arange(grid.n_bus), path)
    beside = off_path[grid.depth[off_path] > 1]
    assert np.all(sign * (res.v_pu[0, beside] - grid.v0_pu[beside]) <= 0)


def test_violations_per_location():
    grid = load_simbench_grid("1-LV-semiurb5--2-sw")
    rng = np.random.default_rng(1)
    p = np.abs(rng.normal(0.0, 0.01, (96, grid.n_bus)))
    p[:, 0] = 0.0
    p[48:] *= -3.0
    res = LinDistFlow(grid).solve(p, 0.2 * p)
    vio = violations(res, grid, mtu_hours=0.25)
    n_k = grid.n_locations
    assert vio.locations == grid.locations
    assert vio.max_loading.shape == vio.overload_mwh.shape == vio.any.shape == (96, n_k)
    for k in range(n_k):
        br = grid.location_branches(k)
        bu = grid.location_buses(k)
        expect = res.loading[:, br].max(axis=1) if len(br) else np.zeros(96)
        np.testing.assert_allclose(vio.max_loading[:, k], expect)
        np.testing.assert_allclose(vio.v_min_pu[:, k], res.v_pu[:, bu].min(axis=1))
        np.testing.assert_allclose(vio.v_max_pu[:, k], res.v_pu[:, bu].max(axis=1))
        under = (res.v_pu[:, bu] < grid.v_min_pu[bu]).any(axis=1)
        np.testing.assert_array_equal(vio.undervoltage[:, k], under)
    assert vio.overloaded.any() and vio.overvoltage[48:].any()
    np.testing.assert_array_equal(vio.overloaded, vio.overload_mwh > 0)
    k, t = np.argwhere(vio.overloaded.T)[0]
    br = grid.location_branches(k)
    excess = (res.loading[t, br] - 1.0) * grid.s_max_mva[br] * 0.25
    assert vio.overload_mwh[t, k] == pytest.approx(excess.max())


def _leaves_in_two_feeders(grid):
    leaves = np.setdiff1d(np.arange(grid.n_bus), grid.branch_from)
    a = leaves[grid.bus_location[leaves] == 1][0]
    b = leaves[grid.bus_location[leaves] == 2][0]
    return int(grid.bus_pp_index[a]), int(grid.bus_pp_index[b])


def test_meshed_network_raises():
    code = "1-LV-semiurb5--2-sw"
    grid = load_simbench_grid(code)
    net = copy.deepcopy(simbench_net(code))
    a, b = _leaves_in_two_feeders(grid)
    new = pp.create_line_from_parameters(net, a, b, 0.1, r_ohm_per_km=0.2, x_ohm_per_km=0.08,
                                         c_nf_per_km=0.0, max_i_ka=0.27, name="tie")
    with pytest.raises(ValueError, match=rf"{code}.*meshed"):
        grid_from_pandapower(net, code)
    pp.create_switch(net, a, new, et="l", closed=False)
    opened = grid_from_pandapower(net, code)
    assert opened.n_bus == grid.n_bus and opened.n_branch == grid.n_branch


def test_bus_bus_switch_merges_buses_and_other_errors():
    code = "1-LV-rural3--2-sw"
    grid = load_simbench_grid(code)
    base = simbench_net(code)
    net = copy.deepcopy(base)
    line = int(grid.branch_pp_index[-1])
    old_bus = int(net.line.at[line, "to_bus"])
    twin = pp.create_bus(net, vn_kv=net.bus.vn_kv[old_bus], name="twin")
    pp.create_switch(net, old_bus, twin, et="b", closed=True)
    net.line.at[line, "to_bus"] = twin
    load = pp.create_load(net, twin, p_mw=0.01)
    merged = grid_from_pandapower(net, code)
    assert merged.n_bus == grid.n_bus
    assert merged.load_bus(twin) == merged.load_bus(old_bus)
    assert merged.bus_index["twin"] == merged.load_bus(old_bus)
    assert merged.incidence(net.load.bus[[load]]).sum() == 1

    two_slacks = copy.deepcopy(base)
    pp.create_ext_grid(two_slacks, int(grid.bus_pp_index[5]))
    with pytest.raises(ValueError, match=rf"{code}.*ext_grid"):
        grid_from_pandapower(two_slacks, code)

    cut = copy.deepcopy(base)
    leaf = int(np.argmax(grid.depth))
    cut.line.at[grid.branch_pp_index[leaf - 1], "in_service"] = False
    pp.create_load(cut, int(grid.bus_pp_index[leaf]), p_mw=0.01)
    with pytest.raises(ValueError, match=rf"{code}.*not reachable"):
        grid_from_pandapower(cut, code)

    dead = copy.deepcopy(base)
    dead_bus = pp.create_bus(dead, vn_kv=0.4, name="dead end")
    assert grid_from_pandapower(dead, code).n_bus == grid.n_bus
    with pytest.raises(KeyError):
        grid_from_pandapower(dead, code).load_bus(dead_bus)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_random_radial_nets_match_brute_force_and_ac(data):
    n = data.draw(st.integers(2, 12), label="buses")
    parents = [data.draw(st.integers(0, i - 1)) for i in range(1, n)]
    flips = data.draw(st.lists(st.booleans(), min_size=n - 1, max_size=n - 1))
    pp_ids = data.draw(st.permutations(range(100, 100 + n)))
    loads_kw = data.draw(st.lists(st.floats(-8.0, 8.0), min_size=n - 1, max_size=n - 1))
    net = pp.create_empty_network()
    for i in range(n):
        pp.create_bus(net, 0.4, name=f"n{i}", index=pp_ids[i])
    pp.create_ext_grid(net, pp_ids[0], vm_pu=1.0)
    for i, (parent, flip) in enumerate(zip(parents, flips, strict=True), start=1):
        a, b = (pp_ids[i], pp_ids[parent]) if flip else (pp_ids[parent], pp_ids[i])
        pp.create_line_from_parameters(net, a, b, 0.05, r_ohm_per_km=0.2, x_ohm_per_km=0.08,
                                       c_nf_per_km=0.0, max_i_ka=0.27)
        pp.create_load(net, pp_ids[i], p_mw=loads_kw[i - 1] / 1000, q_mvar=0.0)

    grid = grid_from_pandapower(net, "random")
    node = [pp_ids.index(b) for b in grid.bus_pp_index]
    assert node[0] == 0 and sorted(node) == list(range(n))

    def ancestors(i):
        chain = [i]
        while chain[-1] != 0:
            chain.append(parents[chain[-1] - 1])
        return chain

    for l_ in range(grid.n_branch):
        child = node[grid.branch_to[l_]]
        assert parents[child - 1] == node[grid.branch_from[l_]]
        assert grid.branch_pp_reversed[l_] == flips[child - 1]
        below = [child in ancestors(node[b]) for b in range(n)]
        np.testing.assert_array_equal(grid.downstream[l_], below)
    assert grid.n_locations == 1 + sum(p == 0 for p in parents)
    np.testing.assert_allclose(grid.v_min_pu, 0.9)
    np.testing.assert_allclose(grid.xy[:, 1], -grid.depth)

    p, q = _bus_pq(net, grid)
    res = LinDistFlow(grid).solve(p, q)
    sweep = LinDistFlow(grid, dense=False).solve(p, q)   # tree sweeps, as on large grids
    np.testing.assert_allclose(sweep.v_pu, res.v_pu, rtol=1e-12)
    np.testing.assert_allclose(sweep.p_mw, res.p_mw, rtol=1e-12, atol=1e-15)
    v_ac, p_ac, _ = _run_ac(net, grid)
    np.testing.assert_allclose(res.v_pu[0], v_ac, atol=0.005)
    np.testing.assert_allclose(res.p_mw[0], p_ac, atol=0.03 * np.abs(p_ac).max() + 1e-4)

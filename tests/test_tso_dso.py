"""SmartNet TSO-DSO coordination schemes for real-time balancing: balance, the common market's
optimality against sequential schemes and an independent Pyomo model, counteracting
activations, and the shared balancing responsibility's interface schedule."""

from dataclasses import replace

import numpy as np
import pyomo.environ as pyo
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyomo.contrib.solver.common.factory import SolverFactory
from test_lfm import offers, one_branch

from environment.markets.balancing import BalancingOffers
from environment.markets.lfm import FlexOffers, GridLimits
from environment.markets.tso_dso import TSO_DSO, tso_first
from environment.markets.tso_dso_problem import BalancingProblem, delivered

DT = 0.25
SCHEMES = ["centralized", "local", "shared_balancing", "common"]


def chain(t_n, base_p, base_v, sens_v=(0.02, 0.05)):
    """Two locations on a two-branch chain: branch 0 feeds both, branch 1 only location 1;
    one MW more consumption lowers the squared voltage at bus 1 by sens_v[0] and at bus 2 by
    sens_v[0] (location 0) or sens_v[1] (location 1)."""
    flow = np.zeros((t_n, 2, 2, 2))
    flow[:, :, :, 0] = 1.0
    flow[:, 1, :, 1] = 1.0
    w = np.zeros((t_n, 2, 2, 3))
    w[:, :, :, 1] = -sens_v[0]
    w[:, 0, :, 2] = -sens_v[0]
    w[:, 1, :, 2] = -sens_v[1]
    base_w = np.column_stack([np.ones(t_n), np.asarray(base_v) ** 2, np.asarray(base_v) ** 2])
    return GridLimits(base_p=np.asarray(base_p, float), base_q=np.zeros((t_n, 2)),
                      base_w=base_w, s_max=np.array([1.0, 0.6]), v_min=np.full(3, 0.9),
                      v_max=np.full(3, 1.1), flow_per_mw=flow, w_per_mw=w,
                      branch_location=np.array([0, 1]), bus_location=np.array([0, 0, 1]))


def producers(up_mw, up_price=(50.0, 70.0), down_price=(20.0, 5.0), t_n=1):
    p_n = len(up_price)
    mw = np.full((p_n, t_n), up_mw, float)
    return BalancingOffers(np.arange(p_n), np.array(up_price), mw, np.array(down_price),
                           mw.copy())


def der_bids(rng, t_n, n):
    return FlexOffers(np.arange(n), rng.integers(0, 2, n), rng.integers(0, t_n, n),
                      rng.choice([1, -1], n), rng.uniform(0.05, 0.6, n),
                      rng.integers(1, 150, n).astype(float))


def feeder_case(seed=0, t_n=4):
    rng = np.random.default_rng(seed)
    base_p = np.column_stack([rng.uniform(0.5, 1.4, t_n), rng.uniform(0.1, 0.8, t_n)])
    lim = chain(t_n, base_p, rng.uniform(0.88, 1.0, t_n))
    return BalancingProblem(rng.uniform(-1.5, 1.5, t_n), producers(0.6, t_n=t_n),
                            der_bids(rng, t_n, 12), lim, DT, 1000.0, -300.0)


@pytest.mark.parametrize("name", SCHEMES + ["tso_first"])
def test_every_scheme_balances_the_system(name):
    fn = tso_first if name == "tso_first" else TSO_DSO[name]
    for seed in range(3):
        p = feeder_case(seed)
        res = fn(p)
        np.testing.assert_allclose(delivered(p, res), p.need_mw, atol=1e-6)
        assert res.scheme == name
        assert (res.der_tso_mw >= -1e-9).all() and (res.der_dso_mw >= -1e-9).all()
        assert (res.der_tso_mw + res.der_dso_mw <= p.der.mw + 1e-9).all()
        assert res.counteracting_mw.shape == (4, 2)
        accepted = res.der_tso_mw + res.der_dso_mw > 1e-9
        assert (res.der_paid_price[accepted] >= p.der.price[accepted] - 1e-6).all()


def test_only_requested_mtus_are_cleared():
    p = feeder_case(1)
    p = replace(p, mtus=np.array([1, 3]))
    for name in SCHEMES:
        res = TSO_DSO[name](p)
        got = delivered(p, res)
        np.testing.assert_allclose(got[[1, 3]], p.need_mw[[1, 3]], atol=1e-6)
        assert np.abs(got[[0, 2]]).max() == 0.0
        assert (res.der_tso_mw + res.der_dso_mw)[np.isin(p.der.mtu, [0, 2])].sum() == 0.0


def test_merit_order_prices_follow_balancing_conventions():
    der = offers([0], [0.5], [30.0])
    for need, price in ((1.0, 50.0), (-1.0, 20.0)):
        p = BalancingProblem(np.array([need]), producers(2.0), der, one_branch(0.5, 1.0), DT,
                             1000.0, -300.0)
        for name in ("centralized", "local", "common"):
            res = TSO_DSO[name](p)
            assert res.system_price[0] == pytest.approx(price)
    p = BalancingProblem(np.array([5.0]), producers(1.0), der, None, DT, 1000.0, -300.0)
    res = TSO_DSO["centralized"](p)
    assert res.emergency_up_mw[0] == pytest.approx(2.5)
    assert res.system_price[0] == 1000.0
    assert res.der_paid_price[0] == 1000.0       # TSO use is paid as clear


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t_n=st.integers(1, 3), n=st.integers(0, 10),
       unresolved=st.sampled_from([200.0, 5000.0]))
def test_common_is_never_dearer_than_sequential_clearing(seed, t_n, n, unresolved):
    rng = np.random.default_rng(seed)
    base_p = np.column_stack([rng.uniform(-1.3, 1.3, t_n), rng.uniform(-0.7, 0.7, t_n)])
    lim = chain(t_n, base_p, rng.uniform(0.87, 1.02, t_n))
    p = BalancingProblem(rng.uniform(-2, 2, t_n).round(2), producers(rng.uniform(0, 0.8), t_n=t_n),
                         der_bids(rng, t_n, n), lim, DT, 800.0, -200.0, unresolved)
    best = TSO_DSO["common"](p).procurement_cost_eur
    for other in ("local", "shared_balancing", "centralized"):
        assert best <= TSO_DSO[other](p).procurement_cost_eur + 1e-6, other
    assert best <= tso_first(p).procurement_cost_eur + 1e-6


def _pyomo_common(p: BalancingProblem) -> float:
    """The common market written independently: every branch and voltage limit as a row from
    the start (no constraint generation), with the DSO's last resort (shedding load or
    curtailing injection at any location, spread like the location's flexibility) at the
    unresolved cost, costs as bid."""
    lim, der = p.limits, p.der
    t_n, l_n, b_n = lim.base_p.shape[0], lim.base_p.shape[1], lim.base_w.shape[1]
    k_n = lim.flow_per_mw.shape[1]
    up_price, down_price = p.producers.up_price, p.producers.down_price
    prod = range(len(up_price))
    bids = range(len(der))
    m = pyo.ConcreteModel()
    m.a = pyo.Var(bids, bounds=lambda _, i: (0, der.mw[i]))
    m.up = pyo.Var(prod, range(t_n), bounds=lambda _, i, t: (0, p.producers.up_mw[i, t]))
    m.dn = pyo.Var(prod, range(t_n), bounds=lambda _, i, t: (0, p.producers.down_mw[i, t]))
    m.eu = pyo.Var(range(t_n), within=pyo.NonNegativeReals)
    m.ed = pyo.Var(range(t_n), within=pyo.NonNegativeReals)
    m.shed = pyo.Var(range(t_n), range(k_n), within=pyo.NonNegativeReals)
    m.curt = pyo.Var(range(t_n), range(k_n), within=pyo.NonNegativeReals)
    m.bal = pyo.Constraint(range(t_n), rule=lambda _, t: (
        sum(m.up[i, t] - m.dn[i, t] for i in prod) + m.eu[t] - m.ed[t]
        + sum(int(der.direction[i]) * m.a[i] for i in bids if der.mtu[i] == t) == p.need_mw[t]))

    def consumption_effect(t, table, j):
        d = [0 if der.direction[i] > 0 else 1 for i in bids]
        bought = sum(-int(der.direction[i]) * table[t, der.location[i], d[i], j] * m.a[i]
                     for i in bids if der.mtu[i] == t)
        return bought + sum(-table[t, k, 0, j] * m.shed[t, k] + table[t, k, 1, j] * m.curt[t, k]
                            for k in range(k_n))

    p_lim = lim.p_lim()
    m.flow = pyo.Constraint(range(t_n), range(l_n), [-1, 1], rule=lambda _, t, j, s: (
        s * (lim.base_p[t, j] + consumption_effect(t, lim.flow_per_mw, j)) <= p_lim[t, j]))

    def volt(_, t, b, s):
        if b == 0:
            return pyo.Constraint.Skip
        w = lim.base_w[t, b] + consumption_effect(t, lim.w_per_mw, b)
        return (w <= lim.v_max[b] ** 2) if s > 0 else (w >= lim.v_min[b] ** 2)
    m.volt = pyo.Constraint(range(t_n), range(b_n), [-1, 1], rule=volt)
    m.obj = pyo.Objective(expr=p.dt_h * (
        sum(der.price[i] * m.a[i] for i in bids)
        + sum(up_price[i] * m.up[i, t] - down_price[i] * m.dn[i, t]
              for i in prod for t in range(t_n))
        + sum(p.emergency_up_price * m.eu[t] - p.emergency_down_price * m.ed[t]
              for t in range(t_n))
        + p.unresolved_cost * sum(m.shed[t, k] + m.curt[t, k] for t in range(t_n)
                                  for k in range(k_n))))
    SolverFactory("highs").solve(m)
    return pyo.value(m.obj)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_common_matches_independent_pyomo_model(seed):
    p = feeder_case(seed, t_n=3)
    p = replace(p, unresolved_cost=400.0)
    ours = TSO_DSO["common"](p).procurement_cost_eur
    assert ours == pytest.approx(_pyomo_common(p), rel=1e-9, abs=1e-6)


def test_centralized_counteracts_the_dso_where_local_and_common_do_not():
    """Branch already 0.2 MW over its limit; the system is long. The cheapest downward bid
    (more consumption) sits behind the congested branch; relief needs the dearer up bid."""
    lim = one_branch(base_mw=1.2, limit_mw=1.0, sens=(1.0, 0.5))
    der = offers([0, 1], [0.5, 1.0], [5.0, 60.0], direction=[-1, 1])
    p = BalancingProblem(np.array([-1.0]), producers(2.0, down_price=(-30.0, -40.0)), der, lim,
                         DT, 1000.0, -300.0)
    cen = TSO_DSO["centralized"](p)
    assert cen.der_tso_mw[0] == pytest.approx(0.5)
    assert cen.counteracting_mw[0, 0] == pytest.approx(0.5)
    assert cen.unresolved_mw == pytest.approx(0.7)
    for name in ("local", "common"):
        res = TSO_DSO[name](p)
        assert res.der_tso_mw[0] + res.der_dso_mw[0] == pytest.approx(0.0, abs=1e-9), name
        assert res.der_dso_mw[1] == pytest.approx(0.4), name
        assert res.unresolved_mw == pytest.approx(0.0, abs=1e-9), name
        assert np.abs(res.counteracting_mw).max() == 0.0, name
        assert res.procurement_cost_eur < cen.procurement_cost_eur


@pytest.mark.parametrize("local_mw", [1.0, 0.2])
def test_shared_balancing_dso_cancels_its_interface_deviation(local_mw):
    """The area consumes 0.3 MW more than scheduled; the DSO cancels what its local (dearer
    than producers) bids allow, and the TSO's producers do exactly that much less."""
    lim = one_branch(base_mw=0.2, limit_mw=1.0)
    der = offers([0, 1], [local_mw / 2, local_mw / 2], [80.0, 90.0])
    base = BalancingProblem(np.array([1.0]), producers(2.0), der, lim, DT, 1000.0, -300.0)
    plain = TSO_DSO["shared_balancing"](base)
    assert plain.der_dso_mw.sum() == 0.0 and plain.der_tso_mw.sum() == 0.0
    p = replace(base, interface_mw=np.array([0.3]))
    res = TSO_DSO["shared_balancing"](p)
    cancelled = min(0.3, local_mw)
    assert res.der_dso_mw.sum() == pytest.approx(cancelled)
    assert res.der_tso_mw.sum() == 0.0
    shrink = plain.producer_up_mw.sum() - res.producer_up_mw.sum()
    assert shrink == pytest.approx(cancelled, abs=1e-9)
    np.testing.assert_allclose(delivered(p, res), p.need_mw, atol=1e-9)

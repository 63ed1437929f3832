"""SmartNet's ordinal findings (seed 004) on a designed clearing problem, derived by hand.

One MTU of 15 minutes (dt = 0.25 h). One distribution branch, limit 1.0 MW; location 0 lies
behind it (one MW more consumption there adds 1 MW to its flow), location 1 does not. The
system is long by 1 MW (need -1.0), and that surplus is the distribution area's own: it
consumes 1 MW less than its interface schedule (interface_mw -1.0, what `shared_balancing`'s
DSO answers for). Offers (the balancing conventions of `environment.markets.tso_dso_problem`):

* producers: down at 30 EUR/MWh (they are paid 30 to produce less; down_price -30) and 40,
  2 MW each; up at 50 and 70;
* b0: location 0, consume more (direction -1), 0.6 MW at 5 EUR/MWh: the cheapest downward
  energy, and it pushes the branch;
* b1: location 1, consume more, 0.6 MW at 10 EUR/MWh: grid-neutral;
* b2: location 0, consume less (direction +1), 1.0 MW at 60 EUR/MWh: the only relief.

Load to shed costs 5000 EUR/MWh (the DSO's last resort, `lfm_cuts.GridCuts`).

Congested: the branch carries 1.2 MW (0.2 over) before anyone acts.

* `centralized` (grid-blind TSO merit order): b0 0.6 + b1 0.4 = 1.0 MW down, as bid
  (0.6*5 + 0.4*10) * 0.25 = 1.75 EUR. The branch ends at 1.2 + 0.6 = 1.8 MW: 0.8 MW of load to
  shed, 0.8 * 5000 * 0.25 = 1000 EUR, so 1001.75 EUR in all. b0's 0.6 MW push a limit it
  worsens: counteracting 0.6 MW at location 0.
* `centralized` plus the DSO's fix-up (`tso_first`): after the TSO, the DSO's local market
  buys 0.8 MW of b2 (0.8*60*0.25 = 12 EUR); the net DER energy is -0.6 - 0.4 + 0.8 = -0.2, so
  the TSO re-dispatches 0.8 MW of producer down at 30 (6 EUR): 1.75 + 12 + 6 = 19.75 EUR, the
  same 0.6 MW counteracting.
* `local`: the DSO first buys 0.2 MW of b2 (3 EUR); the branch is then at its limit, so b0 gets
  no headroom; the TSO needs -1.0 - 0.2 = -1.2 MW: b1 0.6 at 10 and producers 0.6 at 30,
  (6 + 18) * 0.25 = 6 EUR. Total 9 EUR.
* `common`: b0 would cost 5 + 60 per MW (each MW must be relieved by b2), so it is not used;
  the relief 0.2 MW of b2 (+0.2 MW energy) leaves 1.2 MW of down to buy: b1 0.6 and producers
  0.6. (0.2*60 + 0.6*10 + 0.6*30) * 0.25 = 9 EUR.
* `shared_balancing`: the DSO relieves with b2 0.2 MW and cancels its interface deviation with
  b1 0.6 MW (b0 would need as much b2 again: it cancels nothing); 0.6 MW of deviation is left,
  (0.2*60 + 0.6*10) * 0.25 = 4.5 EUR; the TSO balances -1.0 + 0.4 = -0.6 MW with producers at
  30: 4.5 EUR. Total 9 EUR.

So (a) every DSO-aware scheme costs 9 EUR < 19.75 EUR (`centralized` plus the DSO's fix-up)
< 1001.75 EUR (`centralized` leaving the violation); (b) `centralized` (and the fix-up after
it) activates 0.6 MW counteracting the DSO, the others none.

Uncongested (the branch carries 0.3 MW): b0 0.6 + b1 0.4 leave it at 0.9 MW, so every scheme
buys that, 1.75 EUR (`shared_balancing`'s DSO through its interface row, its TSO buys
nothing), no violation, nothing counteracts: (c) the schemes cost the same.
"""

import numpy as np
import pytest
from test_lfm import offers, one_branch
from test_tso_dso import producers

from environment.markets.tso_dso import TSO_DSO, tso_first
from environment.markets.tso_dso_problem import BalancingProblem, delivered

DT = 0.25
AWARE = ("local", "shared_balancing", "common")


def designed(base_mw: float) -> BalancingProblem:
    lim = one_branch(base_mw=base_mw, limit_mw=1.0, sens=(1.0, 0.0))
    der = offers([0, 1, 0], [0.6, 0.6, 1.0], [5.0, 10.0, 60.0], direction=[-1, -1, 1])
    return BalancingProblem(np.array([-1.0]), producers(2.0, down_price=(-30.0, -40.0)), der,
                            lim, DT, 1000.0, -300.0, 5000.0, interface_mw=np.array([-1.0]))


def _all(p):
    return {**{n: TSO_DSO[n](p) for n in TSO_DSO}, "tso_first": tso_first(p)}


def test_congested_dso_aware_schemes_cost_less_than_centralized_plus_fix_up():
    p = designed(1.2)
    res = _all(p)
    for r in res.values():
        np.testing.assert_allclose(delivered(p, r), p.need_mw, atol=1e-9)
    cen, fix = res["centralized"], res["tso_first"]
    np.testing.assert_allclose(cen.der_tso_mw, [0.6, 0.4, 0.0], atol=1e-6)
    assert cen.unresolved_mw == pytest.approx(0.8, abs=1e-6)
    assert cen.procurement_cost_eur == pytest.approx(1001.75, abs=1e-6)
    np.testing.assert_allclose(fix.der_dso_mw, [0.0, 0.0, 0.8], atol=1e-6)
    assert fix.producer_down_mw.sum() == pytest.approx(0.8, abs=1e-6)
    assert fix.unresolved_mw == pytest.approx(0.0, abs=1e-6)
    assert fix.procurement_cost_eur == pytest.approx(19.75, abs=1e-6)
    for name in AWARE:
        r = res[name]
        assert r.procurement_cost_eur == pytest.approx(9.0, abs=1e-6), name
        assert r.unresolved_mw == pytest.approx(0.0, abs=1e-6), name
        assert r.der_tso_mw[0] + r.der_dso_mw[0] == pytest.approx(0.0, abs=1e-6), name
        assert r.der_tso_mw[2] + r.der_dso_mw[2] == pytest.approx(0.2, abs=1e-6), name
        assert r.procurement_cost_eur < fix.procurement_cost_eur < cen.procurement_cost_eur
    # who pays: the DSO buys the relief; shared balancing's DSO also the interface's b1
    assert res["local"].dso_cost_eur == pytest.approx(3.0, abs=1e-6)
    assert res["local"].tso_cost_eur == pytest.approx(6.0, abs=1e-6)
    assert res["shared_balancing"].dso_cost_eur == pytest.approx(4.5, abs=1e-6)
    assert res["shared_balancing"].tso_cost_eur == pytest.approx(4.5, abs=1e-6)


def test_centralized_counteracts_the_dso_and_it_is_counted():
    res = _all(designed(1.2))
    for name in ("centralized", "tso_first"):
        np.testing.assert_allclose(res[name].counteracting_mw, [[0.6, 0.0]], atol=1e-6)
    for name in AWARE:
        assert np.abs(res[name].counteracting_mw).max() == 0.0, name


def test_without_congestion_the_schemes_cost_the_same():
    p = designed(0.3)
    for name, r in _all(p).items():
        np.testing.assert_allclose(delivered(p, r), p.need_mw, atol=1e-9)
        assert r.procurement_cost_eur == pytest.approx(1.75, abs=1e-6), name
        np.testing.assert_allclose(r.der_tso_mw + r.der_dso_mw, [0.6, 0.4, 0.0], atol=1e-6)
        assert r.unresolved_mw == pytest.approx(0.0, abs=1e-6), name
        assert np.abs(r.counteracting_mw).max() == 0.0, name


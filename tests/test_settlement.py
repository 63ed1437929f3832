"""Balancing, imbalance settlement and aggregator-supplier compensation (issue 4).

The identities, for an independent aggregator whose devices sit in supplier b's perimeter,
per MTU t, with B the baseline it declared to b before the day-ahead auction and R what b's
customers' enrolled devices consumed, m = R - B (MWh moved into b's perimeter; negative:
taken out of it):

(I1) corrected perimeter: b is metered for its customers' other consumption plus B, whatever
     the aggregator did; so b's day-ahead purchase and its imbalance volume are those of a
     day in which the devices followed the baseline. The aggregator is metered for m.
(I2) no correction (`none`): b is metered for R, so its imbalance is m lower (b is long by
     what the aggregator took): the supplier bears the imbalance.
(I3) `central`: a neutral settlement entity pays b  -m * DA price  and charges the aggregator
     the same; it nets to zero every MTU. With (I1), b has bought B at the DA price and is
     refunded the DA price for what it did not deliver: it sources what its customers
     consumed at the DA price, as without the activation. What it loses is the retail margin
     on the energy not sold.
(I4) `contractual`/`regulated`/`corrected`: the aggregator pays b  -m * price  directly, at the
     bilateral price, the regulated tariff, or b's energy component of the supply price.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_model import check_payments

from agents.tso import Tso
from environment.balancingstage import _book
from environment.ledger import Ledger
from environment.markets.balancing import Activation, BalancingOffers, imbalance_prices
from environment.markets.lfm import FlexOffers
from environment.scenario import ScenarioError
from environment.settlement import SETTLEMENT_ENTITY
from experiments.run import run_scenario

BASE = {"prosumers.0.count": 120, "markets.intraday.enabled": False,
        "markets.platform.enabled": False}
QUIET = {"markets.lfm.enabled": False, "tso.der_balancing": False}
BRPS = ["stadtwerk", "greenpower"]


def _run(**overrides):
    return run_scenario(days=1, overrides={**BASE, **overrides}, planner=False, write=False,
                        figures=False)


@pytest.fixture(scope="module")
def runs():
    """Same seed, same day: the aggregator sells flexibility (LFM, balancing) under three
    regimes, and a quiet run where it sells none (its devices follow the baseline). Its asks
    follow the regime (tests/test_compensation.py); in the LFM they are the same under `none`
    and `central` (nothing owed net), so `none_lfm` and `central_lfm`, without balancing, are
    the same physical day."""
    lfm_only = {"tso.der_balancing": False}
    return {"central": _run(**{"settlement.compensation": "central"}),
            "none": _run(**{"settlement.compensation": "none"}),
            "none_lfm": _run(**{"settlement.compensation": "none", **lfm_only}),
            "central_lfm": _run(**{"settlement.compensation": "central", **lfm_only}),
            "regulated": _run(**{"settlement.compensation": "regulated"}),
            "quiet": _run(**{"settlement.compensation": "central", **QUIET})}


def _party(run, name, col):
    pos = run.tables["positions"]
    return pos.loc[pos["party"] == name, col].to_numpy()


def test_the_aggregator_moved_energy(runs):
    """Selling flexibility moves more energy off the baseline than the quiet day's heat-pump
    forecast errors alone."""
    moved = np.abs(_party(runs["central"], "flexco", "realised_mwh")).sum()
    quiet = np.abs(_party(runs["quiet"], "flexco", "realised_mwh")).sum()
    assert moved > 1e-3 and moved > quiet


def test_corrected_perimeter_keeps_supplier_volumes(runs):
    """(I1): the suppliers' metered volumes, DA positions and imbalances are those of the
    quiet day, although the aggregator moved their customers' devices."""
    for b in BRPS:
        for col in ("realised_mwh", "position_mwh", "imbalance_mwh"):
            np.testing.assert_allclose(_party(runs["central"], b, col),
                                       _party(runs["quiet"], b, col), rtol=0, atol=1e-9)


def test_without_correction_the_supplier_bears_the_imbalance(runs):
    """(I2): the same physical day, but each supplier is metered for what its customers'
    devices consumed: together they are longer by exactly what the aggregator moved, and the
    aggregator has no perimeter. (Runs without DER balancing, where its asks under `none` and
    `central` are the same: with balancing it asks the activation cost alone under `none`.)"""
    none, central = runs["none_lfm"], runs["central_lfm"]
    moved = _party(central, "flexco", "realised_mwh")
    diff = sum(_party(none, b, "imbalance_mwh") - _party(central, b, "imbalance_mwh")
               for b in BRPS)
    np.testing.assert_allclose(diff, -moved, rtol=0, atol=1e-9)
    assert np.abs(moved).sum() > 1e-3
    assert np.abs(_party(none, "flexco", "imbalance_mwh")).max() == 0.0
    np.testing.assert_allclose(none.tables["series"]["pv_mw"],
                               central.tables["series"]["pv_mw"], rtol=0, atol=0)


def test_central_compensation_refunds_the_da_price(runs):
    """(I3): the settlement entity nets zero every MTU; the suppliers together receive the DA
    value of the energy taken from them, and the aggregator pays exactly that."""
    run = runs["central"]
    led = run.ledger
    comp = led[led["market"] == "compensation"]
    assert len(comp)
    entity = comp.loc[comp["payee"] == SETTLEMENT_ENTITY].groupby("mtu")["eur"].sum() \
        .sub(comp.loc[comp["payer"] == SETTLEMENT_ENTITY].groupby("mtu")["eur"].sum(),
             fill_value=0.0)
    assert entity.abs().max() < 1e-9
    series = run.tables["series"].set_index("mtu")
    moved = _party(run, "flexco", "realised_mwh")
    expected = float((-moved * series["da_price"].to_numpy()).sum())
    to_brps = comp[comp["payee"].isin(BRPS)]["eur"].sum() - comp[comp["payer"].isin(BRPS)][
        "eur"].sum()
    from_agg = comp[comp["payer"] == "flexco"]["eur"].sum() - comp[comp["payee"] == "flexco"][
        "eur"].sum()
    assert to_brps == pytest.approx(expected, abs=1e-9)
    assert from_agg == pytest.approx(expected, abs=1e-9)
    summary = run.summary["settlement"]
    received = sum(summary["brps"][b]["compensation_received_eur"] for b in BRPS)
    assert received == pytest.approx(expected, abs=1e-9)
    assert summary["aggregators"]["flexco"]["compensation_paid_eur"] == pytest.approx(
        expected, abs=1e-9)


def test_central_supplier_sources_at_the_da_price(runs):
    """(I1) + (I3): the supplier's day-ahead purchase is that of the quiet day, and its
    purchases less the refund equal the DA cost of what it actually delivered from the
    baseline."""
    central, quiet = runs["central"], runs["quiet"]
    for run in (central, quiet):
        check_payments(run)
    led_c, led_q = central.ledger, quiet.ledger
    for b in BRPS:
        da_c = led_c[(led_c["market"] == "dayahead") & (led_c["payer"] == b)]["eur"].sum()
        da_q = led_q[(led_q["market"] == "dayahead") & (led_q["payer"] == b)]["eur"].sum()
        assert da_c == pytest.approx(da_q, abs=1e-9)
    np.testing.assert_allclose(central.tables["series"]["da_price"],
                               quiet.tables["series"]["da_price"], rtol=0, atol=0)


def test_regulated_compensation_is_paid_at_the_tariff(runs):
    """(I4): one row per supplier and MTU at the regulator's tariff, aggregator to supplier."""
    run = runs["regulated"]
    comp = run.ledger[run.ledger["market"] == "compensation"]
    assert len(comp) and (comp["price_eur_mwh"] == run.scenario.settlement
                          .regulated_price_eur_mwh).all()
    assert set(comp["payer"]) == {"flexco"} and set(comp["payee"]) <= set(BRPS)
    moved = _party(run, "flexco", "realised_mwh")
    assert np.abs(moved).sum() > 1e-3
    assert comp["mwh"].sum() == pytest.approx(-moved.sum(), abs=1e-9)


def test_no_compensation_rows_without_a_regime(runs):
    assert not (runs["none"].ledger["market"] == "compensation").any()


def test_supplier_owned_aggregator_enrols_own_customers_and_pays_nobody():
    run = _run(**{"aggregators.0.kind": "supplier", "aggregators.0.supplier": "greenpower",
                  "settlement.compensation": "central"})
    f = run.model.fleet
    members = f.aggregator == 0
    assert members.any() and (f.brp[members] == 1).all()
    assert not (run.ledger["market"] == "compensation").any()


def test_der_balancing_moves_devices_and_keeps_states_of_charge_in_range():
    """DER activated by the TSO change the aggregator's devices (its battery and EV power
    differ from a day without DER balancing) and every battery stays within its capacity."""
    on = _run(**{"markets.lfm.enabled": False})
    off = _run(**{"markets.lfm.enabled": False, "tso.der_balancing": False})
    s_on, s_off = on.tables["series"], off.tables["series"]
    assert s_on["der_balancing_up_mw"].abs().sum() > 0
    assert (s_off["der_balancing_up_mw"] == 0).all()
    assert not np.allclose(s_on["battery_mw"] + s_on["ev_mw"] + s_on["heat_pump_mw"],
                           s_off["battery_mw"] + s_off["ev_mw"] + s_off["heat_pump_mw"])
    f = on.model.fleet
    assert (f.soc >= -1e-9).all() and (f.soc <= f.batt_mwh + 1e-9).all()
    led = on.ledger
    der = led[led["market"] == "balancing_der"]
    assert len(der) and set(der["payer"]) | set(der["payee"]) <= {"tso", "flexco"}


def test_der_balancing_offers_are_deliverable():
    """Offers of a balancing block can all be activated at once, with the rebound after the
    block (`Aggregator.deliverable`): over three seeds of two days the re-plans miss nothing
    of what was activated. (With each MTU's energy budgeted within the block but no rebound,
    0.445 of 0.895 MWh were missed once a miss replaced by a later commitment stayed
    counted, 4.8% when it did not.) Under `central` compensation, where the aggregator owes
    nothing net and bids the DA price +- its activation cost (under the default `corrected`
    it asks the later MTUs' mean price and is activated little)."""
    activated = missed = 0.0
    for seed in (1, 2, 3):
        run = run_scenario(days=2, seed=seed, overrides={"prosumers.0.count": 80,
                                                         "settlement.compensation": "central"},
                           planner=False, write=False, figures=False)
        activated += (run.summary["settlement"]["der_balancing_up_mwh"]
                      + run.summary["settlement"]["der_balancing_down_mwh"])
        missed += run.tables["aggregators"]["missed_mw"].sum() * 0.25
    assert activated > 0.5
    assert missed <= 0.01 * activated


def test_capacity_held_for_the_tso_is_offered_in_balancing_and_paid_every_round():
    """Sequential coupling's TSO gate holds up to `tso.der_reserve_mw` per MTU and direction at
    D-1 (never more), paid per MW and hour, and offered in real-time balancing."""
    run = _run(**{"markets.coupling": "sequential", "tso.der_reserve_mw": 0.02,
                  "tso.capacity_price_eur_mw_h": 5.0})
    led = run.ledger
    cap = led[led["market"] == "balancing_capacity"]
    flex = run.tables["flex"]
    held = (flex["tso_held_up_mw"] + flex["tso_held_down_mw"]).sum() * 0.25
    assert held > 0 and cap["mwh"].sum() == pytest.approx(held, rel=1e-9)
    assert cap["eur"].sum() == pytest.approx(5.0 * held, rel=1e-9)
    assert (led["market"] == "balancing_der").any()
    per_mtu = flex.groupby(["mtu", "stage"])[["tso_held_up_mw", "tso_held_down_mw"]].sum()
    assert (per_mtu.to_numpy() <= 0.02 + 1e-9).all()
    assert set(flex.loc[flex["tso_held_up_mw"] + flex["tso_held_down_mw"] > 0, "stage"]) \
        == {"da"}


def test_imbalance_price_is_the_da_price_where_nothing_was_activated():
    nan = np.full(3, np.nan)
    act = Activation(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros(3), np.zeros(3), nan, nan)
    da = np.array([50.0, 60.0, 70.0])
    for pricing in ("single", "dual"):
        short, long_ = imbalance_prices(act, np.array([0.05, -0.05, 0.0]), da, pricing)
        np.testing.assert_array_equal(short, da)
        np.testing.assert_array_equal(long_, da)


def test_tso_and_dso_each_pay_their_own_price_for_a_shared_bid():
    led = Ledger()
    tso, dso, agg = (led.account(n, c) for n, c in (("tso", "tso"), ("dso", "dso"),
                                                    ("agg", "aggregators")))
    der = FlexOffers(np.array([7]), np.array([0]), np.array([0]), np.array([1]),
                     np.array([2.0]), np.array([30.0]))
    res = SimpleNamespace(der_tso_mw=np.array([1.0]), der_dso_mw=np.array([1.0]),
                          der_tso_price=np.array([100.0]), der_dso_price=np.array([30.0]))
    model = SimpleNamespace(ledger=led, account_of={7: agg}, tso=SimpleNamespace(account=tso),
                            dso=SimpleNamespace(account=dso))
    _book(model, SimpleNamespace(dt_h=1.0, mtu0=0), der, res)
    paid = led.frame().groupby("payer", observed=True)["eur"].sum()
    assert paid["tso"] == 100.0 and paid["dso"] == 30.0


def test_compensation_is_settled_before_the_dsos_red_actions():
    """Energy the DSO moved in RED is the DSO's (it is balance responsible for it and pays for
    it: here, under conditional coupling, it steers the aggregator's contracted devices first);
    the aggregator's compensation to the supplier leaves it out. (Branches are limited to 80%
    of their rating: the aggregator's plan spreads its consumption over the cheap hours, and
    at full rating nothing is left for RED.)"""
    run = run_scenario(days=1, overrides={
        "prosumers.0.count": 120, "markets.lfm.enabled": False, "prosumers.0.ev.share": 0.9,
        "prosumers.0.heat_pump.share": 0.9, "prosumers.0.heat_pump.kw_mean": 6.0,
        "settlement.compensation": "regulated", "grid.loading_limit": 0.8},
        planner=False, write=False, figures=False)
    agg = run.model.aggregators[0]
    assert run.summary["flexibility"]["dso_cost"]["direct_control_eur"] > 0
    assert not np.allclose(agg.settled_by_brp, agg.real_by_brp)   # RED touched its devices
    comp = run.ledger[run.ledger["market"] == "compensation"]
    for b, name in enumerate(BRPS):
        rows = comp[(comp["payee"] == name) | (comp["payer"] == name)]
        sign = np.where(rows["payee"] == name, 1.0, -1.0)
        expected = -(agg.settled_by_brp[b] - agg.declared[b]).sum() * 0.25
        assert (sign * rows["mwh"].to_numpy()).sum() == pytest.approx(expected, abs=1e-9)


def test_escalating_imbalance_price():
    """The price moves against the aggravating side by the escalation per MW of system
    imbalance: a large imbalance costs more per MWh than a small one."""
    system = np.array([0.5, 2.0, -0.5, -2.0, 0.0])
    act = Activation(np.zeros((1, 5)), np.zeros((1, 5)), np.zeros(5), np.zeros(5),
                     np.full(5, 100.0), np.full(5, 40.0))
    da = np.full(5, 60.0)
    short, long_ = imbalance_prices(act, system, da, "single", escalation=10.0)
    np.testing.assert_allclose(short, [105.0, 120.0, 35.0, 20.0, 60.0])
    np.testing.assert_allclose(long_, short)
    short, long_ = imbalance_prices(act, system, da, "dual", escalation=10.0)
    np.testing.assert_allclose(short, [105.0, 120.0, 60.0, 60.0, 60.0])
    np.testing.assert_allclose(long_, [60.0, 60.0, 35.0, 20.0, 60.0])


@pytest.mark.parametrize("override, needle", [
    ({"settlement.compensation": "swiss"}, "settlement.compensation = 'swiss'"),
    ({"settlement.compensation": "central", "settlement.perimeter_correction": False},
     "perimeter_correction = False with compensation 'central'"),
    ({"aggregators.0.kind": "supplier"}, "a supplier aggregator names its BRP"),
    ({"aggregators.0.kind": "supplier", "aggregators.0.supplier": "nobody"},
     "aggregators[0].supplier = 'nobody': not a BRP"),
    ({"markets.tso_dso_scheme": "federal"}, "markets.tso_dso_scheme = 'federal'"),
    ({"tso.escalation_eur_mwh_per_mw": -1.0}, "tso.escalation_eur_mwh_per_mw = -1.0"),
    ({"aggregators.0.strategy_params": {"markup": 1.0}},
     "aggregators[0].strategy_params = {'markup': 1.0}"),
])
def test_bad_settlement_fields_name_the_field(override, needle):
    with pytest.raises(ScenarioError) as err:
        _run(**override)
    assert needle in str(err.value)


@pytest.mark.parametrize("scheme", ["centralized", "common"])
def test_rebound_of_der_activations_stays_in_grid_headroom_where_the_scheme_sees_the_grid(
        scheme, monkeypatch):
    """After a balancing activation the aggregator re-plans; a scheme that respects
    distribution limits bounds the rebound by the grid headroom, `centralized` does not."""
    from agents.aggregator import Aggregator
    from environment.markets.tso_dso import GRID_AWARE

    assert GRID_AWARE == {"local", "shared_balancing", "common"}
    bounds = []
    original = Aggregator.redispatch

    def spy(self, ctx, changed):
        bounds.extend(changed.values())
        return original(self, ctx, changed)

    monkeypatch.setattr(Aggregator, "redispatch", spy)
    import environment.balancingstage as stage

    calls = []
    apply = stage._apply
    monkeypatch.setattr(stage, "_apply", lambda *a: (calls.append(a[-1]), apply(*a)))
    _run(**{"markets.tso_dso_scheme": scheme, "markets.lfm.enabled": False})
    assert calls and bounds
    rooms = [r for r in calls if r is not None]
    if scheme == "centralized":
        assert not rooms
    else:
        assert rooms and all(np.isfinite(r).any() for r in rooms)
        assert any(np.isfinite(hi).any() or np.isfinite(lo).any() for hi, lo in bounds)


def test_direction_rule_by_hand():
    """Short system, marginal upward bid 27 against a DA price of 92: short parties pay 92,
    not 27 (the wrong-side case seen with continuous intraday). Long system, marginal
    downward bid 120 against DA 60: long parties receive 60. Sides where the marginal bid is
    already beyond the DA price (short 150 against 92, long 20 against 60) keep it; dual
    pricing pays the helping side the DA price as before."""
    system = np.array([0.5, -0.5, 0.5, -0.5, 0.0])
    act = Activation(np.zeros((1, 5)), np.zeros((1, 5)), np.zeros(5), np.zeros(5),
                     np.array([27.0, np.nan, 150.0, np.nan, np.nan]),
                     np.array([np.nan, 120.0, np.nan, 20.0, np.nan]))
    da = np.array([92.0, 60.0, 92.0, 60.0, 55.0])
    short, long_ = imbalance_prices(act, system, da, "single")
    np.testing.assert_allclose(short, [92.0, 60.0, 150.0, 20.0, 55.0])
    np.testing.assert_allclose(long_, short)
    short, long_ = imbalance_prices(act, system, da, "dual")
    np.testing.assert_allclose(short, [92.0, 60.0, 150.0, 60.0, 55.0])
    np.testing.assert_allclose(long_, [92.0, 60.0, 92.0, 20.0, 55.0])


prices = st.floats(-400, 3000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-3, 3), prices, prices, prices, st.floats(0, 2),
                          st.floats(0, 2), st.one_of(st.none(), prices)),
                min_size=1, max_size=8),
       st.sampled_from(["single", "dual"]), st.floats(0, 50))
def test_imbalance_price_never_on_the_wrong_side_of_the_day_ahead_price(rows, pricing,
                                                                        escalation):
    """Whatever the producers' balancing offers, the DER price of an earlier pass, the DA
    price and the escalation: a short system's price is at least the DA price, a long
    system's at most it (single pricing: the one price; dual: the aggravating side's)."""
    short_mw, da, up_p, down_p, up_q, down_q, der = (np.array(c, dtype=float) for c in zip(
        *[(r[0], r[1], r[2], min(r[3], r[2]), r[4], r[5], np.nan if r[6] is None else r[6])
          for r in rows], strict=True))
    offers = BalancingOffers(np.array([1]), up_p[None, :], up_q[None, :], down_p[None, :],
                             down_q[None, :])
    tso = SimpleNamespace(cfg=SimpleNamespace(emergency_price_eur_mwh=1000.0, pricing=pricing,
                                              escalation_eur_mwh_per_mw=escalation),
                          emergency_down_price=-500.0)
    _, p_short, p_long = Tso.balance(tso, offers, short_mw, da, short_mw, der)
    short, long_ = short_mw > 1e-12, short_mw < -1e-12
    assert (p_short[short] >= da[short] - 1e-9).all()
    assert (p_long[long_] <= da[long_] + 1e-9).all()


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["uniform_price", "continuous"]),
       st.sampled_from([1.0, 0.8]))
def test_direction_rule_holds_over_random_days(seed, clearing, loading_limit):
    """Random days of the model (seed, intraday mechanism, a congested grid or not): every
    MTU's imbalance price is on the system's side of the DA price. Over three days of the
    default week 7, 37 and 12 MTUs of 288 were not (default, continuous intraday, branches
    limited to 80%), none since."""
    run = run_scenario(days=1, seed=seed, overrides={
        "prosumers.0.count": 80, "markets.intraday.clearing": clearing,
        "grid.loading_limit": loading_limit}, planner=False, write=False, figures=False)
    s = run.tables["series"]
    short, long_ = s["system_short_mw"] > 1e-12, s["system_short_mw"] < -1e-12
    assert (s.loc[short, "imbalance_price_short"] >= s.loc[short, "da_price"] - 1e-9).all()
    assert (s.loc[long_, "imbalance_price_long"] <= s.loc[long_, "da_price"] + 1e-9).all()


# --- baseline rules ---------------------------------------------------------------------------


def _history():
    """Five weekdays of one supplier's metered device consumption (MW in two MTUs), latest
    first: energies 2, 4, 1, 4, 1."""
    from environment.markets.baseline import History

    h = History()
    for day, reading in zip((5, 4, 3, 2, 1), ([1, 1], [2, 2], [0, 1], [3, 1], [1, 0]),
                            strict=True):
        h.record(day, False, np.array([reading], float))
    h.record(0, True, np.array([[9.0, 9.0]]))   # a weekend day: not similar
    return h


def test_baseline_rules_by_hand():
    """On day 6 (a weekday): `historical` 4 of 5 takes the four highest-energy similar days
    (4, 4, 2 and the later of the two at 1): per MTU (2+3+1+0)/4 = 1.5 and (2+1+1+1)/4 =
    1.25; with fewer than 4 similar days it falls back to the devices' uncontrolled forecast.
    `rolling` over 3 days: (1+2+0)/3 = 1 and (1+2+1)/3 = 4/3. `declared` is the declaration.
    `metered` holds the reading of the MTU before each activation block: reading 5 6 7 8 9
    with activations at MTUs 1, 2 and 4 gives 0 5 5 0 8 over a declared 0."""
    from environment.markets.baseline import BASELINES, held_before
    from environment.scenario import Baseline

    h, fallback, declared = _history(), np.array([[7.0, 7.0]]), np.array([[0.5, 0.5]])
    four_of_five = Baseline(rule="historical")
    past = h.similar(6, False, four_of_five.n_days)
    assert len(past) == 5
    np.testing.assert_allclose(BASELINES["historical"](four_of_five, declared, past, fallback),
                               [[1.5, 1.25]])
    np.testing.assert_allclose(BASELINES["historical"](four_of_five, declared, past[:3],
                                                       fallback), fallback)
    rolling = Baseline(rule="rolling", days=3)
    np.testing.assert_allclose(BASELINES["rolling"](rolling, declared,
                                                    h.similar(6, False, rolling.n_days),
                                                    fallback), [[1.0, 4 / 3]])
    np.testing.assert_allclose(BASELINES["declared"](Baseline(), declared, past, fallback),
                               declared)
    active = np.array([False, True, True, False, True])
    np.testing.assert_allclose(held_before(np.array([[5.0, 6, 7, 8, 9]]), active,
                                           np.zeros((1, 5))), [[0, 5, 5, 0, 8]])
    assert len(h.similar(6, True, 5)) == 1


def _inflation_twin(rule: str, compensation: str):
    from experiments.twin import run_twin

    over = {"aggregators.0.strategy": "baseline_inflation",
            "settlement.compensation": compensation,
            **{f"settlement.baseline.{m}.rule": rule for m in ("dayahead", "lfm", "balancing")}}
    if compensation == "none":
        over["settlement.perimeter_correction"] = True
    return run_twin("default", days=3, overrides=over)


def test_baseline_inflation_profits_under_a_declared_baseline_and_loses_under_history():
    """Twin runs of three days (inflation against the truthful aggregator, same seed), with the
    aggregator's perimeter corrected and no compensation. Declared baseline: the inflated
    declaration is the baseline, so the gap is energy it sells at the day-ahead price without
    moving it, and the suppliers, metered for the declaration, pay for it: +153.0 EUR to the
    aggregator, -142.0 to the suppliers (day-ahead demand and supply rise by the same phantom
    MWh). The other 11 EUR are physical: its asks price the energy its corrected perimeter
    owns against the inflated baseline, so the twins activate differently (prosumers -15.7,
    DSO +1.5, outside energy +2.7); with asks that ignored it the transfer was exact, +115.5
    and -115.5. Historical baseline (4 of 5): its moves are measured
    against its metered history; the phantom energy it sold is its own imbalance: -17.5 EUR.
    Under the `corrected` compensation the declared inflation loses too (-97.6 EUR: it pays
    the suppliers' energy component, 110, for every phantom MWh it sold at about 80)."""
    declared = _inflation_twin("declared", "none")
    assert declared.gaming_profit_eur["flexco"] > 50.0
    change = declared.by_class["change"]
    assert change["brps"] < -0.9 * change["aggregators"]   # the suppliers pay for it
    assert abs(declared.identity_residual_eur) < 1e-6
    historical = _inflation_twin("historical", "none")
    assert historical.gaming_profit_eur["flexco"] < 0.0
    assert _inflation_twin("declared", "corrected").gaming_profit_eur["flexco"] < 0.0


def test_truthful_aggregator_keeps_its_arbitrage_under_a_historical_baseline():
    """The default week with the `corrected` compensation. Declared (its plan as the
    baseline), the suppliers buy its whole schedule day-ahead and the arbitrage value is
    theirs: the truthful aggregator's margin is -261.7 EUR (fees 158.9, wear 49.1, imbalance
    139.6). Under the historical rule (4 of 5 similar days; the devices' uncontrolled forecast
    until it has them) it sells the energy it shifts against that baseline and earns 387.1
    EUR day-ahead, compensating the suppliers at a flat price for energy it only moved in
    time: +96.6 EUR."""
    run = run_scenario(days=7, planner=False, write=False, figures=False, overrides={
        f"settlement.baseline.{m}.rule": "historical" for m in ("dayahead", "lfm",
                                                                "balancing")})
    led = run.ledger
    margin = led.loc[led["payee"] == "flexco", "eur"].sum() \
        - led.loc[led["payer"] == "flexco", "eur"].sum()
    assert margin >= 0.0
    agg = run.model.aggregators[0]   # on the last day: measured against its history
    np.testing.assert_allclose(agg.settlement_baseline, agg.expected["dayahead"])


def test_metered_baseline_holds_the_reading_before_each_activation():
    """Real-time balancing measured `metered` (the local market too): at each MTU the TSO or
    DSO activated the aggregator, the baseline is its metered reading of the MTU before the
    block of activations; elsewhere its declaration; money still balances."""
    from environment.markets.baseline import held_before

    run = run_scenario(days=1, overrides={"prosumers.0.count": 80,
                                          "settlement.baseline.balancing.rule": "metered",
                                          "settlement.baseline.lfm.rule": "metered"},
                       planner=False, write=False, figures=False)
    model = run.model
    agg = model.aggregators[0]
    positions = run.tables["positions"]
    act = positions.loc[positions["party"] == "flexco", "activated_mwh"].to_numpy() != 0
    assert act.any()
    expected = held_before(agg.settled_by_brp, act, agg.declared)
    np.testing.assert_allclose(agg.settlement_baseline[:, act], expected[:, act])
    check_payments(run)

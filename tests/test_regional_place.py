"""The regional balance place (environment/markets/regional.py): two zones worked by hand under
each sharing option, properties over random periods, and the zonal model's real time on the
shipped two_zone_sharing scenario (ledger, energy balance per zone, headroom, summary)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from environment.markets.regional import BalancingPeriod, share
from environment.markets.registry import SHARING, get_sharing
from environment.transmission.scenario import load_tx_scenario, tx_with_overrides
from environment.transmission.zonal_model import transmission_model
from experiments.run import run_scenario, scenario_path

OPTIONS = ("none", "imbalance_netting", "common_merit_order")


def period(short, zone, up_price, up_mw, down_price, down_mw, fwd, back):
    """Zones A (0) and B (1) joined by one interconnector A -> B with headroom `fwd` A -> B
    and `back` B -> A; emergency energy at +-1000 EUR/MWh."""
    a = lambda v: np.asarray(v, float)  # noqa: E731
    return BalancingPeriod(a(short), np.asarray(zone), a(up_price), a(up_mw), a(down_price),
                           a(down_mw), np.array([0]), np.array([1]), a([fwd]), a([back]),
                           1000.0, -1000.0)


def test_the_sharing_options_are_registered_by_name():
    assert set(OPTIONS) <= set(SHARING)
    with pytest.raises(KeyError, match="unknown sharing option 'pooling'"):
        get_sharing("pooling")


def test_reserve_sharing_lowers_the_cost_by_the_derived_amount_within_the_headroom():
    """A is short 100 MW with up offers 60 MW at 80 and 100 MW at 120; B is balanced with
    200 MW of up at 50; 70 MW of headroom B -> A.

    Alone: A takes 60 x 80 + 40 x 120 = 4,800 + 4,800 = 9,600 EUR; B nothing.
    Common merit order: B's 50 first, as much as the headroom lets through, 70 MW
    (70 x 50 = 3,500); A's 80 for the last 30 MW (2,400): 5,900 EUR, a saving of 3,700.
    The interconnector binds, so the zones' marginal prices part: A 80, B 50; the 70 MWh are
    settled at (80 + 50) / 2 = 65, 4,550 EUR from A to B. A: 2,400 + 4,550 = 6,950 shared,
    9,600 - 6,950 = 2,650 saved; B: 3,500 - 4,550 = -1,050, 1,050 saved; 2,650 + 1,050 = 3,700.
    Netting has nothing to net (B is balanced): no saving."""
    p = period([100, 0], [0, 0, 1], [80, 120, 50], [60, 100, 200], [0, 0, 0], [0, 0, 0],
               500, 70)
    cmo = share("common_merit_order", p)
    assert cmo.alone_eur == pytest.approx([9600, 0])
    assert cmo.flow_mw == pytest.approx([-70])
    assert cmo.up_mw == pytest.approx([30, 0, 70])
    assert cmo.price_eur_mwh == pytest.approx([65])
    assert cmo.shared_eur == pytest.approx([6950, -1050])
    assert cmo.value_eur == pytest.approx([2650, 1050])
    assert cmo.alone_eur.sum() - cmo.shared_eur.sum() == pytest.approx(3700)
    assert share("imbalance_netting", p).value_eur == pytest.approx([0, 0])
    assert share("none", p).value_eur == pytest.approx([0, 0])
    wide = period([100, 0], [0, 0, 1], [80, 120, 50], [60, 100, 200], [0, 0, 0], [0, 0, 0],
                  500, 500)
    # with room for all 100 MW B covers A at 50 (5,000): one price area, price 50
    free = share("common_merit_order", wide)
    assert free.flow_mw == pytest.approx([-100])
    assert free.price_eur_mwh == pytest.approx([50])
    assert free.value_eur == pytest.approx([9600 - 5000, 0])


def test_imbalance_netting_of_plus_x_and_minus_y():
    """A short X = 100 (up at 90, down at 40), B long Y = 60 (up at 50, down at 30: the TSO is
    paid 30 for each MWh B's plant takes back), headroom B -> A 80.

    Alone: A 100 x 90 = 9,000; B -60 x 30 = -1,800; 7,200 EUR.
    Netting: min(X, Y, headroom) = 60 MW flow B -> A; A buys 40 x 90 = 3,600; 3,600 EUR,
    saving 60 x (90 - 30) = 3,600. B activated nothing, so the 60 MWh settle at A's marginal
    price 90 (5,400 EUR): A 3,600 + 5,400 = 9,000 (saves 0), B -5,400 (saves 3,600).
    With headroom 50 only 50 MW net: A 50 x 90 = 4,500, B -10 x 30 = -300, 4,200 EUR, saving
    50 x 60 = 3,000, settled at (90 + 30) / 2 = 60 (3,000 EUR): 1,500 each.
    Common merit order (headroom 80): netting 60 and B's up at 50 for 20 more MW through the
    rest of the headroom, A's 90 for the last 20: 20 x 50 + 20 x 90 = 2,800 EUR, saving
    4,400; flow 80 = headroom, prices A 90 and B 50, settled at 70 (5,600 EUR): A 1,800 +
    5,600 = 7,400 (saves 1,600), B 1,000 - 5,600 = -4,600 (saves 2,800)."""
    args = ([100, -60], [0, 1], [90, 50], [200, 200], [40, 30], [200, 200], 500)
    net = share("imbalance_netting", period(*args, 80))
    assert net.flow_mw == pytest.approx([-60])
    assert net.alone_eur == pytest.approx([9000, -1800])
    assert net.shared_eur == pytest.approx([9000, -5400])
    assert net.value_eur.sum() == pytest.approx(3600)
    tight = share("imbalance_netting", period(*args, 50))
    assert tight.flow_mw == pytest.approx([-50])
    assert tight.activation_eur == pytest.approx([4500, -300])
    assert tight.value_eur == pytest.approx([1500, 1500])
    cmo = share("common_merit_order", period(*args, 80))
    assert cmo.flow_mw == pytest.approx([-80])
    assert cmo.activation_eur == pytest.approx([1800, 1000])
    assert cmo.value_eur == pytest.approx([1600, 2800])
    assert share("none", period(*args, 80)).value_eur == pytest.approx([0, 0])


def test_netting_can_cost_more_than_balancing_alone_the_common_merit_order_cannot():
    """A short 50 with up at 85, B long 50 with down at 110 (a peaker the TSO is paid 110 to
    turn down): alone 50 x 85 - 50 x 110 = -1,250 EUR; netting forgoes both activations
    (0 EUR, 1,250 dearer); the common merit order keeps them (-1,250)."""
    p = period([50, -50], [0, 1], [85, 200], [100, 100], [10, 110], [100, 100], 100, 100)
    assert share("none", p).shared_eur.sum() == pytest.approx(-1250)
    assert share("imbalance_netting", p).shared_eur.sum() == pytest.approx(0)
    assert share("common_merit_order", p).shared_eur.sum() == pytest.approx(-1250)


def balanced(p: BalancingPeriod, r) -> np.ndarray:
    """Per zone: activations plus imports minus the imbalance (0 when it balances)."""
    z = p.zones
    return (np.bincount(p.offer_zone, r.up_mw - r.down_mw, z) + r.emergency_up_mw
            - r.emergency_down_mw + p.net_import(r.flow_mw) - p.short_mw)


@st.composite
def periods(draw):
    """2-4 zones in a chain (a ring from 3), 1-3 offers per zone, up prices 50-150 above down
    prices 0-50 (offers at cost after a merit-order dispatch), any headroom."""
    z = draw(st.integers(2, 4))
    n = draw(st.lists(st.integers(1, 3), min_size=z, max_size=z))
    k = sum(n)
    zone = np.repeat(np.arange(z), n)
    money = st.floats(0, 50, allow_nan=False)
    mw = st.floats(0, 300, allow_nan=False)
    ring = z >= 3 and draw(st.booleans())
    ic_from = np.arange(z if ring else z - 1)
    e = len(ic_from)
    arr = lambda s, m: np.array(draw(st.lists(s, min_size=m, max_size=m)))  # noqa: E731
    return BalancingPeriod(arr(st.floats(-400, 400, allow_nan=False), z), zone,
                           50 + 2 * arr(money, k), arr(mw, k), arr(money, k), arr(mw, k),
                           ic_from, (ic_from + 1) % z, arr(mw, e), arr(mw, e), 1000.0, -1000.0)


@settings(max_examples=60, deadline=None)
@given(periods())
def test_sharing_never_costs_more_and_stays_within_the_headroom(p):
    out = {o: share(o, p) for o in OPTIONS}
    alone = out["none"].shared_eur.sum()
    assert out["common_merit_order"].shared_eur.sum() <= alone + 1e-6
    assert out["common_merit_order"].shared_eur.sum() \
        <= out["imbalance_netting"].shared_eur.sum() + 1e-6
    assert out["imbalance_netting"].shared_eur.sum() <= alone + 1e-6
    for r in out.values():
        assert (r.flow_mw <= p.headroom_fwd_mw + 1e-6).all()
        assert (-r.flow_mw <= p.headroom_back_mw + 1e-6).all()
        assert np.abs(balanced(p, r)).max() < 1e-6
        assert r.settlement_eur.sum() == pytest.approx(0, abs=1e-6)
        assert (r.alone_eur == out["none"].alone_eur).all()


# --- the zonal model's real time: the shipped scenario -----------------------------------------

@pytest.fixture(scope="module")
def runs():
    s = load_tx_scenario(scenario_path("two_zone_sharing"))
    return {o: transmission_model(tx_with_overrides(s, {"balancing.sharing": o})).run()
            for o in OPTIONS}


def test_the_options_order_by_cost_on_the_same_imbalances(runs):
    zones = {o: m.tables()["zones"] for o, m in runs.items()}
    imb = zones["none"]["imbalance_mw"].to_numpy()
    assert np.abs(imb).max() > 10       # forecast errors leave something to balance
    for o in OPTIONS:
        assert (zones[o]["imbalance_mw"].to_numpy() == imb).all()
    cost = {o: z["balancing_shared_eur"].sum() for o, z in zones.items()}
    assert cost["common_merit_order"] < cost["none"]
    assert cost["common_merit_order"] <= cost["imbalance_netting"] + 1e-6
    assert zones["none"]["sharing_value_eur"].abs().max() < 1e-9


def test_real_time_balances_every_zone_within_the_headroom(runs):
    for m in runs.values():
        t = m.tables()
        zones, ics, prod = t["zones"], t["interconnectors"], t["producers"]
        head_fwd = ics["limit_mw"] - ics["flow_da_mw"]
        head_back = ics["reverse_limit_mw"] + ics["flow_da_mw"]
        assert (ics["balancing_flow_mw"] <= head_fwd + 1e-6).all()
        assert (-ics["balancing_flow_mw"] <= head_back + 1e-6).all()
        zone_of = {p.name: m.zones.names[z] for p, z in zip(m.producers, m.prod_zone,
                                                             strict=True)}
        gen = prod.assign(zone=prod["producer"].map(zone_of)).groupby(["step", "zone"])[
            "final_mw"].sum()
        flow = ics.set_index("step")["balancing_flow_mw"]
        for row in zones.itertuples():
            sign = 1 if row.zone == "east" else -1       # the one interconnector west -> east
            supply = gen[(row.step, row.zone)] + row.net_import_mw + sign * flow[row.step] \
                + row.emergency_mw
            assert supply == pytest.approx(row.real_load_mw, abs=1e-6)


def test_the_ledger_closes_and_the_tsos_keep_only_the_congestion_rent(runs):
    m = runs["common_merit_order"]
    led = m.ledger.frame()
    bal = m.ledger.balances()
    assert abs(bal.sum()) < 1e-6
    assert abs(bal["exchange"]) < 1e-6
    rent = m.tables()["interconnectors"]["congestion_rent_eur"].sum()
    assert rent == pytest.approx(14 * 25 * 450)   # 14 day hours, (110 - 85) x 450 MW
    assert bal["tso_west"] == pytest.approx(rent / 2)
    assert bal["tso_east"] == pytest.approx(rent / 2)
    assert {"regional_balancing", "balancing_charge", "congestion_rent"} <= set(led["market"])


def test_summary_regional_block_and_the_dictionary(runs):
    from experiments import dictionary

    r = run_scenario("two_zone_sharing", write=False, figures=False)
    assert dictionary.undocumented(r.summary, r.tables) == []
    reg = r.summary["regional"]
    b = reg["balancing"]
    assert b["value_eur"] == pytest.approx(b["alone_eur"] - b["shared_eur"])
    assert b["value_eur"] > 0
    assert sum(t["value_eur"] for t in b["by_tso"].values()) == pytest.approx(b["value_eur"])
    ic = reg["interconnectors"]["west_east"]
    assert ic["hours_at_limit"] == 14 and ic["congestion_rent_eur"] == pytest.approx(157500)
    assert reg["zones"]["west"]["da_price_eur_mwh"]["max"] == 85
    assert reg["zones"]["east"]["da_price_eur_mwh"]["max"] == 110


def test_no_forecast_error_leaves_nothing_to_balance():
    s = load_tx_scenario(scenario_path("two_zone_sharing"))
    calm = tx_with_overrides(s, {"zones.0.load_error_sd": 0, "zones.0.renewable_error_sd": 0,
                                 "zones.1.load_error_sd": 0})
    z = transmission_model(calm).run().tables()["zones"]
    assert (z["imbalance_mw"] == 0).all() and (z["balancing_shared_eur"] == 0).all()


def chain() -> BalancingPeriod:
    """Zones A, B, C, D in a chain A - B - C - D (headroom 100 MW each way); A long 10, D
    short 10, B and C balanced; one offer per zone: up at 50, 60, 70, 80 and down at 40, 50,
    60, 70 (100 MW each); emergency energy at 4,000 / -500 EUR/MWh."""
    a = lambda v: np.asarray(v, float)  # noqa: E731
    return BalancingPeriod(a([-10, 0, 0, 10]), np.arange(4), a([50, 60, 70, 80]),
                           np.full(4, 100.0), a([40, 50, 60, 70]), np.full(4, 100.0),
                           np.array([0, 1, 2]), np.array([1, 2, 3]), np.full(3, 100.0),
                           np.full(3, 100.0), 4000.0, -500.0)


def test_the_common_merit_order_does_not_counter_activate_in_a_chain():
    """The chain above. Alone: A is paid 10 x 40 = 400 for turning down, D pays 10 x 80 = 800:
    400 EUR. Netting sends A's 10 MW to D through B and C: 0 EUR. The zones together are
    balanced, so the common merit order may open only A's down offer (A is long) and D's up
    offer (D is short): any activation pairs D's up at 80 with A's down at 40, 40 EUR/MWh
    dearer than netting, so it nets: 10 MW on each interconnector, no activation, 0 EUR, a
    saving of 400 EUR over alone and of nothing over netting. (Before the fix: 20 MW
    exchanged, A up 10 at 50 and D down 10 at 70, a 'saving' of 200 EUR over netting from
    trading round the schedule.)"""
    p = chain()
    cmo, net = share("common_merit_order", p), share("imbalance_netting", p)
    assert cmo.flow_mw == pytest.approx([10, 10, 10])
    assert cmo.up_mw == pytest.approx([0, 0, 0, 0]) and cmo.down_mw == pytest.approx([0, 0, 0, 0])
    assert cmo.emergency_up_mw.sum() == 0 and cmo.emergency_down_mw.sum() == 0
    assert cmo.activation_eur == pytest.approx([0, 0, 0, 0])
    assert cmo.alone_eur.sum() == pytest.approx(400)
    assert cmo.shared_eur.sum() == pytest.approx(net.shared_eur.sum()) == pytest.approx(0)
    # in a short zone nothing runs down, in a long one nothing up
    assert cmo.down_mw[p.short_mw[p.offer_zone] > 0].sum() == 0
    assert cmo.up_mw[p.short_mw[p.offer_zone] < 0].sum() == 0


def test_a_transit_path_is_settled_at_one_price_and_transit_tsos_end_at_zero():
    """Netting in the chain: 10 MW flow A -> B -> C -> D; B and C have no imbalance and
    activate nothing, so the three interconnectors are one path priced by its ends: A's
    marginal down price alone 40 and D's marginal up price alone 80, (40 + 80) / 2 = 60 on
    each. A is paid 600 (alone it was paid 400 for turning down: saves 200), D pays 600
    (alone 800: saves 200), B and C pay 600 and are paid 600: 0 each. (Before the fix the
    middle interconnector was settled at 0 and the ends at 40 and 80: B -400, C +800.)"""
    for option in ("imbalance_netting", "common_merit_order"):
        r = share(option, chain())
        assert r.price_eur_mwh == pytest.approx([60, 60, 60])
        assert r.settlement_eur == pytest.approx([-600, 0, 0, 600])
        assert r.value_eur == pytest.approx([200, 0, 0, 200])


@pytest.mark.parametrize("field, value, words", [
    ("balancing.emergency_up_eur_mwh", 1, "below the dearest up offer (110"),
    ("balancing.emergency_down_eur_mwh", 4100, "above the cheapest down offer (40")])
def test_emergency_prices_that_undercut_the_offers_are_refused(field, value, words):
    """two_zone_sharing's producers cost 40 to 110 EUR/MWh: emergency up energy at 1 would be
    bought before every offer, emergency down at 4,100 would let a TSO 'earn' on it."""
    from environment.errors import ScenarioError

    s = load_tx_scenario(scenario_path("two_zone_sharing"))
    with pytest.raises(ScenarioError, match=rf"{field} = {value}: {re.escape(words)}"):
        tx_with_overrides(s, {field: value})
    tx_with_overrides(s, {"balancing.emergency_up_eur_mwh": 110,
                          "balancing.emergency_down_eur_mwh": 40})   # at the bounds: accepted


def test_a_zone_without_load_charges_its_producers():
    """west with no load (generation only): its TSO charges its redispatch and balancing costs
    to west's producers per MWh delivered, so the charges still sum to the TSOs' costs."""
    s = load_tx_scenario(scenario_path("two_zone_sharing"))
    m = transmission_model(tx_with_overrides(s, {"loads.0.mw": 0})).run()
    zones, led = m.tables()["zones"], m.ledger.frame()
    west = zones[zones["zone"] == "west"]
    assert (west["real_load_mw"] == 0).all() and west["balancing_shared_eur"].abs().sum() > 0
    for market, column in (("balancing_charge", "balancing_shared_eur"),
                           ("network_charge", "redispatch_cost_eur")):
        rows = led[(led["market"] == market) & (led["payee"] == "tso_west")]
        assert rows["payer"].isin([p.name for p in m.producers]).all()
        assert rows["eur"].sum() == pytest.approx(west[column].sum())


def test_every_tso_passes_its_whole_balancing_cost_on_even_when_real_load_goes_negative():
    """A load forecast error sd of 300 % takes west's real load below 0 in some periods; the
    TSOs then charge the balancing cost per forecast MWh, so the balancing charges still sum
    to the TSOs' shared cost period by period."""
    s = load_tx_scenario(scenario_path("two_zone_sharing"))
    m = transmission_model(tx_with_overrides(s, {"zones.0.load_error_sd": 3.0})).run()
    zones = m.tables()["zones"]
    assert (zones["real_load_mw"] <= 0).any()
    led = m.ledger.frame()
    charged = led[led["market"] == "balancing_charge"]
    assert charged["eur"].sum() == pytest.approx(zones["balancing_shared_eur"].sum())


def test_the_common_merit_order_takes_emergency_energy_last_whatever_its_price():
    """A short 10 with an up offer at 50 and emergency up energy at 1 EUR/MWh: A's own merit
    order takes the offer (500 EUR), so does the common merit order (before the fix it bought
    10 MW of emergency energy at 1). A short 10, B long 4, no headroom, emergency down at
    4,100: B's down offer at 50 absorbs B's surplus (B is paid 200), not emergency energy
    (before the fix B 'earned' 4 x 4,100 = 16,400)."""
    a = lambda v: np.asarray(v, float)  # noqa: E731
    p = BalancingPeriod(a([10, 0]), np.array([0, 1]), a([50, 60]), a([100, 100]), a([40, 50]),
                        a([100, 100]), np.array([0]), np.array([1]), a([100]), a([100]),
                        1.0, -500.0)
    r = share("common_merit_order", p)
    assert r.emergency_up_mw.sum() == 0 and r.up_mw == pytest.approx([10, 0])
    assert r.activation_eur == pytest.approx([500, 0])
    q = BalancingPeriod(a([10, -4]), np.array([0, 1]), a([50, 60]), a([100, 100]), a([40, 50]),
                        a([100, 100]), np.array([0]), np.array([1]), a([0]), a([0]),
                        4000.0, 4100.0)
    r = share("common_merit_order", q)
    assert r.emergency_down_mw.sum() == 0 and r.down_mw == pytest.approx([0, 4])
    assert r.activation_eur == pytest.approx([500, -200])

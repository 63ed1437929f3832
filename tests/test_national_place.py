"""The national place (issue 20, item 2; environment/tiers/national.py): flexibility a local
place did not clear, passed up to its zone's TSO with the DSO's limits attached, activated in
one merit order with the zone's producers. Hand-derived figures on one period of the zones'
balancing, then the mechanism in a day of `ngm` with `pass_up`.

The zone of (a): short 50 MW; its producers offer up coal 20 MW at 40 and gas 100 MW at 85
EUR/MWh, so alone it pays 20 x 40 + 30 x 85 = 3350 EUR and its marginal up offer is q = 85.
A region's aggregator passes up a battery's X = 10 MW at p = 30 EUR/MWh."""

from __future__ import annotations

import numpy as np
import pytest

from environment import balancingstage, dayaheadstage
from environment.markets.lfm import FlexOffers
from environment.markets.regional import BalancingPeriod
from environment.model import FlexMarketModel
from environment.scenario import load_scenario, with_overrides
from environment.scenario_files import find_scenario
from environment.tiers.model import TierModel
from environment.tiers.national import clear_hour, hourly, within_limits
from experiments.plan import resolve

OPTIONS = ("none", "imbalance_netting", "common_merit_order")


def one_zone(short_mw: float = 50.0) -> BalancingPeriod:
    e = np.zeros(0)
    return BalancingPeriod(np.array([short_mw]), np.array([0, 0]), np.array([40.0, 85.0]),
                           np.array([20.0, 100.0]), np.array([40.0, 85.0]), np.zeros(2),
                           e.astype(int), e.astype(int), e, e, 1000.0, -100.0)


@pytest.mark.parametrize("option", OPTIONS)
def test_passed_up_flexibility_saves_x_times_q_minus_p(option):
    """The battery's 10 MW replace 10 MW of gas: 300 + 20 x 40 + 20 x 85 = 2800 EUR, a saving
    of X (q - p) = 10 x (85 - 30) = 550 EUR in the hour (the zone is short 50 >= X)."""
    out = clear_hour(option, one_zone(), np.array([0]), np.array([1]), np.array([30.0]),
                     np.array([10.0]))
    assert out.der_mw == pytest.approx([10.0])
    assert out.der_cost_eur == pytest.approx([300.0])
    assert out.value_eur == pytest.approx([550.0])


@pytest.mark.parametrize("option", OPTIONS)
def test_the_dsos_limit_caps_the_saving(option):
    """Two offers at one location, 3 MW at 30 and 5 MW at 50, under a DSO limit of 4 MW of
    less consumption there: the limit keeps the cheaper 3 MW and 1 MW of the other, so the
    saving is 3 x (85 - 30) + 1 x (85 - 50) = 165 + 35 = 200 EUR (without the limit, 8 MW:
    165 + 5 x 35 = 340). A down offer at the same location is held to its own limit (0)."""
    location, direction = np.array([2, 2, 2]), np.array([1, 1, -1])
    price, mw = np.array([30.0, 50.0, -20.0]), np.array([3.0, 5.0, 2.0])
    limit = np.zeros((3, 2))
    limit[2] = [4.0, 0.0]
    kept = within_limits(location, direction, price, mw, limit)
    assert kept == pytest.approx([3.0, 1.0, 0.0])
    out = clear_hour(option, one_zone(), np.zeros(3, int), direction, price, kept)
    assert out.der_mw == pytest.approx([3.0, 1.0, 0.0])
    assert out.value_eur == pytest.approx([200.0])


def test_a_zone_short_less_than_x_takes_what_it_needs():
    """Short 6 MW < X: the battery covers it all (6 x 30 = 180 EUR instead of 6 x 40 = 240
    from coal, q = 40 here): saving 6 x (40 - 30) = 60 EUR."""
    out = clear_hour("none", one_zone(6.0), np.array([0]), np.array([1]), np.array([30.0]),
                     np.array([10.0]))
    assert out.der_mw == pytest.approx([6.0])
    assert out.value_eur == pytest.approx([60.0])


def test_an_offer_dearer_than_the_zone_is_left():
    out = clear_hour("none", one_zone(), np.array([0]), np.array([1]), np.array([90.0]),
                     np.array([10.0]))
    assert out.der_mw == pytest.approx([0.0])
    assert out.value_eur == pytest.approx([0.0])


def test_inc_dec_across_tiers_transfer():
    """Zone A behind a binding interconnector A -> B (day-ahead flow at its 450 MW limit, so
    no headroom forward, 900 MW back): A clears day-ahead at pi = 85 (its gas, fully used),
    B higher. In real time A is short 20 MW; its only up offer is its peaker (100 MW at 110),
    B's up offer (a peaker at 120, reachable by cutting the export) is dearer. An aggregator
    in a region under A bought V = 5 MWh more than its devices need in the coupled day-ahead
    market at pi and passes up 5 MW of less consumption at p = 105 (its truthful ask: the
    day-ahead price plus a 20 EUR/MWh activation cost). The zone's TSO takes it before its
    peaker: the aggregator is paid 5 x 105 = 525 EUR for energy it bought for 5 x 85 = 425,
    a transfer of V (p - pi) = 5 x 20 = 100 EUR; A pays 15 x 110 + 525 = 2175 EUR instead of
    20 x 110 = 2200, a saving of V (q - p) = 25 EUR. As the model settles it the play is the
    spread between the zone's day-ahead and balancing prices: the aggregator's extra energy
    is real and displaces the peaker, so nothing here is paid to undo a problem it made."""
    p = BalancingPeriod(np.array([20.0, 0.0]), np.array([0, 1]), np.array([110.0, 120.0]),
                        np.array([100.0, 100.0]), np.array([110.0, 120.0]),
                        np.array([50.0, 50.0]), np.array([0]), np.array([1]),
                        np.array([0.0]), np.array([900.0]), 1000.0, -100.0)
    v, pi = 5.0, 85.0
    for option in OPTIONS:
        out = clear_hour(option, p, np.array([0]), np.array([1]), np.array([105.0]),
                         np.array([v]))
        assert out.der_mw == pytest.approx([v])
        paid = float(out.der_cost_eur[0])
        assert paid == pytest.approx(525.0)
        assert paid - v * pi == pytest.approx(100.0)
        assert out.value_eur == pytest.approx([25.0, 0.0])


def test_hourly_offers_hold_the_least_mw_at_the_highest_ask():
    der = FlexOffers(np.array([7, 7, 7, 7]), np.array([1, 1, 1, 1]), np.array([0, 1, 2, 3]),
                     np.array([1, 1, 1, 1]), np.array([2.0, 1.5, 3.0, 2.5]),
                     np.array([30.0, 32.0, 31.0, 29.0]))
    h = hourly(der)
    assert h.mw == pytest.approx([1.5])
    assert h.price == pytest.approx([32.0])
    assert (h.group == 0).all()


def test_a_commitment_before_real_time_survives_the_der_blocks():
    """An activation committed for the grid above before real time stays in the day's
    activation arrays (the DER blocks open them once, and here activate nothing of their own)
    and is paid by the region's TSO."""
    s = with_overrides(load_scenario(find_scenario("default")),
                       {"prosumers.0.count": 60, "calendar.days": 1, "planner.enabled": False,
                        "tso.der_balancing": False})
    m = FlexMarketModel(s)
    ctx = m.open_day(0)
    dayaheadstage.plan(m, ctx)
    dayaheadstage.auction(m, ctx)
    m.before_realtime(ctx)
    agg = m.aggregators[0]
    mtus = np.arange(40, 44)
    der = agg.flex_offers(ctx, balancing=True, mtus=mtus)
    mw = np.where((der.direction > 0) & (der.mw > 1e-6), der.mw * 0.5, 0.0)
    assert mw.sum() > 0
    balancingstage.commit_tso(m, ctx, der, mw, np.full(len(mw), 50.0), "balancing_national")
    slot = m.party_slot[agg.unique_id]
    committed = ctx.der_tso[slot].copy()
    m.realtime_and_settle(ctx)
    assert ctx.der_tso[slot] == pytest.approx(committed)
    led = m.ledger.frame()
    paid = led[led["market"] == "balancing_national"]
    assert paid["eur"].sum() == pytest.approx(50.0 * mw.sum() * ctx.dt_h)
    assert set(paid["payer"].astype(str)) == {"tso"}


def test_a_regions_offers_carry_the_dsos_limit(monkeypatch):
    """A region's offers up to its zone: where its DSO's grid leaves 0.002 MW of headroom per
    location and direction, no location offers more in either direction, and what its
    aggregator could deliver beyond is reported as cut."""
    from environment.tiers import national

    s = with_overrides(load_scenario(find_scenario("default")),
                       {"prosumers.0.count": 80, "calendar.days": 1, "planner.enabled": False})
    m = FlexMarketModel(s)
    ctx = m.open_day(0)
    dayaheadstage.plan(m, ctx)
    dayaheadstage.auction(m, ctx)
    m.before_realtime(ctx)
    side = national.RegionOffers(m, ctx)
    free, _ = side.offers(18)
    monkeypatch.setattr(national, "headroom",
                        lambda limits, moves: np.full(moves.shape, 0.002))
    held, cut = side.offers(18)
    assert free.mw.sum() > 0.01
    for d in (1, -1):
        per_location = np.bincount(held.location[held.direction == d],
                                   held.mw[held.direction == d])
        assert (per_location <= 0.002 + 1e-12).all()
    assert cut.sum() == pytest.approx(free.mw.sum() - held.mw.sum())
    assert cut.sum() > 0


@pytest.fixture(scope="module")
def ngm_day():
    s = resolve(find_scenario("ngm"), days=1)
    regions = [r.model_copy(update={"pass_up": True, "overrides": {
        **r.overrides, "prosumers.0.count": 80}}) for r in s.regions]
    return TierModel(s.model_copy(update={"regions": regions})).run()


def test_ngm_day_with_pass_up(ngm_day):
    """A day of ngm with both regions passing up: every activation within what was offered
    inside the DSO's limits; `<region>/tso` pays its aggregators what its zone's TSO pays it;
    the zones' loads are charged the DER cost with the rest of the balancing cost; the pass-up
    never raises the zones' total cost on their own imbalances."""
    t = ngm_day.tables()
    der, nat, led = t["national_der"], t["national"], t["ledger"]
    assert len(der) == 24 * 2 and len(nat) == 24 * 2
    assert (der["activated_up_mw"] <= der["offered_up_mw"] + 1e-9).all()
    assert (der["activated_down_mw"] <= der["offered_down_mw"] + 1e-9).all()
    assert (der["cut_by_dso_mw"] >= -1e-12).all()
    assert (der["activated_up_mw"] + der["activated_down_mw"]).sum() > 0
    for region, mine in der.groupby("region"):
        tso = f"{region}/tso"
        up = led[(led["market"] == "national_der") & (led["payee"] == tso)]["eur"].sum()
        down = led[(led["market"] == "balancing_national") & (led["payer"] == tso)]["eur"].sum()
        assert up == pytest.approx(down, abs=1e-9)
        assert up == pytest.approx(mine["cost_eur"].sum(), abs=1e-9)
    assert nat["der_cost_eur"].sum() == pytest.approx(der["cost_eur"].sum(), abs=1e-9)
    assert (nat.groupby("period")["value_eur"].sum() >= -1e-6).all()
    charge = led[(led["market"] == "balancing_charge") & (led["mtu_minutes"] == 60)]["eur"]
    assert charge.sum() == pytest.approx(t["zones"]["balancing_shared_eur"].sum()
                                         + nat["der_cost_eur"].sum())


def test_pass_up_is_deterministic(ngm_day):
    s = ngm_day.config
    again = TierModel(s).run().tables()
    first = ngm_day.tables()
    for name in ("national", "national_der", "regions"):
        assert again[name].equals(first[name])


def test_summary_blocks_and_dictionary(ngm_day):
    """The `national` block per zone and the `local` block per region carry the passed-up
    DER; every key and column is in the data dictionary."""
    from experiments import dictionary
    from experiments.tiers_summary import tiers_summary

    t = ngm_day.tables()
    s = tiers_summary(ngm_day, t)
    der = t["national_der"]
    for name, z in s["national"]["zones"].items():
        up = z["passed_up"]
        mine = der[der["zone"] == name]
        assert up["cost_eur"] == pytest.approx(mine["cost_eur"].sum())
        assert up["value_eur"] == pytest.approx(
            t["national"].loc[t["national"]["zone"] == name, "value_eur"].sum())
    for region, block in s["local"].items():
        assert block["passed_up"]["offered_mwh"] == pytest.approx(
            der.loc[der["region"] == region, ["offered_up_mw", "offered_down_mw"]].sum().sum())
    assert dictionary.undocumented(s, t) == []

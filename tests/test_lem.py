"""The local electricity market on a hand-built feeder (environment/lemstage.py,
environment/lem_settlement.py, the retail bills in environment/settlement.py): every number in
an assertion is derived in the test's docstring.

The grid: slack bus 0, a transformer to the LV busbar (bus 1, location `trafo`), feeder F1 from
bus 2, feeder F2 from bus 3. One MTU of one hour unless stated. Both suppliers' retail price
320 EUR/MWh, feed-in 80; the full network tariff 70, the local one 30; no LEMO fee."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest

from agents.prosumer import DayProfiles
from environment.errors import ScenarioError
from environment.ledger import Ledger
from environment.lem_settlement import settle_lem
from environment.lemstage import LocalMarket, lem_areas
from environment.scenario import Lem, with_overrides
from environment.scenario_markets import Markets
from environment.settlement import settle_retail

GRID = NS(code="stub", n_bus=4, n_locations=3, branch_kind=np.array(["trafo", "line", "line"]),
          parent_bus=np.array([-1, 0, 1, 1]), bus_location=np.array([0, 0, 1, 2]))
F1, F2 = 2, 3


def model(buses, lem: dict | None = None, lfm=True, implicit=False):
    """A stub model with households at `buses`, everything the LEM and retail bills read."""
    n = len(buses)
    led = Ledger()
    brp = NS(account=led.account("supplier", "brps"), retail_price=320.0, feed_in=80.0)
    dso = NS(account=led.account("dso", "dso"), tariff=70.0)
    sysb = NS(account=led.account("system", "brps"), retail_price=250.0,
              realised_mw=lambda ctx: np.zeros(ctx.n_mtu))
    led.account("system_consumers", "consumers")
    pa = np.array([led.account(f"prosumer_{i}", "prosumers") for i in range(n)])
    cfg = Lem(enabled=True, local_tariff_eur_mwh=30.0, **(lem or {}))
    markets = Markets(lem=cfg, lfm={"enabled": lfm}, implicit={"enabled": implicit})
    m = NS(config=NS(markets=markets, dso=NS()), ledger=led, brps=[brp], dso=dso,
           system_brp=sysb, aggregators=[], prosumer_account=pa, run_seed=1, grid=GRID,
           fleet=NS(n=n, bus=np.array(buses), brp=np.zeros(n, int), aggregator=np.full(n, -1),
                    enrolled={k: np.zeros(n, bool) for k in ("battery", "ev", "heat_pump")}),
           records={})
    m.device_plan = lambda ctx: {k: np.zeros((n, ctx.n_mtu)) for k in ("battery", "ev", "hp")}
    m.lem = LocalMarket(m)
    return m


def day(net_mw, yellow=None, light=None, adders=None):
    """A day whose forecast and metered net consumption are both `net_mw` (N, T)."""
    net = np.asarray(net_mw, float)
    n, t = net.shape
    zero = np.zeros((n, t))
    rt = NS(prosumer_net=net, light=np.zeros((t, 3), np.int8) if light is None else light,
            prof=DayProfiles(zero, np.clip(-net, 0, None), zero, zero),
            real={"battery": zero, "ev": zero, "hp": zero}, red=None)
    return NS(n_mtu=t, dt_h=1.0, mtu0=0, price_floor=-500.0, price_cap=4000.0,
              retail_net_forecast=net, retail_net=net, realtime=rt, lem=None,
              yellow=np.zeros((t, 3), bool) if yellow is None else yellow, adders=adders)


def paid(m, market, payer=None, payee=None) -> float:
    f = m.ledger.frame()
    f = f[f.market == market]
    if payer is not None:
        f = f[f.payer == payer]
    if payee is not None:
        f = f[f.payee == payee]
    return float(f.eur.sum())


def test_one_peer_trade_saves_the_tariff_difference():
    """Buyer (F1) forecasts and consumes 2 kW, seller (F1) exports 2 kW, one hour: 0.002 MWh.
    Truthful: bid = 320 + 70 - 30 = 360, ask = 80; price (360 + 80) / 2 = 220 EUR/MWh.
    Buyer pays the seller 0.002 x 220 = 0.44 and the DSO the local tariff 0.002 x 30 = 0.06;
    nothing to its supplier, no full tariff: 0.50 EUR against 0.002 x (320 + 70) = 0.78 without
    the LEM, a saving of 0.28. The DSO gets 0.06 instead of 0.14: 0.08 = 0.002 x (70 - 30) of
    tariff revenue shifted. The seller earns 0.44 instead of 0.002 x 80 = 0.16 of feed-in."""
    m = model([F1, F1])
    ctx = day([[0.002], [-0.002]])
    lem = m.lem.trade(ctx)
    assert lem.price[0, 0] == pytest.approx(220.0)
    settle_lem(m, ctx)
    settle_retail(m, ctx)
    assert paid(m, "lem", payer="prosumer_0") == pytest.approx(0.44)
    assert paid(m, "lem", payee="prosumer_1") == pytest.approx(0.44)
    assert paid(m, "network_tariff_local", payee="dso") == pytest.approx(0.06)
    assert paid(m, "network_tariff", payee="dso") == pytest.approx(0.0)
    assert paid(m, "retail") == pytest.approx(0.0)
    assert paid(m, "feed_in") == pytest.approx(0.0)
    buyer = -m.ledger.balances()["prosumer_0"]
    assert buyer == pytest.approx(0.50)
    assert 0.002 * (320 + 70) - buyer == pytest.approx(0.28)
    assert 0.002 * (70 - 30) == pytest.approx(0.14 - paid(m, "network_tariff_local"))
    assert m.ledger.balances().sum() == pytest.approx(0.0, abs=1e-12)


def test_supplier_covers_the_rest_and_the_fee_goes_to_the_lemo():
    """Buyer consumes 3 kW, seller exports 2 kW; LEMO fee 5 EUR/MWh from each side. Bid =
    360 - 5 = 355, ask = 80 + 5 = 85, price 220; 0.002 MWh matched. The buyer's supplier sells
    it the other 0.001 MWh at 320 (0.32) with the full tariff 0.001 x 70 = 0.07; the local
    tariff on 0.002 is 0.06. The LEMO earns 2 x 0.002 x 5 = 0.02; its `lem` rows net to 0."""
    m = model([F1, F1], {"fee_eur_mwh": 5.0})
    ctx = day([[0.003], [-0.002]])
    m.lem.trade(ctx)
    settle_lem(m, ctx)
    settle_retail(m, ctx)
    assert paid(m, "retail", payer="prosumer_0") == pytest.approx(0.32)
    assert paid(m, "network_tariff", payer="prosumer_0") == pytest.approx(0.07)
    assert paid(m, "network_tariff_local") == pytest.approx(0.06)
    assert m.ledger.balances()["lem_operator"] == pytest.approx(0.02)
    assert paid(m, "lem_fee") == pytest.approx(0.02)


def test_yellow_pauses_the_lem_under_explicit_lfm():
    """Feeder scope, two MTUs, a buyer (2 kW) and a seller (2 kW) on each feeder. YELLOW at F1
    in MTU 0 with the explicit LFM: F1's orders of MTU 0 are not entered, so 0 MWh matched
    there; F1 in MTU 1 and F2 in both MTUs trade 0.002 MWh each, as without the YELLOW. Under
    the implicit LFM with no locational price set (adders 0) F1 trades in MTU 0 as well."""
    net = [[0.002, 0.002], [-0.002, -0.002], [0.002, 0.002], [-0.002, -0.002]]
    yellow = np.zeros((2, 3), bool)
    yellow[0, 1] = True
    m = model([F1, F1, F2, F2])
    lem = m.lem.trade(day(net, yellow=yellow))
    np.testing.assert_allclose(lem.matched_mw, [[0, 0.002], [0, -0.002], [0.002, 0.002],
                                                [-0.002, -0.002]])
    assert lem.paused.sum() == 1
    m = model([F1, F1, F2, F2], implicit=True)
    lem = m.lem.trade(day(net, yellow=yellow, adders=np.zeros((2, 3))))
    np.testing.assert_allclose(np.abs(lem.matched_mw), 0.002)


def test_yellow_at_the_transformer_pauses_every_feeder():
    """The transformer location (no households) is upstream of both feeders: YELLOW there
    pauses the whole LEM for that MTU."""
    yellow = np.zeros((1, 3), bool)
    yellow[0, 0] = True
    m = model([F1, F1, F2, F2])
    lem = m.lem.trade(day([[0.002], [-0.002], [0.002], [-0.002]], yellow=yellow))
    assert not lem.matched_mw.any()


def test_implicit_lfm_prices_the_location():
    """Implicit LFM, locational grid price +30 EUR/MWh at F1 (more consumption worsens it).
    Bid = 360 - 30 = 330, ask = 80 - 30 = 50, price 190. On 0.002 MWh the buyer pays the DSO
    0.002 x 30 = 0.06 and the seller is paid 0.06 back: the DSO nets 0."""
    adders = np.zeros((1, 3))
    adders[0, 1] = 30.0
    m = model([F1, F1], implicit=True)
    ctx = day([[0.002], [-0.002]], adders=adders)
    assert m.lem.trade(ctx).price[0, 0] == pytest.approx(190.0)
    settle_lem(m, ctx)
    assert paid(m, "lem_grid_price", payer="prosumer_0") == pytest.approx(0.06)
    assert paid(m, "lem_grid_price", payer="prosumer_1") == pytest.approx(-0.06)


def test_red_stops_trading_where_the_scenario_cancels():
    """Transformer scope (one area): a seller at F2 exports 4 kW, a buyer at F1 and one at F2
    each take 2 kW: 0.004 MWh matched. F1 turns RED in real time. `cancel`: the F1 buyer's
    0.002 is void and the seller is cut back pro rata to what is left bought, 0.002; the F2
    buyer keeps its 0.002. `settle`: all 0.004 stand."""
    light = np.zeros((1, 3), np.int8)
    light[0, 1] = 2
    net = [[0.002], [0.002], [-0.004]]
    for red, want in (("cancel", [0.0, 0.002, -0.002]), ("settle", [0.002, 0.002, -0.004])):
        m = model([F1, F2, F2], {"scope": "transformer", "red": red})
        ctx = day(net, light=light)
        np.testing.assert_allclose(m.lem.trade(ctx).matched_mw[:, 0], [0.002, 0.002, -0.004])
        settle_lem(m, ctx)
        np.testing.assert_allclose(ctx.lem.settled_mw[:, 0], want)
        assert m.records["lem_areas"][0]["traded_mwh"].sum() == pytest.approx(sum(want[:2]))


def test_markup_strategy_shades_both_sides():
    """Markup 20: bid 340, ask 100, price still (340 + 100) / 2 = 220; with markup 150 the bid
    210 falls below the ask 230 and nothing trades."""
    m = model([F1, F1], {"strategy": "markup", "strategy_params": {"markup_eur_mwh": 20.0}})
    assert m.lem.trade(day([[0.002], [-0.002]])).price[0, 0] == pytest.approx(220.0)
    m = model([F1, F1], {"strategy": "markup", "strategy_params": {"markup_eur_mwh": 150.0}})
    assert not m.lem.trade(day([[0.002], [-0.002]])).matched_mw.any()


def test_continuous_matching_pays_the_resting_price():
    """Continuous: whichever order arrives second trades at the first's (resting) price,
    360 or 80; the volume is the same 0.002 MWh."""
    m = model([F1, F1], {"clearing": "continuous"})
    lem = m.lem.trade(day([[0.002], [-0.002]]))
    assert lem.price[0, 0] in (360.0, 80.0)
    np.testing.assert_allclose(lem.matched_mw[:, 0], [0.002, -0.002])


def test_scope_mapping_and_refusal():
    """Feeder scope: F1 and F2 are two areas; transformer: one (both below the one trafo);
    region on this grid is the same single area as transformer: refused, naming the field; on
    a grid whose buses below the transformer are all one location, so is feeder."""
    buses = np.array([F1, F2])
    assert len(set(lem_areas(GRID, buses, "feeder"))) == 2
    assert len(set(lem_areas(GRID, buses, "transformer"))) == 1
    with pytest.raises(ScenarioError, match=r"markets.lem.scope = 'region'"):
        lem_areas(GRID, buses, "region")
    one_feeder = NS(**{**vars(GRID), "bus_location": np.array([0, 1, 1, 1])})
    with pytest.raises(ScenarioError, match=r"markets.lem.scope = 'feeder'"):
        lem_areas(one_feeder, buses, "feeder")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("markets.lem.scope", "street", "markets.lem.scope = 'street'"),
    ("markets.lem.clearing", "lottery", "markets.lem.clearing = 'lottery'"),
    ("markets.lem.fee_eur_mwh", -1.0, "markets.lem.fee_eur_mwh = -1.0"),
    ("markets.lem.local_tariff_eur_mwh", 80.0, "markets.lem.local_tariff_eur_mwh = 80"),
    ("markets.lem.red", "ignore", "markets.lem.red = 'ignore'"),
])
def test_bad_input_is_refused_at_load(default_scenario, key, value, message):
    with pytest.raises(ScenarioError) as err:
        with_overrides(default_scenario, {key: value})
    assert message in str(err.value)


@pytest.fixture(scope="module")
def lem_run():
    """The shipped `lem` scenario, one day, 120 households, the LEM as a financial overlay
    (home batteries on self-consumption)."""
    from experiments.run import run_scenario

    return run_scenario("lem", days=1, overrides={"prosumers.0.count": 120,
                                                  "markets.lem.hems_battery": False},
                        planner=False, write=False, figures=False)


def test_shipped_scenario_reports_and_balances(lem_run):
    """Every key documented; the ledger balances; the LEMO's `lem` rows net to zero and its
    balance is its fees; traded volume in the summary is the buyers' `lem` MWh and half of all
    `lem` rows' MWh (buyer and seller legs); tariff revenue shifted = (70 - 30) x the MWh at
    the local tariff; self-consumption with peers is above the share without them."""
    from experiments import dictionary

    r = lem_run
    assert dictionary.undocumented(r.summary, r.tables) == []
    s, led = r.summary["lem"], r.tables["ledger"]
    assert s["traded_mwh"] > 0
    lem_rows = led[led.market == "lem"]
    assert lem_rows.mwh.sum() == pytest.approx(2 * s["traded_mwh"])
    op = lem_rows[lem_rows.payee == "lem_operator"].eur.sum() \
        - lem_rows[lem_rows.payer == "lem_operator"].eur.sum()
    assert op == pytest.approx(0.0, abs=1e-9)
    fees = led[led.market == "lem_fee"]
    assert s["lemo_fee_revenue_eur"] == pytest.approx(5.0 * fees.mwh.sum())
    assert fees.mwh.sum() == pytest.approx(2 * s["traded_mwh"])
    local = led[led.market == "network_tariff_local"].mwh.sum()
    assert s["tariff_revenue_shifted_eur"] == pytest.approx(40.0 * local)
    assert s["self_consumption_share"] > s["self_consumption_share_without_lem"]
    eur = led.groupby("payer", observed=True).eur.sum().sub(
        led.groupby("payee", observed=True).eur.sum(), fill_value=0)
    assert abs(eur.sum()) < 1e-6


def test_lem_off_leaves_the_physics_and_moves_only_bills(lem_run):
    """The same seed with the LEM off: the same day-ahead prices, metered grid and traffic
    light (the LEM moves no device); the suppliers' retail MWh differ by the energy traded."""
    from experiments.run import run_scenario

    off = run_scenario("lem", days=1, overrides={"prosumers.0.count": 120,
                                                 "markets.lem.enabled": False,
                                                 "markets.lem.hems_battery": False},
                       planner=False, write=False, figures=False)
    on = lem_run
    assert "lem" not in off.summary and "lem_areas" not in off.tables
    np.testing.assert_array_equal(on.tables["series"]["da_price"],
                                  off.tables["series"]["da_price"])
    np.testing.assert_array_equal(on.tables["grid"]["light"], off.tables["grid"]["light"])

    def retail(r):
        led = r.tables["ledger"]
        return led[led.market == "retail"].mwh.sum() + led[led.market == "feed_in"].mwh.sum()

    # per household and MTU |net| - |net - traded| <= |traded|: each MWh traded leaves at
    # most one MWh of a supplier's bill (retail or feed-in), less where forecasts missed
    assert retail(off) - retail(on) > 0
    assert retail(off) - retail(on) <= 2 * on.summary["lem"]["traded_mwh"] + 1e-9


def test_yellow_pauses_in_a_congested_run():
    """The default January street congests its feeders on the evening peak (YELLOW at D-1
    under the explicit LFM): with the LEM on per feeder, every paused area-MTU trades nothing
    and the pauses are counted in the summary."""
    from experiments.run import run_scenario

    r = run_scenario("default", days=1, overrides={"markets.lem.enabled": True},
                     planner=False, write=False, figures=False)
    t = r.tables["lem_areas"]
    paused = t[t.paused_locations > 0]
    assert len(paused) > 0 and r.summary["lem"]["paused_mtu_locations"] == len(paused)
    assert paused.matched_mwh.sum() == 0.0
    assert t.matched_mwh.sum() > 0


def test_battery_stores_noon_surplus_and_sells_it_to_an_evening_peer():
    """`hems_battery`: households A and B on feeder F1, three MTUs of one hour, fee 5 each
    side, so bid reservation 320 + (70 - 30) - 5 = 355 and ask 80 + 5 = 85. A has 4 kW of PV
    surplus at MTU 0 and a 5 kWh / 3 kW battery, efficiency 0.9 each way, empty; B consumes
    2 kW at MTU 2. The self-consumption rule charges A's battery at its 3 kW limit at MTU 0
    and never discharges (A has no deficit): A exports 1 kW at MTU 0, nobody buys, and B finds
    no seller at MTU 2, so nothing trades.

    Expected prices (first pass of those plans): at MTU 0 A's 1 kW ask meets no bid (fill 0:
    sell = feed-in 80); at MTU 2 only B bids, so a seller fills in full at the midpoint of its
    bid and ask, (355 + 85) / 2 = 220, less its fee: sell = 215. A's LP still charges 3 kW at
    MTU 0 (power limit; 3 x 0.9 = 2.7 kWh stored, below 5), and a stored kWh earns 0.9 x 215
    = 193.5 EUR/MWh at MTU 2 against 0.9 x 80 = 72 kept at the day's end or 80 at MTU 1: it
    discharges all of it at MTU 2, 2.7 x 0.9 = 2.43 kW (below 3 kW). Plan [3, 0, -2.43] kW,
    shift 2.43 kWh. Cleared: A asks 2.43 kW at 85, B bids 2 kW at 355: 2 kWh trade at
    (355 + 85) / 2 = 220 EUR/MWh; A's other 0.43 kW go to its supplier at feed-in."""
    m = model([F1, F1], {"fee_eur_mwh": 5.0, "hems_battery": True})
    m.fleet.batt_mwh = np.array([0.005, 0.0])
    m.fleet.batt_mw = np.array([0.003, 0.0])
    m.fleet.eta = np.array([0.9, 0.9])
    m.fleet.soc = np.zeros(2)
    base = np.array([[-0.004, 0.0, 0.0], [0.0, 0.0, 0.002]])
    rule = np.array([[0.003, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert not m.lem.trade(day(base + rule)).matched_mw.any()
    plan = m.lem.plan_batteries(base, rule, 1.0)
    np.testing.assert_allclose(plan, [[0.003, 0.0, -0.00243], [0.0, 0.0, 0.0]], atol=1e-9)
    assert np.abs(m.lem.battery_shift).sum() == pytest.approx(0.00243, abs=1e-9)
    lem = m.lem.trade(day(base + plan))
    np.testing.assert_allclose(lem.matched_mw, [[0, 0, -0.002], [0, 0, 0.002]], atol=1e-12)
    assert lem.price[1, 2] == pytest.approx(220.0)


def test_home_batteries_follow_the_lem_plan_within_bounds(lem_run):
    """The shipped `lem` scenario (`hems_battery` on): batteries move (shift > 0), the
    managers trade more than with the self-consumption rule, no energy is clipped at the
    state-of-charge bounds (the plan starts from the real states of charge) and the ledger
    balances; every key is documented."""
    from experiments import dictionary
    from experiments.run import run_scenario

    on = run_scenario("lem", days=1, overrides={"prosumers.0.count": 120}, planner=False,
                      write=False, figures=False)
    off = lem_run
    assert dictionary.undocumented(on.summary, on.tables) == []
    assert on.summary["lem"]["battery_shift_mwh"] > 0
    assert off.summary["lem"]["battery_shift_mwh"] == 0.0
    assert on.summary["lem"]["traded_mwh"] > off.summary["lem"]["traded_mwh"]
    assert on.summary["truncation"] == {}
    led = on.tables["ledger"]
    eur = led.groupby("payer", observed=True).eur.sum().sub(
        led.groupby("payee", observed=True).eur.sum(), fill_value=0)
    assert abs(eur.sum()) < 1e-6

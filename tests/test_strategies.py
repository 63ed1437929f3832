"""Strategic agents: each strategy is selectable from a scenario and moves its agent's behaviour
the way its source describes, against a truthful run with the same seed; the mitigation levers
act on them; ledger and energy balances still hold.

The default scenario at full size (320 households) is used: with fewer households the grid
never congests and there is no local market to game."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
from test_model import (
    check_energy_balance,
    check_exchange,
    check_imbalances,
    check_payments,
    check_positions,
)

from agents.strategies import STRATEGIES, known, make_strategy
from environment.scenario import ScenarioError
from environment.settlement import settle_non_delivery
from experiments.run import run_scenario

AGG = "aggregators.0"


@cache
def run(days: int = 2, **overrides):
    """A run of the default scenario, cached per (days, overrides); keys use __ for dots."""
    return run_scenario("default", days=days, planner=False, write=False, figures=False,
                        overrides={k.replace("__", "."): v for k, v in overrides.items()})


def strategic(name: str, days: int = 2, params: dict | None = None, **extra):
    return run(days, **{f"{AGG}__strategy": name,
                        f"{AGG}__strategy_params": tuple_free(params)}, **extra)


def tuple_free(params):
    """`cache` needs hashable arguments; scenario overrides take a dict."""
    return HashDict(params or {})


class HashDict(dict):
    def __hash__(self):
        return hash(tuple(sorted(self.items())))


def lfm_revenue(r, agent: str = "flexco") -> float:
    led = r.ledger
    rows = led[led["market"].astype(str).str.startswith("lfm_") & (led["payee"] == agent)]
    return float(rows["eur"].sum())


def profit(r, agent: str = "flexco") -> float:
    return float(r.model.ledger.balances()[agent])


def test_strategies_are_registered():
    assert {"truthful", "markup", "risk_premium", "incdec", "inc_dec", "baseline_inflation",
            "arbitrage"} <= set(known("aggregator"))
    assert {"truthful", "markup"} <= set(known("producer"))
    assert issubclass(STRATEGIES[("aggregator", "inc_dec")], STRATEGIES[("aggregator", "incdec")])


def test_bad_parameters_name_the_field():
    with pytest.raises(ValueError, match="withhold"):
        make_strategy("aggregator", "markup", withhold=1.5)
    with pytest.raises(ScenarioError, match="strategy_params"):
        strategic("markup", 1, {"no_such": 1.0})


def test_markup_raises_the_lfm_price():
    base, game = run(2), strategic("markup")
    assert game.scenario.aggregators[0].strategy == "markup"
    price = game.summary["flexibility"]["lfm_da_avg_price_eur_mwh"]
    assert price > base.summary["flexibility"]["lfm_da_avg_price_eur_mwh"]
    assert price == pytest.approx(300.0)
    assert game.summary["flexibility"]["dso_cost"]["total_eur"] \
        > base.summary["flexibility"]["dso_cost"]["total_eur"]


def test_markup_stops_at_the_price_cap():
    game = strategic("markup", 2, None, markets__lfm__price_cap=120.0)
    assert game.summary["flexibility"]["lfm_da_avg_price_eur_mwh"] == pytest.approx(120.0)


def test_withholding_lowers_offered_mw():
    base, game = run(2), strategic("markup", 2, {"withhold": 0.5})
    offered = game.tables["aggregators"][["up_mw", "down_mw"]].to_numpy().sum()
    assert offered < 0.6 * base.tables["aggregators"][["up_mw", "down_mw"]].to_numpy().sum()


def test_risk_premium_prices_above_cost_and_more_day_ahead():
    base, game = run(2), strategic("risk_premium")
    assert game.summary["flexibility"]["lfm_da_avg_price_eur_mwh"] \
        > base.summary["flexibility"]["lfm_da_avg_price_eur_mwh"]
    agg = game.model.aggregators[0]
    prices = agg.prices
    premium = {s: agg.strategy.premium(agg, prices, s) for s in ("da", "id", "balancing")}
    assert premium["da"] > premium["id"] > premium["balancing"] > 0


def test_incdec_creates_congestion_and_sells_its_relief():
    """Over four days (it learns from the congestion of earlier days) inc-dec raises the
    forecast violations the DSO sees before its market, and its own LFM revenue."""
    base, game = run(4), strategic("incdec", 4)
    before = base.summary["congestion"]["forecast_violations"]
    assert game.summary["congestion"]["forecast_violations"] > before
    assert lfm_revenue(game) > 2 * lfm_revenue(base) > 0


def test_exclusion_removes_incdec_from_the_lfm():
    game = strategic("incdec", 4, None, markets__lfm__exclude_position_changers=True)
    assert lfm_revenue(game) < lfm_revenue(strategic("incdec", 4))
    flex = game.tables["flex"]
    late = flex[flex["mtu"] >= 96 * 2]  # it games from the day after the first congestion on
    assert late["dso_up_mw"].sum() == 0.0 and late["dso_down_mw"].sum() == 0.0
    assert lfm_revenue(game) > 0  # sold on the first congested day, before it gamed
    truthful = run(4, markets__lfm__exclude_position_changers=True)
    assert lfm_revenue(truthful) == pytest.approx(lfm_revenue(run(4)))


def test_non_delivery_penalty_is_booked():
    """The penalty is paid per MWh missed where the DSO bought from this aggregator, up to
    what it bought; misses elsewhere (TSO or platform commitments) settle as imbalance."""
    pen = run(1, markets__lfm__non_delivery_penalty_eur_mwh=500.0)
    assert "lfm_penalty" not in set(pen.ledger["market"].astype(str))  # truthful: no misses
    model = pen.model
    agg = next(a for a in model.aggregators if a.name == "flexco")
    k = next(iter(agg.plans))
    t_n = len(agg.plans[k]["missed"])
    agg.plans[k]["missed"] = np.zeros(t_n)
    agg.plans[k]["missed"][[3, 4, 5]] = [0.2, 0.1, 0.4]
    sold = np.zeros((t_n, model.grid.n_locations, 2))
    sold[[3, 5], k, 0] = 0.3
    sold[4, (k + 1) % model.grid.n_locations, 1] = 1.0  # elsewhere: no penalty
    ctx = SimpleNamespace(n_mtu=t_n, mtu0=10_000, dt_h=0.25, dso_sold={agg.unique_id: sold})
    mark = model.ledger.mark()
    settle_non_delivery(model, ctx)
    rows = model.ledger.rows_since(mark)
    assert [r[2] for r in rows] == ["lfm_penalty"]
    payer, payee, _, mtu, mwh, price, eur = rows[0]
    assert set(payer) == {agg.account} and set(payee) == {model.dso.account}
    assert dict(zip(mtu - 10_000, mwh, strict=True)) == pytest.approx({3: 0.05, 5: 0.075})
    assert eur.sum() == pytest.approx(0.125 * 500.0)


def test_baseline_inflation_raises_the_declared_baseline():
    params = {"inflation_share": 0.3, "inflation_mw": 0.01}
    base = run(2, aggregators__0__kind="independent")
    game = strategic("baseline_inflation", 2, params, aggregators__0__kind="independent")
    a0, a1 = base.model.aggregators[0], game.model.aggregators[0]
    assert a1.declared_mw().sum() > a0.declared_mw().sum() + 0.01 * 10


def test_baseline_inflation_pays_back_under_corrected_compensation():
    """With a corrected perimeter the inflated baseline is phantom energy the aggregator sells;
    corrected compensation charges it back to the suppliers at their energy price."""
    params = {"inflation_share": 0.3}
    regime = {"settlement__compensation": "corrected"}
    base = run(2, aggregators__0__kind="independent", **regime)
    game = strategic("baseline_inflation", 2, params, aggregators__0__kind="independent",
                     **regime)

    def paid(r, market):
        led = r.ledger
        return float(led[(led["market"] == market) & (led["payer"] == "flexco")]["eur"].sum())

    assert paid(game, "compensation") > paid(base, "compensation")


def test_arbitrage_keeps_headroom_out_of_the_day_ahead_plan():
    """A battery of 4 MWh and 1 MW at half charge against a merit order with 10 MWh at 10
    EUR/MWh in the first two hours and at 100 in the last two, 5 MWh of fixed demand each
    hour: the truthful plan charges 1 MW, then discharges 1 MW. The arbitrageur expects 200
    EUR/MWh from later markets against a day-ahead spread (mean absolute deviation) of 45, so
    it keeps 0.5 x (200 - 45) / (200 + 45) = 0.316 of its power out: it charges 0.684 MW."""
    supply, pool = _two_price_day()
    ctx = SimpleNamespace(dt_h=1.0)
    agg = SimpleNamespace(degradation=0.0, model=SimpleNamespace(
        ledger=SimpleNamespace(mark=lambda: 0),
        price_forecast=lambda ctx, s: np.array([10.0, 10.0, 100.0, 100.0])))
    truthful, _ = make_strategy("aggregator", "truthful").plan(agg, ctx, {0: pool}, supply)
    np.testing.assert_allclose(truthful[0]["ch"], [1, 1, 0, 0], atol=1e-9)
    arb = make_strategy("aggregator", "arbitrage", prior_eur_mwh=200.0)
    plan, _ = arb.plan(agg, ctx, {0: pool}, supply)
    held = 0.5 * 155 / 245
    assert arb.holdback == pytest.approx(held)
    np.testing.assert_allclose(plan[0]["ch"], [1 - held, 1 - held, 0, 0], atol=1e-9)
    np.testing.assert_allclose(plan[0]["dis"], [0, 0, 1 - held, 1 - held], atol=1e-9)
    assert strategic("arbitrage", 2).model.aggregators[0].strategy.holdback == 0.0


def _two_price_day():
    from agents.pool import Pool
    from agents.prosumer import Envelope
    from environment.markets.dayahead import SupplyCurve
    from environment.markets.orders import OrderBook

    t = np.arange(4)
    offers = OrderBook.from_arrays(1, t, np.array([10.0, 10.0, 100.0, 100.0]),
                                   np.full(4, -10.0), 4)
    z = np.zeros(4)
    pool = Pool(battery_mwh=4.0, battery_mw=1.0, battery_soc=2.0, battery_eta=1.0,
                ev=Envelope(z, z, z), hp=Envelope(z, z, z))
    return SupplyCurve(offers, np.full(4, 5.0), -500.0, 4000.0), pool


def test_producer_markup_raises_the_day_ahead_price():
    base = run(1)
    game = run(1, producers__3__strategy="markup",
               producers__3__strategy_params=HashDict(markup_eur_mwh=40.0))
    assert game.summary["da_price_eur_mwh"]["mean"] > base.summary["da_price_eur_mwh"]["mean"]


@pytest.mark.parametrize("name", ["markup", "incdec", "baseline_inflation", "arbitrage"])
def test_balances_hold_with_strategies(name):
    r = strategic(name, 2, None, aggregators__0__kind="independent",
                  settlement__compensation="corrected") if name == "baseline_inflation" \
        else strategic(name, 2)
    check_payments(r)
    check_exchange(r)
    check_energy_balance(r)
    check_positions(r)
    check_imbalances(r)
    assert np.isfinite(r.summary["welfare_eur"]["total"])


def test_anticipating_incdec_learns_from_its_own_lfm_sales_only():
    strategy = make_strategy("aggregator", "incdec", anticipate=1.0, memory=0.0)
    agg = SimpleNamespace(unique_id=1)
    sold = np.zeros((4, 2, 2))
    sold[1, 0, 0] = 0.5                      # another aggregator sold up-flexibility
    strategy._ctx = SimpleNamespace(dso_bought=np.full((4, 2), -0.5), dso_sold={2: sold})
    strategy.end_of_day(agg, None)
    assert not strategy.expected.any()
    strategy._ctx = SimpleNamespace(dso_bought=np.full((4, 2), -0.5), dso_sold={1: sold})
    strategy.end_of_day(agg, None)
    assert strategy.expected[1, 0] == 1.0 and strategy.expected.sum() == 1.0


def test_arbitrage_margin_of_downward_balancing_energy():
    """A downward DER activation is booked at minus the price the provider pays; its margin
    against the DA price is |paid - DA| for the energy it buys."""
    from agents.strategies.options import observed_margins
    from environment.ledger import Ledger

    led = Ledger()
    tso, agg = led.account("tso", "tso"), led.account("agg", "aggregators")
    mark = led.mark()
    led.pay(tso, agg, "balancing_der", np.array([0, 1]), np.array([1.0, 1.0]),
            np.array([-125.0, 160.0]))
    margins = observed_margins(led, mark, np.array([agg]), np.array([145.0, 145.0]))
    assert margins["balancing"] == pytest.approx((20.0 + 15.0) / 2)


def _platform_round(ask: float):
    """One MTU of the platform: an aggregator offers 2 MW up (0.5 MWh it frees) asking `ask`
    EUR/MWh per MWh moved; a supplier asks for 0.25 MWh at the energy price (100) plus its
    imbalance premium (30)."""
    from environment.coupling import FlexRound, clear_platform
    from environment.markets.lfm import FlexOffers
    from environment.markets.orders import OrderBook

    offers = FlexOffers(np.array([7]), np.array([0]), np.array([0]), np.array([1]),
                        np.array([2.0]), np.array([ask]))
    requests = OrderBook.from_arrays(np.array([1]), [0], [130.0], [0.25], 1)
    r = FlexRound(None, np.zeros((1, 1), bool), np.zeros((1, 1), bool), np.zeros((1, 1)),
                  offers, np.array([100.0]), requests, 0.25, None,
                  SimpleNamespace(enabled=True, brp_premium_eur_mwh=30.0))
    return clear_platform(r, offers)


def test_platform_offers_are_priced_by_the_strategy():
    """Asking its activation cost (20, truthful) the aggregator sells at 120: the supplier's
    0.25 MWh trade at 120 (the offer is marginal). Asking 25 (a risk premium of 5) it trades
    the same at 125; asking 35 (premium 15) it asks more than the supplier's 130 and nothing
    trades (before, the platform priced every offer at the activation cost, whatever the
    strategy)."""
    for ask, mw, price in ((20.0, 1.0, 120.0), (25.0, 1.0, 125.0), (35.0, 0.0, np.nan)):
        accepted_mw, plat_price, req = _platform_round(ask)
        np.testing.assert_allclose(accepted_mw, [mw])
        np.testing.assert_allclose(req, [0.25 * mw])
        if mw:
            np.testing.assert_allclose(plat_price, [price])


def test_risk_premium_trades_less_on_the_platform():
    """Two days of the default week: the truthful aggregator sells 0.075 MWh on the platform
    (its offers deliverable together at every other MTU, its asks pricing in the shift's
    energy value it owns under `corrected` compensation; 0.26 when each MTU was offered alone
    at its activation cost); with risk aversion 1,000 its premium exceeds what suppliers pay
    over the energy price and it sells none."""
    def platform_mwh(r):
        led = r.ledger
        return led.loc[(led["market"] == "platform") & (led["payer"] == "flex_platform"),
                       "mwh"].abs().sum()

    assert platform_mwh(run(2)) == pytest.approx(0.075, rel=0.2)
    assert platform_mwh(strategic("risk_premium", 2, {"risk_aversion": 1000.0})) == 0.0


def test_arbitrage_learns_from_every_seller_and_its_value_falls_without_sales():
    """Prior 100 EUR/MWh, memory 0.7. A day on which another aggregator sold 2 MWh to the DSO
    at 40 and the platform traded 1 MWh at 130 against a DA price of 100: the LFM value moves
    to 0.7 x 100 + 0.3 x 40 = 82, the platform's to 0.7 x 100 + 0.3 x 30 = 79, balancing
    (nothing sold) to 70. Eight more days without any sale: each falls by 0.7 a day, the
    LFM's to 82 x 0.7^8 = 4.73 EUR/MWh (before, a market it did not trade in was never
    updated: a prior of 100 stayed 100)."""
    from agents.strategies.options import Arbitrage
    from environment.ledger import Ledger

    led = Ledger()
    dso, plat = led.account("dso", "dso"), led.account("flex_platform", "market_operators")
    me, rival = led.account("me", "aggregators"), led.account("rival", "aggregators")
    model = SimpleNamespace(ledger=led, aggregators=[SimpleNamespace(account=me),
                                                     SimpleNamespace(account=rival)])
    agg = SimpleNamespace(model=model)
    arb = Arbitrage(prior_eur_mwh=100.0, memory=0.7)
    day = SimpleNamespace(da_price=np.full(4, 100.0))
    arb._mark = led.mark()
    led.pay(dso, rival, "lfm_da", np.array([1, 2]), np.array([1.0, 1.0]), 40.0)
    led.pay(plat, rival, "platform", 3, 1.0, 130.0)
    arb.end_of_day(agg, day)
    assert arb.value == pytest.approx({"lfm": 82.0, "platform": 79.0, "balancing": 70.0})
    for _ in range(8):
        arb._mark = led.mark()
        arb.end_of_day(agg, day)
    assert arb.value["lfm"] == pytest.approx(82.0 * 0.7 ** 8)
    assert arb.value["balancing"] == pytest.approx(100.0 * 0.7 ** 9)


def test_arbitrage_value_falls_in_a_run_without_local_market():
    """Three days without an LFM: its LFM value falls from the prior of 100 to
    100 x 0.7^3 = 34.3 EUR/MWh."""
    game = strategic("arbitrage", 3, {"prior_eur_mwh": 100.0}, markets__lfm__enabled=False)
    arb = game.model.aggregators[0].strategy
    assert arb.value["lfm"] == pytest.approx(100.0 * 0.7 ** 3)
    assert arb.later_value() < 100.0


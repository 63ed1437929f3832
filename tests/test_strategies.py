"""Strategic agents: each strategy is selectable from a scenario and moves its agent's behaviour
the way its source describes, against a truthful run with the same seed; the mitigation levers
act on them; ledger and energy balances still hold.

The default scenario at full size (320 households) is used: with fewer households the grid
never congests and there is no local market to game."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from test_model import (
    check_double_entry,
    check_exchange,
    check_generation_meets_demand,
    check_imbalances,
    check_positions,
)

from agents.strategies import STRATEGIES, known, make_strategy
from environment.scenario import ScenarioError
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
    plain, pen = run(4), run(4, markets__lfm__non_delivery_penalty_eur_mwh=500.0)
    assert plain.tables["aggregators"]["missed_mw"].sum() > 0
    rows = pen.ledger[pen.ledger["market"] == "lfm_penalty"]
    assert len(rows) > 0
    assert (rows["payer"] == "flexco").all() and (rows["payee"] == "dso").all()
    assert (rows["price_eur_mwh"] == 500.0).all()
    assert "lfm_penalty" not in set(plain.ledger["market"].astype(str))


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
    base = run(2)
    game = strategic("arbitrage", 2, {"prior_eur_mwh": 200.0})
    assert game.model.aggregators[0].strategy.holdback > 0
    bat = base.tables["series"]["battery_mw"].abs().sum()
    assert game.tables["series"]["battery_mw"].abs().sum() < bat
    assert strategic("arbitrage", 2).model.aggregators[0].strategy.holdback == 0.0


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
    check_double_entry(r)
    check_exchange(r)
    check_generation_meets_demand(r)
    check_positions(r)
    check_imbalances(r)
    assert np.isfinite(r.summary["welfare_eur"]["total"])

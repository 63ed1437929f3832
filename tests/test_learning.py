"""Adaptive (Roth-Erev) bidders: markups rise where withholding pays and stay low where it does
not; learners are seeded, deterministic and use their own random stream."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from agents.strategies import make_strategy
from agents.strategies.learning import MarkupLearner, RothErev
from environment.transmission.model import TransmissionModel
from environment.transmission.scenario import parse_tx_scenario

MARKUPS = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]

# b_learner is the only producer at the import node B: 60 MW of inc every episode.
PIVOTAL = {
    "kind": "transmission", "name": "learn", "periods": 1, "episodes": 150,
    "nodes": [{"name": "A"}, {"name": "B"}],
    "lines": [{"name": "AB", "from": "A", "to": "B", "limit_mw": 40}],
    "producers": [
        {"name": "a_base", "node": "A", "capacity_mw": 200, "marginal_cost_eur_mwh": 20},
        {"name": "b_learner", "node": "B", "capacity_mw": 150, "marginal_cost_eur_mwh": 50,
         "strategy": "learning", "strategy_params": {"markups": MARKUPS, "seed": 3}},
    ],
    "loads": [{"name": "load_A", "node": "A", "mw": 50},
              {"name": "load_B", "node": "B", "mw": 100}],
}


def markups(d) -> np.ndarray:
    m = TransmissionModel(parse_tx_scenario(d)).run()
    return np.array([h[0] for h in m.producers[1].strategy.learner.history])


def buckets(h: np.ndarray) -> list[float]:
    """Mean markup per fifth of the episodes."""
    return [float(b.mean()) for b in np.array_split(h, 5)]


@pytest.mark.parametrize("pricing", ["pay_as_bid", "pay_as_clear"])
def test_pivotal_producer_learns_to_withhold(pricing):
    d = copy.deepcopy(PIVOTAL)
    d["redispatch"] = {"pricing": pricing}
    b = buckets(markups(d))
    assert b[-1] > b[0]
    assert b[-1] > 40


def test_tight_price_cap_keeps_markups_low():
    """With inc bids above 60 redispatched at cost, only the 10 EUR/MWh markup earns anything."""
    d = copy.deepcopy(PIVOTAL)
    d["redispatch"] = {"price_cap": 60.0}
    b = buckets(markups(d))
    assert b[-1] <= b[0]
    assert b[-1] < 15


def test_competitive_fringe_keeps_markups_low():
    """Five rivals at the import node offer inc at cost 55: a markup above 4 loses the inc."""
    d = copy.deepcopy(PIVOTAL)
    d["producers"][1]["strategy_params"] = {"markups": [0, 2, 4, 10, 20, 30, 40, 50], "seed": 3}
    d["producers"] += [{"name": f"b_rival_{i}", "node": "B", "capacity_mw": 30,
                        "marginal_cost_eur_mwh": 55} for i in range(5)]
    b = buckets(markups(d))
    assert b[-1] <= b[0]
    assert b[-1] < 8


def test_learning_is_seeded_and_deterministic():
    d = copy.deepcopy(PIVOTAL)
    d["episodes"] = 40
    first, again = markups(d), markups(d)
    np.testing.assert_array_equal(first, again)
    d["producers"][1]["strategy_params"]["seed"] = 4
    assert not np.array_equal(first, markups(d))


def test_learner_without_seed_gets_one_from_the_scenario_seed():
    d = copy.deepcopy(PIVOTAL)
    d["episodes"] = 40
    del d["producers"][1]["strategy_params"]["seed"]
    a = markups(d)
    np.testing.assert_array_equal(a, markups(d))
    d["seed"] = 9
    assert not np.array_equal(a, markups(d))


def test_roth_erev_reinforces_the_rewarded_action_and_keeps_its_own_stream():
    r = RothErev(3, recency=0.1, experimentation=0.2, seed=1)
    p0 = r.probabilities.copy()
    r.update(2, 5.0)
    assert r.probabilities[2] > p0[2]
    assert r.probabilities.sum() == pytest.approx(1)
    r.update(0, -100.0)  # a loss drives a propensity negative: that action is never chosen
    assert r.probabilities[0] == 0
    assert all(r.choose() != 0 for _ in range(50))
    a, b = RothErev(4, seed=7), RothErev(4, seed=7)
    first = [a.choose() for _ in range(20)]
    RothErev(4, seed=8).choose()  # another learner's draws do not touch a's or b's stream
    assert first == [b.choose() for _ in range(20)]


def test_markup_learner_actions_cover_markups_and_withholding():
    learner = MarkupLearner(markups=[0, 5], withhold_shares=[0.0, 0.5], seed=0)
    assert learner.actions == [(0, 0), (5, 0), (0, 0.5), (5, 0.5)]
    with pytest.raises(ValueError, match="withhold_shares"):
        MarkupLearner(withhold_shares=[1.5])


def test_learning_aggregator_marks_up_lfm_offers_and_learns_from_lfm_income_only():
    """The main model calls end_of_day(agent, result) with the agent's EUR by market; only the
    markets starting with "lfm" reward the markup. A reward proportional to the markup drives it
    up; income elsewhere (here a large DA loss) is ignored."""
    s = make_strategy("aggregator", "learning", max_markup=50.0, n_markups=6, seed=2)
    agg = SimpleNamespace(activation_cost=7.0)
    for _ in range(120):
        prices = s.flex_prices(agg, None, 1, np.zeros(4))
        markup = s.learner.markup
        np.testing.assert_allclose(prices, 7.0 + markup)
        s.end_of_day(agg, SimpleNamespace(eur_by_market={"lfm_da": 10.0 * markup,
                                                         "day_ahead": -1e6}))
    history = np.array([h[0] for h in s.learner.history])
    assert history[-24:].mean() > history[:24].mean()
    assert [h[2] for h in s.learner.history][:1] == [10.0 * history[0]]


def _two_learners(seed: int, days: int = 1):
    """The default scenario with two learning aggregators (the second enrols what the first
    left), 120 households."""
    from environment.scenario import load_scenario, with_overrides
    from experiments.run import scenario_path

    s = load_scenario(scenario_path(None))
    second = {**s.aggregators[0].model_dump(), "name": "flexco_2"}
    return with_overrides(s, {"seed": seed, "calendar.days": days, "prosumers.0.count": 120,
                              "planner.enabled": False, "aggregators": [
                                  {**s.aggregators[0].model_dump(), "strategy": "learning"},
                                  {**second, "strategy": "learning"}]})


def _draws(model) -> list[np.ndarray]:
    return [a.strategy.learner.core.rng.random(6) for a in model.aggregators]


def test_learners_draw_from_streams_of_their_own():
    """Two learning aggregators of one run draw differently, one learner draws differently
    in runs of different seeds and identically in runs of the same seed (before, every
    learner of every run drew from seed 0: two rivals chose the same markup every day)."""
    from environment.model import FlexMarketModel

    a, b = _draws(FlexMarketModel(_two_learners(1)))
    assert not np.array_equal(a, b)
    again = _draws(FlexMarketModel(_two_learners(1)))
    np.testing.assert_array_equal(a, again[0])
    other = _draws(FlexMarketModel(_two_learners(2)))
    assert not np.array_equal(a, other[0])


def test_rival_learners_explore_apart_and_leave_the_weather_alone():
    """Over four days the two learners' markups differ; the realisations (system load,
    prosumer load, PV) are those of the same run with truthful aggregators."""
    from experiments.run import run_scenario
    from experiments.twin import same_realisations

    s = _two_learners(1, days=4)
    run = run_scenario(s, write=False, figures=False)
    first, second = ([h[0] for h in a.strategy.learner.history] for a in run.model.aggregators)
    assert len(first) == 4 and first != second
    truthful = s.model_copy(update={"aggregators": [
        agg.model_copy(update={"strategy": "truthful"}) for agg in s.aggregators]})
    assert same_realisations(run, run_scenario(truthful, write=False, figures=False))

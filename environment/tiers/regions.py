"""The distribution scenario a region under a transmission node runs.

A region is a shipped or user distribution scenario with its `overrides` applied, then placed
under its node:

* its calendar follows the transmission run: `calendar.start` is the run's start date and
  `calendar.days` its periods / 24 (a region's own overrides of them are refused when the
  scenario is read: environment/transmission/zone_checks.py); its `seed` is the run's seed
  + `SEED_OFFSET` + its index, so that one seed fixes every tier and regions drawing the same
  scenario still differ; its day-ahead price floor and cap are the coupled market's;
* the wholesale market it takes its price from is its zone's coupled market: its stand-in
  merit order (`producers` of a closed system) and `system_load` (the rest of the system,
  which the transmission loads now are) leave; under `wholesale.kind: national` its
  `producers` are its own plants and stay. A `STAND_IN` producer of zero marginal cost is
  the transmission grid at the node: it buys and sells any volume at the zone's price in
  intraday and real time (as the exogenous exchange of environment/markets/wholesale_region
  does at a series), and the region's accounts meet the coupled market through it;
* its planner is off: it prices energy at marginal costs, and the grid above has none in the
  region's model.

A region's overrides of what the run sets (the calendar's start and days, seed, price range,
planner, wholesale, system load, a closed region's producers) are refused when the scenario
is read (environment/transmission/zone_checks.py `FOLLOW_THE_RUN`), and the placed scenario is
checked as a run checks its scenario, with what cannot act under a node (`placed_problems`)."""

from __future__ import annotations

import numpy as np

from agents.strategies.registry import register_strategy
from environment.errors import ScenarioError
from environment.markets.wholesale_region import EXCHANGE_MW, ExchangeProducer
from environment.scenario import (
    Producer,
    Scenario,
    load_scenario,
    parse_scenario,
    with_overrides,
)
from environment.scenario_files import find_scenario
from environment.scenario_markets import Wholesale

STAND_IN = "transmission"
"""The region's account for the transmission grid above it (`<region>/transmission` in the
run's ledger, the same account as the region's load in the transmission model)."""
SEED_OFFSET = 100


def region_scenarios(tx, seed: int | None = None) -> list[Scenario]:
    """Each region's scenario, placed under its node (module docstring); a `ScenarioError`
    naming the region's field and value if its scenario or overrides are bad."""
    seed = tx.seed if seed is None else seed
    out = []
    for i, r in enumerate(tx.regions):
        try:
            s = load_scenario(find_scenario(r.scenario))
            dx = tx.day_ahead
            s = with_overrides(s, {**r.overrides, "calendar.start": tx.start.date().isoformat(),
                                   "calendar.days": tx.periods // 24,
                                   "seed": seed + SEED_OFFSET + i, "planner.enabled": False,
                                   "markets.dayahead.price_floor": dx.price_floor,
                                   "markets.dayahead.price_cap": dx.price_cap})
            problems = placed_problems(s, r, i)
            if problems:
                raise ScenarioError("\n  ".join(problems))
            here = placed(s, r.name)
            parse_scenario(here.model_dump(mode="json"), f"{r.name} placed under {r.node}")
        except ScenarioError as exc:
            raise ScenarioError(f"regions[{i}] ({r.name!r}, scenario = {r.scenario!r}, "
                                f"overrides = {r.overrides!r}): {exc}") from None
        out.append(here)
    return out


def placed_problems(s: Scenario, r, i: int) -> list[str]:
    """What a region's scenario `s` (overrides applied) asks that cannot act under a node:
    simbench's background, whose energy would be in the region's flows but in no load of the
    transmission model, and `pass_up` without an aggregator that could offer anything to the
    national place (environment/tiers/national.py takes offers only from aggregators that
    offer balancing and trade energy with a perimeter of their own)."""
    out = []
    if s.grid.background == "simbench":
        out.append(f"grid.background = 'simbench': under a transmission node the background's "
                   f"energy would be in the region's flows but in no load of node {r.node!r} "
                   "in the transmission model; set grid.background 'none' (regions"
                   f"[{i}].overrides)")
    corrected = s.settlement.corrects_perimeter
    offering = [a.name for a in s.aggregators if a.balancing and (
        a.kind in ("own_brp", "supplier") or (a.kind == "independent" and corrected))]
    if r.pass_up and not offering:
        names = [f"{a.name} ({a.kind}, balancing {a.balancing})" for a in s.aggregators]
        out.append(f"regions[{i}].pass_up = True: the national place takes offers only from "
                   "aggregators that offer balancing and trade energy with a perimeter of "
                   "their own (own_brp, supplier, or independent with perimeter correction), "
                   f"and the region has none (aggregators: {names or 'none'}); it would offer "
                   "nothing")
    return out


def placed(s: Scenario, name: str) -> Scenario:
    """`s` as a region named `name` takes its price from the grid above (module docstring)."""
    own = list(s.producers) if s.markets.dayahead.wholesale.kind == "national" else []
    grid = Producer(name=STAND_IN, technology=STAND_IN, capacity_mw=2 * EXCHANGE_MW,
                    marginal_cost_eur_mwh=0.0, strategy=STAND_IN)
    dayahead = s.markets.dayahead.model_copy(update={"wholesale": Wholesale()})
    return s.model_copy(update={
        "name": name, "producers": [*own, grid],
        "system_load": s.system_load.model_copy(update={"annual_mwh": 0.0}),
        "markets": s.markets.model_copy(update={"dayahead": dayahead})})


@register_strategy("producer", STAND_IN)
class NodeExchange(ExchangeProducer):
    """The transmission grid at a region's node: an exchange at the price the model's
    `node_price` holds for each MTU of the run (the zone's forecast price until the day's
    coupling, then its coupled price; environment/tiers/model.py sets it)."""

    def _today(self, producer, day: int | None = None) -> np.ndarray:
        model = producer.model
        t = model.calendar.mtu_per_day
        d = model.day if day is None else day
        return model.node_price[d * t:(d + 1) * t]

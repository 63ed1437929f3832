"""The shipped `region` scenario: it loads as stated (a simbench MV+LV grid, one household per
connection point, three suppliers and aggregators, a national wholesale market) and a reduced
day reports the DSO's view per voltage level, with locations at each."""

from __future__ import annotations

import pytest

from environment.errors import ScenarioError
from environment.scenario import load_scenario
from environment.scenario_files import find_scenario
from experiments import dictionary
from experiments.run import run_scenario


def test_region_loads_as_stated():
    s = load_scenario(find_scenario("region"))
    assert s.grid.simbench_code == "1-MVLV-semiurb-all-2-sw" and s.grid.locations == "levels"
    assert s.prosumers[0].connections == "each" and s.prosumers[0].count == 7824
    assert len(s.brps) >= 3 and len(s.aggregators) >= 3
    assert s.markets.dayahead.wholesale.kind == "national"


def test_a_reduced_region_day_reports_every_level():
    # hourly MTUs and the first 1,500 connection points: the same grid and locations, a
    # fraction of the work (without the background, which needs every point modelled)
    r = run_scenario("region", days=1, overrides={"calendar.mtu_minutes": 60,
                                                  "prosumers.0.count": 1500,
                                                  "grid.background": "none"},
                     write=False, figures=False)
    levels = r.summary["levels"]
    for level in ("MV", "MV/LV", "LV"):
        assert levels[level]["locations"] > 0
    n = sum(v["locations"] for k, v in levels.items() if isinstance(v, dict))
    assert n == len(r.model.grid.locations) == r.summary["congestion"]["mtu_locations"] // 24
    assert r.summary["run"]["prosumers"] == 1500
    # flexibility counted where it relieves adds up to the same as where it sits
    per = [v for v in levels.values() if isinstance(v, dict)]
    for sits, relieves in (("lfm_mwh", "relieved_lfm_mwh"),
                           ("dso_cost_eur", "relieved_dso_cost_eur")):
        assert sum(v[relieves] for v in per) == pytest.approx(sum(v[sits] for v in per))
    # the violations left, per level, add up to the run's (per MTU, from the series table)
    assert sum(v["load_to_shed_mwh"] for v in per) == pytest.approx(
        r.summary["load_to_shed_mwh"], rel=1e-9, abs=1e-12)
    assert dictionary.undocumented(r.summary, r.tables) == []



def test_levels_split_feeders_and_connections_each_uses_every_point_once():
    import numpy as np

    from agents.prosumer_devices import household_connections
    from environment.inputs import load_grid
    from environment.model import FlexMarketModel
    from environment.scenario import with_overrides

    base = load_scenario(find_scenario("default"))
    feeders = FlexMarketModel(with_overrides(base, {"prosumers.0.count": 10}))
    s = with_overrides(base, {"grid.locations": "levels", "prosumers.0.connections": "each",
                              "prosumers.0.count": 92})
    m = FlexMarketModel(s)
    # an LV grid: the substation, and each feeder's lines at the LV level
    assert m.grid.locations == ("trafo", *(f"{n}-LV" for n in feeders.grid.locations[1:]))
    grid, loads, _ = load_grid(s)
    buses, _, profiles = household_connections(grid, loads)
    assert len(buses) == 92
    np.testing.assert_array_equal(m.fleet.bus, buses)      # each point once, in grid order
    assert list(m.fleet.load_profile_names) == list(profiles)
    with pytest.raises(ScenarioError, match="count = 93: connections 'each'.* has 92"):
        FlexMarketModel(with_overrides(s, {"prosumers.0.count": 93}))

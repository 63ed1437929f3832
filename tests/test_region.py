"""The shipped `region` scenario: it loads as stated (a simbench MV+LV grid, one household per
connection point, three suppliers and aggregators, a national wholesale market) and a reduced
day reports the DSO's view per voltage level, with locations at each."""

from __future__ import annotations

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
    # fraction of the work
    r = run_scenario("region", days=1, overrides={"calendar.mtu_minutes": 60,
                                                  "prosumers.0.count": 1500},
                     write=False, figures=False)
    levels = r.summary["levels"]
    for level in ("MV", "MV/LV", "LV"):
        assert levels[level]["locations"] > 0
    n = sum(v["locations"] for k, v in levels.items() if isinstance(v, dict))
    assert n == len(r.model.grid.locations) == r.summary["congestion"]["mtu_locations"] // 24
    assert r.summary["run"]["prosumers"] == 1500
    assert dictionary.undocumented(r.summary, r.tables) == []

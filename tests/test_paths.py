"""Dotted paths into scenario data: overrides, study axes and metric lookups share one rule,
including mapping keys that contain dots (simbench's EV profile names)."""

from __future__ import annotations

import pytest
import yaml

from environment.paths import assign, lookup
from environment.scenario import ScenarioError, load_scenario, with_overrides
from experiments.run import scenario_path
from experiments.study import load_study
from experiments.study_schema import StudyError

TREE = {"a": {"b.c": {"d": 1}, "b": {"c": 2}, "list": [10, {"x": 3}]}}


@pytest.mark.parametrize("path, value", [("a.b.c.d", 1), ("a.b.c", {"d": 1}),
                                         ("a.list.0", 10), ("a.list.1.x", 3)])
def test_lookup_takes_the_longest_key(path, value):
    assert lookup(TREE, path) == value


@pytest.mark.parametrize("path", ["a.nope", "a.list.5", "a.list.x", "a.b.c.d.e", ""])
def test_lookup_of_nothing_is_a_key_error(path):
    with pytest.raises(KeyError):
        lookup(TREE, path)


def test_assign_writes_where_lookup_reads():
    tree = yaml.safe_load(yaml.safe_dump(TREE))
    for path, value in [("a.b.c.d", 5), ("a.list.1.x", 7), ("a.new", 8), ("a.b.c", 6)]:
        assign(tree, path, value)
        assert lookup(tree, path) == value
    assert tree["a"]["b.c"] == 6 and tree["a"]["b"] == {"c": 2}
    with pytest.raises(KeyError):
        assign(tree, "a.missing.leaf", 1)
    with pytest.raises(KeyError):
        assign(tree, "a.new2", 1, new_keys=False)


def test_override_of_a_key_with_a_dot():
    s = with_overrides(load_scenario(scenario_path("default")),
                       {"prosumers.0.ev.charger_kw.HLS_A_3.7": 7.4})
    assert s.prosumers[0].ev.charger_kw["HLS_A_3.7"] == 7.4
    assert s.prosumers[0].ev.charger_kw["HLS_B_3.7"] == 3.7
    with pytest.raises(ScenarioError, match="prosumers.0.ev.nope.x"):
        with_overrides(load_scenario(scenario_path("default")), {"prosumers.0.ev.nope.x": 1})


def test_study_axis_on_a_key_with_a_dot(tmp_path):
    spec = {"name": "chargers", "base": "default", "seeds": [1],
            "metrics": ["welfare_eur.total"],
            "axes": {"grid": {"prosumers.0.ev.charger_kw.HLS_A_11.0": [7.4, 22.0]}}}
    path = tmp_path / "chargers.yaml"
    path.write_text(yaml.safe_dump(spec))
    study = load_study(path)
    assert [p.scenario["prosumers"][0]["ev"]["charger_kw"]["HLS_A_11.0"]
            for p in study.points] == [7.4, 22.0]
    spec["axes"]["grid"] = {"prosumers.0.ev.charger_kw.HLS_A_11.0": [-1.0]}
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises((StudyError, ScenarioError), match="HLS_A_11.0"):
        load_study(path)

"""Scenario files: `extends` by name from anywhere, the list rules of a child, strict YAML
(duplicate keys, files that are not text), names looked up with suggestions, and the calendar
in any year."""

from __future__ import annotations

import datetime as dt

import pytest

from environment.calendar import Calendar, profile_date
from environment.errors import InputError
from environment.scenario import ScenarioError, load_scenario
from environment.scenario_files import find_scenario, merge, shipped_scenarios
from environment.yamlio import read_yaml


def test_extends_a_shipped_name_from_any_folder(tmp_path):
    mine = tmp_path / "elsewhere" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text("extends: default\nname: mine\nprosumers: [{name: households, count: 12}]\n")
    s = load_scenario(mine)
    assert s.name == "mine" and s.prosumers[0].count == 12
    assert s.prosumers[0].pv.share == load_scenario(find_scenario("default")).prosumers[0].pv.share


def test_extends_prefers_a_file_next_to_the_child(tmp_path):
    (tmp_path / "default.yaml").write_text("extends: " + str(find_scenario("default"))
                                           + "\nseed: 5\n")
    (tmp_path / "child.yaml").write_text("extends: default\n")
    assert load_scenario(tmp_path / "child.yaml").seed == 5


def test_empty_list_replace_and_remove(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("extends: default\naggregators: []\n")
    assert load_scenario(path).aggregators == []
    path.write_text("extends: default\nproducers:\n  replace:\n    - {name: only, technology: gas,"
                    " capacity_mw: 5, marginal_cost_eur_mwh: 50}\n")
    assert [p.name for p in load_scenario(path).producers] == ["only"]
    path.write_text("extends: default\nproducers:\n  remove: [oil_peaker, imports]\n"
                    "  merge:\n    - {name: ccgt, capacity_mw: 0.9}\n")
    s = load_scenario(path)
    names = [p.name for p in s.producers]
    assert "oil_peaker" not in names and "imports" not in names and len(names) == 7
    assert next(p for p in s.producers if p.name == "ccgt").capacity_mw == 0.9
    path.write_text("extends: default\nproducers: {remove: [oil_peeker]}\n")
    with pytest.raises(ScenarioError, match=r"producers.remove: 'oil_peeker'.*oil_peaker"):
        load_scenario(path)
    path.write_text("extends: default\nproducers: {replace: [], remove: [x]}\n")
    with pytest.raises(ScenarioError, match="cannot be combined"):
        load_scenario(path)


def test_named_lists_merge_by_name_and_plain_lists_replace():
    base = {"xs": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "ys": [1, 2, 3]}
    out = merge(base, {"xs": [{"name": "b", "v": 5}, {"name": "c"}], "ys": [9]})
    assert out == {"xs": [{"name": "a", "v": 1}, {"name": "b", "v": 5}, {"name": "c"}],
                   "ys": [9]}
    assert merge(base, {"ys": {"remove": [2]}})["ys"] == [1, 3]


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nseed: 1\ncalendar: {days: 2}\nseed: 2\n")
    with pytest.raises(ScenarioError, match=r"key 'seed' appears twice.*lines 2 and 4"):
        load_scenario(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("a:\n  b: 1\n  b: 2\n")
    with pytest.raises(InputError, match="'b' appears twice"):
        read_yaml(nested)


@pytest.mark.parametrize("content", [b"PK\x03\x04\x00\x00binary", b"\xff\xfe\x00s\x00e",
                                     "caf\xe9: 1\n".encode("latin-1")])
def test_a_file_that_is_not_text_is_named(tmp_path, content):
    path = tmp_path / "scenario.yaml"
    path.write_bytes(content)
    with pytest.raises(ScenarioError, match=r"scenario .*scenario.yaml: not a text file"):
        load_scenario(path)


def test_a_folder_or_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="is a folder"):
        load_scenario(tmp_path)
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "x.yaml")


def test_misspelt_name_gets_a_suggestion():
    with pytest.raises(ScenarioError, match="did you mean default"):
        find_scenario("defualt")
    assert {"default", "coupling_conflict", "two_node_incdec"} <= set(shipped_scenarios())


@pytest.mark.parametrize(("date", "expected"), [
    (dt.date(2016, 5, 4), dt.date(2016, 5, 4)),
    (dt.date(2024, 3, 1), dt.date(2016, 3, 4)),      # Friday -> the nearest 2016 Friday
    (dt.date(2017, 1, 1), dt.date(2016, 1, 3)),      # Sunday
    (dt.date(2023, 12, 31), dt.date(2016, 12, 25)),  # Sunday; 2017-01-01 would leave 2016
    (dt.date(2024, 2, 29), dt.date(2016, 3, 3)),      # Thursday
])
def test_profile_date_keeps_weekday_and_season(date, expected):
    got = profile_date(date)
    assert got == expected
    assert got.weekday() == date.weekday() and got.year == 2016
    assert abs((got - dt.date(2016, date.month, date.day)).days) <= 7


def test_a_calendar_in_another_year_says_it_maps_profiles():
    assert Calendar(dt.date(2016, 1, 11), 7).profile_mapping() == ""
    text = Calendar(dt.date(2024, 1, 15), 7).profile_mapping()
    assert "2024-01-15 (Mon) reads 2016-01-18 (Mon)" in text

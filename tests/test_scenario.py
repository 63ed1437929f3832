"""Scenario validation: every bad scenario stops with a ScenarioError naming field and value.

Some names (strategies, clearing mechanisms, profiles, buses, the simbench grid code) can only
be checked against registries and data, so those cases also build the model, which must raise
before any simulation starts. Each case asserts that the message names the field's dotted path
and the offending value.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from environment.model import FlexMarketModel
from environment.scenario import (
    Scenario,
    ScenarioError,
    dump_scenario,
    load_scenario,
    parse_scenario,
    with_overrides,
)
from experiments.cli import main

ROOT = Path(__file__).resolve().parent.parent


def build(data: dict) -> FlexMarketModel:
    """Validate and construct a model (no step is run): the full set of pre-run checks."""
    return FlexMarketModel(parse_scenario(data, "<test>"))


def _set(path: tuple, value):
    def mutate(d):
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _all(*mutations):
    def mutate(d):
        for m in mutations:
            m(d)

    return mutate


# (id, mutation of the default YAML data, expected path in the message, expected value text)
BAD = [
    ("unknown-top-level-key", _set(("colour",), "blue"), "colour", "'blue'"),
    ("unknown-nested-key", _set(("prosumers", 0, "battery", "colour"), "red"),
     "prosumers[0].battery.colour", "'red'"),
    ("wrong-type", _set(("calendar", "days"), "seven"), "calendar.days", "'seven'"),
    ("wrong-type-float-for-int", _set(("prosumers", 0, "count"), 2.5), "prosumers[0].count",
     "2.5"),
    ("wrong-type-bool", _set(("planner", "enabled"), "yes"), "planner.enabled", "'yes'"),
    ("negative-capacity", _set(("producers", 2, "capacity_mw"), -1),
     "producers[2].capacity_mw", "-1"),
    ("share-above-one", _set(("prosumers", 0, "pv", "share"), 1.5), "prosumers[0].pv.share",
     "1.5"),
    ("negative-charger", _set(("prosumers", 0, "ev", "charger_kw", "HLS_A_11.0"), -11.0),
     "prosumers[0].ev.charger_kw.HLS_A_11.0", "-11.0"),
    ("unknown-device", _set(("aggregators", 0, "devices"), ["battery", "fridge"]),
     "aggregators[0].devices[1]", "'fridge'"),
    ("unknown-brp-strategy", _set(("brps", 0, "strategy"), "psychic"), "brps[0].strategy",
     "'psychic'"),
    ("unknown-aggregator-strategy", _set(("aggregators", 0, "strategy"), "greedy"),
     "aggregators[0].strategy", "'greedy'"),
    ("unknown-producer-strategy", _set(("producers", 4, "strategy"), "withhold"),
     "producers[4].strategy", "'withhold'"),
    ("unknown-clearing", _set(("markets", "dayahead", "clearing"), "pay_as_bid"),
     "markets.dayahead.clearing", "'pay_as_bid'"),
    ("unknown-pricing", _set(("tso", "pricing"), "triple"), "tso.pricing", "'triple'"),
    ("bus-not-in-grid", _set(("prosumers", 0, "buses"), ["nope"]), "prosumers[0].buses[0]",
     "'nope'"),
    ("unknown-grid-code", _set(("grid", "simbench_code"), "1-LV-nowhere--0-sw"),
     "grid.simbench_code", "'1-LV-nowhere--0-sw'"),
    ("malformed-grid-code", _set(("grid", "simbench_code"), "nope"), "grid.simbench_code",
     "'nope'"),
    ("unknown-load-profile", _set(("prosumers", 0, "load_profiles"), ["H0-A", "H0-X"]),
     "prosumers[0].load_profiles[1]", "'H0-X'"),
    ("unknown-producer-profile", _set(("producers", 0, "profile"), "WP99"),
     "producers[0].profile", "'WP99'"),
    ("unknown-system-load-profile", _set(("system_load", "profile"), "nowhere_urban"),
     "system_load.profile", "'nowhere_urban'"),
    ("no-pv-profiles", _set(("prosumers", 0, "pv", "profiles"), []),
     "prosumers[0].pv.profiles", "[]"),
    ("customer-shares-not-one",
     _all(_set(("brps", 0, "customer_share"), 0.6), _set(("brps", 1, "customer_share"), 0.5)),
     "brps[*].customer_share", "[0.6, 0.5"),
    ("duplicate-producer-name",
     _all(_set(("producers", 0, "name"), "twin"), _set(("producers", 1, "name"), "twin")),
     "producers[1].name", "'twin'"),
    ("duplicate-brp-name",
     _all(_set(("brps", 0, "name"), "twin"), _set(("brps", 1, "name"), "twin")),
     "brps[1].name", "'twin'"),
    ("system-load-brp-clash",
     _all(_set(("brps", 0, "name"), "supplier"), _set(("system_load", "brp"), "supplier")),
     "system_load.brp", "'supplier'"),
    ("floor-not-below-cap", _set(("markets", "dayahead", "price_floor"), 5000),
     "markets.dayahead", "price_floor 5000"),
    ("floor-equals-cap", _set(("markets", "dayahead", "price_floor"), 4000),
     "markets.dayahead", "price_floor 4000"),
    ("name-across-roles", _set(("producers", 0, "name"), "stadtwerk"), "producers[0].name",
     "'stadtwerk'"),
    ("aggregator-named-like-a-producer", _set(("aggregators", 0, "name"), "nuclear"),
     "producers[2].name", "'nuclear'"),
    ("reserved-account-name", _set(("producers", 1, "name"), "da_exchange"),
     "producers[1].name", "'da_exchange'"),
    ("prosumer-account-name", _set(("brps", 0, "name"), "prosumer_3"), "brps[0].name",
     "'prosumer_3'"),
    ("value-of-load-above-cap", _set(("value_of_load_eur_mwh",), 9000),
     "value_of_load_eur_mwh", "9000"),
    ("marginal-cost-above-cap", _set(("producers", 6, "marginal_cost_eur_mwh"), 4500),
     "producers[6].marginal_cost_eur_mwh", "4500"),
    ("energy-component-above-retail", _set(("brps", 1, "energy_component_eur_mwh"), 400),
     "brps[1].energy_component_eur_mwh", "400"),
    ("lfm-cap-above-unresolved-cost", _set(("markets", "lfm", "price_cap"), 6000),
     "markets.lfm.price_cap", "6000"),
    ("unknown-tie-price", _set(("markets", "dayahead", "tie_price"), "average"),
     "markets.dayahead.tie_price", "'average'"),
    ("data-file-missing", _set(("data",), {"x": {"file": "/nowhere/x.csv", "column": "v",
                                                  "unit": "kW"}}),
     "data.x.file", "/nowhere/x.csv"),
    ("data-unknown-unit", _set(("data",), {"x": {"file": "/nowhere/x.csv", "column": "v",
                                                  "unit": "kw"}}),
     "data.x.unit", "'kw'"),
    ("system-load-as-is-without-series", _set(("system_load", "annual_mwh"), None),
     "system_load.annual_mwh", "None"),
    ("not-a-date", _set(("calendar", "start"), "2016-02-30"), "calendar.start",
     "'2016-02-30'"),
    ("mtu-minutes-not-allowed", _set(("calendar", "mtu_minutes"), 7), "calendar.mtu_minutes",
     "7"),
    ("gate-closure-hour", _set(("calendar", "da_gate_closure_hour"), 24),
     "calendar.da_gate_closure_hour", "24"),
    ("negative-seed", _set(("seed",), -1), "seed", "-1"),
    ("loading-limit-zero", _set(("grid", "loading_limit"), 0), "grid.loading_limit", "0"),
    ("voltage-band", _set(("grid", "v_min_pu"), 1.02), "grid.v_min_pu", "1.02"),
    ("empty-brps", _set(("brps",), []), "brps", "[]"),
    ("baseline-metered-schedule",
     _set(("settlement", "baseline", "dayahead"), {"rule": "metered"}),
     "settlement.baseline", "dayahead.rule = 'metered'"),
    ("baseline-unknown-rule", _set(("settlement", "baseline", "lfm"), {"rule": "yesterday"}),
     "settlement.baseline.lfm", "'yesterday'"),
    ("baseline-days-without-lookback",
     _set(("settlement", "baseline", "lfm"), {"rule": "declared", "days": 3}),
     "settlement.baseline.lfm", "days = 3"),
    ("baseline-top-of-rolling",
     _set(("settlement", "baseline", "balancing"), {"rule": "rolling", "top": 2}),
     "settlement.baseline.balancing", "top = 2"),
    ("baseline-top-above-days",
     _set(("settlement", "baseline", "dayahead"), {"rule": "historical", "days": 3, "top": 4}),
     "settlement.baseline.dayahead", "top = 4 of days = 3"),
    ("baseline-settles-nothing",
     _all(_set(("settlement", "compensation"), "none"),
          _set(("settlement", "baseline", "dayahead"), {"rule": "historical"})),
     "settlement", "'historical'"),
    ("baseline-without-perimeter",
     _all(_set(("aggregators", 0, "kind"), "own_brp"),
          _set(("settlement", "baseline", "lfm"), {"rule": "rolling"})),
     "settlement.baseline", "'rolling'"),
]


@pytest.mark.parametrize(("mutate", "path", "value"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_scenario_names_field_and_value(default_data, mutate, path, value):
    mutate(default_data)
    with pytest.raises(ScenarioError) as err:
        build(default_data)
    msg = str(err.value)
    assert path in msg, msg
    assert value in msg, msg
    # the value is reported on the line of its field, not somewhere else in the message
    line = next(ln for ln in msg.splitlines() if path in ln)
    assert value in line, msg


def test_missing_required_field(default_data):
    del default_data["brps"]
    with pytest.raises(ScenarioError, match=r"brps: required field is missing"):
        parse_scenario(default_data)


def test_every_problem_is_reported_at_once(default_data):
    default_data["calendar"]["days"] = "seven"
    default_data["producers"][2]["capacity_mw"] = -1
    default_data["prosumers"][0]["pv"]["share"] = 1.5
    with pytest.raises(ScenarioError) as err:
        parse_scenario(default_data, "several.yaml")
    lines = str(err.value).splitlines()
    assert "several.yaml" in lines[0]
    for expected in ("calendar.days = 'seven'", "producers[2].capacity_mw = -1",
                     "prosumers[0].pv.share = 1.5"):
        assert sum(expected in ln for ln in lines) == 1, lines


def test_every_unknown_reference_is_reported_at_once(default_data):
    default_data["brps"][0]["strategy"] = "psychic"
    default_data["markets"]["dayahead"]["clearing"] = "pay_as_bid"
    default_data["prosumers"][0]["load_profiles"] = ["H0-X"]
    with pytest.raises(ScenarioError) as err:
        build(default_data)
    msg = str(err.value)
    for expected in ("brps[0].strategy = 'psychic'", "markets.dayahead.clearing = 'pay_as_bid'",
                     "prosumers[0].load_profiles[0] = 'H0-X'"):
        assert expected in msg, msg


def test_model_level_checks_raise_before_any_step(default_data, monkeypatch):
    """Reference checks happen in the constructor: no day is ever simulated."""
    default_data["brps"][0]["strategy"] = "psychic"
    monkeypatch.setattr(FlexMarketModel, "step", lambda self: pytest.fail("step() was called"))
    with pytest.raises(ScenarioError, match=r"brps\[0\]\.strategy = 'psychic'"):
        build(default_data)


# --- files ------------------------------------------------------------------------------------


def test_default_scenario_is_valid(default_scenario):
    assert isinstance(default_scenario, Scenario)
    assert default_scenario.name == "default"
    assert abs(sum(b.customer_share for b in default_scenario.brps) - 1) < 1e-12


def test_dump_round_trips(default_scenario, tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text(dump_scenario(default_scenario))
    assert load_scenario(path) == default_scenario


def test_bad_value_in_file_names_the_file(tmp_path, default_yaml_path):
    path = tmp_path / "bad.yaml"
    path.write_text(default_yaml_path.read_text().replace("mtu_minutes: 15", "mtu_minutes: 7"))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "calendar.mtu_minutes = 7" in msg


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ncalendar: {days: 3\nseed: [1, 2\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "not valid YAML" in msg
    assert "line" in msg  # the parser's position, so the user can find the typo


def test_file_not_found(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioError, match="not found") as err:
        load_scenario(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("", "NoneType"),
                                            ("just a string\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    path = tmp_path / "top.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=f"top level must be a mapping, got {kind}"):
        load_scenario(path)


# Every number a run uses is validated before work starts: a non-finite number is not a cost,
# a capacity or a price cap (it would only break, or silently distort, the run).
NON_FINITE = [
    (("producers", 2, "marginal_cost_eur_mwh"), float("nan"), "producers[2].marginal_cost_eur_mwh",
     "nan"),
    (("producers", 2, "capacity_mw"), float("inf"), "producers[2].capacity_mw", "inf"),
    (("markets", "dayahead", "price_cap"), float("inf"), "markets.dayahead.price_cap", "inf"),
    (("brps", 0, "retail_price_eur_mwh"), float("-inf"), "brps[0].retail_price_eur_mwh", "-inf"),
]


@pytest.mark.parametrize(("where", "bad", "path", "value"), NON_FINITE,
                         ids=[c[2] for c in NON_FINITE])
def test_non_finite_numbers_are_rejected(tmp_path, default_data, where, bad, path, value):
    _set(where, bad)(default_data)
    file = tmp_path / "nonfinite.yaml"
    file.write_text(yaml.safe_dump(default_data))  # written as .nan / .inf, as a user would
    with pytest.raises(ScenarioError) as err:
        load_scenario(file)
    assert f"{path} = {value}" in str(err.value)


# --- overrides ----------------------------------------------------------------------------------


def test_with_overrides_applies_dotted_paths(default_scenario, default_yaml_path):
    s = with_overrides(default_scenario, {"prosumers.0.count": 5, "calendar.days": 3,
                                          "markets.dayahead.price_cap": 3000.0,
                                          "value_of_load_eur_mwh": 3000.0,
                                          "producers.3.marginal_cost_eur_mwh": 40.0,
                                          "prosumers.0.battery.share": 0.1})
    assert s.prosumers[0].count == 5
    assert s.calendar.days == 3
    assert s.markets.dayahead.price_cap == 3000.0
    assert s.producers[3].marginal_cost_eur_mwh == 40.0
    assert s.prosumers[0].battery.share == 0.1
    # nothing else changed, and the original is untouched
    assert s.calendar.start == default_scenario.calendar.start
    assert s.producers[2] == default_scenario.producers[2]
    assert default_scenario.prosumers[0].count != 5
    assert default_scenario.calendar.days != 3
    assert default_scenario.model_dump() == load_scenario(default_yaml_path).model_dump()
    assert with_overrides(default_scenario, {}) == default_scenario


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"calendar.days": 0}, "calendar.days = 0"),
    ({"prosumers.0.pv.share": 2}, "prosumers[0].pv.share = 2"),
    ({"calendar.colour": "red"}, "calendar.colour = 'red'"),
    ({"brps.0.customer_share": 0.7, "brps.1.customer_share": 0.1},
     "brps[*].customer_share = [0.7, 0.1"),
    ({"markets.dayahead.clearing": 3}, "markets.dayahead.clearing = 3"),
])
def test_with_overrides_rejects_bad_values(default_scenario, overrides, expected):
    with pytest.raises(ScenarioError) as err:
        with_overrides(default_scenario, overrides)
    assert expected in str(err.value)


@pytest.mark.parametrize("path", ["prosumers.5.count", "prosumers.first.count",
                                  "calendar.days.max"])
def test_with_overrides_rejects_bad_paths(default_scenario, path):
    with pytest.raises(ScenarioError) as err:
        with_overrides(default_scenario, {path: 3})
    assert path.split(".")[0] in str(err.value)
    assert path.split(".")[1] in str(err.value)


# --- command line -------------------------------------------------------------------------------


def test_cli_bad_file_exits_2_with_message(tmp_path, capsys, default_data):
    path = tmp_path / "bad.yaml"
    default_data["producers"][2]["capacity_mw"] = -1
    path.write_text(yaml.safe_dump(default_data))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "producers[2].capacity_mw = -1" in err
    assert str(path) in err


def test_cli_model_level_error_exits_2(tmp_path, capsys, default_data, stop_tracemalloc):
    path = tmp_path / "bad_strategy.yaml"
    default_data["brps"][0]["strategy"] = "psychic"
    path.write_text(yaml.safe_dump(default_data))
    assert main(["run", str(path), "-q", "--out", str(tmp_path / "out")]) == 2
    assert "brps[0].strategy = 'psychic'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [
    ["run", "no-such-scenario"],
    ["run", "missing.yaml"],
    ["run", "--set", "calendar.days=seven"],
    ["run", "--days", "0"],
    ["run", "--seed", "-3"],
])
def test_cli_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")


def test_cli_set_value_is_named(capsys):
    assert main(["run", "--set", "calendar.days=seven"]) == 2
    assert "calendar.days = 'seven'" in capsys.readouterr().err


def test_cli_set_without_equals_is_a_usage_error(capsys):
    try:
        code = main(["run", "--set", "calendar.days"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--days", "--seed", "--out", "--set", "--no-planner"):
        assert option in out


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_cli_process_exit_code(tmp_path):
    """The real entry point turns a ScenarioError into exit status 2 and a message on stderr."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ncalendar: {mtu_minutes: 7}\n")
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", "run", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "calendar.mtu_minutes = 7" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_extends_merges_named_lists_and_reports_cycles(tmp_path):
    from environment.scenario import load_scenario
    from experiments.run import scenario_path

    base = load_scenario(scenario_path("default"))
    child = load_scenario(scenario_path("coupling_conflict"))
    assert child.prosumers[0].count == 60
    assert child.prosumers[0].ev == base.prosumers[0].ev          # untouched fields inherited
    assert child.prosumers[0].battery.share == 0.8
    assert child.prosumers[0].battery.efficiency == base.prosumers[0].battery.efficiency
    assert [b.name for b in child.brps] == [b.name for b in base.brps]
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(ScenarioError, match="circular"):
        load_scenario(a)
    (tmp_path / "c.yaml").write_text("extends: nowhere\n")
    with pytest.raises(ScenarioError, match="'nowhere' not found"):
        load_scenario(tmp_path / "c.yaml")


def test_reserved_account_names_are_those_the_model_opens(default_scenario):
    """Every account a built model opens that is not one of the scenario's agents is in
    RESERVED_ACCOUNTS (or a prosumer's), so a scenario can never collide with one."""
    from environment.scenario_checks import RESERVED_ACCOUNTS

    model = FlexMarketModel(with_overrides(default_scenario, {"prosumers.0.count": 5,
                                                              "calendar.days": 1}))
    s = model.config
    agents = {b.name for b in s.brps} | {a.name for a in s.aggregators} \
        | {p.name for p in s.producers} | {s.system_load.brp}
    own = {n for n in model.ledger.names if n not in agents and not n.startswith("prosumer_")}
    assert own <= RESERVED_ACCOUNTS, own - RESERVED_ACCOUNTS

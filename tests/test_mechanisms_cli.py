"""Every built-in market mechanism and scheme can be chosen from the command line, whichever
modules the command happened to import before (the registry loads its built-ins itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from environment.coupling import COUPLING
from environment.markets import registry
from environment.markets.registry import BUILTIN_MODULES, CLEARING
from environment.markets.tso_dso import TSO_DSO
from experiments.cli import main

ROOT = Path(__file__).resolve().parent.parent
BASE = ["run", "--days", "1", "--set", "prosumers.0.count=40", "--no-planner", "--no-figures",
        "-q"]
CHOICES = ([("markets.dayahead.clearing", n) for n in sorted(CLEARING)]
           + [("markets.intraday.clearing", n) for n in sorted(CLEARING)]
           + [("markets.coupling", n) for n in sorted(COUPLING)]
           + [("markets.tso_dso_scheme", n) for n in sorted(TSO_DSO)])


@pytest.fixture
def fresh_registry(monkeypatch):
    """The registry as a new process finds it once the CLI path imported the day-ahead module
    alone: the other built-in modules not imported, their mechanisms not registered."""
    saved = dict(dict.items(CLEARING))
    for module in BUILTIN_MODULES[1:]:
        monkeypatch.delitem(sys.modules, module, raising=False)
    dict.clear(CLEARING)
    import environment.markets.dayahead as dayahead

    dict.__setitem__(CLEARING, "uniform_price", dayahead.clear_uniform_price)
    if hasattr(CLEARING, "__dict__"):  # a mapping that remembers it loaded the built-ins
        monkeypatch.setattr(CLEARING, "_loaded", False, raising=False)
    yield
    dict.clear(CLEARING)
    dict.update(CLEARING, saved)


def test_every_builtin_is_listed():
    assert {"uniform_price", "continuous"} <= set(CLEARING)
    assert set(COUPLING) == {"no_coupling", "conditional", "sequential"}
    assert len(TSO_DSO) == 5


@pytest.mark.parametrize(("path", "name"), CHOICES, ids=[f"{p}={n}" for p, n in CHOICES])
def test_cli_runs_every_mechanism_and_scheme(path, name, tmp_path, fresh_registry, capsys):
    out = tmp_path / "run"
    assert main([*BASE, "--set", f"{path}={name}", "--out", str(out)]) == 0
    assert "results in" in capsys.readouterr().out
    config = yaml.safe_load((out / "config.yaml").read_text())
    section, *rest = path.split(".")
    value = config[section]
    for key in rest:
        value = value[key]
    assert value == name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["days"] == 1
    if path == "markets.coupling":
        assert summary["run"]["coupling"] == name
    if path == "markets.tso_dso_scheme":
        assert summary["run"]["tso_dso_scheme"] == name


def test_cli_continuous_intraday_in_a_new_process(tmp_path):
    """The reported failure, as a user meets it: a new interpreter, the console entry point."""
    code = "import sys; from experiments.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *BASE, "--set",
                           "markets.intraday.clearing=continuous", "--out", str(tmp_path / "r")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "results in" in done.stdout


def test_unknown_mechanism_names_the_known_ones(fresh_registry, capsys):
    assert main([*BASE, "--set", "markets.intraday.clearing=dutch"]) == 2
    err = capsys.readouterr().err
    assert "markets.intraday.clearing = 'dutch'" in err and "'continuous'" in err
    assert registry.get_clearing("continuous").in_arrival_order

"""The README's examples work as written: its scenario snippets load, and its command lines
parse."""

from __future__ import annotations

import datetime as dt
import re
import shlex
from pathlib import Path

import pytest

from environment.scenario import load_scenario
from environment.transmission.scenario import load_tx_scenario
from experiments.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
YAML = re.findall(r"```yaml\n(.*?)```", README, re.S)


def _csv(path: Path, column: str, hours: int = 8 * 24) -> None:
    start = dt.datetime(2016, 1, 11)
    rows = [f"time,{column}"] + [f"{(start + dt.timedelta(hours=h)).isoformat()},"
                                 f"{1000 + 10 * (h % 24)}" for h in range(hours)]
    path.write_text("\n".join(rows) + "\n")


def test_the_list_rules_example_loads(tmp_path):
    block = next(b for b in YAML if "replace:" in b)
    (tmp_path / "child.yaml").write_text(block)
    s = load_scenario(tmp_path / "child.yaml")
    assert [b.name for b in s.brps] == ["only_supplier"] and s.aggregators == []
    assert [g.name for g in s.prosumers] == ["flats"]


def test_the_own_data_example_loads(tmp_path):
    block = next(b for b in YAML if b.startswith("data:"))
    (tmp_path / "data").mkdir()
    _csv(tmp_path / "data" / "load.csv", "load_kw")
    (tmp_path / "own.yaml").write_text("extends: default\n" + block)
    s = load_scenario(tmp_path / "own.yaml")
    assert s.prosumers[0].load_profiles == ["household"]


def test_the_transmission_example_loads(tmp_path):
    block = next(b for b in YAML if b.startswith("kind: transmission"))
    (tmp_path / "zone.yaml").write_text(block)
    start = dt.datetime(2024, 3, 1)
    rows = ["time,mw"] + [f"{(start + dt.timedelta(hours=h)).isoformat()},1500"
                          for h in range(744)]
    (tmp_path / "demand.csv").write_text("\n".join(rows) + "\n")
    s = load_tx_scenario(tmp_path / "zone.yaml")
    assert s.periods == 744 and s.load_mw().shape == (744, 2)


@pytest.mark.parametrize("line", [ln.split("#")[0].strip() for ln in README.splitlines()
                                  if ln.startswith(".venv/bin/flexmarkets ")])
def test_the_readme_command_lines_parse(line):
    argv = shlex.split(line)[1:]
    if argv in (["--help"],):
        pytest.skip("prints help")
    build_parser().parse_args(argv)

"""`flexmarkets compare RUN RUN`: settings and numbers that differ, by folder or run id, and
the CSV and figure it writes."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.cli import main
from experiments.compare import differences, find_run

ARGS = ["--days", "1", "--set", "prosumers.0.count=30", "--no-planner", "--no-figures", "-q"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp") / "results"
    assert main(["run", *ARGS, "--out", str(root / "single")]) == 0
    assert main(["run", *ARGS, "--set", "tso.pricing=dual", "--out", str(root / "dual")]) == 0
    return root


def test_compare_prints_settings_and_numbers(two_runs, capsys, tmp_path):
    capsys.readouterr()
    out = tmp_path / "c"
    assert main(["compare", "single", "dual", "--results", str(two_runs), "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "tso.pricing: 'single' -> 'dual'" in text
    assert "summary numbers that differ:" in text and "imbalance price" in text
    table = pd.read_csv(out / "compare.csv")
    assert {"path", "label", "a", "b", "b_minus_a", "relative"} <= set(table.columns)
    assert (table["b"] - table["a"] - table["b_minus_a"]).abs().max() < 1e-9
    assert (out / "compare.png").stat().st_size > 20_000


def test_a_run_by_prefix_and_a_misspelt_one(two_runs, capsys):
    assert find_run("sing", two_runs).name == "single"
    assert main(["compare", "singel", "dual", "--results", str(two_runs)]) == 2
    assert "did you mean single" in capsys.readouterr().err


def test_differences_skip_round_off_and_sort_by_relative_change():
    nums, others = differences({"a": 1.0, "b": 100.0, "c": 5.0, "s": "x", "z": 1e9},
                               {"a": 2.0, "b": 101.0, "c": 5.0, "s": "y", "z": 1e9 + 1e-3})
    assert [r[0] for r in nums] == ["a", "b"]
    assert others == [("s", "x", "y")]

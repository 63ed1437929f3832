"""The code's shape: the command line answers before the scientific stack is imported, there
are no import circles among the project's modules, and the modules this project's user path
touches stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "pandas", "pydantic", "mesa", "scipy", "matplotlib", "pandapower", "numba")


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_the_cli_module_imports_nothing_heavy():
    loaded = _python("import sys, experiments.cli; "
                     f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    assert loaded == "", loaded


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["run", "--help"], 0),
                                            (["run", "--set", "calendar.days"], 2),
                                            (["sweep", "--help"], 0)])
def test_help_and_a_malformed_set_answer_at_once(argv, code):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == code, proc.stderr
    assert elapsed < 2.0, f"{argv}: {elapsed:.2f} s (measured 0.2 s on an idle machine)"
    loaded = "" if code == 0 else proc.stderr
    assert "Traceback" not in loaded


def _graph() -> dict[str, set[str]]:
    mods = {}
    for pkg in ("environment", "agents", "experiments"):
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            mods[name] = p
    graph = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    target = full if full in mods else node.module
                    if target in mods and target != m:
                        graph[m].add(target)
            elif isinstance(node, ast.Import):
                graph[m] |= {a.name for a in node.names if a.name in mods and a.name != m}
    return graph


def test_no_import_circles():
    """Imports anywhere in a module (also inside functions) count: a lazy import that closes
    a circle still ties the modules together."""
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, " -> ".join(cycle)


USER_PATH = ["experiments/" + n for n in (
    "cli.py", "run_cli.py", "run.py", "plan.py", "store.py", "headline.py", "compare.py",
    "dictionary.py", "catalog.py", "study.py", "study_schema.py", "sweep.py", "sweep_cli.py",
    "sweep_runners.py", "sweep_dask.py", "runs_cli.py", "report.py", "report_stats.py",
    "report_figures.py",
    "viz.py", "viz_model.py", "viz_grid.py", "viz_markets.py", "viz_panels.py", "plots.py",
    "transmission_run.py")] + ["environment/" + n for n in (
        "scenario.py", "scenario_files.py", "scenario_checks.py", "series.py", "yamlio.py",
        "profiles.py", "datacache.py", "calendar.py", "model.py", "day.py",
        "dayaheadstage.py", "realtime.py", "settlement.py", "records.py", "planner_inputs.py",
        "inputs.py", "transmission/model.py",
        "transmission/scenario.py", "transmission/twin.py")]


MARKETS_AND_GRID = ["environment/markets/" + n for n in (
    "balancing.py", "tso_dso.py", "tso_dso_problem.py", "tso_dso_lp.py")] + [
    "environment/grid/" + n for n in ("network.py", "from_pandapower.py")]


@pytest.mark.parametrize("path", USER_PATH + MARKETS_AND_GRID)
def test_modules_stay_under_500_lines(path):
    n = len((ROOT / path).read_text().splitlines())
    assert n <= 500, f"{path}: {n} lines"


def test_no_merge_conflict_markers_are_committed():
    """A merge resolved in a hurry once left its markers in the README; no text file under
    version control may carry one."""
    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.yaml", "*.toml", "*.txt",
                            "Makefile"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    marked = [f for f in files if (ROOT / f).exists() and any(
        line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in
        (ROOT / f).read_text(errors="replace").splitlines())]
    assert marked == []

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


PACKAGES = ("agents", "environment", "experiments", "results")
LAZY_IMPORTERS = {"import_module", "_lazy"}
"""Calls whose literal first argument names a module they import (importlib's, and the CLI's
handlers imported when their command runs)."""


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py") if (ROOT / pkg).is_dir() else ():
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            mods[name] = p
    return mods


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _graph() -> dict[str, set[str]]:
    mods = _modules()
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
            elif isinstance(node, ast.Call) and _call_name(node) in LAZY_IMPORTERS \
                    and node.args and isinstance(node.args[0], ast.Constant) \
                    and node.args[0].value in mods and node.args[0].value != m:
                graph[m].add(node.args[0].value)
    return graph


def test_no_import_circles():
    """Imports anywhere in a module (also inside functions, and the CLI's lazy handlers) count:
    a lazy import that closes a circle still ties the modules together."""
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


def test_the_import_graph_sees_lazy_and_function_level_imports():
    graph = _graph()
    assert "experiments.run_cli" in graph["experiments.cli"]        # _lazy("experiments.run_cli")
    assert "environment.model" in graph["experiments.run"]          # inside simulate_distribution


def test_every_project_import_names_a_module_of_this_checkout():
    """An import of a removed module must fail here: the editable install of another checkout
    would otherwise serve it silently (bench and tests included)."""
    mods = _modules()
    files = [*mods.values(), *(ROOT / "bench").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    stale = []
    for p in files:
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and
                     node.level == 0 else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            stale += [f"{p.relative_to(ROOT)}: {n}" for n in names
                      if n.split(".")[0] in PACKAGES and n not in mods]
    assert stale == []


def _top_level_names(tree: ast.Module) -> set[str]:
    """What a module binds at its top level (also inside top-level if/try/with blocks)."""
    names: set[str] = set()
    body = list(tree.body)
    while body:
        node = body.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For):
            body += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                     *(h for x in getattr(node, "handlers", []) for h in x.body)]
    return names


def test_every_name_imported_from_a_project_module_exists():
    """`from experiments.run import build_summary` after build_summary moved fails here, not
    when the one command that imports it lazily runs."""
    mods = _modules()
    files = [*mods.values(), *(ROOT / "bench").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    defined = {m: _top_level_names(ast.parse(p.read_text())) for m, p in mods.items()}
    missing = []
    for p in files:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in mods \
                    and "__getattr__" not in defined[node.module]:
                missing += [f"{p.relative_to(ROOT)}: from {node.module} import {a.name}"
                            for a in node.names if a.name != "*"
                            and f"{node.module}.{a.name}" not in mods
                            and a.name not in defined[node.module]]
    assert missing == []


def _private_uses(m: str, tree: ast.AST, mods: dict[str, Path]) -> list[str]:
    """`from a.b import _x`, and `mod._x` on a name bound to another module of the project."""
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in mods and node.module != m:
            for a in node.names:
                if f"{node.module}.{a.name}" in mods:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{m}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in mods and a.name != m:
                    aliases[a.asname or a.name] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            target = ast.unparse(node.value)
            if aliases.get(target, target) in mods and aliases.get(target, target) != m:
                found.append(f"{m}: {aliases.get(target, target)}.{node.attr}")
    return found


PRIVATE_ALLOWED: set[str] = set()
"""Private names still used across modules (none: keep it so)."""


def test_no_private_name_is_used_across_modules():
    mods = _modules()
    found = {u for m, p in mods.items() for u in _private_uses(m, ast.parse(p.read_text()), mods)}
    assert sorted(found - PRIVATE_ALLOWED) == []
    assert sorted(PRIVATE_ALLOWED - found) == [], "cleared: drop them from PRIVATE_ALLOWED"


def test_the_private_name_check_finds_both_forms():
    tree = ast.parse("from environment.flexstage import _commit\n"
                     "import environment.coupling as coupling\ncoupling._cap(1)\n")
    assert _private_uses("experiments.x", tree, _modules()) == [
        "experiments.x: from environment.flexstage import _commit",
        "experiments.x: environment.coupling._cap"]


MAX_LINES = 500
LONG_ALLOWED: set[str] = set()
"""Modules still over MAX_LINES (none: keep it so)."""


def test_no_module_is_over_500_lines():
    """Every module of the package (tests aside), but those on LONG_ALLOWED."""
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert {k: v for k, v in long.items() if k not in LONG_ALLOWED} == {}
    assert sorted(LONG_ALLOWED - set(long)) == [], "now short: drop them from LONG_ALLOWED"


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

"""The handlers of `flexmarkets run`, `twin` and `scenarios`, one path for both kinds of
scenario.

Each one reads and validates its scenario and checks its output folder first
(experiments/plan.py), prints what it is about to do, and only then imports the model of the
scenario's kind (experiments/run.py, experiments/twin.py)."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap

from environment.errors import InputError
from environment.scenario_files import describe, find_scenario, shipped_scenarios
from experiments.headline import run_lines
from experiments.overrides import parse_sets
from experiments.plan import TRANSMISSION, kind_of, plan_run


def run_command(args: argparse.Namespace) -> int:
    overrides = parse_sets(args.set)
    path = find_scenario(args.scenario)
    if args.no_planner:
        if kind_of(path) == TRANSMISSION:
            raise InputError(f"--no-planner: {path.stem} is a transmission scenario, whose "
                             "grid-constrained optimum is part of every run (its efficiency "
                             "and the twin's baseline); drop the flag")
        overrides["planner.enabled"] = False
    plan = plan_run(path, days=args.days, seed=args.seed, overrides=overrides,
                    episodes=args.episodes, out=args.out, overwrite=args.overwrite)
    print(plan.headline(), flush=True)
    from experiments.run import execute

    result = execute(plan, progress=not args.quiet, figures=not args.no_figures,
                     overwrite=args.overwrite)
    print("\n".join(run_lines(result.summary, result.out_dir)))
    if args.json:
        print(json.dumps(result.summary, indent=2, default=float))
    return 0


def twin_command(args: argparse.Namespace) -> int:
    path = find_scenario(args.scenario)
    agents = [a for a in args.agents.split(",") if a] if args.agents else None
    if args.out:
        from experiments.store import check_output_dir

        check_output_dir(args.out, "--out", must_be_new=True)
    from experiments.twin import run_twin

    print(f"twin of {path.stem}: the scenario and its truthful twin, same seed", flush=True)
    rep = run_twin(path, agents, days=args.days, seed=args.seed, overrides=parse_sets(args.set),
                   out=args.out)
    print("\n".join(rep.lines(path.stem, args.out)))
    return 0


def scenarios_command(args: argparse.Namespace) -> int:
    rows = [describe(p) for p in shipped_scenarios().values()]
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 120))
    name_w = max(len(r["name"]) for r in rows) + 2
    indent = " " * (name_w + 14)
    print(f"{'scenario':<{name_w}}{'kind':<14}description")
    for r in rows:
        text = textwrap.fill(r["description"] or "-", width=width, initial_indent=indent,
                             break_on_hyphens=False,
                             subsequent_indent=indent)
        print(f"{r['name']:<{name_w}}{r['kind']:<14}{text.lstrip()}")
    print(f"\n{len(rows)} scenarios; `flexmarkets run NAME`, or `extends: NAME` in your own "
          "file (README: Scenario)")
    return 0

"""The handlers of `flexmarkets run`, `twin` and `scenarios`.

Each one reads and validates its scenario, decides its kind and checks its output folder
first, prints what it is about to do, and only then imports the model it needs: a
distribution-grid run never loads the transmission model, a transmission run never loads
pandapower, simbench or numba."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap

from environment.errors import InputError
from environment.scenario_files import (
    describe,
    find_scenario,
    read_scenario_data,
    scenario_kind,
    shipped_scenarios,
)
from experiments.headline import run_lines
from experiments.overrides import parse_sets


def _kind(args: argparse.Namespace):
    overrides = parse_sets(args.set)
    path = find_scenario(args.scenario)
    return path, scenario_kind(read_scenario_data(path)), overrides


def run_command(args: argparse.Namespace) -> int:
    path, kind, overrides = _kind(args)
    if kind == "transmission":
        from experiments.transmission_run import run_command as run_tx

        return run_tx(args, path, overrides)
    if args.episodes is not None:
        raise InputError(f"--episodes {args.episodes}: only transmission scenarios have "
                         f"episodes; {path} is a distribution-grid scenario (use --days)")
    if args.no_planner:
        overrides["planner.enabled"] = False
    from experiments.plan import plan_run

    plan = plan_run(path, days=args.days, seed=args.seed, overrides=overrides, out=args.out,
                    overwrite=args.overwrite)
    print(plan.headline(), flush=True)
    from experiments.run import execute

    result = execute(plan, progress=not args.quiet, figures=not args.no_figures,
                     overwrite=args.overwrite)
    print("\n".join(run_lines(result.summary, result.out_dir)))
    if args.json:
        print(json.dumps(result.summary, indent=2, default=float))
    return 0


def twin_command(args: argparse.Namespace) -> int:
    path, kind, overrides = _kind(args)
    agents = [a for a in args.agents.split(",") if a] if args.agents else None
    if args.out:
        from experiments.store import check_output_dir

        check_output_dir(args.out, "--out", must_be_new=True)
    if kind == "transmission":
        from experiments.transmission_run import twin_command as twin_tx

        return twin_tx(args, path, overrides, agents)
    from experiments.twin import run_twin

    print(f"twin of {path.stem}: the scenario and its truthful twin, same seed", flush=True)
    rep = run_twin(path, agents, days=args.days, seed=args.seed, overrides=overrides,
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

"""Command line: `flexmarkets run|twin|compare|scenarios|view|sweep|report|runs`.

Only argparse and the error classes are imported here: `--help` and a malformed argument
answer at once, and every command checks its scenario, study and output paths before it
imports the simulation stack (experiments/run_cli.py and the modules it loads lazily).

Exit status: 0 done; 1 some runs of a sweep failed; 2 bad input (scenario, study, data,
arguments, output path), stopped before any simulation; 3 disk full (nothing half-written;
free space and run the same command again); 130 interrupted."""

from __future__ import annotations

import argparse
import sys

from environment.errors import InputError
from experiments.store import EXIT_BAD_INPUT, EXIT_DISK_FULL, EXIT_INTERRUPTED, DiskFull
from experiments.sweep_cli import register_cli as register_sweeps
from experiments.viz_cli import register_cli as register_view

RUN_EPILOG = """\
examples:
  flexmarkets run                                  the default scenario (one winter week)
  flexmarkets run coupling_conflict --days 2       a shipped scenario (`flexmarkets scenarios`)
  flexmarkets run my.yaml --seed 7                 your own file (it may say `extends: default`)
  flexmarkets run --set prosumers.0.count=600 --set tso.pricing=dual
  flexmarkets run two_node_incdec --days 2         a transmission scenario: 48 hourly periods

The run's folder is results/<name>-seed<S>-<N>d-<hash> (<N>h for a transmission run's hourly
periods), the hash of the resolved scenario (overrides and data files included): runs that
differ never share a folder, and a folder that holds results is only replaced with --overwrite."""


def _add_scenario_args(p: argparse.ArgumentParser, what: str = "simulate") -> None:
    p.add_argument("scenario", nargs="?", default=None,
                   help="a scenario YAML file or the name of a shipped one (`flexmarkets "
                        "scenarios` lists them; default: 'default', one winter week on "
                        "simbench grid 1-LV-semiurb5--2-sw)")
    p.add_argument("--days", type=int, help="override calendar.days (transmission scenarios: "
                                            "24 hourly periods per day)")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override any scenario field by dotted path, e.g. "
                        "--set prosumers.0.count=500 (repeatable; list items by index)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="flexmarkets", formatter_class=fmt,
        description="Agent-based simulation of local flexibility markets coupled to day-ahead, "
                    "intraday and balancing markets.",
        epilog="exit status: 0 done, 1 some runs of a sweep failed, 2 bad input (nothing was "
               "simulated), 3 disk full, 130 interrupted")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser(
        "run", help="simulate one scenario and store its results", formatter_class=fmt,
        epilog=RUN_EPILOG,
        description="Simulate a scenario day by day (DA auction, DSO validation, LFM, intraday, "
                    "balancing, settlement) and write results/<run-id>/: config.yaml, "
                    "summary.json, Parquet tables and PNG figures (docs/outputs.md describes "
                    "every column and key). Transmission scenarios (`kind: transmission`) run "
                    "the zonal market and redispatch, and a truthful twin when some producer "
                    "is strategic.")
    _add_scenario_args(r)
    r.add_argument("--episodes", type=int,
                   help="transmission scenarios: override `episodes` (repetitions of the "
                        "period sequence, for learning producers)")
    r.add_argument("--out", help="results folder (default results/<run-id>)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the results folder if it holds results (never done otherwise)")
    r.add_argument("--no-planner", action="store_true",
                   help="skip the perfect-foresight planner benchmark (distribution scenarios: a "
                        "transmission run always computes its grid-constrained optimum)")
    r.add_argument("--no-figures", action="store_true", help="do not draw PNG figures")
    r.add_argument("--json", action="store_true", help="also print summary.json")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_lazy("experiments.run_cli", "run_command"))

    tw = sub.add_parser(
        "twin", help="a scenario against its truthful twin: gaming profit, transfers, welfare",
        description="Run SCENARIO and a counterfactual with the same seed in which the chosen "
                    "agents bid truthfully; report the strategic agents' gaming profit, every "
                    "class's profit change by market, and the welfare lost. Works for "
                    "distribution-grid and transmission scenarios. With --out, writes "
                    "profit_by_agent_market.csv, profit_by_class.csv and twin.json there.")
    _add_scenario_args(tw)
    tw.add_argument("--agents", help="comma-separated names of the agents made truthful in the "
                                     "twin (default: every agent whose strategy is not truthful)")
    tw.add_argument("--out", help="folder for the twin report (must not hold results)")
    tw.set_defaults(func=_lazy("experiments.run_cli", "twin_command"))

    cp = sub.add_parser(
        "compare", help="the differences between two runs: settings, summary, figure",
        description="Compare two run folders (paths, or run ids under --results; a unique "
                    "prefix of an id will do): the scenario fields that differ, every summary "
                    "number that differs (A, B, B - A, relative), and with --out a CSV and a "
                    "figure (compare.png: the headline metrics side by side and the day-ahead "
                    "prices of both runs).")
    cp.add_argument("a", metavar="RUN_A")
    cp.add_argument("b", metavar="RUN_B")
    cp.add_argument("--results", default="results", metavar="DIR",
                    help="where run ids are looked up (default: results)")
    cp.add_argument("--out", metavar="DIR",
                    help="write compare.csv and compare.png here (default: nothing written)")
    cp.add_argument("--all", action="store_true",
                    help="list every differing number (default: the 40 largest relative "
                         "differences)")
    cp.set_defaults(func=_lazy("experiments.compare", "compare_command"))

    ef = sub.add_parser(
        "efficiency", help="why a run misses the planner: forecast error, strategies, design",
        description="Run SCENARIO with the planner and three counterfactuals of the same seed "
                    "(perfect forecasts; every agent truthful; both) and split the gap between "
                    "the run's system cost and the planner's into forecast error, strategies, "
                    "market design and their interaction (EUR).")
    _add_scenario_args(ef)
    ef.add_argument("--out", help="folder for efficiency.json")
    ef.set_defaults(func=_lazy("experiments.efficiency", "efficiency_command"))

    sc = sub.add_parser("scenarios", help="list the shipped scenarios: name, kind, description",
                        description="The scenarios shipped with flexmarkets, usable by name "
                                    "in `flexmarkets run NAME` and in `extends: NAME`.")
    sc.set_defaults(func=_lazy("experiments.run_cli", "scenarios_command"))
    register_view(sub)
    register_sweeps(sub)
    return p


def _lazy(module: str, name: str):
    """A handler imported only when its command runs."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    return handler


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DiskFull as exc:
        print(f"error: {exc.strerror}", file=sys.stderr)
        return EXIT_DISK_FULL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:     # `flexmarkets runs | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `flexmarkets run [SCENARIO] [--days N] [--seed S] [--out DIR]`."""

from __future__ import annotations

import argparse
import json
import sys

from environment.scenario import ScenarioError
from experiments.efficiency import register_cli as register_efficiency
from experiments.sweep_cli import register_cli as register_sweeps
from experiments.viz_cli import register_cli as register_view


def _run(args: argparse.Namespace) -> int:
    from environment.transmission import is_transmission
    from experiments.run import run_scenario, scenario_path

    if is_transmission(scenario_path(args.scenario)):
        from experiments.transmission_run import cli

        return cli(args)

    overrides = {}
    for kv in args.set or []:
        if "=" not in kv:
            raise ScenarioError(f"--set {kv!r}: expected PATH=VALUE, e.g. calendar.days=3")
        key, text = kv.split("=", 1)
        overrides[key] = _parse_value(text)
    result = run_scenario(args.scenario, days=args.days, seed=args.seed, out=args.out,
                          overrides=overrides, planner=False if args.no_planner else None,
                          progress=not args.quiet, figures=not args.no_figures)
    s = result.summary
    w = s["welfare_eur"]
    eff = s.get("cost_efficiency")
    lines = [
        f"run {result.run_id}: {s['run']['days']} days, {s['run']['prosumers']} prosumers on "
        f"{s['run']['grid']}",
        f"  efficiency {eff:.4f}: system cost {s['system_cost_eur']:,.2f} EUR, planner "
        f"{s['planner_system_cost_eur']:,.2f} EUR" if eff is not None else
        f"  system cost {s['system_cost_eur']:,.2f} EUR (planner off: no efficiency)",
        f"  welfare {w['total']:,.0f} EUR",
        f"  DA price mean {s['da_price_eur_mwh']['mean']:.1f} EUR/MWh "
        f"(min {s['da_price_eur_mwh']['min']:.1f}, max {s['da_price_eur_mwh']['max']:.1f})",
        f"  imbalance {s['imbalance']['system_abs_mwh']:.2f} MWh, traffic light "
        f"GREEN/YELLOW/RED {s['congestion']['green']}/{s['congestion']['yellow']}/"
        f"{s['congestion']['red']} MTU-locations",
        f"  wall {s['timing']['wall_s']:.1f} s, solver {s['timing']['solver_s']:.1f} s",
        f"  results in {result.out_dir}",
    ]
    print("\n".join(lines))
    if args.json:
        print(json.dumps(s, indent=2, default=float))
    return 0


def _twin(args: argparse.Namespace) -> int:
    from experiments.twin import run_twin

    overrides = dict(_parse_set(kv) for kv in args.set or [])
    agents = [a for a in args.agents.split(",") if a] if args.agents else None
    rep = run_twin(args.scenario, agents, days=args.days, seed=args.seed, overrides=overrides,
                   out=args.out)
    w = rep.welfare
    lines = [f"twin of {args.scenario or 'default'}: strategic {', '.join(rep.agents) or '(none)'}"
             " against truthful, same seed"]
    lines += [f"  gaming profit {a}: {eur:,.2f} EUR" for a, eur in rep.gaming_profit_eur.items()]
    lines += [f"  transfer to {c}: {eur:,.2f} EUR" for c, eur in rep.by_class["change"].items()]
    lines += [f"  welfare {w['strategic']:,.2f} vs {w['truthful']:,.2f} EUR: lost {w['lost']:,.2f}",
              f"  report in {args.out}" if args.out else "  (no --out: nothing written)"]
    print("\n".join(lines))
    return 0


def _parse_set(kv: str) -> tuple[str, object]:
    if "=" not in kv:
        raise ScenarioError(f"--set {kv!r}: expected PATH=VALUE, e.g. calendar.days=3")
    key, text = kv.split("=", 1)
    return key, _parse_value(text)


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flexmarkets",
        description="Agent-based simulation of local flexibility markets coupled to day-ahead, "
                    "intraday and balancing markets.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run", help="simulate one scenario and store its results",
        description="Simulate a scenario day by day (DA auction, DSO validation, real time, "
                    "balancing, settlement) and write results/<run-id>/: config.yaml, "
                    "summary.json, Parquet tables (series, grid, positions, aggregators, ledger) "
                    "and PNG figures.")
    r.add_argument("scenario", nargs="?", default=None,
                   help="scenario YAML file or the name of a shipped one (default: 'default', "
                        "one winter week on simbench grid 1-LV-semiurb5--2-sw)")
    r.add_argument("--days", type=int, help="override calendar.days")
    r.add_argument("--seed", type=int, help="override the scenario's seed")
    r.add_argument("--out", help="results folder (default results/<name>-seed<S>-<N>d)")
    r.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override any scenario field by dotted path, e.g. "
                        "--set prosumers.0.count=500 (repeatable)")
    r.add_argument("--no-planner", action="store_true",
                   help="skip the perfect-foresight planner benchmark")
    r.add_argument("--no-figures", action="store_true", help="do not draw PNG figures")
    r.add_argument("--json", action="store_true", help="also print summary.json")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_run)
    tw = sub.add_parser(
        "twin", help="a scenario against its truthful twin: gaming profit, transfers, welfare",
        description="Run SCENARIO and a counterfactual with the same seed in which the chosen "
                    "agents bid truthfully; report each agent's and class's profit by market, "
                    "the strategic agents' gaming profit, the transfers between classes and "
                    "the welfare lost. With --out, writes profit_by_agent_market.csv, "
                    "profit_by_class.csv and twin.json there.")
    tw.add_argument("scenario", nargs="?", default=None,
                    help="scenario YAML file or the name of a shipped one (default: 'default')")
    tw.add_argument("--agents", help="comma-separated names of the agents made truthful in the "
                                     "twin (default: every agent whose strategy is not truthful)")
    tw.add_argument("--days", type=int, help="override calendar.days")
    tw.add_argument("--seed", type=int, help="override the scenario's seed")
    tw.add_argument("--set", action="append", metavar="PATH=VALUE",
                    help="override a scenario field by dotted path, e.g. "
                         "--set aggregators.0.strategy=incdec (repeatable)")
    tw.add_argument("--out", help="folder for the twin report")
    tw.set_defaults(func=_twin)
    register_efficiency(sub)
    register_view(sub)
    register_sweeps(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

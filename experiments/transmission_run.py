"""`flexmarkets run` for transmission scenarios (`kind: transmission`): the run and, when any
producer is not truthful, its truthful twin, stored under results/<run-id>/ like other runs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from environment.transmission.scenario import load_tx_scenario, tx_with_overrides
from environment.transmission.twin import run_twin


def run_transmission(path: str | Path, *, episodes: int | None = None, seed: int | None = None,
                     overrides: dict | None = None, out: str | Path | None = None) -> dict:
    """Run, compare with the truthful twin, write the results; returns the summary."""
    s = load_tx_scenario(path)
    changes = dict(overrides or {})
    if episodes is not None:
        changes["episodes"] = episodes
    if seed is not None:
        changes["seed"] = seed
    if changes:
        s = tx_with_overrides(s, changes)
    report = run_twin(s)
    summary = report.run.summary()
    summary["twin"] = report.as_dict()
    run_id = f"{s.name}-seed{s.seed}-{s.episodes}ep"
    out_dir = Path(out) if out else Path("results") / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(
        "# resolved scenario of this run: `flexmarkets run " + str(out_dir / "config.yaml")
        + "` reproduces it\n"
        + yaml.safe_dump(s.model_dump(mode="json", by_alias=True), sort_keys=False))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    for name, df in report.run.tables().items():
        df.to_parquet(out_dir / f"{name}.parquet", index=False)
    summary["out_dir"] = str(out_dir)
    return summary


def cli(args) -> int:
    """The `flexmarkets run` handler for this kind (`--days` sets the episodes; the planner
    and figure options do not apply)."""
    from experiments.cli import _parse_value
    from experiments.run import scenario_path

    overrides = {}
    for kv in args.set or []:
        key, _, text = kv.partition("=")
        overrides[key] = _parse_value(text)
    s = run_transmission(scenario_path(args.scenario), episodes=args.days, seed=args.seed,
                         overrides=overrides, out=args.out)
    t = s["twin"]
    print("\n".join([
        f"transmission run {s['run']['scenario']}: {s['run']['episodes']} episodes x "
        f"{s['run']['periods']} periods, nodes {', '.join(s['run']['nodes'])}",
        f"  DA price mean {s['da_price_eur_mwh']['mean']:.1f} EUR/MWh, redispatch "
        f"{s['redispatch']['mwh']:,.0f} MWh costing {s['redispatch']['cost_eur']:,.0f} EUR",
        f"  vs truthful twin ({', '.join(t['truthful_in_twin']) or 'nobody changed'}): gaming "
        f"profit {sum(t['gaming_profit_eur'].values()):,.0f} EUR to producers, grid operator "
        f"+{t['grid_operator_extra_cost_eur']:,.0f} EUR, consumers +"
        f"{t['consumer_bill_change_eur']:,.0f} EUR, welfare lost {t['welfare_lost_eur']:,.0f} EUR",
        f"  results in {s['out_dir']}",
    ]))
    if args.json:
        print(json.dumps(s, indent=2, default=float))
    return 0

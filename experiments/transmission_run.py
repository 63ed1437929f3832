"""`flexmarkets run` and `twin` for transmission scenarios (`kind: transmission`): the run and,
when some producer is strategic, its truthful twin, stored under results/<run-id>/ like the
other kind (never over another run's folder unless --overwrite).

`--days N` sets the periods to 24 N hours, `--episodes` the repetitions. A wholesale-only case
(one node, no lines, nobody strategic) runs no LP at all and no twin."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from environment.errors import InputError
from environment.series import digests
from environment.transmission.scenario import TxScenario, load_tx_scenario, tx_with_overrides
from experiments.headline import twin_lines, tx_lines
from experiments.store import RESULTS, check_output_dir, run_id, scenario_hash, write_run

TABLES = ("periods", "producers", "ledger")


def resolve_tx(path: str | Path, *, days: int | None = None, episodes: int | None = None,
               seed: int | None = None, overrides: dict | None = None
               ) -> tuple[TxScenario, dict]:
    """The scenario with the command line's changes; returns it and the changes."""
    changes = dict(overrides or {})
    if days is not None:
        if days < 1:
            raise InputError(f"--days {days}: must be 1 or more")
        changes["periods"] = 24 * days
    if episodes is not None:
        changes["episodes"] = episodes
    if seed is not None:
        changes["seed"] = seed
    s = load_tx_scenario(path)
    return (tx_with_overrides(s, changes) if changes else s), changes


def tx_run_id(s: TxScenario) -> str:
    data = s.model_dump(mode="json", by_alias=True)
    length = f"{s.periods}h" + (f"x{s.episodes}" if s.episodes > 1 else "")
    return run_id(s.name, s.seed, length,
                  scenario_hash(data, digests({k: v.model_dump() for k, v in s.data.items()})))


def run_transmission(path: str | Path, *, days: int | None = None, episodes: int | None = None,
                     seed: int | None = None, overrides: dict | None = None,
                     out: str | Path | None = None, overwrite: bool = False,
                     announce=None) -> dict:
    """Run (and twin, if someone is strategic) and write the results; returns the summary."""
    s, changes = resolve_tx(path, days=days, episodes=episodes, seed=seed, overrides=overrides)
    rid = tx_run_id(s)
    out_dir = check_output_dir(Path(out) if out else RESULTS / rid, must_be_new=True,
                               overwrite=overwrite)
    if announce is not None:
        announce(f"transmission run {rid}: {s.episodes} x {s.periods} hourly periods, "
                 f"{len(s.producers)} producers, {len(s.nodes)} node(s), {len(s.lines)} line(s); "
                 f"results go to {out_dir}")
    from environment.transmission.twin import run_twin, strategic_producers

    if strategic_producers(s):
        report = run_twin(s)
        model, twin = report.run, report.as_dict()
    else:
        from environment.transmission.model import TransmissionModel

        model, twin = TransmissionModel(s).run(), None
    summary = model.summary()
    summary["run"].update({"id": rid, "source": str(path), "overrides": changes})
    summary["twin"] = twin

    def write(folder: Path) -> None:
        (folder / "config.yaml").write_text(
            f"# resolved scenario of run {rid}: `flexmarkets run <this file>` reproduces it\n"
            + (f"# with overrides: {', '.join(f'{k}={v}' for k, v in changes.items())}\n"
               if changes else "")
            + yaml.safe_dump(s.model_dump(mode="json", by_alias=True, exclude_none=True),
                             sort_keys=False))
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        for name, df in model.tables().items():
            df.to_parquet(folder / f"{name}.parquet", index=False)

    write_run(out_dir, write, overwrite)
    summary["out_dir"] = str(out_dir)
    return summary


def run_command(args: argparse.Namespace, path: Path, overrides: dict) -> int:
    """`flexmarkets run` of a transmission scenario."""
    s = run_transmission(path, days=args.days, episodes=args.episodes, seed=args.seed,
                         overrides=overrides, out=args.out, overwrite=args.overwrite,
                         announce=lambda line: print(line, flush=True))
    print("\n".join(tx_lines(s, s["out_dir"])))
    if args.json:
        print(json.dumps(s, indent=2, default=float))
    return 0


def twin_command(args: argparse.Namespace, path: Path, overrides: dict,
                 agents: list[str] | None) -> int:
    """`flexmarkets twin` of a transmission scenario: the run against its truthful twin."""
    from environment.transmission.twin import run_twin, strategic_producers

    s, _ = resolve_tx(path, days=args.days, seed=args.seed, overrides=overrides)
    if agents is None and not strategic_producers(s):
        raise InputError(f"twin of {s.name}: every producer is truthful; name producers to "
                         "compare with --agents, or make one strategic with --set "
                         "producers.N.strategy=incdec")
    print(f"twin of {s.name}: {s.episodes} x {s.periods} hourly periods, the scenario and its "
          "truthful twin (same seed)", flush=True)
    report = run_twin(s, agents)
    t = report.as_dict()
    print("\n".join(twin_lines(t)))
    if args.out:
        def write(folder: Path) -> None:
            (folder / "twin.json").write_text(json.dumps(t, indent=2, default=float))
            rows = [{"account": k, "class": "producer", "change_eur": v}
                    for k, v in {**t["gaming_profit_eur"],
                                 **t["other_producers_profit_change_eur"]}.items()]
            import pandas as pd

            pd.DataFrame(rows).to_csv(folder / "profit_by_agent.csv", index=False)
            pd.Series(t["by_class_eur"], name="change_eur").rename_axis("class").to_csv(
                folder / "profit_by_class.csv")

        write_run(Path(args.out), write)
        print(f"  report in {args.out}")
    return 0

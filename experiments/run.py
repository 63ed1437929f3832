"""Run one scenario of either kind end to end and store its results under results/<run-id>/.

`plan_run` (experiments/plan.py) settles the scenario, the run id and the folder before the
model is imported; `execute` simulates a plan with the model of its kind (a distribution-grid
run never loads the transmission model, a transmission run never loads pandapower, simbench or
numba) and summarises it (experiments/statistics.py); the results are written by
experiments/store.py, never over another run's folder unless asked. A transmission run in which
some producer is strategic also runs its truthful twin (summary key `twin`)."""

from __future__ import annotations

import datetime as dt
import json
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from environment.memory import keep_pages
from environment.scenario import Scenario, dump_scenario
from environment.scenario_files import find_scenario
from environment.solver import CLOCK
from environment.transmission.scenario import TxScenario
from experiments.plan import TRANSMISSION, RunPlan, kind_of, plan_run, resolve
from experiments.store import write_run

DEFAULT_SCENARIO = "default"
__all__ = ["RunResult", "execute", "resolve", "run_scenario", "scenario_path", "write_results"]


def scenario_path(name_or_path: str | Path | None) -> Path:
    """A path to a YAML file, or the name of a shipped scenario (see `find_scenario`)."""
    return find_scenario(name_or_path)


@dataclass
class RunResult:
    run_id: str
    scenario: Scenario | TxScenario
    summary: dict
    tables: dict[str, pd.DataFrame]
    out_dir: Path | None = None
    model: object = field(default=None, repr=False)    # FlexMarketModel or TransmissionModel

    @property
    def ledger(self) -> pd.DataFrame:
        return self.tables["ledger"]


def run_scenario(scenario: Scenario | TxScenario | str | Path | None = None, *,
                 days: int | None = None, seed: int | None = None,
                 out: str | Path | None = None, overrides: dict | None = None,
                 planner: bool | None = None, episodes: int | None = None,
                 progress: bool = False, figures: bool = True,
                 write: bool = True, overwrite: bool = False) -> RunResult:
    """Simulate a scenario of either kind and return (and by default store) its results.

    `out` is the results folder of this run (default results/<run-id>, the id naming the
    scenario, seed, length and a hash of the resolved scenario); a folder holding results is
    replaced only with `overwrite`. `planner` switches the distribution kind's planner
    benchmark (a transmission run always computes its grid-constrained optimum)."""
    if planner is not None and kind_of(scenario) != TRANSMISSION:
        overrides = {**(overrides or {}), "planner.enabled": planner}
    plan = plan_run(scenario, days=days, seed=seed, overrides=overrides, episodes=episodes,
                    out=out, write=write, overwrite=overwrite)
    return execute(plan, progress=progress, figures=figures, overwrite=overwrite)


def execute(plan: RunPlan, *, progress: bool = False, figures: bool = True,
            overwrite: bool = False) -> RunResult:
    """Simulate a planned run and write its folder (when the plan has one)."""
    keep_pages()
    t0 = time.perf_counter()
    solver0 = CLOCK.seconds
    simulate = simulate_transmission if plan.kind == TRANSMISSION else simulate_distribution
    model, tables, summary = simulate(plan, progress)
    summary["timing"] = {"wall_s": time.perf_counter() - t0, "solver_s": CLOCK.seconds - solver0,
                         **({"planner_s": model.planner_seconds}
                            if hasattr(model, "planner_seconds") else {}),
                         "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    summary["run"].update(run_context(plan, getattr(model, "calendar", None)))
    result = RunResult(plan.run_id, plan.scenario, summary, tables, model=model)
    if plan.out_dir is not None:
        write_run(plan.out_dir, lambda tmp: write_results(result, tmp, figures), overwrite)
        result.out_dir = plan.out_dir
    return result


def simulate_distribution(plan: RunPlan, progress: bool) -> tuple[object, dict, dict]:
    """The distribution-grid model run day by day (a progress bar by day if asked)."""
    from environment.model import FlexMarketModel
    from experiments.statistics import distribution_summary

    s = plan.scenario
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=s.calendar.days, unit="day",
                   desc=f"{s.name}: reading grid and profiles, building agents")
    # warnings raised under a progress bar would print into its line: kept until it closes,
    # and printed then even when the run fails (a truncation warning may explain the failure)
    held = None
    try:
        with warnings.catch_warnings(record=bar is not None) as held:
            try:
                model = FlexMarketModel(s)
                if bar is not None:
                    bar.set_description(f"simulating {s.name}")
                model.run(progress=bar)
            finally:
                if bar is not None:
                    bar.close()
    finally:
        for w in held or ():
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    tables = model.tables()
    tables["ledger"] = model.ledger.frame()
    return model, tables, distribution_summary(model, tables)


def simulate_transmission(plan: RunPlan, progress: bool) -> tuple[object, dict, dict]:
    """The transmission model run, and its truthful twin when some producer is strategic."""
    from environment.transmission.twin import run_pair, strategic_producers
    from experiments.statistics import transmission_summary
    from experiments.twin_statistics import transmission_twin_summary

    s = plan.scenario
    if s.regions:
        return simulate_tiers(plan)
    if strategic_producers(s):
        pair = run_pair(s)
        model = pair.run
        twin = transmission_twin_summary(pair.run, pair.twin, pair.truthful)
    else:
        from environment.transmission.zonal_model import transmission_model

        model, twin = transmission_model(s).run(), None
    tables = model.tables()
    summary = transmission_summary(model, tables)
    summary["twin"] = twin
    return model, tables, summary


def simulate_tiers(plan: RunPlan) -> tuple[object, dict, dict]:
    """A transmission scenario with distribution regions under its nodes (environment/tiers),
    its summary with a block per tier."""
    from environment.tiers.model import TierModel
    from experiments.tiers_summary import tiers_summary

    model = TierModel(plan.scenario).run()
    tables = model.tables()
    summary = tiers_summary(model, tables)
    summary["twin"] = None
    return model, tables, summary


def run_context(plan: RunPlan, calendar) -> dict:
    """What the summary says of how the run came about: its id, the file it came from, the
    overrides applied to it and how simbench's profile year was read."""
    out = {"id": plan.run_id, "source": plan.source,
           # a `--set` value YAML reads as a date is written as its ISO text
           "overrides": {k: v.isoformat() if isinstance(v, dt.date) else v
                         for k, v in plan.overrides.items()}}
    mapping = calendar.profile_mapping() if calendar is not None else None
    if mapping:
        out["profile_year"] = mapping
    return out


def write_results(result: RunResult, out_dir: Path, figures: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(config_header(result) + dump(result.scenario))
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=float))
    for name, df in result.tables.items():
        df.to_parquet(out_dir / f"{name}.parquet", index=False)
    if figures and not isinstance(result.scenario, TxScenario):
        from experiments.plots import plot_run

        plot_run(result, out_dir)


def dump(s: Scenario | TxScenario) -> str:
    """The resolved scenario as YAML that `flexmarkets run` reads back."""
    if isinstance(s, TxScenario):
        return yaml.safe_dump(s.dump_data(exclude_none=True),
                              sort_keys=False)
    return dump_scenario(s)


def config_header(result: RunResult) -> str:
    """The comment atop a run's config.yaml: how to reproduce it, where it came from and the
    overrides in it (the description below is the file's, written before them)."""
    run = result.summary.get("run", {})
    lines = [f"# resolved scenario of run {result.run_id}: `flexmarkets run "
             "<this file>` reproduces it"]
    if run.get("source"):
        lines.append(f"# from {run['source']}")
    changes = run.get("overrides") or {}
    if changes:
        lines.append("# with overrides (the description is the original's): "
                     + ", ".join(f"{k}={v}" for k, v in changes.items()))
    if run.get("profile_year"):
        lines.append(f"# {run['profile_year']}")
    return "\n".join(lines) + "\n"


def load_config(out_dir: Path) -> dict:
    return yaml.safe_load((out_dir / "config.yaml").read_text())

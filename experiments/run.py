"""Run one scenario end to end and store its results under results/<run-id>/.

`plan_run` (experiments/plan.py) settles the scenario, the run id and the folder before the
model is imported; `execute` simulates a plan; the results are written by
experiments/store.py, never over another run's folder unless asked."""

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

from environment.model import EXCHANGE, FlexMarketModel
from environment.scenario import Scenario, dump_scenario
from environment.scenario_files import find_scenario
from environment.solver import CLOCK
from experiments.levels import levels_summary
from experiments.metrics import (
    flexibility,
    ledger_checks,
    planner_system_cost,
    settlement,
    summarise,
    system_cost,
    welfare_split,
)
from experiments.plan import RunPlan, plan_run, resolve
from experiments.store import write_run

DEFAULT_SCENARIO = "default"
__all__ = ["RunResult", "execute", "resolve", "run_scenario", "scenario_path", "write_results"]


def scenario_path(name_or_path: str | Path | None) -> Path:
    """A path to a YAML file, or the name of a shipped scenario (see `find_scenario`)."""
    return find_scenario(name_or_path)


@dataclass
class RunResult:
    run_id: str
    scenario: Scenario
    summary: dict
    tables: dict[str, pd.DataFrame]
    out_dir: Path | None = None
    model: FlexMarketModel | None = field(default=None, repr=False)

    @property
    def ledger(self) -> pd.DataFrame:
        return self.tables["ledger"]


def run_scenario(scenario: Scenario | str | Path | None = None, *, days: int | None = None,
                 seed: int | None = None, out: str | Path | None = None,
                 overrides: dict | None = None, planner: bool | None = None,
                 progress: bool = False, figures: bool = True,
                 write: bool = True, overwrite: bool = False) -> RunResult:
    """Simulate a scenario and return (and by default store) its results.

    `out` is the results folder of this run (default results/<run-id>, the id naming the
    scenario, seed, days and a hash of the resolved scenario); a folder holding results is
    replaced only with `overwrite`."""
    if planner is not None:
        overrides = {**(overrides or {}), "planner.enabled": planner}
    plan = plan_run(scenario, days=days, seed=seed, overrides=overrides, out=out, write=write,
                    overwrite=overwrite)
    return execute(plan, progress=progress, figures=figures, overwrite=overwrite)


def execute(plan: RunPlan, *, progress: bool = False, figures: bool = True,
            overwrite: bool = False) -> RunResult:
    """Simulate a planned run and write its folder (when the plan has one)."""
    s, run_id = plan.scenario, plan.run_id
    t0 = time.perf_counter()
    solver0 = CLOCK.seconds
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=s.calendar.days, unit="day",
                   desc=f"{s.name}: reading grid and profiles, building agents")
    # warnings raised under a progress bar would print into its line: kept until it closes
    with warnings.catch_warnings(record=bar is not None) as held:
        try:
            model = FlexMarketModel(s)
            if bar is not None:
                bar.set_description(f"simulating {s.name}")
            model.run(progress=bar)
        finally:
            if bar is not None:
                bar.close()
    for w in held or ():
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    tables = model.tables()
    tables["ledger"] = model.ledger.frame()
    wall = time.perf_counter() - t0
    summary = build_summary(model, tables)
    summary["timing"] = {"wall_s": wall, "solver_s": CLOCK.seconds - solver0,
                         "planner_s": model.planner_seconds,
                         "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    summary["run"].update(run_context(plan, model.calendar))
    result = RunResult(run_id, s, summary, tables, model=model)
    if plan.out_dir is not None:
        write_run(plan.out_dir, lambda tmp: write_results(result, tmp, figures), overwrite)
        result.out_dir = plan.out_dir
    return result


def run_context(plan: RunPlan, calendar) -> dict:
    """What the summary says of how the run came about: its id, the file it came from, the
    overrides applied to it and how simbench's profile year was read."""
    out = {"id": plan.run_id, "source": plan.source,
           # a `--set` value YAML reads as a date is written as its ISO text
           "overrides": {k: v.isoformat() if isinstance(v, dt.date) else v
                         for k, v in plan.overrides.items()}}
    mapping = calendar.profile_mapping()
    if mapping:
        out["profile_year"] = mapping
    return out


def build_summary(model: FlexMarketModel, tables: dict[str, pd.DataFrame]) -> dict:
    """summary.json: efficiency first (the run's system cost against the planner's), then
    welfare by class, prices, imbalance, congestion, flexibility, settlement and checks."""
    s, cal = model.config, model.calendar
    dt = cal.mtu_hours
    series = tables["series"]
    ledger = tables["ledger"]
    value = model.valued_energy_mwh()
    v = s.value_of_load_eur_mwh
    violation_mwh = float(series["load_to_shed_mw"].sum() * dt)
    violation_cost = violation_mwh * v
    welfare = welfare_split(ledger, model.ledger.account_classes(),
                            pd.Series({k: q * v for k, q in value.items()}), violation_cost)
    cost = system_cost(ledger, model.shortfall_mwh, violation_mwh, v)
    out: dict = {"system_cost_eur": cost["total_eur"]}
    if model.planner_days:
        planner = planner_system_cost(model.planner_days, v)
        out["planner_system_cost_eur"] = planner["total_eur"]
        out["cost_efficiency"] = (planner["total_eur"] / cost["total_eur"]
                                  if cost["total_eur"] > 0 else None)
        out["system_cost"] = {"run": cost, "planner": planner}
    else:
        out["system_cost"] = {"run": cost}
    out["run"] = {"scenario": s.name, "seed": s.seed, "days": cal.days,
                  "mtu_minutes": cal.mtu_minutes, "start": str(cal.start),
                  "grid": s.grid.simbench_code, "prosumers": model.fleet.n,
                  "aggregated_devices": {k: int(m.sum()) for k, m in
                                         model.fleet.enrolled.items()},
                  "coupling": s.markets.coupling, "tso_dso_scheme": s.markets.tso_dso_scheme,
                  "compensation": s.settlement.compensation}
    out.update({
        "welfare_eur": welfare,
        "grid_violation_cost_eur": violation_cost,
        "load_to_shed_mwh": violation_mwh,
        "device_energy_shortfall_mwh": model.shortfall_mwh,
        **summarise(series, tables["grid"], tables["positions"], dt),
        "ledger": ledger_checks(ledger, cal.n_mtu, EXCHANGE),
        "flexibility": flexibility(tables.get("flex"), ledger, model.dso.name, dt,
                                   float(tables["days"]["curtailed_mwh"].sum())),
        "settlement": settlement(ledger, tables["positions"], series, tables["days"],
                                 [b.name for b in model.brps], [a.name for a in model.aggregators],
                                 model.tso.name, dt),
        "truncation": dict(model.truncated),
    })
    if s.grid.locations == "levels":
        out["levels"] = levels_summary(model, tables,
                                       out["flexibility"]["dso_cost"]["total_eur"])
    if model.planner_days:
        out["planner"] = {
            "welfare_eur": v * model.service_mwh - sum(d.cost for d in model.planner_days),
            "grid_constraints_added": sum(d.grid_constraints for d in model.planner_days),
            "max_rounds": max(d.rounds for d in model.planner_days),
        }
    return out


def write_results(result: RunResult, out_dir: Path, figures: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(config_header(result) + dump_scenario(result.scenario))
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=float))
    for name, df in result.tables.items():
        df.to_parquet(out_dir / f"{name}.parquet", index=False)
    if figures:
        from experiments.plots import plot_run

        plot_run(result, out_dir)


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

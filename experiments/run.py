"""Run one scenario end to end and store its results under results/<run-id>/."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from environment.model import EXCHANGE, FlexMarketModel
from environment.scenario import Scenario, dump_scenario, load_scenario, with_overrides
from environment.solver import CLOCK
from experiments.metrics import (
    flexibility,
    ledger_checks,
    planner_system_cost,
    settlement,
    summarise,
    system_cost,
    welfare_split,
)

DEFAULT_SCENARIO = "default"


def scenario_path(name_or_path: str | Path | None) -> Path:
    """A path to a YAML file, or the name of a scenario shipped in experiments/scenarios/."""
    if name_or_path is None:
        name_or_path = DEFAULT_SCENARIO
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return Path(str(resources.files("experiments") / "scenarios" / f"{name_or_path}.yaml"))


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


def resolve(scenario: Scenario | str | Path | None, days: int | None = None,
            seed: int | None = None, overrides: dict | None = None) -> Scenario:
    s = scenario if isinstance(scenario, Scenario) else load_scenario(scenario_path(scenario))
    changes = dict(overrides or {})
    if days is not None:
        changes["calendar.days"] = days
    if seed is not None:
        changes["seed"] = seed
    return with_overrides(s, changes) if changes else s


def run_scenario(scenario: Scenario | str | Path | None = None, *, days: int | None = None,
                 seed: int | None = None, out: str | Path | None = None,
                 overrides: dict | None = None, planner: bool | None = None,
                 progress: bool = False, figures: bool = True,
                 write: bool = True) -> RunResult:
    """Simulate a scenario and return (and by default store) its results.

    `out` is the results folder of this run (default results/<name>-seed<seed>-<days>d)."""
    if planner is not None:
        overrides = {**(overrides or {}), "planner.enabled": planner}
    s = resolve(scenario, days, seed, overrides)
    run_id = f"{s.name}-seed{s.seed}-{s.calendar.days}d"
    t0 = time.perf_counter()
    solver0 = CLOCK.seconds
    model = FlexMarketModel(s)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=s.calendar.days, unit="day", desc=f"simulating {s.name}")
    try:
        model.run(progress=bar)
    finally:
        if bar is not None:
            bar.close()
    tables = model.tables()
    tables["ledger"] = model.ledger.frame()
    wall = time.perf_counter() - t0
    summary = build_summary(model, tables)
    summary["timing"] = {"wall_s": wall, "solver_s": CLOCK.seconds - solver0,
                         "planner_s": model.planner_seconds,
                         "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    result = RunResult(run_id, s, summary, tables, model=model)
    if write:
        out_dir = Path(out) if out else Path("results") / run_id
        write_results(result, out_dir, figures)
        result.out_dir = out_dir
    return result


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
    if model.planner_days:
        out["planner"] = {
            "welfare_eur": v * model.service_mwh - sum(d.cost for d in model.planner_days),
            "grid_constraints_added": sum(d.grid_constraints for d in model.planner_days),
            "max_rounds": max(d.rounds for d in model.planner_days),
        }
    return out


def write_results(result: RunResult, out_dir: Path, figures: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(
        "# resolved scenario of this run: `flexmarkets run " + str(out_dir / "config.yaml")
        + "` reproduces it\n" + dump_scenario(result.scenario))
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=float))
    for name, df in result.tables.items():
        df.to_parquet(out_dir / f"{name}.parquet", index=False)
    if figures:
        from experiments.plots import plot_run

        plot_run(result, out_dir)


def load_config(out_dir: Path) -> dict:
    return yaml.safe_load((out_dir / "config.yaml").read_text())

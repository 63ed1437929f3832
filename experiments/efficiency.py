"""Why a run misses the planner: its system cost against the planner's, split by cause with
counterfactual runs of the same seed (same weather, fleet and draws; `experiments.twin`).

    total gap      = run - planner
    forecast error = run - run with perfect forecasts
    strategies     = run - run with every agent truthful (the truthful twin)
    market design  = truthful run with perfect forecasts - planner: what the markets' own
                     rules leave when nobody games and nobody errs
    interaction    = total gap - the three above (forecast errors and strategies reinforce
                     or offset each other)

The planner sees the realised day in every counterfactual alike, so one planner cost serves
all. The split is a set of counterfactuals, not a variance decomposition: the parts need not
be positive, and the interaction says how far from additive they are.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from experiments.statistics import efficiency

PERFECT_FORECASTS = {"forecast.load_error_sd": 0.0, "forecast.pv_error_sd": 0.0,
                     "forecast.wind_error_sd": 0.0, "forecast.idiosyncratic_sd": 0.0,
                     "forecast.load_bias": 0.0}


@dataclass(frozen=True)
class Decomposition:
    """System costs (EUR) of the run, its counterfactuals and the planner, and the split."""

    run: float
    perfect_forecasts: float
    truthful: float
    truthful_perfect: float
    planner: float
    strategic_agents: tuple[str, ...]

    @property
    def parts(self) -> dict[str, float]:
        total = self.run - self.planner
        forecast = self.run - self.perfect_forecasts
        strategies = self.run - self.truthful
        design = self.truthful_perfect - self.planner
        return {"total_gap_eur": total, "forecast_error_eur": forecast,
                "strategies_eur": strategies, "market_design_eur": design,
                "interaction_eur": total - forecast - strategies - design}

    @property
    def summary(self) -> dict:
        return {"cost_efficiency": efficiency(self.planner, self.run),
                "system_cost_eur": {"run": self.run, "perfect_forecasts": self.perfect_forecasts,
                                    "truthful": self.truthful,
                                    "truthful_perfect_forecasts": self.truthful_perfect,
                                    "planner": self.planner},
                "gap": self.parts, "strategic_agents": list(self.strategic_agents)}


def decompose(scenario=None, *, days: int | None = None, seed: int | None = None,
              overrides: dict | None = None) -> Decomposition:
    """Run the scenario (planner on) and its three counterfactuals; without strategic agents
    the truthful runs are the run itself and its perfect-forecast twin."""
    from environment.scenario import with_overrides
    from experiments.run import resolve, run_scenario
    from experiments.twin import strategic_agents, truthful_twin

    s = resolve(scenario, days, seed, overrides)
    agents = strategic_agents(s)
    kw = {"write": False, "figures": False}
    run = run_scenario(s, planner=True, **kw).summary
    perfect = with_overrides(s, PERFECT_FORECASTS)
    perfect_cost = run_scenario(perfect, planner=False, **kw).summary["system_cost_eur"]
    if agents:
        truthful = run_scenario(truthful_twin(s, agents), planner=False, **kw)
        truthful_cost = truthful.summary["system_cost_eur"]
        both = run_scenario(truthful_twin(perfect, agents), planner=False, **kw)
        both_cost = both.summary["system_cost_eur"]
    else:
        truthful_cost, both_cost = run["system_cost_eur"], perfect_cost
    return Decomposition(run["system_cost_eur"], perfect_cost, truthful_cost, both_cost,
                         run["planner_system_cost_eur"], tuple(agents))


def efficiency_command(args: argparse.Namespace) -> int:
    """`flexmarkets efficiency`: the decomposition printed, and written with --out."""
    from experiments.overrides import parse_sets

    d = decompose(args.scenario, days=args.days, seed=args.seed,
                  overrides=parse_sets(args.set))
    eff = d.summary["cost_efficiency"]
    lines = [f"efficiency of {args.scenario or 'default'}: "
             + (f"{eff:.4f}" if eff is not None else "n/a")
             + f" (system cost {d.run:,.2f} EUR, planner {d.planner:,.2f} EUR)"]
    lines += [f"  {k.removesuffix('_eur').replace('_', ' '):15s} {v:12,.2f} EUR"
              for k, v in d.parts.items()]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "efficiency.json").write_text(json.dumps(d.summary, indent=2, default=float))
        print(f"  written to {out / 'efficiency.json'}")
    return 0

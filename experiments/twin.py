"""Twin runs: a scenario against its counterfactual in which chosen agents bid truthfully.

Both runs use the same seed, so forecast errors, profiles and the prosumer fleet are the same;
every difference comes from the strategies. The profit a strategic agent makes over its
truthful twin is its gaming profit; the changes of every class's profit show who pays for it,
and the welfare difference what the economy as a whole lost.

Welfare (experiments.statistics.welfare_split) is the classes' net ledger receipts plus the
value of the energy consumers and prosumers were served, less the cost of unsolved grid
violations. The ledger sums to zero over all accounts, the outside world (`external`: fuel,
wear, emergency assistance) included, so

    change of welfare = sum over classes of the change of profit (net receipts)
                        + change of valued energy - change of violation cost

and the profit changes of all classes and `external` sum to zero: the transfers. The
comparison's figures are computed in experiments/twin_statistics.py (`twin_comparison`,
`transmission_twin_summary`); this module runs the twins and reports them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from environment.errors import InputError
from environment.scenario import ScenarioError, with_overrides
from environment.transmission.scenario import TxScenario
from experiments.headline import num, signed, twin_lines
from experiments.plan import resolve
from experiments.run import RunResult, run_scenario
from experiments.store import write_run
from experiments.twin_statistics import transmission_twin_summary, twin_comparison

ROLES = ("brps", "aggregators", "producers")
EXOGENOUS = ("system_load_mw", "prosumer_load_mw", "pv_mw")


def strategic_agents(scenario) -> list[str]:
    return [a.name for role in ROLES for a in getattr(scenario, role) if a.strategy != "truthful"]


def truthful_twin(scenario, agents: list[str]):
    """The scenario with `agents` switched to the truthful strategy (no parameters)."""
    changes = {}
    found = set()
    for role in ROLES:
        for i, a in enumerate(getattr(scenario, role)):
            if a.name in agents:
                changes[f"{role}.{i}.strategy"] = "truthful"
                changes[f"{role}.{i}.strategy_params"] = {}
                found.add(a.name)
    missing = sorted(set(agents) - found)
    if missing:
        raise ScenarioError(f"twin agents {missing}: no brp, aggregator or producer of that name "
                            f"in scenario {scenario.name}")
    return with_overrides(scenario, changes) if changes else scenario


def same_realisations(a: RunResult, b: RunResult) -> bool:
    """The exogenous data of both runs agree: system load everywhere; prosumer load and PV at
    MTUs where neither run's DSO curtailed or disconnected (RED/BLACK change them); the
    aggregators' forecast baselines (forecast errors of their devices)."""
    sa, sb = a.tables["series"], b.tables["series"]
    free = np.ones(len(sa), bool)
    for run in (a, b):
        g = run.tables["grid"]
        red = g.groupby("mtu")["light"].max() >= 2
        free &= ~red.reindex(sa["mtu"], fill_value=False).to_numpy()
    ok = np.array_equal(sa["system_load_mw"], sb["system_load_mw"])
    for col in EXOGENOUS[1:]:
        ok &= np.array_equal(sa[col].to_numpy()[free], sb[col].to_numpy()[free])
    aa, ab = a.tables.get("aggregators"), b.tables.get("aggregators")
    if aa is not None and ab is not None:
        ok &= np.array_equal(aa["baseline_mw"], ab["baseline_mw"])
    return bool(ok)


@dataclass
class TwinReport:
    agents: list[str]
    by_agent: pd.DataFrame          # account, class, market, strategic, truthful, change (EUR)
    by_class: pd.DataFrame          # class: strategic, truthful, change (net receipts, EUR)
    gaming_profit_eur: dict[str, float]
    welfare: dict[str, float]
    identity_residual_eur: float
    same_realisations: bool
    runs: tuple = field(default=(), repr=False)

    @property
    def summary(self) -> dict:
        return {"agents": self.agents, "gaming_profit_eur": self.gaming_profit_eur,
                "transfers_eur": self.by_class["change"].to_dict(), "welfare_eur": self.welfare,
                "identity_residual_eur": self.identity_residual_eur,
                "same_realisations": self.same_realisations}

    def write(self, out: str | Path) -> Path:
        """Write the report into `out` (a folder holding no results), complete or not at
        all."""
        def files(folder: Path) -> None:
            self.by_agent.to_csv(folder / "profit_by_agent_market.csv", index=False)
            self.by_class.to_csv(folder / "profit_by_class.csv")
            (folder / "twin.json").write_text(json.dumps(self.summary, indent=2, default=float))

        return write_run(Path(out), files)

    def lines(self, name: str, out=None) -> list[str]:
        """What `flexmarkets twin` prints (exact figures, changes signed)."""
        w = self.welfare
        lines = [f"twin of {name}: strategic {', '.join(self.agents) or '(none)'} against "
                 "truthful, same seed"]
        lines += [f"  gaming profit {a}: {signed(eur)} EUR"
                  for a, eur in self.gaming_profit_eur.items()]
        lines += [f"  transfer to {c}: {signed(eur)} EUR"
                  for c, eur in self.by_class["change"].items()]
        lines += [f"  welfare {num(w['strategic'])} vs {num(w['truthful'])} EUR: lost "
                  f"{num(w['lost'])} EUR",
                  f"  report in {out}" if out else "  (no --out: nothing written)"]
        return lines


def run_twin(scenario, agents: list[str] | None = None, *, days: int | None = None,
             seed: int | None = None, overrides: dict | None = None,
             planner: bool | None = False, out: str | Path | None = None
             ) -> TwinReport | TransmissionTwin:
    """Run `scenario` and its truthful twin for `agents` (default: every agent whose strategy
    is not truthful) with the same seed; compare profits, transfers and welfare. A
    transmission scenario's twin compares producers only (`transmission_twin`).

    Raises RuntimeError if the twins did not see the same realisations (a strategy drew from
    the model's random generator)."""
    s = resolve(scenario, days, seed, overrides)
    if isinstance(s, TxScenario):
        return transmission_twin(s, agents, out)
    agents = strategic_agents(s) if agents is None else list(agents)
    twin = truthful_twin(s, agents)
    kw = {"planner": planner, "write": False, "figures": False}
    game, fair = run_scenario(s, **kw), run_scenario(twin, **kw)
    same = same_realisations(game, fair)
    if not same:
        raise RuntimeError(f"twin runs of {s.name} saw different realisations: a strategy of "
                           f"{agents} must not draw from the model's random generator")
    f = twin_comparison(game, fair, agents)
    report = TwinReport(agents, f["by_agent"], f["by_class"], f["gaming_profit_eur"],
                        f["welfare"], f["identity_residual_eur"], same, (game, fair))
    if out is not None:
        report.write(out)
    return report



@dataclass
class TransmissionTwin:
    """A transmission scenario against its truthful twin: what `flexmarkets twin` prints and
    writes (twin.json, profit_by_agent.csv, profit_by_class.csv)."""

    summary: dict

    def write(self, out: str | Path) -> Path:
        t = self.summary

        def files(folder: Path) -> None:
            (folder / "twin.json").write_text(json.dumps(t, indent=2, default=float))
            rows = [{"account": k, "class": "producer", "change_eur": v}
                    for k, v in {**t["gaming_profit_eur"],
                                 **t["other_producers_profit_change_eur"]}.items()]
            pd.DataFrame(rows).to_csv(folder / "profit_by_agent.csv", index=False)
            pd.Series(t["by_class_eur"], name="change_eur").rename_axis("class").to_csv(
                folder / "profit_by_class.csv")

        return write_run(Path(out), files)

    def lines(self, name: str, out=None) -> list[str]:
        return twin_lines(self.summary) + ([f"  report in {out}"] if out else [])


def transmission_twin(s: TxScenario, agents: list[str] | None,
                      out: str | Path | None = None) -> TransmissionTwin:
    from environment.transmission.twin import run_pair, strategic_producers

    if agents is None and not strategic_producers(s):
        raise InputError(f"twin of {s.name}: every producer is truthful; name producers to "
                         "compare with --agents, or make one strategic with --set "
                         "producers.N.strategy=incdec")
    pair = run_pair(s, agents)
    report = TransmissionTwin(transmission_twin_summary(pair.run, pair.twin, pair.truthful))
    if out is not None:
        report.write(out)
    return report

"""What a run will be, settled before any heavy import: the resolved scenario, its id and where
its results go (checked). `flexmarkets run` prints this first, within a second of starting;
`experiments.run.execute` then simulates it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from environment.scenario import Scenario, load_scenario, with_overrides
from environment.scenario_files import find_scenario
from environment.series import digests
from experiments.store import RESULTS, check_output_dir, run_id, scenario_hash


def resolve(scenario: Scenario | str | Path | None, days: int | None = None,
            seed: int | None = None, overrides: dict | None = None) -> Scenario:
    """A scenario (object, file or shipped name) with `days`, `seed` and dotted-path
    overrides applied."""
    s = scenario if isinstance(scenario, Scenario) else load_scenario(find_scenario(scenario))
    changes = dict(overrides or {})
    if days is not None:
        changes["calendar.days"] = days
    if seed is not None:
        changes["seed"] = seed
    return with_overrides(s, changes) if changes else s


@dataclass(frozen=True)
class RunPlan:
    scenario: Scenario
    run_id: str
    out_dir: Path | None
    overrides: dict = field(default_factory=dict)
    source: str = ""

    def headline(self) -> str:
        """The first line a run prints: what runs and where it goes."""
        s, c = self.scenario, self.scenario.calendar
        where = f"; results go to {self.out_dir}" if self.out_dir else ""
        return (f"run {self.run_id}: {c.days} day{'s' if c.days != 1 else ''} from "
                f"{c.start:%a %Y-%m-%d}, {sum(g.count for g in s.prosumers)} households, "
                f"{c.mtu_minutes}-min MTUs{where}")


def plan_run(scenario: Scenario | str | Path | None = None, *, days: int | None = None,
             seed: int | None = None, overrides: dict | None = None,
             out: str | Path | None = None, write: bool = True, overwrite: bool = False,
             results: Path = RESULTS) -> RunPlan:
    """Resolve, name and place a run; a `ScenarioError` or an output problem stops it here."""
    source = "" if isinstance(scenario, Scenario) else str(find_scenario(scenario))
    s = resolve(scenario, days, seed, overrides)
    digest = scenario_hash(s.model_dump(mode="json"),
                           digests({k: v.model_dump() for k, v in s.data.items()}))
    rid = run_id(s.name, s.seed, f"{s.calendar.days}d", digest)
    out_dir = None
    if write:
        out_dir = check_output_dir(Path(out) if out else results / rid, must_be_new=True,
                                   overwrite=overwrite)
    changes = dict(overrides or {})
    if days is not None:
        changes["calendar.days"] = days
    if seed is not None:
        changes["seed"] = seed
    return RunPlan(s, rid, out_dir, changes, source)

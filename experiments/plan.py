"""What a run will be, settled before any heavy import: the resolved scenario, its id and where
its results go (checked). `flexmarkets run` prints this first, within a second of starting;
`experiments.run.execute` then simulates it.

Both kinds of scenario are planned here: a distribution-grid `Scenario` and a transmission
`TxScenario` (`kind: transmission`), told apart by their file's `kind`. `days` means
`calendar.days` for the one and 24 hourly `periods` a day for the other; `episodes` (repeating
the periods, for learning producers) only exists for the transmission kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from environment.errors import InputError
from environment.scenario import Scenario, load_scenario, with_overrides
from environment.scenario_files import find_scenario, read_scenario_data, scenario_kind
from environment.series import digests
from environment.transmission.scenario import TxScenario, load_tx_scenario, tx_with_overrides
from experiments.store import RESULTS, check_output_dir, run_id, scenario_hash

TRANSMISSION = "transmission"


def changes_of(kind: str, days: int | None = None, seed: int | None = None,
               overrides: dict | None = None, episodes: int | None = None) -> dict:
    """The dotted-path changes the command line's options make to a scenario of `kind`."""
    changes = dict(overrides or {})
    if days is not None:
        if kind == TRANSMISSION:
            if days < 1:
                raise InputError(f"--days {days}: must be 1 or more")
            changes["periods"] = 24 * days
        else:
            changes["calendar.days"] = days
    if episodes is not None:
        if kind != TRANSMISSION:
            raise InputError(f"--episodes {episodes}: only transmission scenarios have "
                             "episodes; this is a distribution-grid scenario (use --days)")
        changes["episodes"] = episodes
    if seed is not None:
        changes["seed"] = seed
    return changes


def kind_of(scenario: Scenario | TxScenario | str | Path | None) -> str:
    """`transmission` or `distribution`: a scenario object's, or its file's `kind`."""
    if isinstance(scenario, Scenario | TxScenario):
        return TRANSMISSION if isinstance(scenario, TxScenario) else "distribution"
    return scenario_kind(read_scenario_data(find_scenario(scenario)))


def resolve(scenario: Scenario | TxScenario | str | Path | None, days: int | None = None,
            seed: int | None = None, overrides: dict | None = None,
            episodes: int | None = None) -> Scenario | TxScenario:
    """A scenario (object, file or shipped name) of either kind with `days`, `seed`,
    `episodes` and dotted-path overrides applied."""
    kind = kind_of(scenario)
    if isinstance(scenario, Scenario | TxScenario):
        s = scenario
    else:
        path = find_scenario(scenario)
        s = load_tx_scenario(path) if kind == TRANSMISSION else load_scenario(path)
    changes = changes_of(kind, days, seed, overrides, episodes)
    if not changes:
        return s
    return tx_with_overrides(s, changes) if kind == TRANSMISSION else with_overrides(s, changes)


def scenario_run_id(s: Scenario | TxScenario) -> str:
    """<name>-seed<S>-<length>-<hash of the resolved scenario and its data files>; the length
    is `<N>d` for a distribution-grid run, `<N>h` (`x<E>` for repeated episodes) for a
    transmission one."""
    data = {k: v.model_dump() for k, v in s.data.items()}
    if isinstance(s, TxScenario):
        length = f"{s.periods}h" + (f"x{s.episodes}" if s.episodes > 1 else "")
        digest = scenario_hash(s.dump_data(), digests(data))
    else:
        length = f"{s.calendar.days}d"
        digest = scenario_hash(s.model_dump(mode="json"), digests(data))
    return run_id(s.name, s.seed, length, digest)


@dataclass(frozen=True)
class RunPlan:
    scenario: Scenario | TxScenario
    run_id: str
    out_dir: Path | None
    overrides: dict = field(default_factory=dict)
    source: str = ""

    @property
    def kind(self) -> str:
        return TRANSMISSION if isinstance(self.scenario, TxScenario) else "distribution"

    def headline(self) -> str:
        """The first line a run prints: what runs and where it goes."""
        s = self.scenario
        where = f"; results go to {self.out_dir}" if self.out_dir else ""
        if isinstance(s, TxScenario):
            regions = f", {len(s.regions)} distribution region(s)" if s.regions else ""
            return (f"transmission run {self.run_id}: {s.episodes} x {s.periods} hourly "
                    f"periods, {len(s.producers)} producers, {len(s.nodes)} node(s), "
                    f"{len(s.lines)} line(s){regions}{where}")
        c = s.calendar
        return (f"run {self.run_id}: {c.days} day{'s' if c.days != 1 else ''} from "
                f"{c.start:%a %Y-%m-%d}, {sum(g.count for g in s.prosumers)} households, "
                f"{c.mtu_minutes}-min MTUs{where}")


def plan_run(scenario: Scenario | TxScenario | str | Path | None = None, *,
             days: int | None = None, seed: int | None = None, overrides: dict | None = None,
             episodes: int | None = None, out: str | Path | None = None, write: bool = True,
             overwrite: bool = False, results: Path = RESULTS) -> RunPlan:
    """Resolve, name and place a run; a `ScenarioError` or an output problem stops it here."""
    source = "" if isinstance(scenario, Scenario | TxScenario) else str(find_scenario(scenario))
    s = resolve(scenario, days, seed, overrides, episodes)
    if isinstance(s, TxScenario) and s.regions:
        from environment.tiers.regions import region_scenarios

        region_scenarios(s)     # a region's bad scenario or override stops the run here
    rid = scenario_run_id(s)
    out_dir = None
    if write:
        out_dir = check_output_dir(Path(out) if out else results / rid, must_be_new=True,
                                   overwrite=overwrite)
    return RunPlan(s, rid, out_dir, changes_of(kind_of(s), days, seed, overrides, episodes),
                   source)

"""What the browser view runs: the settings a tab chooses (scenario, seed, market-design
controls checked against the scenario schema) and the model it steps, which keeps the realised
per-branch flows of the last day for the grid picture and turns a failing day into a message.

A control whose path the scenario schema does not (yet) have is shown disabled, with the
schema's reason; it switches itself on once the schema accepts the path and its choices."""

from __future__ import annotations

import itertools
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agents.strategies import known
from environment.model import FlexMarketModel
from environment.scenario import Scenario, ScenarioError, with_overrides
from environment.scenario_files import describe, find_scenario, shipped_scenarios
from experiments.plan import resolve

# --- what the page lets you choose ---------------------------------------------------------------

DEFAULT_SCENARIO = "default"
# The viewer skips the perfect-foresight planner (about 0.5 s a day) so that Step stays quick.
VIEW_OVERRIDES: dict[str, Any] = {"planner.enabled": False}
SEED_MAX = 2**63 - 1


@dataclass(frozen=True)
class Control:
    """A market-design choice: a label, the dotted scenario path it sets and its choices (or a
    function returning them, evaluated when the page is drawn)."""

    label: str
    path: str
    choices: Sequence[Any] | Callable[[], Sequence[Any]]

    def options(self) -> list:
        return list(self.choices() if callable(self.choices) else self.choices)


def coupling_schemes() -> list[str]:
    """Registered coupling schemes (environment.coupling), or the three of the design."""
    try:
        from environment.coupling import COUPLING
    except ImportError:
        return ["no_coupling", "conditional", "sequential"]
    return sorted(COUPLING)


def tso_dso_schemes() -> list[str]:
    """Registered TSO-DSO coordination schemes (environment.markets.tso_dso)."""
    from environment.markets.tso_dso import TSO_DSO

    return sorted(TSO_DSO)


CONTROLS: list[Control] = [
    Control("Coupling scheme", "markets.coupling", coupling_schemes),
    Control("Compensation regime", "settlement.compensation",
            ["none", "contractual", "regulated", "corrected", "central"]),
    Control("TSO-DSO scheme", "markets.tso_dso_scheme", tso_dso_schemes),
    Control("LFM pricing", "markets.lfm.pricing", ["pay_as_bid", "pay_as_clear"]),
    Control("Strategy mix (aggregator)", "aggregators.0.strategy",
            lambda: known("aggregator")),
]


@dataclass(frozen=True)
class ViewSettings:
    """What Reset builds: a scenario (file name), a seed (None: the scenario's) and choices."""

    scenario: str = DEFAULT_SCENARIO
    seed: int | None = None
    choices: tuple[tuple[str, Any], ...] = ()

    def overrides(self) -> dict[str, Any]:
        return {**VIEW_OVERRIDES, **dict(self.choices)}


@dataclass
class SettingsRef:
    """One tab's settings for Mesa's Reset button (SolaraViz passes it to the model class)."""

    value: ViewSettings = field(default_factory=ViewSettings)


def scenario_names() -> list[str]:
    """The distribution-grid scenarios shipped with flexmarkets; transmission cases
    (`kind: transmission`) have no feeder to show."""
    names = [n for n, p in shipped_scenarios().items() if describe(p)["kind"] == "distribution"]
    return names or [DEFAULT_SCENARIO]


def scenario_path(name: str):
    return find_scenario(name)


def build_scenario(settings: ViewSettings) -> Scenario:
    return resolve(find_scenario(settings.scenario), seed=settings.seed,
                   overrides=settings.overrides())


def parse_seed(text: str | None) -> int:
    """A seed typed into the page: a whole number in 0..2^63-1, else ValueError (a message)."""
    t = (text or "").strip()
    if not t:
        raise ValueError("seed: enter a whole number (0 or more)")
    if not re.fullmatch(r"[+-]?\d{1,19}", t):
        raise ValueError(f"seed {t[:30]!r}: not a whole number between 0 and {SEED_MAX}")
    value = int(t)
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"seed {value}: must be between 0 and {SEED_MAX}")
    return value


def _value_at(data: Any, path: str) -> Any:
    for key in path.split("."):
        try:
            data = data[int(key)] if isinstance(data, list) else data[key]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return data


@dataclass(frozen=True)
class ControlState:
    label: str
    path: str
    choices: list
    current: Any
    reason: str | None  # why the control is disabled; None when usable


def control_states(base: Scenario, controls: Sequence[Control] = CONTROLS) -> list[ControlState]:
    """Which controls the scenario schema accepts: a choice is offered if `with_overrides`
    validates it; a control with no valid choice is disabled with the first error."""
    data = base.model_dump(mode="json")
    out = []
    for c in controls:
        try:
            options = c.options()
        except Exception as exc:  # a registry that fails to list is a disabled control
            out.append(ControlState(c.label, c.path, [], None, f"{type(exc).__name__}: {exc}"))
            continue
        valid, reason = [], None
        for choice in options:
            try:
                with_overrides(base, {c.path: choice})
                valid.append(choice)
            except ScenarioError as exc:
                reason = reason or short_reason(str(exc))
        current = _value_at(data, c.path)
        if not valid:
            out.append(ControlState(c.label, c.path, options, None,
                                    reason or "no choices available"))
            continue
        out.append(ControlState(c.label, c.path, valid,
                                current if current in valid else valid[0], None))
    return out


def short_reason(message: str) -> str:
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    detail = lines[1:] or lines
    return "not accepted by the scenario schema: " + "; ".join(detail)[:300]

# --- the model the page drives -------------------------------------------------------------------

_view_ids = itertools.count(1)


class ViewModel(FlexMarketModel):
    """The simulation model as the viewer runs it: built from `ViewSettings`, it keeps the
    realised per-branch flows of the last simulated day for the grid picture, and a step that
    fails ends the run with the error on the page instead of crashing it."""

    def __init__(self, settings: ViewSettings | SettingsRef | None = None):
        if isinstance(settings, SettingsRef):
            settings = settings.value
        settings = settings or ViewSettings()
        super().__init__(build_scenario(settings))
        self.settings = settings
        self.view_id = next(_view_ids)
        self.error: str | None = None
        self.day_flows: tuple[int, np.ndarray, np.ndarray] | None = None
        self._flow_calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._cache: tuple[int, dict] | None = None
        self._hook_flows()

    def _hook_flows(self) -> None:
        """Record each grid assessment of a day; after the step, the one whose per-location
        loading equals the recorded realised loading gives per-branch loading and voltages."""
        dso = getattr(self, "dso", None)
        assess = getattr(dso, "assess", None)
        if assess is None:
            return

        def recording_assess(*args, **kwargs):
            res, flags = assess(*args, **kwargs)
            try:
                self._flow_calls.append((np.asarray(flags["max_loading"]),
                                         np.asarray(res.loading), np.asarray(res.v_pu)))
            except (KeyError, AttributeError, TypeError):
                pass
            return res, flags

        dso.assess = recording_assess

    def step(self) -> None:
        if self.error is not None:
            self.running = False
            return
        self._flow_calls = []
        day = self.day
        try:
            super().step()
        except Exception as exc:
            traceback.print_exc()
            self.error = f"day {day + 1} failed: {type(exc).__name__}: {exc}"
            self.running = False
            return
        finally:
            self._cache = None
        if self.day > day:
            self._keep_flows(day)

    def _keep_flows(self, day: int) -> None:
        self.day_flows = None
        grid_rec = self.records.get("grid")
        if not grid_rec or not self._flow_calls:
            return
        n_loc = self.grid.n_locations
        recorded = grid_rec[-1]["max_loading"].to_numpy().reshape(-1, n_loc)
        for max_loading, loading, v_pu in reversed(self._flow_calls):
            if max_loading.shape == recorded.shape and np.allclose(max_loading, recorded):
                self.day_flows = (day, loading, v_pu)
                break
        self._flow_calls = []

    def view_tables(self) -> dict[str, pd.DataFrame]:
        """`tables()` plus the ledger, computed once per simulated day."""
        if self._cache is None or self._cache[0] != self.day:
            tables = self.tables() if self.records else {}
            tables["ledger"] = self.ledger.frame()
            self._cache = (self.day, tables)
        return self._cache[1]

# --- days and MTUs of the last simulated day -------------------------------------------


def last_day(model: FlexMarketModel) -> int | None:
    return model.day - 1 if model.day > 0 and model.records.get("series") else None


def peak_mtu(model: ViewModel) -> int:
    """MTU (within the last simulated day) of the day's highest branch loading."""
    series = model.records["series"][-1]
    col = "max_loading" if "max_loading" in series else None
    if col is None:
        return 0
    return int(np.nanargmax(series[col].to_numpy()))


def mtu_label(model: FlexMarketModel, day: int, mtu: int) -> str:
    cal = model.calendar
    t0 = pd.Timestamp(cal.start) + pd.Timedelta(days=day, minutes=mtu * cal.mtu_minutes)
    t1 = t0 + pd.Timedelta(minutes=cal.mtu_minutes)
    return f"{t0:%a %d %b %Y} {t0:%H:%M}–{t1:%H:%M}"


def default_settings() -> ViewSettings:
    scenario = build_scenario(ViewSettings())
    return ViewSettings(DEFAULT_SCENARIO, scenario.seed)

"""Browser view of a run: the grid, the markets and who earns what.

`flexmarkets view` (or `solara run app.py`) serves `Page`: one Mesa model per browser tab, one
step per delivery day. The page is built from Mesa's visualization pieces (its update counter)
and our own run controls (experiments/viz_panels.py), not from SolaraViz, whose generic
controls (play and render intervals, threads, an empty parameter box, page tabs) do not fit a
model whose step takes seconds. The panels:

- grid: lines and nodes by DSO traffic light per location (left), by branch loading and bus
  voltage (right), realised LinDistFlow flows at one MTU of the last simulated day (a slider
  picks it; the day's peak loading by default);
- prices: day-ahead, its D-1 forecast, intraday, imbalance and the price the DSO paid in the
  LFM (from the `flex` table, volume-weighted over locations);
- volumes: traded (day-ahead, intraday) and activated (balancing, LFM, platform) energy;
- who earns what: net receipts by agent class and market from the ledger, so far.

The sidebar's "Scenario and market design" card sets what Reset builds: scenario, seed and the
market-design controls of `CONTROLS`, each a dotted scenario path; a path the schema rejects
is shown disabled with the reason.
"""

from __future__ import annotations

import warnings

import solara
from mesa.visualization.utils import update_counter

from agents.dso import Light
from environment.errors import ScenarioError
from experiments.viz_grid import GridState, grid_figure, grid_layout_xy, grid_state, png
from experiments.viz_markets import (
    price_columns,
    price_figure,
    profit_figure,
    volume_columns,
    volume_figure,
)
from experiments.viz_model import (
    CONTROLS,
    DEFAULT_SCENARIO,
    SEED_MAX,
    Control,
    ControlState,
    SettingsRef,
    ViewModel,
    ViewSettings,
    build_scenario,
    control_states,
    default_settings,
    parse_seed,
    peak_mtu,
    scenario_names,
    scenario_path,
)
from experiments.viz_panels import (
    GridPanel,
    PricePanel,
    ProfitPanel,
    RunControls,
    SummaryPanel,
    VolumePanel,
    current_mtu,
)

__all__ = ["CONTROLS", "DEFAULT_SCENARIO", "SEED_MAX", "Control", "ControlState", "GridState",
           "Light", "Page", "SettingsRef", "ViewModel", "ViewSettings", "build_scenario",
           "control_states", "current_mtu", "default_settings", "grid_figure",
           "grid_layout_xy", "grid_state", "parse_seed", "peak_mtu", "png", "price_columns",
           "price_figure", "profit_figure", "scenario_names", "scenario_path",
           "volume_columns", "volume_figure"]

# The view is served on the loopback address over http, where Solara falls back to a lax
# session cookie and says so in 15 lines for every page load; that fallback is right here.
warnings.filterwarnings("ignore", message="Cookies with samesite=none require https")


@solara.component
def ScenarioControls(model: solara.Reactive, ref: SettingsRef):
    """Scenario, seed and market-design controls. A valid choice becomes what Mesa's Reset
    builds; an invalid one (a seed like "abc") is shown as an error and changes nothing."""
    pending = solara.use_reactive(ref.value)
    seed_text = solara.use_reactive(str(ref.value.seed))
    seed_error = solara.use_reactive(None)
    problem = solara.use_reactive(None)
    names = solara.use_memo(scenario_names, [])
    scen = pending.value.scenario

    def load_base():
        try:
            return build_scenario(ViewSettings(scen)), None
        except ScenarioError as exc:
            return None, str(exc)

    base, base_error = solara.use_memo(load_base, [scen])
    states = solara.use_memo(lambda: control_states(base) if base else [], [scen])
    picks = dict(pending.value.choices)

    def commit(settings: ViewSettings) -> None:
        try:
            build_scenario(settings)
        except ScenarioError as exc:
            problem.set(str(exc))
            return
        problem.set(None)
        ref.value = settings
        pending.set(settings)

    def on_scenario(name: str) -> None:
        try:
            seed = build_scenario(ViewSettings(name)).seed
        except ScenarioError as exc:
            problem.set(str(exc))
            return
        seed_text.set(str(seed))
        seed_error.set(None)
        commit(ViewSettings(name, seed))

    def on_seed(text: str | None) -> None:
        seed_text.set(text or "")
        try:
            seed = parse_seed(text)
        except ValueError as exc:
            seed_error.set(str(exc))
            return
        seed_error.set(None)
        commit(ViewSettings(scen, seed, pending.value.choices))

    def on_pick(path: str, value) -> None:
        chosen = {**picks, path: value}
        commit(ViewSettings(scen, pending.value.seed, tuple(sorted(chosen.items()))))

    current = model.value.settings if isinstance(model.value, ViewModel) else None
    with solara.Card("Scenario and market design", classes=["fm-controls"]):
        solara.Select("Scenario", values=names, value=scen, on_value=on_scenario)
        if base_error:
            solara.Error(base_error)
        for st in states:
            if st.reason:
                solara.Select(st.label, values=[str(c) for c in st.choices] or ["-"],
                              value=None, disabled=True)
                solara.Text(f"disabled: {st.path} {st.reason}",
                            style={"font-size": "11px", "color": "#777"},
                            classes=["fm-disabled-reason"])
            else:
                solara.Select(st.label, values=st.choices, value=picks.get(st.path, st.current),
                              on_value=lambda v, p=st.path: on_pick(p, v))
        solara.InputText("Seed (whole number, Enter to apply)", value=seed_text.value,
                         on_value=on_seed, error=bool(seed_error.value), classes=["fm-seed"])
        if seed_error.value:
            solara.Error(seed_error.value, classes=["fm-seed-error"])
        if problem.value:
            solara.Error(problem.value)
        if current is not None and pending.value != current:
            solara.Info("Press Reset to start a run with these settings.", dense=True)


@solara.component
def Page():
    """One browser tab: its own model (a new tab starts at day 0) and its own settings."""
    ref = solara.use_memo(lambda: SettingsRef(default_settings()), [])
    initial = solara.use_memo(lambda: ViewModel(ref), [])
    model = solara.use_reactive(initial)
    update_counter.get()
    solara.Title("flexmarkets — grid and markets")
    with solara.AppBar():
        solara.AppBarTitle("flexmarkets: distribution grid, markets and who earns what")
    with solara.Sidebar():
        RunControls(model, ref)
        ScenarioControls(model, ref)
    m = model.value
    with solara.Column(classes=["fm-page"], style={"padding": "8px 16px 48px"}):
        with solara.Card(classes=["fm-card"]):
            GridPanel(m)
        with solara.Columns([1, 1]):
            with solara.Card(classes=["fm-card"]):
                PricePanel(m)
            with solara.Card(classes=["fm-card"]):
                VolumePanel(m)
        with solara.Columns([2, 1]):
            with solara.Card(classes=["fm-card"]):
                ProfitPanel(m)
            with solara.Card(classes=["fm-card"]):
                SummaryPanel(m)

"""The browser view (experiments/viz.py) without a browser: its figures and controls as pure
functions, and the whole page rendered with `solara.render` and driven by its buttons."""

from __future__ import annotations

import time

import ipyvuetify as v
import ipywidgets as w
import numpy as np
import pandas as pd
import pytest
import solara
from matplotlib.figure import Figure

import environment.model
from experiments import statistics, viz
from experiments.viz_cli import OFFLINE_ENV, register_cli, server_command

SEED_LABEL = "Seed (whole number, Enter to apply)"


@pytest.fixture(scope="module")
def stepped() -> viz.ViewModel:
    """The default scenario (planner off), one delivery day simulated."""
    model = viz.ViewModel(viz.default_settings())
    model.step()
    assert model.error is None, model.error
    return model


# --- settings and controls -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["abc", "-1", "1e99", "", "   ", "4.5", "9" * 30, None])
def test_parse_seed_rejects_what_is_not_a_seed(text):
    with pytest.raises(ValueError, match="seed"):
        viz.parse_seed(text)


@pytest.mark.parametrize(("text", "seed"), [("0", 0), (" 42 ", 42), ("+7", 7),
                                            (str(viz.SEED_MAX), viz.SEED_MAX)])
def test_parse_seed_accepts_whole_numbers(text, seed):
    assert viz.parse_seed(text) == seed


def test_scenario_choices_are_the_shipped_yaml_files():
    names = viz.scenario_names()
    assert "default" in names
    assert all(viz.scenario_path(n).is_file() for n in names)


def test_controls_the_schema_rejects_are_disabled_with_a_reason(default_scenario):
    controls = [
        viz.Control("Not a field", "markets.no_such_scheme", ["a", "b"]),
        viz.Control("Wrong type", "tso.pricing", ["uniform_blend"]),
        viz.Control("Broken registry", "markets.x", lambda: 1 / 0),
        viz.Control("Strategy", "aggregators.0.strategy", ["truthful"]),
        viz.Control("Imbalance pricing", "tso.pricing", ["single", "dual", "bogus"]),
    ]
    states = {s.label: s for s in viz.control_states(default_scenario, controls)}
    for label in ("Not a field", "Wrong type", "Broken registry"):
        assert states[label].reason, label
    assert "markets.no_such_scheme" in states["Not a field"].reason
    assert states["Strategy"].reason is None
    assert states["Strategy"].current == "truthful"
    assert states["Imbalance pricing"].reason is None
    assert states["Imbalance pricing"].choices == ["single", "dual"]  # "bogus" left out
    # the shipped controls never raise, whatever the schema has today
    shipped = viz.control_states(default_scenario)
    assert [s.path for s in shipped] == [c.path for c in viz.CONTROLS]
    strategy = next(s for s in shipped if s.path == "aggregators.0.strategy")
    assert strategy.reason is None and "truthful" in strategy.choices


def test_view_settings_build_the_scenario_the_viewer_runs():
    s = viz.build_scenario(viz.ViewSettings("default", 7, (("tso.pricing", "dual"),)))
    assert s.seed == 7 and s.tso.pricing == "dual"
    assert s.planner.enabled is False  # Step stays quick


# --- figures -------------------------------------------------------------------------------------


def test_grid_state_has_realised_per_branch_flows(stepped):
    mtu = viz.current_mtu(stepped)
    assert mtu == viz.peak_mtu(stepped)
    state = viz.grid_state(stepped, mtu)
    g = stepped.grid
    assert state.per_branch
    assert state.loading.shape == (g.n_branch,) and state.v_pu.shape == (g.n_bus,)
    # the captured flows are the realised ones the model recorded: location maxima agree
    rec = stepped.records["grid"][-1]
    rows = rec[rec["mtu"] == rec["mtu"].min() + mtu].set_index("location")
    for k, loc in enumerate(g.locations):
        branches = np.flatnonzero(g.branch_location == k)
        if len(branches):
            assert state.loading[branches].max() == pytest.approx(rows.loc[loc, "max_loading"])
    # the peak MTU is the day's highest loading
    assert state.loading.max() == pytest.approx(stepped.records["series"][-1]["max_loading"].max())
    assert set(np.unique(state.light)) <= {int(x) for x in viz.Light}


def test_grid_figure_falls_back_to_location_values(stepped):
    flows = stepped.day_flows
    try:
        stepped.day_flows = None
        state = viz.grid_state(stepped, 10)
    finally:
        stepped.day_flows = flows
    assert not state.per_branch
    g = stepped.grid
    assert state.loading.shape == (g.n_branch,)
    fig = viz.grid_figure(g, state)
    assert isinstance(fig, Figure) and viz.png(fig)[:4] == b"\x89PNG"


def test_grid_layout_uses_coordinates_or_a_tree(stepped):
    g = stepped.grid
    xy, unit = viz.grid_layout_xy(g)
    assert unit == "m" and xy.shape == (g.n_bus, 2) and np.isfinite(xy).all()

    class NoCoordinates:
        n_bus, xy = g.n_bus, np.full((g.n_bus, 2), np.nan)
        parent_bus, depth = g.parent_bus, g.depth

    tree, unit = viz.grid_layout_xy(NoCoordinates())
    assert unit == "tree"
    assert (tree[:, 1] == -g.depth).all()
    assert len({tuple(p) for p in tree}) == g.n_bus  # no two buses on one spot


def _series(extra: dict | None = None) -> pd.DataFrame:
    n = 8
    ts = pd.date_range("2016-01-11", periods=n, freq="15min")
    df = pd.DataFrame({"timestamp": ts, "mtu": range(n), "da_price": np.linspace(20, 90, n),
                       "da_price_forecast": 50.0, "da_volume_mwh": 0.4,
                       "imbalance_price_short": 80.0, "imbalance_price_long": 30.0,
                       "activated_up_mw": 0.1, "activated_down_mw": 0.05,
                       "emergency_up_mw": 0.0, "emergency_down_mw": 0.0,
                       "system_short_mw": 0.1})
    for k, val in (extra or {}).items():
        df[k] = val
    return df


def test_price_and_volume_panels_pick_up_new_market_columns():
    base = _series()
    g = viz.price_columns(base.columns)
    assert g["da"] == ["da_price", "da_price_forecast"] and not g["id"] and not g["lfm"]
    assert len(viz.price_figure(base).axes) == 1  # no LFM row, and no failure
    assert len(viz.volume_figure(base, 0.25).axes) == 2

    more = _series({"id_price": 61.0, "id_volume_mwh": 0.02, "lfm_price_F1": 120.0,
                    "lfm_price_F4": 300.0, "lfm_volume_mwh": 0.01})
    g = viz.price_columns(more.columns)
    assert g["id"] == ["id_price"] and g["lfm"] == ["lfm_price_F1", "lfm_price_F4"]
    assert viz.volume_columns(more.columns) == {
        "traded": ["da_volume_mwh", "id_volume_mwh"],
        "activated": ["activated_up_mw", "activated_down_mw", "emergency_up_mw",
                      "emergency_down_mw", "lfm_volume_mwh"]}
    fig = viz.price_figure(more, marker=more["timestamp"].iloc[3])
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["lfm price F1", "lfm price F4"]
    assert viz.png(viz.volume_figure(more, 0.25))[:4] == b"\x89PNG"


def test_profit_table_is_the_ledger_by_class_and_market(stepped):
    ledger = stepped.ledger.frame()
    classes = stepped.ledger.account_classes()
    table = statistics.profit_table(ledger, classes)
    assert {"dayahead", "retail"} <= set(table.columns)
    by_class = stepped.ledger.balances().groupby(classes).sum()
    for cls, net in table.sum(axis=1).items():
        assert net == pytest.approx(by_class[cls], abs=1e-6)
    assert abs(table.to_numpy().sum()) < 1e-6  # every euro paid is received
    assert viz.png(viz.profit_figure(table))[:4] == b"\x89PNG"
    assert statistics.profit_table(ledger.iloc[:0], classes).empty


def test_gaming_profit_is_found_in_ledger_markets_and_table_columns():
    classes = pd.Series({"agg": "aggregators", "ex": "market_operators", "brp": "brps"})
    ledger = pd.DataFrame({"payer": ["ex", "brp"], "payee": ["agg", "ex"],
                           "market": ["inc_dec_arbitrage", "dayahead"], "mwh": [1.0, 1.0],
                           "price_eur_mwh": [50.0, 20.0], "eur": [50.0, 20.0]})
    profits = statistics.profit_table(ledger, classes)
    aggs = pd.DataFrame({"aggregator": ["flexco", "flexco"], "gaming_profit_eur": [3.0, 4.0]})
    found = statistics.gaming_profit({"aggregators": aggs, "ledger": ledger}, profits)
    assert found["aggregators (inc_dec_arbitrage)"] == 50.0
    assert found["flexco (gaming_profit_eur)"] == 7.0
    plain = statistics.profit_table(ledger.iloc[1:], classes)
    assert statistics.gaming_profit({"ledger": ledger.iloc[1:]}, plain) == {}


def test_a_failing_day_ends_the_run_with_the_error_shown(monkeypatch):
    model = viz.ViewModel(viz.default_settings())

    def broken(self):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(environment.model.FlexMarketModel, "step", broken)
    model.step()  # no exception
    assert "solver exploded" in model.error and not model.running
    box, rc = solara.render(viz.SummaryPanel(model), handle_error=False)
    assert "solver exploded" in rc.find(v.Alert).widget.children[0]


# --- the page ------------------------------------------------------------------------------------


def _page():
    return solara.render(solara.AppLayout(children=[viz.Page()]), handle_error=False)


def _image(rc, css: str):
    found = rc.find(w.Image, _dom_classes=("fm-figure", css))
    return found.widget.value if len(found) else None


def _day(rc) -> str:
    return rc.find(v.Html, class_="fm-day").widget.children[0]


def _summary_head(rc) -> str:
    return rc.find(v.Html, tag="h3").widget.children[0]


def _type_seed(rc, text: str) -> None:
    field = rc.find(v.TextField, label=SEED_LABEL).widget
    field.v_model = text
    field.fire_event("keyup.enter", text)


def _step(rc) -> None:
    """Click Step and wait for the day (it runs in a worker thread)."""
    before = _day(rc)
    rc.find(v.Btn, children=["Step"]).widget.click()
    rc.find(v.Html, class_="fm-day").assert_wait(lambda w: w.children[0] != before,
                                                 timeout=120)
    rc.find(v.Html, class_="fm-idle").wait_for(timeout=120)


def test_page_step_advances_the_model_and_redraws_the_panels():
    box, rc = _page()
    assert _day(rc).startswith("Day 0 of 7")
    grid0 = _image(rc, "fm-grid-figure")
    assert grid0 is not None
    assert _image(rc, "fm-prices-figure") is None  # only a note before the first day
    assert any("no delivery day" in str(a.children) for a in rc.find(v.Alert).widgets)

    _step(rc)
    assert _day(rc).startswith("Day 1 of 7")
    assert rc.find(v.Html, class_="fm-idle").widget.children[0] == "1 of 7 days simulated"
    grid1, prices1 = _image(rc, "fm-grid-figure"), _image(rc, "fm-prices-figure")
    assert grid1 is not None and grid1 != grid0
    assert prices1 is not None and prices1[:4] == b"\x89PNG"

    # the MTU slider moves the grid picture within the day
    slider = next(s for s in rc.find(v.Slider).widgets if s.label.startswith("MTU of"))
    slider.v_model = 3
    assert _image(rc, "fm-grid-figure") not in (grid1, None)
    assert "00:45–01:00" in rc.find(v.Html, class_="fm-mtu").widget.children[0]
    assert _image(rc, "fm-prices-figure") != prices1  # the MTU marker moved

    _step(rc)
    assert _day(rc).startswith("Day 2 of 7")
    assert "the day's peak loading" in rc.find(v.Html, class_="fm-mtu").widget.children[0]
    rc.find(v.Btn, children=["Reset"]).widget.click()
    assert _day(rc).startswith("Day 0 of 7")


def test_page_run_simulates_days_until_paused():
    box, rc = _page()
    rc.find(v.Btn, children=["Run"]).widget.click()
    day = rc.find(v.Html, class_="fm-day")
    day.assert_wait(lambda wdg: wdg.children[0].startswith(("Day 2", "Day 3")), timeout=60)
    rc.find(v.Btn, children=["Pause"]).widget.click()
    rc.find(v.Btn, children=["Run"]).wait_for(timeout=60)
    rc.find(v.Html, class_="fm-idle").wait_for(timeout=60)
    stopped = _day(rc)
    time.sleep(1.0)
    assert _day(rc) == stopped  # paused after the day in progress


def test_step_is_disabled_and_the_page_busy_while_a_day_runs(monkeypatch):
    """A second click cannot start a second day on the same model: while the worker thread
    simulates, Step, Run and Reset are disabled and the page says which day runs."""
    import threading

    release = threading.Event()
    real = viz.ViewModel.step

    def slow(self):
        release.wait(30)
        real(self)

    monkeypatch.setattr(viz.ViewModel, "step", slow)
    box, rc = _page()
    rc.find(v.Btn, children=["Step"]).widget.click()
    rc.find(v.Html, class_="fm-busy").wait_for(timeout=10)
    assert "Simulating day 1 of 7" in rc.find(v.Html, class_="fm-busy").widget.children[0]
    for label in ("Step", "Reset", "Run"):
        assert rc.find(v.Btn, children=[label]).widget.disabled, label
    release.set()
    rc.find(v.Html, class_="fm-idle").wait_for(timeout=60)
    assert _day(rc).startswith("Day 1 of 7")
    assert not rc.find(v.Btn, children=["Step"]).widget.disabled


def test_page_shows_bad_seeds_as_errors_and_keeps_the_model():
    box, rc = _page()
    _step(rc)
    assert _summary_head(rc) == "default, seed 42"
    grid = _image(rc, "fm-grid-figure")
    for bad in ("abc", "-1", "1e99", "", "12345678901234567890123"):
        _type_seed(rc, bad)
        error = rc.find(v.Alert, class_="fm-seed-error").widget.children[0]
        assert "seed" in error, bad
        assert _day(rc).startswith("Day 1 of 7") and _summary_head(rc) == "default, seed 42"
        assert _image(rc, "fm-grid-figure") == grid
    rc.find(v.Btn, children=["Reset"]).widget.click()  # Reset keeps the last valid settings
    assert _summary_head(rc) == "default, seed 42" and _day(rc).startswith("Day 0")

    _type_seed(rc, "7")
    assert not rc.find(v.Alert, class_="fm-seed-error")
    assert _summary_head(rc) == "default, seed 42"  # takes effect on Reset, as in Mesa
    rc.find(v.Btn, children=["Reset"]).widget.click()
    assert _summary_head(rc) == "default, seed 7"


def test_page_shows_unavailable_controls_disabled():
    box, rc = _page()
    labels = {c.label for c in viz.CONTROLS}
    selects = {s.widget.label: s.widget for s in rc.find(v.Select) if s.widget.label in labels}
    assert set(selects) == labels
    for state in viz.control_states(viz.build_scenario(viz.default_settings())):
        assert selects[state.label].disabled == (state.reason is not None)
    reasons = rc.find(v.Html, class_="fm-disabled-reason")
    assert len(reasons) == sum(s.disabled for s in selects.values())


def test_page_switches_scenario_and_strategy_on_reset():
    others = [n for n in viz.scenario_names() if n != "default"]
    box, rc = _page()
    strategy = next(s.widget for s in rc.find(v.Select)
                    if s.widget.label == "Strategy mix (aggregator)")
    strategy.v_model = strategy.items[-1]
    rc.find(v.Btn, children=["Reset"]).widget.click()
    items = [li.children[0] for li in rc.find(v.Html, tag="li").widgets]
    assert f"aggregator strategies: flexco: {strategy.items[-1]}" in items
    if not others:
        pytest.skip("only the default scenario is shipped")
    rc.find(v.Select, label="Scenario").widget.v_model = others[0]
    rc.find(v.Btn, children=["Reset"]).widget.click()
    seed = viz.build_scenario(viz.ViewSettings(others[0])).seed
    assert _summary_head(rc) == f"{others[0]}, seed {seed}"
    assert _day(rc).startswith("Day 0")


def test_offline_assets_are_installed():
    """What the page loads from Solara's CDN path is served from the installed solara-assets."""
    from solara.server import settings

    root = settings.assets.proxy_cache_dir
    for path in ("requirejs@2.3.6/require.js",
                 "@widgetti/vue-grid-layout@2.3.13-alpha.2/dist/vue-grid-layout.umd.js"):
        assert (root / path).is_file(), root / path


def test_view_cli_serves_on_loopback_offline():
    import argparse

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["view", "--port", "9123"])
    assert args.port == 9123 and args.host == "127.0.0.1" and callable(args.func)
    cmd = server_command(args.port, args.host)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "--production" in cmd
    assert "--no-check-version" in cmd
    assert OFFLINE_ENV["SOLARA_ASSETS_PROXY"] == "True"


def test_lfm_trades_reach_the_price_and_volume_panels():
    """The LFM's trades are in the `flex` table; the panels fold them in per MTU, so a run
    whose LFM traded shows its prices and volumes (coupling_conflict trades on its first day)."""
    model = viz.ViewModel(viz.ViewSettings("coupling_conflict",
                                           viz.build_scenario(
                                               viz.ViewSettings("coupling_conflict")).seed))
    model.step()
    tables = model.view_tables()
    flex = tables["flex"]
    bought = float((flex["dso_up_mw"] + flex["dso_down_mw"]).sum() * model.calendar.mtu_hours)
    assert bought > 0
    frame = statistics.with_flexibility(tables["series"], flex, model.calendar.mtu_hours)
    vols = [c for c in frame.columns if c.startswith("lfm_") and c.endswith("_mwh")]
    assert frame[vols].to_numpy().sum() == pytest.approx(bought)
    assert frame["lfm_da_price"].notna().any()
    assert viz.price_columns(frame.columns)["lfm"] == ["lfm_da_price", "lfm_id_price"]
    assert len(viz.price_figure(frame).axes) == 2
    from experiments.viz_markets import lfm_caption

    assert lfm_caption(frame).startswith(f"LFM: the DSO bought {bought:.3g} MWh")
    from experiments.viz_panels import market_frame  # what the panels draw

    assert market_frame(model)[vols].to_numpy().sum() == pytest.approx(bought)
    quiet = statistics.with_flexibility(tables["series"], None, 0.25)
    assert lfm_caption(quiet) == "LFM: the DSO bought no flexibility so far"

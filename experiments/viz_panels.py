"""The panels of the browser view (Solara components) and its run controls.

Every panel reads the model of its browser tab and redraws when Mesa's `update_counter` moves
(after each simulated day or Reset). `RunControls` replaces Mesa's generic controller: a day is
simulated in a worker thread while the page shows that it is busy and Step, Run and Reset are
disabled, so a second click cannot start a second day on the same model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import reacton.ipywidgets as rw
import solara
from mesa.visualization.utils import force_update, update_counter

from environment.model import FlexMarketModel
from experiments.statistics import (
    congestion,
    gaming_profit,
    price_stats,
    profit_table,
    system_imbalance_mwh,
    with_flexibility,
)
from experiments.viz_grid import grid_figure, grid_state, png
from experiments.viz_markets import (
    lfm_caption,
    price_figure,
    profit_figure,
    volume_figure,
)
from experiments.viz_model import (
    SettingsRef,
    ViewModel,
    control_states,
    last_day,
    mtu_label,
    peak_mtu,
)

# (view_id, day, mtu) picked with the slider; solara keeps a reactive variable per browser tab.
mtu_pick: solara.Reactive[tuple[int, int, int] | None] = solara.reactive(None)


def current_mtu(model: ViewModel) -> int | None:
    day = last_day(model)
    if day is None:
        return None
    pick = mtu_pick.value
    if pick is not None and pick[0] == model.view_id and pick[1] == day:
        return pick[2]
    return peak_mtu(model)


@solara.component
def Png(data: bytes, css: str, max_width: str | None = None):
    """A PNG that scales to its panel's width (and keeps its aspect ratio)."""
    layout = {"width": "100%", "height": "auto"}
    if max_width:
        layout["max_width"] = max_width
    return rw.Image(value=data, format="png", layout=layout, _dom_classes=["fm-figure", css])


def _v_band(model: FlexMarketModel) -> tuple[float, float]:
    dso = getattr(model, "dso", None)
    if dso is None:
        return 0.94, 1.06
    return float(np.min(dso.v_min)), float(np.max(dso.v_max))


def _day_text(model: FlexMarketModel) -> str:
    n = model.calendar.days
    if model.day == 0:
        return f"Day 0 of {n}: nothing simulated yet ({model.calendar.start:%a %d %b %Y} next)"
    d = model.calendar.date(model.day - 1)
    return f"Day {model.day} of {n} simulated (last: {d:%a %d %b %Y})"


@solara.component
def GridPanel(model: ViewModel):
    """The grid at one MTU of the last simulated day, with the MTU slider."""
    update_counter.get()
    mtu = current_mtu(model)
    day = last_day(model)
    peak = peak_mtu(model) if day is not None else None
    state = grid_state(model, mtu)
    v_band = _v_band(model)
    limit = float(getattr(model.dso, "loading_limit", 1.0)) if hasattr(model, "dso") else 1.0
    image = solara.use_memo(lambda: png(grid_figure(model.grid, state, v_band, limit)),
                            [model.view_id, model.day, mtu])

    def pick(value: int) -> None:
        if day is not None:
            mtu_pick.value = (model.view_id, day, int(value))

    with solara.Column(classes=["fm-grid"], gap="4px"):
        with solara.Row(style={"align-items": "center"}):
            solara.Text(_day_text(model), classes=["fm-day"],
                        style={"font-weight": "bold", "font-size": "15px"})
            if day is not None:
                solara.Text(f"showing {mtu_label(model, day, mtu)}"
                            + (" — the day's peak loading" if mtu == peak else ""),
                            classes=["fm-mtu"])
        if day is not None:
            with solara.Row(style={"align-items": "center"}):
                with solara.Div(style={"flex": "1 1 auto"}):
                    solara.SliderInt(f"MTU of {model.calendar.date(day):%a %d %b} "
                                     f"({model.calendar.mtu_minutes} min)", value=mtu, min=0,
                                     max=model.calendar.mtu_per_day - 1, on_value=pick)
                solara.Button("Peak MTU", on_click=lambda: pick(peak), outlined=True,
                              disabled=mtu == peak)
            solara.Text("One step simulates a whole delivery day; the grid shows one MTU of the "
                        "last simulated day, by default the one with the highest branch loading.",
                        style={"font-size": "12px", "color": "#666"})
        Png(image, "fm-grid-figure")


def market_frame(model: ViewModel) -> pd.DataFrame | None:
    """The series table with the LFM's and the platform's trades per MTU (None before the
    first day)."""
    tables = model.view_tables()
    series = tables.get("series")
    if series is None:
        return None
    return with_flexibility(series, tables.get("flex"), model.calendar.mtu_hours)


@solara.component
def PricePanel(model: ViewModel):
    update_counter.get()
    mtu = current_mtu(model)
    frame = solara.use_memo(lambda: market_frame(model), [model.view_id, model.day])
    marker = _marker_time(model, mtu)
    image = solara.use_memo(lambda: None if frame is None else png(price_figure(frame, marker)),
                            [model.view_id, model.day, mtu])
    with solara.Column(classes=["fm-prices"]):
        if image is None:
            solara.Info("Prices by market (EUR/MWh): no delivery day simulated yet — press "
                        "Step.")
        else:
            Png(image, "fm-prices-figure")
            solara.Text(lfm_caption(frame), classes=["fm-lfm-prices"],
                        style={"font-size": "12px"})


def _marker_time(model: FlexMarketModel, mtu: int | None):
    day = last_day(model)
    if day is None or mtu is None:
        return None
    cal = model.calendar
    return pd.Timestamp(cal.start) + pd.Timedelta(days=day, minutes=mtu * cal.mtu_minutes)


@solara.component
def VolumePanel(model: ViewModel):
    update_counter.get()
    mtu = current_mtu(model)
    frame = solara.use_memo(lambda: market_frame(model), [model.view_id, model.day])
    marker = _marker_time(model, mtu)
    image = solara.use_memo(
        lambda: None if frame is None else png(volume_figure(frame, model.calendar.mtu_hours,
                                                             marker)),
        [model.view_id, model.day, mtu])
    with solara.Column(classes=["fm-volumes"]):
        if image is None:
            solara.Info("Volumes by market (MWh per MTU): no delivery day simulated yet.")
        else:
            Png(image, "fm-volumes-figure")
            solara.Text(lfm_caption(frame), classes=["fm-lfm-volumes"],
                        style={"font-size": "12px"})


@solara.component
def ProfitPanel(model: ViewModel):
    update_counter.get()
    tables = model.view_tables()
    table = solara.use_memo(
        lambda: profit_table(tables["ledger"], model.ledger.account_classes()),
        [model.view_id, model.day])
    image = solara.use_memo(lambda: png(profit_figure(table)), [model.view_id, model.day])
    with solara.Column(classes=["fm-profits"]):
        Png(image, "fm-profits-figure")


@solara.component
def SummaryPanel(model: ViewModel):
    """Run status and headline numbers so far, gaming/arbitrage profit, model errors."""
    update_counter.get()
    tables = model.view_tables()
    s = model.config
    agg = ", ".join(f"{a.name}: {a.strategy}" for a in s.aggregators) or "none"
    head = f"{s.name}, seed {s.seed}"
    lines = [f"{model.fleet.n} prosumers on grid {s.grid.simbench_code}",
             f"aggregator strategies: {agg}"]
    for st in control_states(s):
        if st.reason is None and not st.path.startswith("aggregators."):
            lines.append(f"{st.label.lower()}: {st.current}")
    if "series" in tables:
        se, dt_h = tables["series"], model.calendar.mtu_hours
        price, c = price_stats(se["da_price"]), congestion(tables["grid"], dt_h)
        lines += [
            f"day-ahead price: mean {price['mean']:.1f}, "
            f"min {price['min']:.1f}, max {price['max']:.1f} EUR/MWh",
            f"system imbalance: {system_imbalance_mwh(se, dt_h):.2f} MWh (absolute)",
            f"traffic light, MTU × location: {c['green']} green, {c['yellow']} "
            f"yellow, {c['red']} red, {c['black']} black",
            f"max branch loading {c['max_loading'] * 100:.0f} %, voltage "
            f"{c['v_min_pu']:.3f}–{c['v_max_pu']:.3f} p.u.",
        ]
        profits = profit_table(tables["ledger"], model.ledger.account_classes())
        gaming = gaming_profit(tables, profits)
        if gaming:
            lines.append("gaming / arbitrage profit: " + "; ".join(
                f"{k}: {v:,.0f} EUR" for k, v in gaming.items()))
        else:
            lines.append("gaming / arbitrage profit: none recorded in this run")
    # plain HTML, not solara.Markdown: Markdown pulls KaTeX, which solara-assets does not ship
    with solara.Column(classes=["fm-summary"], gap="6px"):
        if model.error:
            solara.Error(f"The simulation stopped: {model.error}. Press Reset to start again.")
        solara.v.Html(tag="h3", children=[head])
        solara.Text(_day_text(model), classes=["fm-day-summary"], style={"font-weight": "bold"})
        solara.v.Html(tag="ul", style_="font-size: 14px; padding-left: 18px",
                      children=[solara.v.Html(tag="li", children=[ln]) for ln in lines])
        if not model.running and not model.error:
            solara.Success("Run complete. Press Reset for a new run.")


@solara.component
def RunControls(model: solara.Reactive, ref: SettingsRef):
    """Step (one delivery day), Run (every day left, until Pause) and Reset (a new model with
    the settings chosen), the day running in a worker thread. While it runs the page says so
    and the buttons are disabled; Pause stops after the day in progress."""
    playing = solara.use_reactive(False)
    days = solara.use_reactive(1)

    def simulate():
        m = model.value
        n = 0
        while m.running and (n < days.value or playing.value):
            m.step()
            n += 1
            force_update()
        playing.set(False)

    task = solara.lab.use_task(simulate, dependencies=None, prefer_threaded=True)
    busy = bool(task.pending)
    m = model.value

    def step() -> None:
        days.set(1)
        task()

    def run() -> None:
        playing.set(True)
        days.set(m.calendar.days)
        task()

    def reset() -> None:
        playing.set(False)
        model.value = ViewModel(ref)
        force_update()

    with solara.Card("Run", classes=["fm-run"]):
        with solara.Row(justify="space-between"):
            solara.Button("Reset", color="primary", on_click=reset, disabled=busy)
            solara.Button("Pause" if playing.value else "Run", color="primary",
                          on_click=(lambda: playing.set(False)) if playing.value else run,
                          disabled=(busy and not playing.value) or not m.running)
            solara.Button("Step", color="primary", on_click=step,
                          disabled=busy or not m.running)
        if busy:
            solara.ProgressLinear(True)
            solara.Text(f"Simulating day {m.day + 1} of {m.calendar.days}"
                        + (" (Pause stops after it)" if playing.value else "") + " ...",
                        classes=["fm-busy"], style={"font-size": "13px"})
        else:
            solara.Text(f"{m.day} of {m.calendar.days} days simulated"
                        + ("" if m.running else " (run complete)"), classes=["fm-idle"],
                        style={"font-size": "13px"})

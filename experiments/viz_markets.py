"""The market panels of the browser view: prices and volumes by market over the days simulated
so far, and who earns what (pure functions of the run's tables).

The local flexibility market's trades live in the `flex` table (one row per MTU, stage and
location); `experiments.statistics.with_flexibility` folds them into per-MTU columns beside the
series table's, so the LFM shows up wherever it traded: the price the DSO paid
(volume-weighted over locations) and the energy it bought, day-ahead and intraday, and the
BRPs' platform purchases."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure

from experiments.figstyle import time_axis

STAGES = {"da": "day-ahead", "id": "intraday"}


def lfm_caption(frame: pd.DataFrame) -> str:
    """One line on what the LFM traded so far (the browser test reads it)."""
    parts, total, pay = [], 0.0, 0.0
    for stage, name in STAGES.items():
        up, down = f"lfm_{stage}_up_mwh", f"lfm_{stage}_down_mwh"
        if up not in frame:
            continue
        vol = float(frame[up].sum() + frame[down].sum())
        if vol > 0:
            parts.append(f"{name} {vol:.3g} MWh")
            total += vol
            pay += float(np.nansum(frame[f"lfm_{stage}_price"] * (frame[up] + frame[down])))
    if total <= 0:
        return "LFM: the DSO bought no flexibility so far"
    return (f"LFM: the DSO bought {total:.3g} MWh ({', '.join(parts)}) at "
            f"{pay / total:.1f} EUR/MWh on average")




def price_columns(columns: Sequence[str]) -> dict[str, list[str]]:
    """Price columns of the series table by market; unknown `*price*` columns go to 'other'."""
    groups: dict[str, list[str]] = {"da": [], "id": [], "imbalance": [], "lfm": [], "other": []}
    for c in columns:
        if "price" not in c:
            continue
        if c.startswith("da_"):
            groups["da"].append(c)
        elif c.startswith("id_") or c.startswith("intraday"):
            groups["id"].append(c)
        elif c.startswith("imbalance"):
            groups["imbalance"].append(c)
        elif c.startswith("lfm"):
            groups["lfm"].append(c)
        else:
            groups["other"].append(c)
    return groups


def _pretty(col: str) -> str:
    names = {"da_price": "day-ahead", "da_price_forecast": "day-ahead forecast (D-1)",
             "imbalance_price_short": "imbalance (short)",
             "imbalance_price_long": "imbalance (long)", "id_price": "intraday",
             "da_volume_mwh": "day-ahead", "id_volume_mwh": "intraday",
             "platform_up_mwh": "platform up (BRPs)", "platform_down_mwh": "platform down (BRPs)"}
    if col in names:
        return names[col]
    m = re.fullmatch(r"lfm_(da|id)_(price|up_mwh|down_mwh)", col)
    if m:
        what = {"price": "paid by the DSO", "up_mwh": "up", "down_mwh": "down"}[m.group(2)]
        return f"LFM {STAGES[m.group(1)]} {what}"
    return col.replace("_eur_mwh", "").replace("_", " ")


def _time_axis(ax, ts) -> None:
    time_axis(ax, ts)


def _mark(ax, t) -> None:
    if t is not None:
        ax.axvline(t, color="#7a0177", lw=1.2, ls=":", zorder=0, label="MTU shown on the grid")


def price_figure(series: pd.DataFrame, marker=None) -> Figure:
    """DA, DA forecast, intraday, imbalance prices; locational LFM prices in a second row when
    the series table has `lfm_price*` columns."""
    g = price_columns(series.columns)
    lfm = [c for c in g["lfm"] if series[c].notna().any()]  # only where the LFM traded
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    if lfm:
        ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1.2])
    else:
        ax, ax2 = fig.subplots(1, 1), None
    ts = series["timestamp"]
    styles = {"da_price": {"color": "#1f77b4", "lw": 1.8},
              "da_price_forecast": {"color": "#7f7f7f", "lw": 1.0, "ls": "--"},
              "imbalance_price_short": {"color": "#d62728", "lw": 0.9, "alpha": 0.8},
              "imbalance_price_long": {"color": "#2ca02c", "lw": 0.9, "alpha": 0.8}}
    imb = g["imbalance"]
    single_imb = (set(imb) == {"imbalance_price_short", "imbalance_price_long"}
                  and np.allclose(series["imbalance_price_short"],
                                  series["imbalance_price_long"], equal_nan=True))
    extra = itertools.cycle(["#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#bcbd22"])
    for c in [*g["da"], *g["id"], *imb, *g["other"]]:
        if single_imb and c == "imbalance_price_long":
            continue
        label = "imbalance (single price)" if single_imb and c == "imbalance_price_short" \
            else _pretty(c)
        st = styles.get(c) or {"color": next(extra), "lw": 1.2}
        ax.step(ts, series[c], where="post", label=label, **st)
    ax.set_ylabel("EUR/MWh")
    notes = []
    if not g["id"]:
        notes.append("intraday: not in this run")
    if not lfm:
        notes.append("LFM: no purchase so far")
    ax.set_title("Prices by market" + (f"  ({'; '.join(notes)})" if notes else ""), fontsize=10)
    _mark(ax, marker)
    ax.legend(loc="upper left", fontsize=7.5, ncol=2, framealpha=0.85)
    if ax2 is not None:
        for c in lfm:
            ax2.step(ts, series[c], where="post", lw=1.1, label=_pretty(c))
        ax2.set_ylabel("EUR/MWh")
        ax2.set_title("Local flexibility market: price the DSO paid (volume-weighted over "
                      "locations)", fontsize=10)
        ax2.legend(loc="upper left", fontsize=7, ncol=3, framealpha=0.85)
        _mark(ax2, marker)
        _time_axis(ax2, ts)
    _time_axis(ax, ts)
    return fig


def volume_columns(columns: Sequence[str]) -> dict[str, list[str]]:
    """Traded volumes (DA/intraday) and activations (balancing, emergency, LFM) by column."""
    traded, activated = [], []
    for c in columns:
        if "price" in c:
            continue
        if re.match(r"^(da|id|intraday)_.*(volume|_mwh$)", c) and "curtail" not in c:
            traded.append(c)
        elif re.match(r"^(activated|emergency)_(up|down)_mw$", c) or (
                c.startswith(("lfm", "platform")) and re.search(r"(volume|_mw$|_mwh$)", c)):
            activated.append(c)
    return {"traded": traded, "activated": activated}


def volume_figure(series: pd.DataFrame, dt_h: float, marker=None) -> Figure:
    g = volume_columns(series.columns)
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    ts = series["timestamp"]
    colours = itertools.cycle(["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b"])
    for c in g["traded"]:
        q = series[c] * (dt_h if c.endswith("_mw") else 1.0)
        col = next(colours)
        ax.fill_between(ts, q, step="post", alpha=0.35, color=col)
        ax.step(ts, q, where="post", color=col, lw=1, label=_pretty(c))
    ax.set_ylabel("MWh per MTU")
    ax.set_title("Traded energy (day-ahead" + (", intraday" if any(
        c.startswith(("id_", "intraday")) for c in g["traded"]) else "") + ")", fontsize=10)
    if g["traded"]:
        ax.legend(loc="upper left", fontsize=7.5)
    colours2 = {"activated_up_mw": "#2ca02c", "activated_down_mw": "#d62728",
                "emergency_up_mw": "#17becf", "emergency_down_mw": "#e377c2"}
    extra = itertools.cycle(["#9467bd", "#8c564b", "#bcbd22", "#ff7f0e"])
    for c in g["activated"]:
        q = series[c] * (dt_h if c.endswith("_mw") else 1.0)
        if "down" in c and (q >= 0).all():
            q = -q
        if not np.any(q):
            continue
        label = {"activated_up_mw": "balancing up (TSO)",
                 "activated_down_mw": "balancing down (TSO)",
                 "emergency_up_mw": "emergency up", "emergency_down_mw": "emergency down"}.get(
            c, _pretty(c))
        ax2.fill_between(ts, q, step="post", alpha=0.55, color=colours2.get(c, next(extra)),
                         label=label)
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_ylabel("MWh per MTU")
    has_lfm = any(c.startswith("lfm") and series[c].abs().sum() > 0 for c in g["activated"])
    ax2.set_title("Activated energy: balancing" + (", LFM" if has_lfm else
                                                   " (LFM: no purchase so far)")
                  + "; up > 0, down < 0", fontsize=10)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(loc="upper left", fontsize=7.5, ncol=2)
    _mark(ax, marker)
    _mark(ax2, marker)
    _time_axis(ax2, ts)
    return fig


def profit_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """Heat map of `profit_table` with a net column; markets under 1 EUR in every class are
    left out of the picture (not of the net)."""
    fig = Figure(figsize=(9.6, 4.9), layout="constrained")
    ax = fig.subplots()
    if table.empty:
        ax.text(0.5, 0.5, "No payments yet: press Step.", ha="center", va="center", fontsize=13)
        ax.set_axis_off()
        return fig
    net = table.sum(axis=1)
    show = table.loc[:, table.abs().max(axis=0) >= 1.0].copy()
    show["net"] = net
    vals = show.to_numpy()
    lim = max(float(np.abs(vals).max()), 1.0)
    norm = SymLogNorm(linthresh=max(lim / 1000, 1.0), vmin=-lim, vmax=lim, base=10)
    ax.imshow(vals, cmap="RdBu", norm=norm, aspect="auto")
    ax.set_xticks(range(show.shape[1]), [c.replace("_", " ") for c in show.columns],
                  rotation=30, ha="right", fontsize=10)
    ax.set_yticks(range(show.shape[0]),
                  ["outside system" if r == "external" else r.replace("_", " ")
                   for r in show.index], fontsize=10.5)
    for i, j in np.ndindex(vals.shape):
        val = vals[i, j]
        if abs(val) < 0.5:
            continue
        strong = abs(norm(val) - 0.5) > 0.3
        ax.text(j, i, f"{val:,.0f}", ha="center", va="center", fontsize=9,
                color="white" if strong else "#222222",
                fontweight="bold" if j == vals.shape[1] - 1 else "normal")
    ax.axvline(show.shape[1] - 1.5, color="k", lw=1.5)
    ax.set_title(title or "Who earns what so far: net receipts by agent class and market, EUR "
                 "(blue receives, red pays)", fontsize=11.5)
    ax.tick_params(length=0)
    return fig

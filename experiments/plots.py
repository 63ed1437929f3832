"""Figures of one run: prices, grid loading by location, traffic-light timeline, welfare by
class. Time axes carry dates, legends sit outside the data, labels are words with units."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from experiments.figstyle import legend_below, legend_right, time_axis  # noqa: E402

LIGHT_COLOURS = ListedColormap(["#2e9e44", "#f2c200", "#d62728", "#222222"])
LIGHT_NAMES = ["GREEN: no congestion", "YELLOW: forecast violation", "RED: real violation",
               "BLACK: disconnected"]
CLASS_LABELS = {"brps": "suppliers (BRPs)", "dso": "DSO", "tso": "TSO",
                "market_operators": "market operators", "grid_violations": "grid violations"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _period(series) -> str:
    ts = series["timestamp"]
    return f"{ts.iloc[0]:%a %d %b %Y} to {ts.iloc[-1]:%a %d %b %Y}"


def plot_run(result, out_dir: Path) -> list[Path]:
    t = result.tables
    paths = [_prices(t["series"], out_dir), _loading(t["grid"], out_dir),
             _lights(t["grid"], out_dir), _welfare(result.summary, out_dir)]
    plt.close("all")
    return paths


def _prices(series, out_dir: Path) -> Path:
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 6.4), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1]})
    ts = series["timestamp"]
    ax.step(ts, series["da_price"], where="post", label="day-ahead", lw=1.2)
    ax.step(ts, series["da_price_forecast"], where="post", label="D-1 price forecast", lw=0.8,
            ls="--")
    ax.step(ts, series["imbalance_price_short"], where="post", label="imbalance (short)",
            lw=0.8, alpha=0.7)
    ax.set_ylabel("price (EUR/MWh)")
    ax.set_title(f"Prices by market, {_period(series)}")
    legend_right(ax)
    ax2.fill_between(ts, series["system_short_mw"], step="post", alpha=0.6)
    ax2.axhline(0, color="k", lw=0.5)
    ax2.set_ylabel("system imbalance (MW)\n+ short, - long")
    time_axis(ax2, ts)
    return _save(fig, out_dir / "prices.png")


def _loading(grid, out_dir: Path) -> Path:
    """One line per location; the transformer drawn last, thick and dark, so its peaks are
    never hidden; the legend beside the axes."""
    fig, ax = plt.subplots(figsize=(12, 4.4))
    wide = grid.pivot(index="timestamp", columns="location", values="max_loading")
    feeders = [c for c in wide.columns if c != "trafo"]
    for loc in feeders:
        ax.plot(wide.index, wide[loc] * 100, lw=0.8, alpha=0.85, label=f"feeder {loc}")
    if "trafo" in wide.columns:
        ax.plot(wide.index, wide["trafo"] * 100, lw=1.8, color="#222222", zorder=5,
                label="MV/LV transformer")
    ax.axhline(100, color="r", ls="--", lw=0.8, label="rating (100 %)")
    ax.set_ylabel("max branch loading (% of rating)")
    ax.set_title("Grid loading by location (realised flows, LinDistFlow)")
    time_axis(ax, wide.index.to_series())
    legend_right(ax, ncol=1 if len(wide.columns) <= 14 else 2)
    return _save(fig, out_dir / "grid_loading.png")


def _lights(grid, out_dir: Path) -> Path:
    """The traffic light of every location over time, on a date axis."""
    wide = grid.pivot(index="location", columns="timestamp", values="light")
    ts = wide.columns
    step = (ts[1] - ts[0]) if len(ts) > 1 else np.timedelta64(15, "m")
    edges = mdates.date2num(list(ts) + [ts[-1] + step])
    fig, ax = plt.subplots(figsize=(12, 1.3 + 0.32 * len(wide)))
    ax.pcolormesh(edges, np.arange(len(wide) + 1), wide.to_numpy(), cmap=LIGHT_COLOURS,
                  vmin=-0.5, vmax=3.5, shading="flat")
    ax.set_yticks(np.arange(len(wide)) + 0.5,
                  ["transformer" if n == "trafo" else f"feeder {n}" for n in wide.index])
    ax.invert_yaxis()
    ax.xaxis_date()
    time_axis(ax)
    ax.grid(False)
    ax.set_title("DSO traffic light per location and MTU")
    ax.legend(handles=[Patch(color=LIGHT_COLOURS(i), label=n) for i, n in enumerate(LIGHT_NAMES)],
              loc="upper center", bbox_to_anchor=(0.5, -0.22 - 0.6 / max(len(wide), 1)),
              ncol=4, frameon=False, fontsize=8)
    return _save(fig, out_dir / "traffic_light.png")


def _welfare(summary, out_dir: Path) -> Path:
    w = {k: v for k, v in summary["welfare_eur"].items()
         if k not in ("total", "external", "consumers")}
    fig, ax = plt.subplots(figsize=(8.5, 4))
    names = list(w)
    vals = [w[k] for k in names]
    ax.barh([CLASS_LABELS.get(k, k.replace("_", " ")) for k in names], vals,
            color=["#1f77b4" if v >= 0 else "#d62728" for v in vals])
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("surplus over the run (EUR; + gains, - losses)")
    total = summary["welfare_eur"]["total"]
    eff = summary.get("cost_efficiency")
    extra = f"; cost efficiency {eff:.4f}" if eff else ""
    ax.set_title(f"Welfare by class (consumers' {summary['welfare_eur']['consumers']:,.0f} EUR "
                 f"not shown; total {total:,.0f} EUR{extra})", fontsize=9)
    legend_below(ax)
    return _save(fig, out_dir / "welfare.png")

"""Figures of one run: prices, grid loading by feeder, traffic-light timeline, welfare split."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

LIGHT_COLOURS = ListedColormap(["#2e9e44", "#f2c200", "#d62728", "#222222"])


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_run(result, out_dir: Path) -> list[Path]:
    t = result.tables
    paths = [_prices(t["series"], out_dir), _loading(t["grid"], out_dir),
             _lights(t["grid"], out_dir), _welfare(result.summary, out_dir)]
    plt.close("all")
    return paths


def _prices(series, out_dir: Path) -> Path:
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1]})
    ts = series["timestamp"]
    ax.step(ts, series["da_price"], where="post", label="day-ahead", lw=1.2)
    ax.step(ts, series["da_price_forecast"], where="post", label="D-1 price forecast", lw=0.8,
            ls="--")
    ax.step(ts, series["imbalance_price_short"], where="post", label="imbalance (short)",
            lw=0.8, alpha=0.7)
    ax.set_ylabel("EUR/MWh")
    ax.legend(loc="upper right", ncol=3, fontsize=8)
    ax.set_title("Prices")
    ax2.fill_between(ts, series["system_short_mw"], step="post", alpha=0.6)
    ax2.axhline(0, color="k", lw=0.5)
    ax2.set_ylabel("system short (MW)")
    return _save(fig, out_dir / "prices.png")


def _loading(grid, out_dir: Path) -> Path:
    fig, ax = plt.subplots(figsize=(11, 4))
    wide = grid.pivot(index="timestamp", columns="location", values="max_loading")
    for loc in wide.columns:
        ax.plot(wide.index, wide[loc] * 100, lw=0.9, label=loc)
    ax.axhline(100, color="r", ls="--", lw=0.8)
    ax.set_ylabel("max branch loading (%)")
    ax.set_title("Grid loading by location (realised, LinDistFlow)")
    ax.legend(ncol=min(6, len(wide.columns)), fontsize=8, loc="upper right")
    return _save(fig, out_dir / "grid_loading.png")


def _lights(grid, out_dir: Path) -> Path:
    wide = grid.pivot(index="location", columns="timestamp", values="light")
    fig, ax = plt.subplots(figsize=(11, 0.5 + 0.35 * len(wide)))
    ts = wide.columns
    ax.imshow(wide.to_numpy(), aspect="auto", cmap=LIGHT_COLOURS, vmin=-0.5, vmax=3.5,
              interpolation="nearest",
              extent=(0, len(ts), len(wide) - 0.5, -0.5))
    ax.set_yticks(range(len(wide)), wide.index)
    ticks = np.linspace(0, len(ts) - 1, min(8, len(ts))).astype(int)
    ax.set_xticks(ticks, [ts[i].strftime("%a %H:%M") for i in ticks], fontsize=8)
    ax.set_title("Traffic light per location (green; yellow: forecast violation; red: real "
                 "violation; black: disconnected)")
    return _save(fig, out_dir / "traffic_light.png")


def _welfare(summary, out_dir: Path) -> Path:
    w = {k: v for k, v in summary["welfare_eur"].items()
         if k not in ("total", "external", "consumers")}
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(w)
    vals = [w[k] for k in names]
    ax.barh(names, vals, color=["#1f77b4" if v >= 0 else "#d62728" for v in vals])
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("EUR over the run")
    total = summary["welfare_eur"]["total"]
    eff = summary.get("cost_efficiency")
    title = f"Welfare by class (consumers' {summary['welfare_eur']['consumers']:,.0f} EUR not "\
        f"shown; total {total:,.0f} EUR"
    ax.set_title(title + (f"; cost efficiency {eff:.4f})" if eff else ")"), fontsize=9)
    return _save(fig, out_dir / "welfare.png")

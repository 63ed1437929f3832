"""The grid picture of the browser view: the feeder by traffic light per location, and by branch
loading and bus voltage, at one MTU of the last simulated day (pure functions of arrays)."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm, ListedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from agents.dso import Light
from experiments.viz_model import ViewModel, last_day, mtu_label

LIGHT_COLOURS = {Light.GREEN: "#2e9e44", Light.YELLOW: "#f2c200", Light.RED: "#d62728",
                 Light.BLACK: "#222222"}
LIGHT_MEANING = {
    Light.GREEN: "GREEN: no congestion forecast",
    Light.YELLOW: "YELLOW: congestion forecast (D-1)",
    Light.RED: "RED: congestion in real time",
    Light.BLACK: "BLACK: grid emergency",
}
NEUTRAL = "#9aa5b1"


def png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def grid_layout_xy(grid) -> tuple[np.ndarray, str]:
    """Bus positions in metres from the grid's coordinates, or a tree layout (depth down,
    leaves side by side) when they are missing or degenerate. Returns (xy, unit)."""
    xy = np.asarray(getattr(grid, "xy", np.empty((0, 2))), float)
    n = grid.n_bus
    if xy.shape == (n, 2) and np.isfinite(xy).all() and np.ptp(xy, axis=0).min() > 0:
        if np.abs(xy).max() <= 180:  # lon/lat degrees
            lat0 = np.deg2rad(xy[:, 1].mean())
            xy = np.column_stack([(xy[:, 0] - xy[:, 0].min()) * 111_320 * np.cos(lat0),
                                  (xy[:, 1] - xy[:, 1].min()) * 110_574])
        xy = xy.copy()
        # The MV side of the transformer (the slack bus) is drawn just above the LV busbar.
        trafo = np.flatnonzero(np.asarray(grid.branch_kind) == "trafo")
        if len(trafo) and grid.branch_from[trafo[0]] == 0:
            lv = grid.branch_to[trafo[0]]
            xy[0] = xy[lv] + [0, 0.06 * max(np.ptp(xy[:, 1]), 1.0)]
        return xy, "m"
    parent = np.asarray(grid.parent_bus)
    children = [[] for _ in range(n)]
    for b in range(1, n):
        children[parent[b]].append(b)
    x = np.zeros(n)
    leaf = itertools.count()

    def place(b: int) -> float:
        if not children[b]:
            x[b] = next(leaf)
        else:
            x[b] = np.mean([place(c) for c in children[b]])
        return x[b]

    place(0)
    return np.column_stack([x, -np.asarray(grid.depth, float)]), "tree"


@dataclass
class GridState:
    """What the grid picture shows at one MTU."""

    label: str
    light: np.ndarray | None  # (L,) per location, None before the first day
    loading: np.ndarray | None  # (n_branch,) share of rating
    v_pu: np.ndarray | None  # (n_bus,)
    per_branch: bool = True  # False: location maxima/minima stand in for branch/bus values


def grid_state(model: ViewModel, mtu: int | None) -> GridState:
    grid = model.grid
    day = last_day(model)
    if day is None or mtu is None:
        return GridState("", None, None, None)
    label = mtu_label(model, day, mtu)
    rec = model.records["grid"][-1]
    rows = rec[rec["mtu"] == rec["mtu"].min() + mtu].set_index("location")
    rows = rows.reindex(list(grid.locations))
    light = rows["light"].to_numpy().astype(int)
    flows = model.day_flows
    if flows is not None and flows[0] == day:
        return GridState(label, light, flows[1][mtu], flows[2][mtu])
    loc_loading = rows["max_loading"].to_numpy()
    loc_v = rows["v_min_pu"].to_numpy()
    return GridState(label, light, loc_loading[np.asarray(grid.branch_location)],
                     loc_v[np.asarray(grid.bus_location)], per_branch=False)


def grid_figure(grid, state: GridState, v_band: tuple[float, float] = (0.94, 1.06),
                loading_limit: float = 1.0, title: str = "") -> Figure:
    """Two maps of the feeder: traffic light per location; branch loading and bus voltage."""
    xy, unit = grid_layout_xy(grid)
    fig = Figure(figsize=(12.5, 6.8), layout="constrained")
    ax_l, ax_r = fig.subplots(1, 2)
    segs = np.stack([xy[grid.branch_from], xy[grid.branch_to]], axis=1)
    is_trafo = np.asarray(grid.branch_kind) == "trafo"
    trafo = int(np.flatnonzero(is_trafo)[0]) if is_trafo.any() else None
    bus_loc = np.asarray(grid.bus_location)
    br_loc = np.asarray(grid.branch_location)
    pct = None if state.loading is None else np.asarray(state.loading) * 100

    # left: traffic light by location
    if state.light is not None:
        br_col = [LIGHT_COLOURS[Light(state.light[k])] for k in br_loc]
        bus_col = [LIGHT_COLOURS[Light(state.light[k])] for k in bus_loc]
    else:
        br_col, bus_col = [NEUTRAL] * len(segs), [NEUTRAL] * len(xy)
    ax_l.add_collection(LineCollection(segs, colors=br_col, linewidths=2.8, capstyle="round",
                                       zorder=1))
    ax_l.scatter(xy[:, 0], xy[:, 1], s=14, c=bus_col, edgecolors="white", linewidths=0.4,
                 zorder=2)
    for k, name in enumerate(grid.locations):
        buses = np.flatnonzero(bus_loc == k)
        if name == "trafo" or not len(buses):
            continue
        end = buses[np.argmin(xy[buses, 1])]
        text = name
        branches = np.flatnonzero(br_loc == k)
        if pct is not None and len(branches):
            text += f"\n{pct[branches].max():.0f} %"
        ax_l.annotate(text, xy[end], xytext=(0, -8), textcoords="offset points", ha="center",
                      va="top", fontsize=9.5, fontweight="bold", color="#333333")
    handles = [Patch(color=LIGHT_COLOURS[k], label=v) for k, v in LIGHT_MEANING.items()]
    ax_l.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2,
                fontsize=9, frameon=False, title="DSO traffic light per location",
                title_fontsize=9.5)
    ax_l.set_title("Traffic light (feeder labels: max branch loading)", fontsize=11)

    # right: loading and voltage
    if pct is not None:
        cmap = ListedColormap(["#c6dbef", "#6baed6", "#2171b5", "#08306b", "#e7298a"])
        bounds = np.array([0, 0.25, 0.5, 0.75, 1.0]) * loading_limit * 100
        norm = BoundaryNorm(bounds, cmap.N, extend="max")
        widths = np.where(pct > loading_limit * 100, 4.5, 2.4)
        lc = LineCollection(segs, array=pct, cmap=cmap, norm=norm, linewidths=widths,
                            capstyle="round", zorder=1)
        ax_r.add_collection(lc)
        cb = fig.colorbar(lc, ax=ax_r, shrink=0.85, pad=0.01, aspect=28)
        cb.set_label(("branch loading" if state.per_branch else "location's max loading")
                     + f" (% of rating; above {loading_limit * 100:.0f} % overloaded)",
                     fontsize=9)
        lo, hi = v_band
        span = max(1.0 - lo, hi - 1.0) + 0.01
        vnorm = TwoSlopeNorm(vcenter=1.0, vmin=1.0 - span, vmax=1.0 + span)
        sc = ax_r.scatter(xy[:, 0], xy[:, 1], s=28, c=np.asarray(state.v_pu), cmap="PuOr",
                          norm=vnorm, edgecolors="#333333", linewidths=0.4, zorder=2)
        cv = fig.colorbar(sc, ax=ax_r, shrink=0.85, pad=0.01, aspect=28)
        cv.set_label(("bus voltage" if state.per_branch else "location's min voltage")
                     + " (p.u.; DSO limits dashed)", fontsize=9)
        for v in v_band:
            cv.ax.axhline(v, color="k", ls="--", lw=1.2)
        worst = int(np.argmax(pct))
        where = "transformer" if worst == trafo else f"feeder {grid.locations[br_loc[worst]]}"
        ax_r.legend(handles=[
            Line2D([], [], color="#e7298a", lw=4.5, label="overloaded branch"),
            Line2D([], [], ls="none", marker="o", mfc="white", mec="#333333", ms=11,
                   label="MV/LV transformer")],
            loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, fontsize=9,
            frameon=False, title=f"max loading {pct.max():.0f} % ({where}); voltage "
            f"{np.min(state.v_pu):.3f}–{np.max(state.v_pu):.3f} p.u.", title_fontsize=9.5)
    else:
        ax_r.add_collection(LineCollection(segs, colors=NEUTRAL, linewidths=2))
        ax_r.scatter(xy[:, 0], xy[:, 1], s=14, c=NEUTRAL)
        ax_r.text(0.5, 0.5, "No delivery day simulated yet.\nPress Step.",
                  transform=ax_r.transAxes, ha="center", va="center", fontsize=13,
                  bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "#cccccc"})
    ax_r.set_title("Branch loading and bus voltage (realised flows, LinDistFlow)"
                   if state.per_branch else "Loading and voltage per location (realised)",
                   fontsize=11)
    pad = 0.07 * max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-9)
    xlim = (xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ylim = (xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    for ax in (ax_l, ax_r):
        if trafo is not None:
            mid = segs[trafo].mean(axis=0)
            if ax is ax_l and state.light is not None:
                face = LIGHT_COLOURS[Light(state.light[br_loc[trafo]])]
            elif ax is ax_r and pct is not None:
                face = lc.cmap(lc.norm(pct[trafo]))
            else:
                face = "white"
            ax.scatter([mid[0]], [mid[1]], s=190, marker="o", facecolors=[face],
                       edgecolors="#333333", linewidths=1.6, zorder=3)
            label = f"MV/LV transformer {grid.s_max_mva[trafo] * 1000:.0f} kVA"
            if pct is not None:
                label += f", {pct[trafo]:.0f} %"
            ax.annotate(label, mid, xytext=(12, 0), textcoords="offset points", va="center",
                        fontsize=9)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xticks([])
        ax.set_yticks([])
        for sp in ax.spines.values():
            sp.set_visible(False)
        if unit == "m":
            ax.plot([xlim[1] - pad - 100, xlim[1] - pad], [ylim[0] + pad / 3] * 2, color="k",
                    lw=2)
            ax.text(xlim[1] - pad - 50, ylim[0] + pad / 3 + 8, "100 m", ha="center",
                    va="bottom", fontsize=8.5)
    default = f"Distribution grid {grid.code} at {state.label}" if state.label else \
        f"Distribution grid {grid.code}: no delivery day simulated yet (press Step)"
    fig.suptitle(title or default, fontsize=13, fontweight="bold")
    return fig

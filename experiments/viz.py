"""Browser view of a run (Mesa SolaraViz): the grid, the markets and who earns what.

`solara run app.py` or `flexmarkets view` serves `Page`. One Mesa step is one delivery day, so
the pictures of the grid show one MTU of the *last simulated day*: a slider picks it, and it
defaults to the MTU with the day's highest branch loading (its peak). The panels:

- grid: lines and nodes by DSO traffic light per location (left), by branch loading and bus
  voltage (right), realised LinDistFlow flows at that MTU;
- prices: every price column of the series table (DA, DA forecast, imbalance, and any `id_*price*`
  or locational `lfm_price_*` column as soon as the model writes one);
- volumes: traded (DA, intraday) and activated (balancing, LFM) energy per MTU;
- who earns what: net receipts by agent class and market from the ledger, so far; gaming or
  arbitrage profit when a ledger market or table column names it.

The sidebar's "Scenario and market design" card sets what Mesa's Reset builds: scenario file,
seed and the market-design controls of `CONTROLS`, each a dotted scenario path; a path the
schema rejects is shown disabled with the reason. Every browser tab gets its own model.
"""

from __future__ import annotations

import copy
import io
import itertools
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import reacton.ipywidgets as rw
import solara
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm, ListedColormap, SymLogNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from mesa.visualization import SolaraViz
from mesa.visualization import solara_viz as _mesa_viz
from mesa.visualization.utils import update_counter

from agents.dso import Light
from agents.strategies import known
from environment.model import FlexMarketModel
from environment.scenario import Scenario, ScenarioError, with_overrides
from experiments.metrics import CLASSES
from experiments.run import resolve, scenario_path

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


# A control whose path the scenario schema does not (yet) have is shown disabled, with the
# schema's reason; it switches itself on once the schema accepts the path and its choices.
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
    """The distribution-grid scenarios shipped in experiments/scenarios/ (file names without
    .yaml); transmission cases (`kind: transmission`) have no feeder to show."""
    from environment.transmission import is_transmission

    folder = resources.files("experiments") / "scenarios"
    names = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                   if p.name.endswith(".yaml") and not is_transmission(Path(str(p))))
    return names or [DEFAULT_SCENARIO]


def build_scenario(settings: ViewSettings) -> Scenario:
    return resolve(scenario_path(settings.scenario), seed=settings.seed,
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
                reason = reason or _short_reason(str(exc))
        current = _value_at(data, c.path)
        if not valid:
            out.append(ControlState(c.label, c.path, options, None,
                                    reason or "no choices available"))
            continue
        out.append(ControlState(c.label, c.path, valid,
                                current if current in valid else valid[0], None))
    return out


def _short_reason(message: str) -> str:
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


# --- MTU of the last simulated day ---------------------------------------------------------------

# (view_id, day, mtu) picked with the slider; solara keeps a reactive variable per browser tab.
mtu_pick: solara.Reactive[tuple[int, int, int] | None] = solara.reactive(None)


def last_day(model: FlexMarketModel) -> int | None:
    return model.day - 1 if model.day > 0 and model.records.get("series") else None


def peak_mtu(model: ViewModel) -> int:
    """MTU (within the last simulated day) of the day's highest branch loading."""
    series = model.records["series"][-1]
    col = "max_loading" if "max_loading" in series else None
    if col is None:
        return 0
    return int(np.nanargmax(series[col].to_numpy()))


def current_mtu(model: ViewModel) -> int | None:
    day = last_day(model)
    if day is None:
        return None
    pick = mtu_pick.value
    if pick is not None and pick[0] == model.view_id and pick[1] == day:
        return pick[2]
    return peak_mtu(model)


def mtu_label(model: FlexMarketModel, day: int, mtu: int) -> str:
    cal = model.calendar
    t0 = pd.Timestamp(cal.start) + pd.Timedelta(days=day, minutes=mtu * cal.mtu_minutes)
    t1 = t0 + pd.Timedelta(minutes=cal.mtu_minutes)
    return f"{t0:%a %d %b %Y} {t0:%H:%M}–{t1:%H:%M}"


# --- figures (pure functions of tables and arrays) -----------------------------------------------

LIGHT_COLOURS = {Light.GREEN: "#2e9e44", Light.YELLOW: "#f2c200", Light.RED: "#d62728",
                 Light.BLACK: "#222222"}
LIGHT_MEANING = {
    Light.GREEN: "GREEN: no congestion forecast",
    Light.YELLOW: "YELLOW: congestion forecast (D-1)",
    Light.RED: "RED: congestion in real time",
    Light.BLACK: "BLACK: grid emergency",
}
NEUTRAL = "#9aa5b1"
MARKET_ORDER = ["dayahead", "intraday", "lfm", "lfm_reservation", "platform", "balancing",
                "balancing_emergency", "imbalance", "red_compensation", "retail", "feed_in",
                "network_tariff", "aggregator_energy", "flexibility_fee", "fuel", "battery_wear"]
GAMING = re.compile(r"gaming|arbitrage|inc_?dec", re.IGNORECASE)


def _png(fig: Figure, dpi: int = 100) -> bytes:
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
        return GridState("before the first delivery day: press Step", None, None, None)
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
                     + " (% of rating; > 100 % overloaded)", fontsize=9)
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
    fig.suptitle(title or f"Distribution grid {grid.code} at {state.label}", fontsize=13,
                 fontweight="bold")
    return fig


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
             "da_volume_mwh": "day-ahead", "id_volume_mwh": "intraday"}
    if col in names:
        return names[col]
    return col.replace("_eur_mwh", "").replace("_", " ")


def _time_axis(ax, ts) -> None:
    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(alpha=0.3)
    if len(ts):
        ax.set_xlim(ts.iloc[0], ts.iloc[-1] + (ts.iloc[-1] - ts.iloc[0]) / max(len(ts), 1))


def _mark(ax, t) -> None:
    if t is not None:
        ax.axvline(t, color="#7a0177", lw=1.2, ls=":", zorder=0, label="MTU shown on the grid")


def price_figure(series: pd.DataFrame, marker=None) -> Figure:
    """DA, DA forecast, intraday, imbalance prices; locational LFM prices in a second row when
    the series table has `lfm_price*` columns."""
    g = price_columns(series.columns)
    lfm = g["lfm"]
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
        notes.append("LFM: no locational prices in this run")
    ax.set_title("Prices by market" + (f"  ({'; '.join(notes)})" if notes else ""), fontsize=10)
    _mark(ax, marker)
    ax.legend(loc="upper left", fontsize=7.5, ncol=2, framealpha=0.85)
    if ax2 is not None:
        for c in lfm:
            ax2.step(ts, series[c], where="post", lw=1.1, label=_pretty(c))
        ax2.set_ylabel("EUR/MWh")
        ax2.set_title("Local flexibility market: locational prices", fontsize=10)
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
                c.startswith("lfm") and re.search(r"(volume|_mw$|_mwh$)", c)):
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
    has_lfm = any(c.startswith("lfm") for c in g["activated"])
    ax2.set_title("Activated energy: balancing" + (", LFM" if has_lfm else
                                                   " (no LFM in this run)")
                  + "; up > 0, down < 0", fontsize=10)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(loc="upper left", fontsize=7.5, ncol=2)
    _mark(ax, marker)
    _mark(ax2, marker)
    _time_axis(ax2, ts)
    return fig


def profit_table(ledger: pd.DataFrame, classes: pd.Series) -> pd.DataFrame:
    """Net receipts (EUR, received minus paid) by agent class (rows) and market (columns)."""
    if ledger.empty:
        return pd.DataFrame()
    market = ledger["market"].astype(str).to_numpy()
    eur = ledger["eur"].to_numpy(float)
    long = pd.DataFrame({
        "class": np.concatenate([ledger["payee"].astype(str).map(classes).to_numpy(object),
                                 ledger["payer"].astype(str).map(classes).to_numpy(object)]),
        "market": np.concatenate([market, market]),
        "eur": np.concatenate([eur, -eur])})
    table = long.pivot_table(index="class", columns="market", values="eur", aggfunc="sum",
                             fill_value=0.0)
    table.index.name, table.columns.name = "class", "market"
    rows = [c for c in [*CLASSES, "external"] if c in table.index]
    rows += [c for c in table.index if c not in rows]
    cols = [m for m in MARKET_ORDER if m in table.columns]
    cols += sorted(m for m in table.columns if m not in cols)
    table = table.loc[rows, cols]
    return table.loc[table.abs().sum(axis=1) > 1e-9, table.abs().sum(axis=0) > 1e-9]


def gaming_profit(tables: dict[str, pd.DataFrame], profits: pd.DataFrame) -> dict[str, float]:
    """Gaming / arbitrage profit by who earned it, where the model records it: a ledger market
    or a table column whose name says gaming, arbitrage or inc-dec."""
    out: dict[str, float] = {}
    for m in [c for c in profits.columns if GAMING.search(str(c))]:
        for cls, v in profits[m].items():
            if abs(v) > 1e-9:
                out[f"{cls} ({m})"] = out.get(f"{cls} ({m})", 0.0) + float(v)
    for name, df in tables.items():
        if name == "ledger" or df is None:
            continue
        for c in df.columns:
            if GAMING.search(str(c)) and pd.api.types.is_numeric_dtype(df[c]):
                key = next((k for k in ("aggregator", "party", "class") if k in df.columns),
                           None)
                if key:
                    for who, v in df.groupby(key)[c].sum().items():
                        out[f"{who} ({c})"] = float(v)
                else:
                    out[f"{name}.{c}"] = float(df[c].sum())
    return out


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


# --- components ----------------------------------------------------------------------------------


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
    png = solara.use_memo(lambda: _png(grid_figure(model.grid, state, v_band, limit)),
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
        Png(png, "fm-grid-figure")


@solara.component
def PricePanel(model: ViewModel):
    update_counter.get()
    mtu = current_mtu(model)
    series = model.view_tables().get("series")
    marker = _marker_time(model, mtu)
    png = solara.use_memo(lambda: None if series is None else _png(price_figure(series, marker)),
                          [model.view_id, model.day, mtu])
    with solara.Column(classes=["fm-prices"]):
        if png is None:
            solara.Info("Prices by market (EUR/MWh): no delivery day simulated yet — press "
                        "Step.")
        else:
            Png(png, "fm-prices-figure")


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
    series = model.view_tables().get("series")
    marker = _marker_time(model, mtu)
    png = solara.use_memo(
        lambda: None if series is None else _png(volume_figure(series, model.calendar.mtu_hours,
                                                               marker)),
        [model.view_id, model.day, mtu])
    with solara.Column(classes=["fm-volumes"]):
        if png is None:
            solara.Info("Volumes by market (MWh per MTU): no delivery day simulated yet.")
        else:
            Png(png, "fm-volumes-figure")


@solara.component
def ProfitPanel(model: ViewModel):
    update_counter.get()
    tables = model.view_tables()
    table = solara.use_memo(
        lambda: profit_table(tables["ledger"], model.ledger.account_classes()),
        [model.view_id, model.day])
    png = solara.use_memo(lambda: _png(profit_figure(table)), [model.view_id, model.day])
    with solara.Column(classes=["fm-profits"]):
        Png(png, "fm-profits-figure")


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
        se, gr = tables["series"], tables["grid"]
        lights = gr["light"].value_counts()
        imbalance_mwh = se["system_short_mw"].abs().sum() * model.calendar.mtu_hours
        lines += [
            f"day-ahead price: mean {se['da_price'].mean():.1f}, "
            f"min {se['da_price'].min():.1f}, max {se['da_price'].max():.1f} EUR/MWh",
            f"system imbalance: {imbalance_mwh:.2f} MWh (absolute)",
            f"traffic light, MTU × location: {lights.get(0, 0)} green, {lights.get(1, 0)} "
            f"yellow, {lights.get(2, 0)} red, {lights.get(3, 0)} black",
            f"max branch loading {gr['max_loading'].max() * 100:.0f} %, voltage "
            f"{gr['v_min_pu'].min():.3f}–{gr['v_max_pu'].max():.3f} p.u.",
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


def default_settings() -> ViewSettings:
    scenario = build_scenario(ViewSettings())
    return ViewSettings(DEFAULT_SCENARIO, scenario.seed)


# Mesa 3.5 places every SolaraViz component in a 6-of-12-column cell of the same height. This
# dashboard asks for its own initial layout (the grid map full width, panels sized to their
# figures); SolaraViz pages with a different number of components keep Mesa's layout.
ROW = 40  # px per grid row (row height 30 + margin 10)
LAYOUT = [
    {"i": 0, "x": 0, "y": 0, "w": 12, "h": 20},   # grid
    {"i": 1, "x": 0, "y": 20, "w": 6, "h": 11},   # prices
    {"i": 2, "x": 6, "y": 20, "w": 6, "h": 11},   # volumes
    {"i": 3, "x": 0, "y": 31, "w": 8, "h": 12},   # who earns what
    {"i": 4, "x": 8, "y": 31, "w": 4, "h": 12},   # summary
]
COMPONENTS = [GridPanel, PricePanel, VolumePanel, ProfitPanel, SummaryPanel]


def _dashboard_layout() -> None:
    original = _mesa_viz.make_initial_grid_layout
    if getattr(original, "flexmarkets", False):
        return

    def make_initial_grid_layout(num_components: int) -> list[dict]:
        if num_components == len(LAYOUT):
            return [{**item, "moved": False} for item in copy.deepcopy(LAYOUT)]
        return original(num_components)

    make_initial_grid_layout.flexmarkets = True
    _mesa_viz.make_initial_grid_layout = make_initial_grid_layout


_dashboard_layout()


@solara.component
def Page():
    """One browser tab: its own model (a new tab starts at day 0) and its own settings."""
    ref = solara.use_memo(lambda: SettingsRef(default_settings()), [])
    initial = solara.use_memo(lambda: ViewModel(ref), [])
    model = solara.use_reactive(initial)
    solara.Title("flexmarkets — grid and markets")
    SolaraViz(model, components=list(COMPONENTS), model_params={"settings": ref},
              name="flexmarkets: distribution grid, markets and who earns what",
              play_interval=300)
    with solara.Sidebar():
        ScenarioControls(model, ref)

"""The figures of a study report: metrics against each axis, paired comparisons of the levels
of an axis, sensitivity indices and scatter plots. A mixin of `experiments.report.Report`,
whose data (`df`, `metrics`, axes) it draws; labels come from the data dictionary, legends
sit beside or below the panels, never over the error bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from experiments.report_stats import (
    ci95,
    level_label,
    metric_is_count,
    metric_label,
    param_label,
    slug,
)
from experiments.study_schema import column_name


class FigureSections:
    def _vs_figure(self, a: dict) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        df = self._hashable(self.df[self.df["status"] == "ok"])
        metrics = [m for m in self.metrics if df[self.mcol(m)].notna().any()]
        if not metrics:
            return
        others = [o for o in self.fixed_axes if o is not a]
        hue = min(others, key=lambda o: len(o["values"])) if others else None
        if hue is not None and len(hue["values"]) > 8:
            hue = None
        rest = [o for o in others if o is not hue]
        facet = rest[0] if rest and len(rest[0]["values"]) <= 4 else None
        facets = self._levels(facet) if facet else [None]
        pooled = [o["name"] for o in rest if o is not facet]
        panels = [(m, fv) for m in metrics for fv in facets]
        ncols = len(facets) if facet else min(3, len(metrics))
        nrows = math.ceil(len(panels) / ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=(4.4 * ncols + 0.6, 3.1 * nrows + 0.5),
                                squeeze=False)
        xs = self._levels(a)
        hues = self._levels(hue) if hue else [None]
        for n, (m, fv) in enumerate(panels):
            ax = axs[n // ncols][n % ncols]
            sub = df if facet is None else df[df[facet["column"]] == fv]
            step = 0.6 / max(1, len(hues))
            for k, hv in enumerate(hues):
                s = sub if hue is None else sub[sub[hue["column"]] == hv]
                st = [ci95(s[s[a["column"]] == x][self.mcol(m)].tolist(), metric_is_count(m))
                      for x in xs]
                mean = np.array([t[0] for t in st])
                lo = np.array([t[2] for t in st])
                hi = np.array([t[3] for t in st])
                label = None if hue is None else \
                    f"{param_label(hue['name'])} = {level_label(hv)}"
                if a["numeric"]:
                    x = np.array(xs, float)
                    ax.plot(x, mean, marker="o", ms=4, label=label)
                    ax.fill_between(x, lo, hi, alpha=0.2)
                else:
                    pos = np.arange(len(xs)) + (k - (len(hues) - 1) / 2) * step
                    err = np.vstack([mean - lo, hi - mean])
                    err = np.where(np.isfinite(err), err, 0)
                    ax.errorbar(pos, mean, yerr=err, fmt="o", ms=5, capsize=3, label=label)
                    ax.set_xticks(np.arange(len(xs)), [level_label(x) for x in xs],
                                  rotation=20 if len(xs) > 3 else 0, fontsize=8)
            ax.set_xlabel(param_label(a["name"]), fontsize=8)
            ax.set_ylabel(metric_label(m), fontsize=8)
            ax.tick_params(labelsize=8)
            if facet is not None:
                ax.set_title(f"{param_label(facet['name'])} = {level_label(fv)}", fontsize=8)
            ax.grid(alpha=0.3)
        for n in range(len(panels), nrows * ncols):
            axs[n // ncols][n % ncols].set_visible(False)
        title = (f"{self.name}: metrics against {param_label(a['name'])} (mean, 95% interval "
                 f"over seeds; {self.run_length})")
        if pooled:
            title += f"\npooled over {', '.join(param_label(p) for p in pooled)}"
        fig.suptitle(title, fontsize=10)
        handles, labels = axs[0][0].get_legend_handles_labels()
        if handles:          # one legend for all panels, below them
            fig.legend(handles, labels, loc="lower center", ncol=min(len(handles), 4),
                       fontsize=8, frameon=False)
            fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(handles) > 4), 1, 1))
        else:
            fig.tight_layout()
        self.save_fig(fig, f"vs_{slug(a['name'])}", f"metrics against {a['name']}")

    def _compare_figure(self, a: dict, table: pd.DataFrame, ref: str) -> None:
        """Paired differences against the reference level, one panel per metric.

        Seeds share their weather and draws across design points, so the paired difference
        is far tighter than the spread over seeds in the metric-against-axis figure: this is
        the figure that says whether one design beats another."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        dcol = f"diff_vs_{ref}"
        if dcol not in table:
            return
        t = table[table[a["name"]] != ref]
        metrics = [m for m in self.metrics if t[t["metric"] == m][dcol].notna().any()]
        if not metrics:
            return
        ncols = min(3, len(metrics))
        nrows = math.ceil(len(metrics) / ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=(4.4 * ncols + 0.6, 2.6 * nrows + 0.6),
                                squeeze=False)
        for n, m in enumerate(metrics):
            ax = axs[n // ncols][n % ncols]
            s = t[t["metric"] == m]
            y = np.arange(len(s))[::-1]
            d = s[dcol].to_numpy(float)
            err = np.vstack([d - s["diff_lo95"].to_numpy(float),
                             s["diff_hi95"].to_numpy(float) - d])
            err = np.where(np.isfinite(err), err, 0)
            ax.errorbar(d, y, xerr=err, fmt="o", ms=5, capsize=3)
            ax.axvline(0, color="0.4", lw=0.8)
            ax.locator_params(axis="x", nbins=5)
            ax.set_yticks(y, [str(v) for v in s[a["name"]]], fontsize=8)
            ax.set_title(metric_label(m), fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        for n in range(len(metrics), nrows * ncols):
            axs[n // ncols][n % ncols].set_visible(False)
        fig.suptitle(f"{self.name}: {param_label(a['name'])} against {ref} (paired difference "
                     f"on seed and the other axes, mean and 95% interval; {self.run_length})",
                     fontsize=10)
        fig.tight_layout()
        self.save_fig(fig, f"compare_{slug(a['name'])}",
                      f"{a['name']} against {ref}, paired")

    def _sensitivity_figures(self, table: pd.DataFrame, method: str, group_names) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = {"sobol": [("S1", "S1_conf"), ("ST", "ST_conf")],
                "morris": [("mu_star", "mu_star_conf"), ("sigma", None)],
                "latin": [("S1", "S1_conf")], "random": [("S1", "S1_conf")]}[method]
        for m in self.metrics:
            t = table[(table["metric"] == m) & ~table["parameter"].str.contains(" x ")]
            if t.empty:
                continue
            groups = t.groupby(group_names, sort=False) if group_names else [((), t)]
            groups = list(groups)[:6]
            fig, axs = plt.subplots(1, len(groups), figsize=(5 * len(groups) + 1, 3.4),
                                    squeeze=False)
            for ax, (key, g) in zip(axs[0], groups, strict=False):
                pos = np.arange(len(g))
                width = 0.8 / len(keys)
                for k, (val, conf) in enumerate(keys):
                    if val not in g:
                        continue
                    err = g[conf].to_numpy(float) if conf and conf in g else None
                    ax.bar(pos + (k - (len(keys) - 1) / 2) * width, g[val].to_numpy(float),
                           width, yerr=err, capsize=3, label=val)
                ax.set_xticks(pos, g["parameter"], rotation=20, ha="right", fontsize=8)
                ax.set_ylabel(m)
                ax.legend(fontsize=7)
                ax.grid(alpha=0.3, axis="y")
                if group_names:
                    key = key if isinstance(key, tuple) else (key,)
                    ax.set_title(", ".join(f"{n} = {v}" for n, v in zip(group_names, key,
                                                                         strict=True)),
                                 fontsize=9)
            fig.suptitle(f"{self.name}: sensitivity of {m} ({method})", fontsize=10)
            fig.tight_layout()
            self.save_fig(fig, f"sensitivity_{slug(m)}", f"sensitivity of {m}")

    def _scatter(self, g: pd.DataFrame, names: list[str], label: dict) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ok = g[g["status"] == "ok"]
        if ok.empty:
            return
        cols = {n: column_name(n) for n in names}
        suffix = "_".join(slug(v) for v in label.values())
        for m in self.metrics:
            per_point = ok.groupby("point").agg(
                y=(self.mcol(m), "mean"), **{c: (c, "first") for c in cols.values()})
            fig, axs = plt.subplots(1, len(names), figsize=(3.3 * len(names) + 1, 3.0),
                                    squeeze=False, sharey=True)
            for ax, n in zip(axs[0], names, strict=True):
                xv = per_point[cols[n]].to_numpy(float)
                yv = per_point["y"].to_numpy(float)
                ax.scatter(xv, yv, s=8, alpha=0.5)
                binned_band(ax, xv, yv)
                ax.set_xlabel(n, fontsize=8)
                ax.grid(alpha=0.3)
            axs[0][0].set_ylabel(m)
            title = f"{self.name}: {m} against the sampled parameters"
            if label:
                title += " (" + ", ".join(f"{k} = {level_label(v)}" for k, v in label.items()) + ")"
            fig.suptitle(title, fontsize=10)
            fig.tight_layout()
            stem = f"scatter_{slug(m)}" + (f"_{suffix}" if suffix else "")
            self.save_fig(fig, stem, f"{m} against the sampled parameters")


def binned_band(ax, x: np.ndarray, y: np.ndarray, bins: int = 8) -> None:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 * bins:
        return
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    stats = [ci95(y[idx == b].tolist()) + (float(x[idx == b].mean()),) for b in range(bins)
             if (idx == b).sum() > 1]
    if not stats:
        return
    xm = [s[5] for s in stats]
    ax.plot(xm, [s[0] for s in stats], color="C1")
    ax.fill_between(xm, [s[2] for s in stats], [s[3] for s in stats], color="C1", alpha=0.25)

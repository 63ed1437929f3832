"""Comparison reports of a study: tables (CSV and Markdown) and figures (PNG).

`make_report(results/<study>)` reads the catalog (brought in line with the run folders first)
and writes into `results/<study>/report/`:

    report.md                 everything below in one page, with the figures linked
    runs.csv                  one row per design run: point, seed, status, params, metrics
    points.csv / .md          per design point: runs ok/failed, mean, sd and 95% confidence
                              interval over seeds of each metric
    vs_<axis>.png             each metric against each axis: mean with a 95% band over seeds
                              (bars with error bars for a categorical axis), one line per level
                              of a second axis, one column per level of a third
    pivot_<metric>.md         mean [95% CI] on the first two axes
    compare_<axis>.csv / .md  a categorical axis (a scheme, a regime): each level against the
                              first, as differences of runs paired on seed and all other axes
    sensitivity.csv / .md     for a sampled study: Sobol S1/ST (and S2), Morris mu*/sigma, or
                              RBD-FAST S1 (latin and random samples), per metric (and per
                              combination of the other axes); the metric is averaged over seeds
    sensitivity_<metric>.png  the indices with their confidence intervals
    scatter_<metric>.png      the metric against each sampled parameter, binned means with a
                              95% band
    failed.md                 failed runs with the first line of their error
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from environment.paths import lookup
from experiments import catalog as cat
from experiments.study import column_name

# axes with more levels (fine numeric grids) are read from the metric-against-axis figure
MAX_COMPARE_LEVELS = 12


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", str(text)).strip("_").lower() or "x"


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float | np.floating):
            return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |"
            for row in df.itertuples(index=False, name=None)]
    return "\n".join([head, sep, *rows]) + "\n"


def _num(v: float) -> str:
    """Large values in full (welfare differences live in the last digits), others to 4
    significant digits."""
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


def ci95(values) -> tuple[float, float, float, float, int]:
    """mean, sd, low, high (t interval) of the finite values; n."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    n = len(x)
    if n == 0:
        return (math.nan,) * 4 + (0,)
    m = float(x.mean())
    if n == 1:
        return m, math.nan, math.nan, math.nan, 1
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    return m, sd, m - half, m + half, n


def _label(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


class Report:
    def __init__(self, study_dir: Path, out: Path | None = None,
                 metrics: list[str] | None = None, figures: bool = True):
        self.study_dir = Path(study_dir)
        self.out = Path(out) if out else self.study_dir / "report"
        self.figures = figures
        self.con = cat.snapshot(self.study_dir)
        self.describe = cat.read_meta(self.con, "study")
        self.name = self.describe["name"]
        self.axes = self.describe["axes"]
        self.fixed_axes = [a for a in self.axes if a["kind"] != "sample"]
        self.sampled = [a for a in self.axes if a["kind"] == "sample"]
        self.metric_cols = dict(self.describe["metric_columns"])
        self.metrics = list(metrics or self.describe["metrics"])
        self.files: list[Path] = []
        self.md: list[str] = []
        self.notes: list[str] = []
        self.df = self._frame()

    # -- data --
    def _frame(self) -> pd.DataFrame:
        """One row per design run (point x seed): params from the design, status and
        metrics from the run if it exists ('pending' otherwise)."""
        if not self.con.execute("SELECT count(*) FROM design").fetchone()[0]:
            return pd.DataFrame()
        have = cat.table_columns(self.con)
        metric_sel = "".join(f', r."{c}"' for c in self.metric_cols.values() if c in have)
        df = self.con.execute(
            "SELECT d.point, d.seed, d.run_id, d.grp, d.sample_row, d.x, d.params AS dparams, "
            "coalesce(r.status, 'pending') AS status, r.error, r.wall_s, r.summary"
            f"{metric_sel} FROM design d LEFT JOIN runs r USING (run_id) "
            "ORDER BY d.seed, d.point").df()
        params = [json.loads(p) if p else {} for p in df.pop("dparams")]
        for a in self.axes:
            df[a["column"]] = [p.get(a["name"]) for p in params]
        for m in self.metrics:
            col = self.metric_cols.get(m)
            if col is None or col not in df:
                col = column_name(m)
                while col in df:
                    col += "_"
                self.metric_cols[m] = col
                df[col] = [_metric(s, m) for s in df["summary"]]
            df[col] = pd.to_numeric(df[col], errors="coerce")
        return df.drop(columns=["summary"])

    def mcol(self, m: str) -> str:
        return self.metric_cols[m]

    # -- output --
    def save_table(self, df: pd.DataFrame, stem: str, title: str | None = None,
                   md: bool = True, inline: bool = True, max_inline: int = 80) -> None:
        path = self.out / f"{stem}.csv"
        df.to_csv(path, index=False)
        self.files.append(path)
        if md:
            text = markdown_table(df)
            mpath = self.out / f"{stem}.md"
            mpath.write_text((f"# {title}\n\n" if title else "") + text)
            self.files.append(mpath)
            if inline:
                if title:
                    self.md.append(f"### {title}\n")
                if len(df) <= max_inline:
                    self.md.append(text)
                else:
                    self.md.append(f"{len(df)} rows: [{stem}.csv]({stem}.csv), "
                                   f"[{stem}.md]({stem}.md)\n")

    def save_fig(self, fig, stem: str, title: str) -> None:
        path = self.out / f"{stem}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.files.append(path)
        self.md.append(f"![{title}]({path.name})\n")

    # -- sections --
    def write(self) -> list[Path]:
        self.out.mkdir(parents=True, exist_ok=True)
        df = self.df
        d = self.describe
        self.md = [f"# Study {self.name}\n", (d.get("description") or "").strip() + "\n"]
        counts = df["status"].value_counts().to_dict() if not df.empty else {}
        n_unique = df["run_id"].nunique() if not df.empty else 0
        self.md.append(
            f"Design: {d['points']} points x {len(d['seeds'])} seeds = {d['runs']} runs "
            f"({n_unique} distinct); status: "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "\n")
        self.md.append("Axes: " + "; ".join(
            f"`{a['name']}` ({a['kind']}"
            + (f": {', '.join(_label(v) for v in a['values'])}" if a["values"] else "") + ")"
            for a in self.axes) + "\n" if self.axes else "Axes: none\n")
        self.md.append(f"Seeds: {', '.join(map(str, d['seeds']))}. Metrics: "
                       + ", ".join(f"`{m}`" for m in self.metrics) + "\n")
        if df.empty:
            self.md.append("No runs yet.\n")
            return self._finish()
        self._runs_table()
        self._points_table()
        ok = df[df["status"] == "ok"]
        for m in self.metrics:
            if ok.empty or ok[self.mcol(m)].isna().all():
                self.notes.append(f"metric `{m}` is null in every finished run (missing from "
                                  "the runs' summary.json or not a number)")
        if self.fixed_axes:
            self.md.append("## Metrics against the axes\n")
            if self.figures:
                for a in self.fixed_axes:
                    self._vs_figure(a)
            self._pivots()
            for a in self.fixed_axes:
                if 1 < len(a["values"]) <= MAX_COMPARE_LEVELS:
                    self._compare(a)
        if self.sampled:
            self._sensitivity()
        self._failed()
        return self._finish()

    def _finish(self) -> list[Path]:
        if self.notes:
            self.md.append("## Notes\n\n" + "\n".join(f"- {n}" for n in self.notes) + "\n")
        path = self.out / "report.md"
        path.write_text("\n".join(self.md))
        self.files.append(path)
        return self.files

    def _runs_table(self) -> None:
        cols = ["point", "seed", "run_id", "status"] + [a["column"] for a in self.axes] \
            + [self.mcol(m) for m in self.metrics] + ["wall_s"]
        self.save_table(self.df[cols], "runs", md=False)
        self.md.append("All runs: [runs.csv](runs.csv)\n")

    def _group_stats(self, df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        rows = []
        groups = df.groupby(by, sort=False, dropna=False) if by else [((), df)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            row = dict(zip(by, key, strict=True))
            row["runs"] = len(g)
            row["ok"] = int((g["status"] == "ok").sum())
            row["failed"] = int((g["status"] == "failed").sum())
            ok = g[g["status"] == "ok"]
            for m in self.metrics:
                mean, sd, lo, hi, _ = ci95(ok[self.mcol(m)].tolist())
                c = self.mcol(m)
                row.update({f"{c}_mean": mean, f"{c}_sd": sd, f"{c}_lo95": lo,
                            f"{c}_hi95": hi})
            rows.append(row)
        return pd.DataFrame(rows)

    def _points_table(self) -> None:
        if self.sampled:
            by = ["point"] + [a["column"] for a in self.axes]
        else:
            by = [a["column"] for a in self.axes]
        stats = self._group_stats(self._hashable(self.df), by)
        self.md.append("## Per design point (mean and 95% interval over seeds)\n")
        keep = by + ["runs", "ok", "failed"] + [f"{self.mcol(m)}_{s}" for m in self.metrics
                                                for s in ("mean", "lo95", "hi95")]
        self.save_table(stats[keep], "points", title=None, max_inline=60)

    def _hashable(self, df: pd.DataFrame) -> pd.DataFrame:
        """Axis values that are lists or mappings as text (for grouping)."""
        df = df.copy()
        for a in self.axes:
            col = a["column"]
            df[col] = [json.dumps(v) if isinstance(v, list | dict) else v for v in df[col]]
        return df

    def _levels(self, a: dict) -> list:
        vals = a["values"]
        return [json.dumps(v) if isinstance(v, list | dict) else v for v in vals]

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
                st = [ci95(s[s[a["column"]] == x][self.mcol(m)].tolist()) for x in xs]
                mean = np.array([t[0] for t in st])
                lo = np.array([t[2] for t in st])
                hi = np.array([t[3] for t in st])
                label = None if hue is None else f"{hue['name']} = {_label(hv)}"
                if a["numeric"]:
                    x = np.array(xs, float)
                    ax.plot(x, mean, marker="o", ms=4, label=label)
                    ax.fill_between(x, lo, hi, alpha=0.2)
                else:
                    pos = np.arange(len(xs)) + (k - (len(hues) - 1) / 2) * step
                    err = np.vstack([mean - lo, hi - mean])
                    err = np.where(np.isfinite(err), err, 0)
                    ax.errorbar(pos, mean, yerr=err, fmt="o", ms=5, capsize=3, label=label)
                    ax.set_xticks(np.arange(len(xs)), [_label(x) for x in xs],
                                  rotation=20 if len(xs) > 3 else 0, fontsize=8)
            ax.set_xlabel(a["name"], fontsize=8)
            ax.set_ylabel(m, fontsize=8)
            ax.tick_params(labelsize=8)
            if facet is not None:
                ax.set_title(f"{facet['name']} = {_label(fv)}", fontsize=8)
            if hue is not None and n == 0:
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        for n in range(len(panels), nrows * ncols):
            axs[n // ncols][n % ncols].set_visible(False)
        title = f"{self.name}: metrics against {a['name']} (mean, 95% interval over seeds)"
        if pooled:
            title += f"\npooled over {', '.join(pooled)}"
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        self.save_fig(fig, f"vs_{_slug(a['name'])}", f"metrics against {a['name']}")

    def _pivots(self) -> None:
        if len(self.fixed_axes) < 2:
            return
        r, c = self.fixed_axes[0], self.fixed_axes[1]
        df = self._hashable(self.df[self.df["status"] == "ok"])
        for m in self.metrics:
            table = []
            for rv in self._levels(r):
                row = {r["name"]: _label(rv)}
                for cv in self._levels(c):
                    vals = df[(df[r["column"]] == rv) & (df[c["column"]] == cv)][self.mcol(m)]
                    mean, _, lo, hi, n = ci95(vals.tolist())
                    row[_label(cv)] = "" if n == 0 else (
                        _num(mean) + (f" [{_num(lo)}, {_num(hi)}]" if n > 1 else ""))
                table.append(row)
            self.save_table(pd.DataFrame(table), f"pivot_{_slug(m)}",
                            title=f"{m}: mean [95% CI] by {r['name']} (rows) and "
                                  f"{c['name']} (columns)", md=True)

    def _compare(self, a: dict) -> None:
        """Each level of an axis against the first, paired on seed and the other axes."""
        df = self._hashable(self.df[self.df["status"] == "ok"])
        levels = self._levels(a)
        ref = levels[0]
        keys = ["seed"] + [o["column"] for o in self.axes if o is not a]
        rows = []
        for m in self.metrics:
            col = self.mcol(m)
            # a sampled design may visit a point twice: one value per key
            base = df[df[a["column"]] == ref].groupby(keys, dropna=False)[col].mean()
            for lv in levels:
                cur = df[df[a["column"]] == lv]
                mean, _, lo, hi, n = ci95(cur[col].tolist())
                row = {"metric": m, a["name"]: _label(lv), "runs": n, "mean": mean,
                       "lo95": lo, "hi95": hi}
                if lv != ref:
                    other = cur.groupby(keys, dropna=False)[col].mean()
                    both = pd.concat([base.rename("ref"), other.rename("cur")], axis=1,
                                     join="inner").dropna()
                    diff = (both["cur"] - both["ref"]).tolist()
                    dm, _, dlo, dhi, dn = ci95(diff)
                    row.update({f"diff_vs_{_label(ref)}": dm, "diff_lo95": dlo,
                                "diff_hi95": dhi, "pairs": dn,
                                "share_higher": float(np.mean(np.array(diff) > 0))
                                if dn else math.nan})
                rows.append(row)
        self.save_table(pd.DataFrame(rows), f"compare_{_slug(a['name'])}",
                        title=f"{a['name']}: each level against {_label(ref)} (differences "
                              "paired on seed and the other axes)")
        if self.figures:
            self._compare_figure(a, pd.DataFrame(rows), _label(ref))

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
            ax.set_title(m, fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        for n in range(len(metrics), nrows * ncols):
            axs[n // ncols][n % ncols].set_visible(False)
        fig.suptitle(f"{self.name}: {a['name']} against {ref} (paired difference on seed and "
                     "the other axes, mean and 95% interval)", fontsize=10)
        fig.tight_layout()
        self.save_fig(fig, f"compare_{_slug(a['name'])}",
                      f"{a['name']} against {ref}, paired")

    def _sensitivity(self) -> None:
        s = self.describe["sample"]
        problem = s["problem"]
        names = problem["names"]
        df = self.df
        rows: list[dict] = []
        self.md.append(f"## Sensitivity ({s['method']}, n = {s['n']})\n")
        for _, g in df.groupby("grp", sort=True):
            label = {a["name"]: g[a["column"]].iloc[0] for a in self.fixed_axes}
            first = g.drop_duplicates("sample_row").sort_values("sample_row")
            x = np.array([list(v) for v in first["x"]], float)
            ok = g[g["status"] == "ok"]
            for m in self.metrics:
                y = ok.groupby("sample_row")[self.mcol(m)].mean()
                y = y.reindex(first["sample_row"].to_numpy()).to_numpy(float)
                try:
                    res = _analyze(s, problem, x, y)
                except Exception as exc:        # never lose the rest of the report
                    why = str(exc) if isinstance(exc, _Skip) else f"{type(exc).__name__}: {exc}"
                    self.notes.append(f"sensitivity of `{m}`"
                                      + (f" at {label}" if label else "") + f": {why}")
                    continue
                for i, n in enumerate(names):
                    rows.append({**{k: _label(v) for k, v in label.items()}, "metric": m,
                                 "parameter": n, **{k: _f(v[i]) for k, v in res.items()
                                                    if k != "S2"}})
                if "S2" in res:
                    for i in range(len(names)):
                        for j in range(i + 1, len(names)):
                            rows.append({**{k: _label(v) for k, v in label.items()},
                                         "metric": m, "parameter": f"{names[i]} x {names[j]}",
                                         "S2": _f(res["S2"][i][j]),
                                         "S2_conf": _f(res["S2_conf"][i][j])})
            if self.figures:
                self._scatter(g, names, label)
        if not rows:
            return
        table = pd.DataFrame(rows)
        self.save_table(table, "sensitivity", title=f"sensitivity indices ({s['method']})")
        if self.figures:
            self._sensitivity_figures(table, s["method"], [a["name"] for a in self.fixed_axes])

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
            self.save_fig(fig, f"sensitivity_{_slug(m)}", f"sensitivity of {m}")

    def _scatter(self, g: pd.DataFrame, names: list[str], label: dict) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ok = g[g["status"] == "ok"]
        if ok.empty:
            return
        cols = {n: column_name(n) for n in names}
        suffix = "_".join(_slug(v) for v in label.values())
        for m in self.metrics:
            per_point = ok.groupby("point").agg(
                y=(self.mcol(m), "mean"), **{c: (c, "first") for c in cols.values()})
            fig, axs = plt.subplots(1, len(names), figsize=(3.3 * len(names) + 1, 3.0),
                                    squeeze=False, sharey=True)
            for ax, n in zip(axs[0], names, strict=True):
                xv = per_point[cols[n]].to_numpy(float)
                yv = per_point["y"].to_numpy(float)
                ax.scatter(xv, yv, s=8, alpha=0.5)
                _binned_band(ax, xv, yv)
                ax.set_xlabel(n, fontsize=8)
                ax.grid(alpha=0.3)
            axs[0][0].set_ylabel(m)
            title = f"{self.name}: {m} against the sampled parameters"
            if label:
                title += " (" + ", ".join(f"{k} = {_label(v)}" for k, v in label.items()) + ")"
            fig.suptitle(title, fontsize=10)
            fig.tight_layout()
            stem = f"scatter_{_slug(m)}" + (f"_{suffix}" if suffix else "")
            self.save_fig(fig, stem, f"{m} against the sampled parameters")

    def _failed(self) -> None:
        bad = self.df[self.df["status"] == "failed"].drop_duplicates("run_id")
        if bad.empty:
            return
        self.md.append(f"## Failed runs ({len(bad)})\n")
        table = bad[["run_id", "seed"] + [a["column"] for a in self.axes] + ["error"]].copy()
        table["error"] = [(e or "").splitlines()[0][:200] if e else "" for e in table["error"]]
        self.save_table(table, "failed", title=None)
        self.md.append("Tracebacks: `flexmarkets runs " + self.name + " --show RUN_ID`\n")


def _binned_band(ax, x: np.ndarray, y: np.ndarray, bins: int = 8) -> None:
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


class _Skip(Exception):
    pass


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _analyze(s: dict, problem: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """SALib indices for a sample matrix x (rows in sampling order) and outputs y."""
    d = problem["num_vars"]
    problem = {k: v for k, v in problem.items() if k != "dists" or s["method"] != "morris"}
    if s["method"] == "sobol":
        from SALib.analyze import sobol

        if not np.isfinite(y).all():
            raise _Skip(f"{int((~np.isfinite(y)).sum())} of {len(y)} sample rows have no "
                        "finished run; Sobol indices need them all (run the sweep again)")
        if np.ptp(y) == 0:
            raise _Skip("the metric does not vary")
        res = sobol.analyze(problem, y, calc_second_order=s["second_order"], seed=0)
        keys = ["S1", "S1_conf", "ST", "ST_conf"] + (["S2", "S2_conf"] if s["second_order"]
                                                      else [])
        return {k: np.asarray(res[k]) for k in keys}
    if s["method"] == "morris":
        from SALib.analyze import morris

        per = d + 1
        n_traj = len(y) // per
        keep = [t for t in range(n_traj) if np.isfinite(y[t * per:(t + 1) * per]).all()]
        if len(keep) < 2:
            raise _Skip(f"{len(keep)} complete trajectories of {n_traj}")
        rows = np.concatenate([np.arange(t * per, (t + 1) * per) for t in keep])
        res = morris.analyze(problem, x[rows], y[rows], num_levels=s["levels"], seed=0)
        return {k: np.asarray(res[k]) for k in ("mu", "mu_star", "mu_star_conf", "sigma")}
    ok = np.isfinite(y)
    if ok.sum() < 10:
        raise _Skip(f"only {int(ok.sum())} finished sample rows")
    if np.ptp(y[ok]) == 0:
        raise _Skip("the metric does not vary")
    # RBD-FAST is a given-data method: any latin or random sample
    from SALib.analyze import rbd_fast

    res = rbd_fast.analyze(problem, x[ok], y[ok], seed=0)
    return {k: np.asarray(res[k]) for k in ("S1", "S1_conf")}


def _metric(summary: str | None, path: str) -> float:
    if not summary:
        return math.nan
    try:
        v = lookup(json.loads(summary), path)
    except KeyError:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def make_report(study_dir: Path | str, out: Path | str | None = None,
                metrics: list[str] | None = None, figures: bool = True) -> list[Path]:
    """Write the report of the study in `study_dir` (results/<study>); returns the files."""
    return Report(Path(study_dir), Path(out) if out else None, metrics, figures).write()

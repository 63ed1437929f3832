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
from pathlib import Path

import numpy as np
import pandas as pd

from environment.paths import lookup
from experiments import catalog as cat
from experiments.report_figures import FigureSections
from experiments.report_stats import (
    ci95,
    interval,
    level_label,
    markdown_table,
    metric_is_count,
    metric_label,
    param_label,
    slug,
)
from experiments.study_schema import column_name

# axes with more levels (fine numeric grids) are read from the metric-against-axis figure
MAX_COMPARE_LEVELS = 12


class Report(FigureSections):
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
        self.md = [f"# Study {self.name}\n"]
        if (d.get("description") or "").strip():
            self.md.append(d["description"].strip() + "\n")
        self.md.append(self._what_ran())
        counts = df["status"].value_counts().to_dict() if not df.empty else {}
        n_unique = df["run_id"].nunique() if not df.empty else 0
        self.md.append(
            f"Design: {d['points']} points x {len(d['seeds'])} seeds = {d['runs']} runs "
            f"({n_unique} distinct); status: "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "\n")
        self.md.append("Axes: " + "; ".join(
            f"{param_label(a['name'])} (`{a['name']}`, {a['kind']}"
            + (f": {', '.join(level_label(v) for v in a['values'])}" if a["values"] else "")
            + ")" for a in self.axes) + "\n" if self.axes else "Axes: none\n")
        self.md.append(f"Seeds: {', '.join(map(str, d['seeds']))}. Metrics: "
                       + ", ".join(f"{metric_label(m)} (`{m}`)" for m in self.metrics)
                       + ". Units, signs and definitions: docs/outputs.md.\n")
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

    @property
    def run_length(self) -> str:
        """'7-day runs from 2016-01-11, 15-min MTUs' (what every run of the study simulated)."""
        d = self.describe
        days = d.get("days")
        if days is None:
            return "run length not recorded"
        return (f"{days}-day runs from {d.get('start', '?')}, {d.get('mtu_minutes', '?')}-min "
                "MTUs")

    def _what_ran(self) -> str:
        """The base scenario, the overrides every run got (the study's and the sweep's --set)
        and the length of the runs, so that a one-day study does not read as a week's."""
        d = self.describe
        fixed = d.get("overrides") or {}
        text = f"Base scenario `{d.get('base', '?')}`; {self.run_length}"
        if fixed:
            text += "; overrides for every run: " + ", ".join(f"`{k}={v}`"
                                                              for k, v in fixed.items())
        extra = d.get("extra_overrides") or {}
        if extra:
            text += " (of which from the command line: " + ", ".join(
                f"`{k}={v}`" for k, v in extra.items()) + ")"
        return text + ".\n"

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
                mean, sd, lo, hi, _ = ci95(ok[self.mcol(m)].tolist(), metric_is_count(m))
                c = self.mcol(m)
                row.update({f"{c}_mean": mean, f"{c}_sd": sd, f"{c}_lo95": lo,
                            f"{c}_hi95": hi})
            rows.append(row)
        return pd.DataFrame(rows)

    def _points_table(self) -> None:
        """points.csv: every statistic; in the report, one column per metric with its mean and
        95% interval over seeds, labelled in words."""
        if self.sampled:
            by = ["point"] + [a["column"] for a in self.axes]
        else:
            by = [a["column"] for a in self.axes]
        stats = self._group_stats(self._hashable(self.df), by)
        self.md.append("## Per design point (mean and 95% interval over seeds)\n")
        keep = by + ["runs", "ok", "failed"] + [f"{self.mcol(m)}_{s}" for m in self.metrics
                                                for s in ("mean", "lo95", "hi95")]
        self.save_table(stats[keep], "points", title=None, md=False)
        names = {a["column"]: param_label(a["name"]) for a in self.axes}
        compact = stats[by].rename(columns=names)
        compact["runs ok/failed"] = [f"{o}/{f}" for o, f in zip(stats["ok"], stats["failed"],
                                                                 strict=True)]
        for m in self.metrics:
            c = self.mcol(m)
            compact[metric_label(m)] = [
                interval(mean, lo, hi, ok) for mean, lo, hi, ok in
                zip(stats[f"{c}_mean"], stats[f"{c}_lo95"], stats[f"{c}_hi95"], stats["ok"],
                    strict=True)]
        self.save_table(compact, "points_summary", title=None, max_inline=60)
        self.md.append("Every statistic (sd, bounds) of every point: [points.csv](points.csv)\n")

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

    def _pivots(self) -> None:
        if len(self.fixed_axes) < 2:
            return
        r, c = self.fixed_axes[0], self.fixed_axes[1]
        df = self._hashable(self.df[self.df["status"] == "ok"])
        for m in self.metrics:
            table = []
            for rv in self._levels(r):
                row = {param_label(r["name"]): level_label(rv)}
                for cv in self._levels(c):
                    vals = df[(df[r["column"]] == rv) & (df[c["column"]] == cv)][self.mcol(m)]
                    mean, _, lo, hi, n = ci95(vals.tolist(), metric_is_count(m))
                    row[level_label(cv)] = interval(mean, lo, hi, n)
                table.append(row)
            self.save_table(pd.DataFrame(table), f"pivot_{slug(m)}",
                            title=f"{metric_label(m)}: mean [95% CI] by "
                                  f"{param_label(r['name'])} (rows) and "
                                  f"{param_label(c['name'])} (columns)", md=True)

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
                mean, _, lo, hi, n = ci95(cur[col].tolist(), metric_is_count(m))
                row = {"metric": m, a["name"]: level_label(lv), "runs": n, "mean": mean,
                       "lo95": lo, "hi95": hi}
                if lv != ref:
                    other = cur.groupby(keys, dropna=False)[col].mean()
                    both = pd.concat([base.rename("ref"), other.rename("cur")], axis=1,
                                     join="inner").dropna()
                    diff = (both["cur"] - both["ref"]).tolist()
                    dm, _, dlo, dhi, dn = ci95(diff)
                    row.update({f"diff_vs_{level_label(ref)}": dm, "diff_lo95": dlo,
                                "diff_hi95": dhi, "pairs": dn,
                                "share_higher": float(np.mean(np.array(diff) > 0))
                                if dn else math.nan})
                rows.append(row)
        self.save_table(pd.DataFrame(rows), f"compare_{slug(a['name'])}",
                        title=f"{a['name']}: each level against {level_label(ref)} (differences "
                              "paired on seed and the other axes)")
        self.md.append(self._clear_differences(a, rows, level_label(ref)))
        if self.figures:
            self._compare_figure(a, pd.DataFrame(rows), level_label(ref))

    @staticmethod
    def _clear_differences(a: dict, rows: list[dict], ref: str) -> str:
        """The paired differences whose 95 % interval excludes 0, in words: what the study
        can say about the axis over its seeds."""
        key = f"diff_vs_{ref}"
        clear = [r for r in rows if key in r and r["pairs"] > 1
                 and (r["diff_lo95"] > 0 or r["diff_hi95"] < 0)]
        head = f"Against {ref}, the paired 95 % interval excludes 0 for "
        if not clear:
            return head + "no metric: over these seeds the axis makes no clear difference.\n"
        return head + f"{len(clear)} of {sum(key in r for r in rows)}:\n\n" + "\n".join(
            f"- {metric_label(r['metric'])}, {r[a['name']]}: {r[key]:+.4g} "
            f"[{r['diff_lo95']:.4g}, {r['diff_hi95']:.4g}]" for r in clear) + "\n"

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
                    rows.append({**{k: level_label(v) for k, v in label.items()}, "metric": m,
                                 "parameter": n, **{k: _f(v[i]) for k, v in res.items()
                                                    if k != "S2"}})
                if "S2" in res:
                    for i in range(len(names)):
                        for j in range(i + 1, len(names)):
                            rows.append({**{k: level_label(v) for k, v in label.items()},
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

    def _failed(self) -> None:
        bad = self.df[self.df["status"] == "failed"].drop_duplicates("run_id")
        if bad.empty:
            return
        self.md.append(f"## Failed runs ({len(bad)})\n")
        table = bad[["run_id", "seed"] + [a["column"] for a in self.axes] + ["error"]].copy()
        table["error"] = [(e or "").splitlines()[0][:200] if e else "" for e in table["error"]]
        self.save_table(table, "failed", title=None)
        self.md.append("Tracebacks: `flexmarkets runs " + self.name + " --show RUN_ID`\n")


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

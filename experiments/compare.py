"""`flexmarkets compare RUN_A RUN_B`: what differs between two runs.

The settings that differ (the resolved scenarios in config.yaml), then every summary number
that differs, largest relative change first, labelled from the data dictionary; with `--out`,
compare.csv (every number) and compare.png (the headline numbers side by side and the
day-ahead prices of both runs). A run is a folder, or a run id (or a unique prefix of one)
under the results folder."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from environment.errors import InputError, did_you_mean
from environment.yamlio import read_yaml
from experiments.headline import num, signed

SHOWN = 40
HEADLINE = ["cost_efficiency", "system_cost_eur", "welfare_eur.total", "da_price_eur_mwh.mean",
            "imbalance.system_abs_mwh", "congestion.red", "flexibility.dso_cost.total_eur",
            "redispatch.cost_eur"]


def find_run(ref: str, results: Path) -> Path:
    """A run folder from a path, a run id or a unique prefix of one."""
    p = Path(ref)
    if (p / "summary.json").is_file():
        return p
    if not results.is_dir():
        raise InputError(f"run {ref!r}: not a run folder, and no results folder {results}")
    runs = sorted(d.name for d in results.iterdir() if (d / "summary.json").is_file())
    hits = [r for r in runs if r == ref] or [r for r in runs if r.startswith(ref)]
    if len(hits) == 1:
        return results / hits[0]
    if len(hits) > 1:
        raise InputError(f"run {ref!r}: {len(hits)} runs in {results} start with it: "
                         f"{', '.join(hits[:6])}{' ...' if len(hits) > 6 else ''}")
    raise InputError(f"run {ref!r}: no run folder of that name or id in {results}"
                     f"{did_you_mean(ref, runs)}")


def flatten(tree, prefix: str = "") -> dict:
    """Leaves of nested mappings and lists by dotted path (list items by index)."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix.rstrip("."): {}}
    if isinstance(tree, list) and tree and all(isinstance(i, dict) for i in tree):
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): tree}


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(float(v)) else None


def differences(a: dict, b: dict) -> tuple[list[tuple], list[tuple]]:
    """(numbers, others): numbers as (path, a, b, b - a, relative change or None), sorted by
    the size of the relative change; others as (path, a, b) for values that are not numbers."""
    fa, fb = flatten(a), flatten(b)
    numbers, others = [], []
    for path in sorted(set(fa) | set(fb)):
        va, vb = fa.get(path), fb.get(path)
        na, nb = _number(va), _number(vb)
        if na is not None and nb is not None:
            d = nb - na
            if abs(d) <= 1e-9 * max(1.0, abs(na), abs(nb)):
                continue
            rel = d / abs(na) if na else None
            numbers.append((path, na, nb, d, rel))
        elif va != vb:
            others.append((path, va, vb))
    numbers.sort(key=lambda r: (r[4] is None, -abs(r[4] or 0), -abs(r[3])))
    return numbers, others


def compare(dir_a: Path, dir_b: Path, show_all: bool = False) -> tuple[list[str], dict]:
    """The printed lines and the data of a comparison."""
    from experiments.dictionary import label

    cfg_a, cfg_b = (read_yaml(d / "config.yaml", "run config") for d in (dir_a, dir_b))
    sum_a, sum_b = (json.loads((d / "summary.json").read_text()) for d in (dir_a, dir_b))
    for s in (sum_a, sum_b):
        s.pop("out_dir", None)
    num_cfg, settings = differences(cfg_a, cfg_b)
    numbers, others = differences(sum_a, sum_b)
    numbers = [r for r in numbers if not r[0].startswith(("run.", "timing."))]
    lines = [f"compare A {dir_a} with B {dir_b}"]
    changed = [(p, a, b) for p, a, b, _, _ in num_cfg] + settings
    lines.append(f"settings that differ ({len(changed)}, config.yaml):" if changed
                 else "settings: the same scenario")
    lines += [f"  {p}: {_show(a)} -> {_show(b)}" for p, a, b in sorted(changed)]
    total = len(flatten(sum_a))
    lines.append(f"summary numbers that differ: {len(numbers)} of {total} (run times not "
                 "compared)"
                 + ("" if show_all or len(numbers) <= SHOWN else
                    f", the {SHOWN} largest relative changes (--all for every one)"))
    rows = numbers if show_all else numbers[:SHOWN]
    if rows:
        width = max(len(label(p)) for p, *_ in rows)
        lines.append(f"  {'':<{width}}  {'A':>14}  {'B':>14}  {'B - A':>14}  {'change':>8}")
        for p, a, b, d, rel in rows:
            pct = "n/a" if rel is None else f"{rel * 100:+.2f}%"
            lines.append(f"  {label(p):<{width}}  {num(a):>14}  {num(b):>14}  "
                         f"{signed(d):>14}  {pct:>8}")
    for p, a, b in others[:SHOWN]:
        if not p.startswith(("run.", "timing.")):
            lines.append(f"  {p}: {_show(a)} -> {_show(b)}")
    return lines, {"numbers": numbers, "settings": changed, "a": sum_a, "b": sum_b}


def _show(v) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def write(out: Path, dir_a: Path, dir_b: Path, data: dict) -> list[Path]:
    """compare.csv and compare.png into `out`."""
    import pandas as pd

    from experiments.dictionary import label

    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(data["numbers"], columns=["path", "a", "b", "b_minus_a", "relative"])
    table.insert(1, "label", [label(p) for p in table["path"]])
    table.to_csv(out / "compare.csv", index=False)
    return [out / "compare.csv", _figure(out / "compare.png", dir_a, dir_b, data)]


def _figure(path: Path, dir_a: Path, dir_b: Path, data: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from experiments.dictionary import label
    from experiments.figstyle import time_axis

    fa, fb = flatten(data["a"]), flatten(data["b"])
    keys = [r[0] for r in data["numbers"] if r[4] is not None][:10]
    if not keys:
        keys = [k for k in HEADLINE if _number(fa.get(k)) is not None
                and _number(fb.get(k)) is not None]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.6), width_ratios=[1, 1.5])
    y = np.arange(len(keys))
    rel = [(fb[k] - fa[k]) / abs(fa[k]) * 100 if fa[k] else 0.0 for k in keys]
    ax.barh(y, rel, color=["#1f77b4" if r >= 0 else "#d62728" for r in rel])
    ax.set_yticks(y, [label(k) for k in keys], fontsize=8.5)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("B against A (%)")
    ax.set_title("Largest relative changes, B against A" if data["numbers"] else
                 "Headline numbers (no number differs)", fontsize=10)
    for i, k in enumerate(keys):
        ax.annotate(f"{num(fa[k])} -> {num(fb[k])}", (0, i), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7, color="#333333")
    for d, name, colour, style in ((dir_a, "A", "#1f77b4", "-"), (dir_b, "B", "#d62728", "--")):
        for table, col in (("series", "da_price"), ("periods", "da_price_eur_mwh")):
            f = d / f"{table}.parquet"
            if f.is_file():
                df = pd.read_parquet(f)
                if "timestamp" in df:
                    ax2.step(df["timestamp"], df[col], where="post", lw=1, color=colour,
                             ls=style, label=f"{name}: {d.name}")
                    time_axis(ax2)
                else:
                    ax2.step(np.arange(len(df)), df[col], where="post", lw=1, color=colour,
                             ls=style, label=f"{name}: {d.name}")
                    ax2.set_xlabel("period")
                break
    ax2.set_ylabel("EUR/MWh")
    ax2.set_title("Day-ahead price", fontsize=10)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(0, -0.14), ncol=2,
                   frameon=False)
    fig.suptitle(f"{dir_a.name} (A) against {dir_b.name} (B)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_command(args: argparse.Namespace) -> int:
    results = Path(args.results)
    dir_a, dir_b = find_run(args.a, results), find_run(args.b, results)
    if args.out:
        from experiments.store import check_output_dir

        check_output_dir(args.out, "--out")
    lines, data = compare(dir_a, dir_b, args.all)
    print("\n".join(lines))
    if args.out:
        files = write(Path(args.out), dir_a, dir_b, data)
        print("written: " + ", ".join(str(f) for f in files))
    return 0

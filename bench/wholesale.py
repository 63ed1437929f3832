"""A wholesale-only case through the CLI, side by side with an older commit.

743 hourly clearings (March 2024 in Central European time: 743 hours, the clocks go forward
on the 31st) of 20 producers against one inelastic demand series. The new code reads the
demand from a CSV file (timestamps with UTC offsets); the old code, which cannot read files,
gets the same 743 numbers inline in its scenario. Each repeat runs both as a fresh process
(`flexmarkets run ... -q`), alternating, and the medians of the wall times are compared:

    .venv/bin/python bench/wholesale.py                 # old = main's commit 329bebf
    .venv/bin/python bench/wholesale.py --repeats 7 --old <commit>

The old commit is checked out in a scratch worktree (removed at the end) and run with this
checkout's virtual environment, its sources first on PYTHONPATH. Both runs must agree on the
day-ahead prices and the fuel cost, or the benchmark says so and fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
OLD = "329bebf"
HOURS = 743
UNITS = 20


def case(folder: Path) -> tuple[Path, Path]:
    """The demand CSV with the new scenario, and the old scenario with the numbers inline."""
    rng = np.random.default_rng(18)
    h = np.arange(HOURS)
    load = np.round(np.clip(5200 + 1400 * np.sin((h % 24 - 6) / 24 * 2 * np.pi)
                            + 300 * rng.standard_normal(HOURS), 2500, None), 1)
    start = dt.datetime(2024, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    dst = dt.datetime(2024, 3, 31, 1, tzinfo=dt.UTC)
    rows = ["time,demand_mw"]
    for i, mw in enumerate(load):
        t = start + dt.timedelta(hours=i)
        offset = 2 if t >= dst else 1
        local = t.astimezone(dt.timezone(dt.timedelta(hours=offset)))
        rows.append(f"{local.isoformat(timespec='minutes')},{mw}")
    (folder / "demand.csv").write_text("\n".join(rows) + "\n")
    producers = [{"name": f"unit{i:02d}", "node": "zone", "capacity_mw": 500.0 + 25 * i,
                  "marginal_cost_eur_mwh": 5.0 + 9 * i} for i in range(UNITS)]
    base = {"kind": "transmission", "name": "wholesale743", "seed": 1,
            "nodes": [{"name": "zone"}], "producers": producers}
    new = {**base, "data": {"demand": {"file": "demand.csv", "column": "demand_mw",
                                       "unit": "MW"}},
           "loads": [{"name": "demand", "node": "zone", "mw": "demand"}]}
    old = {**base, "periods": HOURS, "loads": [{"name": "demand", "node": "zone",
                                                "mw": load.tolist()}]}
    (folder / "new.yaml").write_text(yaml.safe_dump(new, sort_keys=False))
    (folder / "old.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    return folder / "new.yaml", folder / "old.yaml"


def timed(cmd: list[str], env: dict, cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--old", default=OLD, help=f"commit to compare with (default {OLD})")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="fm-wholesale-") as tmp:
        tmp = Path(tmp)
        new_yaml, old_yaml = case(tmp)
        old_tree = tmp / "old-tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree),
                        args.old], check=True, capture_output=True)
        try:
            run = [py, "-c", "import sys; from experiments.cli import main; sys.exit(main())",
                   "run"]
            env_old = {**os.environ, "PYTHONPATH": str(old_tree)}
            env_new = {**os.environ, "PYTHONPATH": str(ROOT)}
            old_s, new_s = [], []
            for i in range(args.repeats):
                old_s.append(timed(run + [str(old_yaml), "--out", str(tmp / f"old{i}"), "-q"],
                                   env_old, old_tree))
                new_s.append(timed(run + [str(new_yaml), "--out", str(tmp / f"new{i}"), "-q"],
                                   env_new, ROOT))
                print(f"repeat {i + 1}: old {old_s[-1]:.2f} s, new {new_s[-1]:.2f} s",
                      flush=True)
            _check_same(tmp / "old0", tmp / "new0")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(old_tree)], capture_output=True)
    mo, mn = statistics.median(old_s), statistics.median(new_s)
    print(f"wholesale-only, {HOURS} hourly clearings, {UNITS} units, demand from CSV "
          f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f})")
    print(f"old {args.old}: median {mo:.2f} s ({', '.join(f'{x:.2f}' for x in old_s)})")
    print(f"new: median {mn:.2f} s ({', '.join(f'{x:.2f}' for x in new_s)})")
    print(f"ratio new/old {mn / mo:.3f} (target <= 0.25)")
    return 0


def _check_same(old: Path, new: Path) -> None:
    import pandas as pd

    a = pd.read_parquet(old / "periods.parquet")["da_price_eur_mwh"].to_numpy()
    b = pd.read_parquet(new / "periods.parquet")["da_price_eur_mwh"].to_numpy()
    fa, fb = _fuel(old), _fuel(new)
    if len(a) != len(b) or not np.allclose(a, b, rtol=0, atol=1e-9) or abs(fa - fb) > 1e-3:
        sys.exit(f"old and new disagree: {len(a)} vs {len(b)} prices, max difference "
                 f"{np.abs(a - b).max() if len(a) == len(b) else 'n/a'}, fuel {fa} vs {fb}")
    print(f"old and new agree: {len(a)} prices equal to 1e-9, fuel {fb:,.2f} EUR")


def _fuel(run: Path) -> float:
    """The run's fuel cost; a checkout older than the shared summary keys names it fuel_eur."""
    s = json.loads((run / "summary.json").read_text())
    return s["system_cost_eur"] if "system_cost_eur" in s else s["fuel_eur"]


if __name__ == "__main__":
    sys.exit(main())

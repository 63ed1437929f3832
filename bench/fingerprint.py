"""Fingerprints of every shipped scenario's tables: a refactoring check (not a timed test).

Runs each shipped scenario for a few days with the planner and prints one SHA-256 per table,
computed from the table's bytes (values, dtypes, column order), so two checkouts compare to the
bit. Run it in both checkouts and diff the output:

    python bench/fingerprint.py [--days 2] [--scenarios default short_flex] > before.txt
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fingerprint this checkout's code

import pandas as pd  # noqa: E402

from environment.scenario_files import (  # noqa: E402
    find_scenario,
    read_scenario_data,
    scenario_kind,
    shipped_scenarios,
)
from experiments.run import run_scenario  # noqa: E402


def table_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(repr(list(zip(df.columns, map(str, df.dtypes), strict=True))).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).values.tobytes())
    return h.hexdigest()[:16]


def transmission_tables(path: Path, days: int) -> dict[str, pd.DataFrame]:
    """A transmission scenario's tables (its twin too when someone is strategic; with
    distribution regions, every tier's for `days` days)."""
    from environment.transmission.twin import run_pair, strategic_producers
    from environment.transmission.zonal_model import transmission_model
    from experiments.plan import resolve

    if read_scenario_data(path).get("regions"):
        from environment.tiers.model import TierModel

        return TierModel(resolve(path, days=days)).run().tables()
    s = resolve(path, episodes=min(days, 3))
    if strategic_producers(s):
        pair = run_pair(s)
        return {**pair.run.tables(), **{f"twin_{k}": v for k, v in pair.twin.tables().items()}}
    return transmission_model(s).run().tables()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--scenarios", nargs="*", default=None,
                    help="scenario names (default: every shipped scenario)")
    a = ap.parse_args()
    names = a.scenarios or sorted(shipped_scenarios())
    warnings.simplefilter("ignore")
    for name in names:
        path = find_scenario(name)
        if scenario_kind(read_scenario_data(path)) == "transmission":
            tables = transmission_tables(path, a.days)
        else:
            tables = run_scenario(name, days=a.days, write=False, figures=False).tables
        for table, df in sorted(tables.items()):
            print(f"{name:24s} {table:24s} {len(df):7d} rows  {table_digest(df)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

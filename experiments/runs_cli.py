"""`flexmarkets report` and `flexmarkets runs`: the comparison report of a study and the listing
and SQL queries of its runs, read from a consistent in-memory copy of its catalog (reading
never blocks a running sweep)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


# --- report -----------------------------------------------------------------------------------


def study_dir_of(study: str, results: str) -> Path:
    """A study's folder from its name or its YAML file."""
    root = Path(results)
    if (root / study).is_dir():
        return root / study
    p = Path(study)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        import yaml

        data = yaml.safe_load(p.read_text()) or {}
        name = data.get("name") if isinstance(data, dict) else None
        return root / (name or p.stem)
    from experiments.study_schema import shipped_studies

    for s in shipped_studies():
        if s.stem == study:
            return root / study
    return root / study


def report_command(args: argparse.Namespace) -> int:
    from experiments.catalog import CatalogBusy
    from experiments.report import make_report

    study_dir = study_dir_of(args.study, args.results)
    if not study_dir.is_dir():
        return error(f"no results for study {args.study!r} in {study_dir} (run `flexmarkets "
                    "sweep` first)")
    try:
        files = make_report(study_dir, args.out, args.metrics, figures=not args.no_figures)
    except (CatalogBusy, FileNotFoundError) as exc:
        return error(str(exc))
    out = Path(args.out) if args.out else study_dir / "report"
    print(f"report of {study_dir.name}: {out / 'report.md'}")
    for f in files:
        print(f"  {f}")
    return 0


# --- runs -------------------------------------------------------------------------------------


def runs_command(args: argparse.Namespace) -> int:
    import duckdb
    import pandas as pd

    from experiments import catalog as cat

    root = Path(args.results)
    if args.study is None:
        dirs = cat.study_dirs(root)
        if args.sql:
            con = duckdb.connect()
            frames = []
            for d in dirs:
                try:
                    frames.append(cat.snapshot(d).execute("SELECT * FROM runs").df())
                except (cat.CatalogBusy, FileNotFoundError, duckdb.Error) as exc:
                    print(f"warning: {d.name}: {exc}", file=sys.stderr)
            all_runs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
                {"run_id": pd.Series(dtype=str), "study": pd.Series(dtype=str)})
            con.register("_all", all_runs)
            con.execute("CREATE TABLE runs AS SELECT * FROM _all")
            return _query(con, args.sql, args.format)
        if not dirs:
            print(f"no studies under {root}/")
            return 0
        rows = []
        for d in dirs:
            try:
                con = cat.snapshot(d)
                n = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
                design = con.execute("SELECT count(DISTINCT run_id) FROM design").fetchone()[0]
                last = con.execute("SELECT max(finished_at) FROM runs").fetchone()[0]
                rows.append({"study": d.name, "design_runs": design, "ok": n.get("ok", 0),
                             "failed": n.get("failed", 0), "last_finished": last,
                             "folder": str(d)})
            except (cat.CatalogBusy, FileNotFoundError, duckdb.Error) as exc:
                rows.append({"study": d.name, "folder": str(d), "error": str(exc)})
        _print(pd.DataFrame(rows), args.format)
        return 0
    study_dir = study_dir_of(args.study, args.results)
    if not study_dir.is_dir():
        return error(f"no results for study {args.study!r} in {study_dir}")
    try:
        con = cat.snapshot(study_dir)
    except (cat.CatalogBusy, FileNotFoundError) as exc:
        return error(str(exc))
    if args.sql:
        return _query(con, args.sql, args.format)
    if args.show:
        return _show(con, args.show)
    fields = con.execute("SELECT column_name, name, kind FROM fields ORDER BY kind DESC, rowid"
                         ).fetchall()
    cols = ["run_id", "status", "seed"] + [f[0] for f in fields] + ["wall_s", "finished_at"]
    have = cat.table_columns(con)
    select = ", ".join(f'r."{c}"' for c in cols if c in have)
    where = f"WHERE r.status = '{args.status}'" if args.status else ""
    if args.status == "failed":
        select += ", split_part(r.error, chr(10), 1) AS error"
    limit = f"LIMIT {args.limit}" if args.limit else ""
    df = con.execute(f"SELECT d.point, {select} FROM runs r LEFT JOIN (SELECT run_id, "
                     "min(point) AS point FROM design GROUP BY run_id) d USING (run_id) "
                     f"{where} ORDER BY d.point NULLS LAST, r.seed, r.run_id {limit}").df()
    total = con.execute(f"SELECT count(*) FROM runs r {where}").fetchone()[0]
    if args.format == "table":
        df = _readable(df, {c: (n, k) for c, n, k in fields})
    _print(df, args.format)
    if args.format == "table" and args.limit and total > len(df):
        print(f"({len(df)} of {total} runs shown; --limit 0 shows all)")
    return 0


def _readable(df, fields: dict):
    """The listing for a terminal: in design order, short ids, axes and metrics under short
    names (the catalog's columns stay as they are for --sql and --format csv), numbers to
    four significant digits, finishing times to the second."""
    from experiments.report_stats import fmt_number

    out = df.drop(columns=["finished_at"], errors="ignore")
    out["run_id"] = out["run_id"].str[:12]
    rename = {}
    for col, (name, kind) in fields.items():
        if col in out:
            short = ".".join(name.split(".")[-2:]) if kind == "metric" else name
            rename[col] = short if short not in rename.values() else name
            if kind == "metric" or out[col].dtype.kind == "f":
                out[col] = [fmt_number(v) for v in out[col]]
    if "wall_s" in out:
        out["wall_s"] = [fmt_number(v, 3) for v in out["wall_s"]]
    return out.rename(columns=rename)


def _query(con, sql: str, fmt: str) -> int:
    import duckdb

    try:
        df = con.execute(sql).df()
    except duckdb.Error as exc:
        return error(f"SQL: {exc}")
    _print(df, fmt)
    return 0


def _show(con, run_id: str) -> int:
    rows = con.execute("SELECT * FROM runs WHERE run_id LIKE ? || '%'", [run_id]).df()
    if rows.empty:
        return error(f"no run {run_id!r}")
    if len(rows) > 1:
        return error(f"{len(rows)} runs start with {run_id!r}: {', '.join(rows['run_id'])}")
    r = rows.iloc[0].to_dict()
    for k in ("run_id", "status", "seed", "path", "worker", "attempts", "started_at",
              "finished_at", "wall_s", "task_s"):
        print(f"{k}: {r.get(k)}")
    print("params: " + json.dumps(json.loads(r["params"] or "{}")))
    fields = con.execute("SELECT column_name, name FROM fields WHERE kind = 'metric'").fetchall()
    for col, name in fields:
        print(f"metric {name}: {r.get(col)}")
    if r.get("error"):
        print(f"error: {r['error']}")
    if r.get("traceback"):
        print(r["traceback"])
    return 0


def _print(df, fmt: str) -> None:
    import pandas as pd

    if fmt == "csv":
        df.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        print(df.to_json(orient="records", date_format="iso", indent=1))
    elif fmt == "md":
        from experiments.report_stats import markdown_table

        print(markdown_table(df), end="")
    else:
        with pd.option_context("display.max_rows", None, "display.max_columns", None,
                               "display.width", 120, "display.max_colwidth", 28):
            print(df.to_string(index=False, line_width=150) if not df.empty else "(no rows)")


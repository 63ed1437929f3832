"""The results store of a study: run folders (the truth) and a DuckDB catalog (the index).

Layout of `results/<study>/`:

    study.json          the study as last run (axes, seeds, metrics, sampling, file text)
    catalog.duckdb      the catalog, an embedded DuckDB database (no server)
    runs/<run-id>/      one folder per run, written by the worker that ran it: config.yaml,
                        summary.json, Parquet tables, run.json (status, params, timings and,
                        for a failed run, the traceback)
    report/             what `flexmarkets report` writes

A worker writes its run folder under a temporary name and renames it into place, so a folder
either is complete or does not exist. Only the driver process writes the catalog. Whatever
happened in between (a killed driver, a catalog left locked), the catalog is brought in line
with the folders before anything reads it: folders missing from the catalog are added, rows
whose folder was deleted are dropped (delete a run folder to have the run redone).

Catalog tables:

    runs     one row per run: run_id (primary key: a hash of the resolved scenario and seed),
             study, status ('ok' or 'failed'), seed, one column per axis (its dotted path or
             factor name with dots as underscores: aggregators_0_enrolment), one DOUBLE column
             per metric (welfare_eur_total; null if the run's summary lacks it), wall_s,
             solver_s, planner_s, max_rss_mb (from the run's summary), task_s and cpu_s
             (worker wall and CPU time including storage), started_at, finished_at (UTC),
             worker (host:pid), attempts,
             error, traceback, path (the run folder, relative to the study folder), params,
             scenario and summary (JSON: query any other value with ->> or json_extract)
    design   the study's design: point, seed, run_id, grp (combination of the non-sampled
             axes), sample_row and x (the sampled row as drawn) for sampled studies, params
    fields   column_name, name (dotted path or factor), kind (param or metric), axis_kind,
             sql_type
    meta     key, value (JSON): 'study' is the description from study.json
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from environment.paths import lookup
from experiments.study_schema import is_number

CATALOG = "catalog.duckdb"
RUNS_DIR = "runs"
RUN_JSON = "run.json"
STUDY_JSON = "study.json"
TMP_PREFIX = ".tmp-"
WRITER = ".writer"          # in a temporary run folder: "host pid" of the process writing it

BASE_COLUMNS = [("run_id", "VARCHAR PRIMARY KEY"), ("study", "VARCHAR"), ("status", "VARCHAR"),
                ("seed", "BIGINT")]
TAIL_COLUMNS = [("wall_s", "DOUBLE"), ("solver_s", "DOUBLE"), ("planner_s", "DOUBLE"),
                ("max_rss_mb", "DOUBLE"), ("task_s", "DOUBLE"), ("cpu_s", "DOUBLE"),
                ("started_at", "TIMESTAMP"),
                ("finished_at", "TIMESTAMP"), ("worker", "VARCHAR"), ("attempts", "INTEGER"),
                ("error", "VARCHAR"), ("traceback", "VARCHAR"), ("path", "VARCHAR"),
                ("params", "JSON"), ("scenario", "JSON"), ("summary", "JSON")]
DESIGN_DDL = ("CREATE TABLE IF NOT EXISTS design (point INTEGER, seed BIGINT, run_id VARCHAR, "
              "grp INTEGER, sample_row INTEGER, x DOUBLE[], params JSON)")
FIELDS_DDL = ("CREATE TABLE IF NOT EXISTS fields (column_name VARCHAR PRIMARY KEY, name VARCHAR, "
              "kind VARCHAR, axis_kind VARCHAR, sql_type VARCHAR)")
META_DDL = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value JSON)"


class CatalogBusy(RuntimeError):
    """The catalog file stayed locked by another process."""


@dataclass(frozen=True)
class FieldDef:
    column: str
    name: str
    kind: str        # param | metric
    axis_kind: str   # grid | zip | factor | sample (params), '' for metrics
    sql_type: str


def fields_of(describe: dict) -> list[FieldDef]:
    """The param and metric columns of a study (from `Study.describe()` / study.json)."""
    out = []
    for a in describe["axes"]:
        out.append(FieldDef(a["column"], a["name"], "param", a["kind"],
                            "DOUBLE" if a["kind"] == "sample" else _sql_type(a["values"])))
    for m, col in describe["metric_columns"].items():
        out.append(FieldDef(col, m, "metric", "", "DOUBLE"))
    return out


def _sql_type(values: list) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOLEAN"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "BIGINT"
    if all(is_number(v) for v in values):
        return "DOUBLE"
    if all(isinstance(v, str) for v in values):
        return "VARCHAR"
    return "JSON"


def _coerce(v: Any, sql_type: str) -> Any:
    if v is None:
        return None
    if sql_type == "DOUBLE":
        return float(v) if is_number(v) or isinstance(v, bool) else None
    if sql_type == "BIGINT":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        return int(v) if isinstance(v, float) and v.is_integer() else None
    if sql_type == "BOOLEAN":
        return v if isinstance(v, bool) else None
    if sql_type == "VARCHAR":
        return v if isinstance(v, str) else json.dumps(v)
    return json.dumps(clean_json(v))


def clean_json(v: Any) -> Any:
    """NaN and infinities as null (JSON has no such numbers); dates as ISO text."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): clean_json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [clean_json(x) for x in v]
    return v


def _ts(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)


def row_from_record(rec: dict, fields: list[FieldDef], study: str) -> dict:
    """A catalog row from a run record (as returned by a worker or stored in run.json, with
    the run's summary under 'summary')."""
    summary = rec.get("summary") or {}
    params = rec.get("params") or {}
    scenario = rec.get("scenario") or {}
    timing = summary.get("timing", {}) if isinstance(summary, dict) else {}
    row = {
        "run_id": rec["run_id"], "study": study, "status": rec["status"],
        "seed": rec.get("seed"),
        "wall_s": _num(timing.get("wall_s")), "solver_s": _num(timing.get("solver_s")),
        "planner_s": _num(timing.get("planner_s")), "max_rss_mb": _num(timing.get("max_rss_mb")),
        "task_s": _num(rec.get("task_s")), "cpu_s": _num(rec.get("cpu_s")),
        "started_at": _ts(rec.get("started_at")),
        "finished_at": _ts(rec.get("finished_at")), "worker": rec.get("worker"),
        "attempts": rec.get("attempts", 1), "error": rec.get("error"),
        "traceback": rec.get("traceback"), "path": f"{RUNS_DIR}/{rec['run_id']}",
        "params": json.dumps(clean_json(params)), "scenario": json.dumps(clean_json(scenario)),
        "summary": json.dumps(clean_json(summary)) if summary else None,
    }
    for f in fields:
        row[f.column] = derive(f, params, scenario, summary)
    return row


def derive(f: FieldDef, params: dict, scenario: dict, summary: dict) -> Any:
    if f.kind == "metric":
        try:
            v = lookup(summary, f.name)
        except KeyError:
            return None
        return float(v) if (is_number(v) or isinstance(v, bool)) and \
            math.isfinite(float(v)) else None
    if f.name in params:
        v = params[f.name]
    elif f.axis_kind != "factor":
        try:
            v = lookup(scenario, f.name)
        except KeyError:
            return None
    else:
        return None
    return _coerce(v, f.sql_type)


def _num(v: Any) -> float | None:
    return float(v) if is_number(v) and math.isfinite(float(v)) else None


# --- the catalog file ------------------------------------------------------------------------


def _locked(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() or "Conflicting" in text


@contextlib.contextmanager
def connect(path: Path, read_only: bool = False, timeout: float = 10.0
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a catalog file, retrying while another process holds its lock."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _locked(exc) or time.monotonic() > deadline:
                if _locked(exc):
                    raise CatalogBusy(f"catalog {path} is locked by another process: {exc}") \
                        from None
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection, fields: list[FieldDef]) -> list[FieldDef]:
    """Create the tables, add columns for new fields (changing a column's type if the study's
    values changed type); returns the fields whose columns are new or changed."""
    cols = ", ".join(f'"{c}" {t}' for c, t in BASE_COLUMNS + TAIL_COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
    con.execute(DESIGN_DDL)
    con.execute(FIELDS_DDL)
    con.execute(META_DDL)
    have = table_columns(con)
    for c, t in BASE_COLUMNS[1:] + TAIL_COLUMNS:      # a catalog from an older version
        if c not in have:
            con.execute(f'ALTER TABLE runs ADD COLUMN "{c}" {t}')
    changed = []
    for f in fields:
        if f.column not in have:
            con.execute(f'ALTER TABLE runs ADD COLUMN "{f.column}" {f.sql_type}')
            changed.append(f)
        elif have[f.column] != f.sql_type:
            try:
                con.execute(f'ALTER TABLE runs ALTER "{f.column}" TYPE {f.sql_type}')
            except duckdb.Error:
                con.execute(f'ALTER TABLE runs DROP COLUMN "{f.column}"')
                con.execute(f'ALTER TABLE runs ADD COLUMN "{f.column}" {f.sql_type}')
            changed.append(f)
    con.execute("DELETE FROM fields")
    if fields:
        con.executemany("INSERT INTO fields VALUES (?, ?, ?, ?, ?)",
                        [(f.column, f.name, f.kind, f.axis_kind, f.sql_type) for f in fields])
    return changed


def table_columns(con: duckdb.DuckDBPyConnection, table: str = "runs") -> dict[str, str]:
    return dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = ? AND table_schema = current_schema() "
                            "ORDER BY ordinal_position", [table]).fetchall())


def upsert(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """Insert rows, replacing those with the same run_id (the last one given wins)."""
    if not rows:
        return
    by_id = {r["run_id"]: r for r in rows}
    types = table_columns(con)
    names = [c for c in types if any(c in r for r in by_id.values())]
    df = pd.DataFrame([{c: r.get(c) for c in names} for r in by_id.values()], columns=names,
                      dtype=object)
    select = ", ".join(f'CAST(df."{c}" AS {types[c]}) AS "{c}"' for c in names)
    con.register("df", df)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM runs WHERE run_id IN (SELECT run_id FROM df)")
        con.execute(f"INSERT INTO runs BY NAME SELECT {select} FROM df")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("df")


def refresh(con: duckdb.DuckDBPyConnection, fields: list[FieldDef]) -> None:
    """Recompute the given param and metric columns of every row from its stored JSON."""
    if not fields:
        return
    rows = con.execute("SELECT run_id, params, scenario, summary FROM runs").fetchall()
    if not rows:
        return
    data = []
    for run_id, params, scenario, summary in rows:
        p, s, m = (json.loads(x) if x else {} for x in (params, scenario, summary))
        data.append({"run_id": run_id, **{f.column: derive(f, p, s, m) for f in fields}})
    df = pd.DataFrame(data, dtype=object)
    con.register("upd", df)
    try:
        sets = ", ".join(f'"{f.column}" = CAST(upd."{f.column}" AS {f.sql_type})'
                         for f in fields)
        con.execute(f"UPDATE runs SET {sets} FROM upd WHERE runs.run_id = upd.run_id")
    finally:
        con.unregister("upd")


def write_meta(con: duckdb.DuckDBPyConnection, key: str, value: Any) -> None:
    con.execute("DELETE FROM meta WHERE key = ?", [key])
    con.execute("INSERT INTO meta VALUES (?, ?)", [key, json.dumps(clean_json(value))])


def read_meta(con: duckdb.DuckDBPyConnection, key: str) -> Any:
    row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else None


def write_design(con: duckdb.DuckDBPyConnection, design: list[tuple]) -> None:
    """Replace the design: rows of (point, seed, run_id, grp, sample_row, x, params)."""
    con.execute("DROP TABLE IF EXISTS design")
    con.execute(DESIGN_DDL)
    if design:
        df = pd.DataFrame([(*r[:6], json.dumps(clean_json(r[6]))) for r in design],
                          columns=["point", "seed", "run_id", "grp", "sample_row", "x",
                                   "params"])
        con.register("des", df)
        try:
            con.execute("INSERT INTO design SELECT point::INTEGER, seed::BIGINT, run_id, "
                        "grp::INTEGER, sample_row::INTEGER, x::DOUBLE[], params::JSON "
                        "FROM des")
        finally:
            con.unregister("des")


def statuses(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT run_id, status FROM runs").fetchall())


# --- run folders -----------------------------------------------------------------------------


def runs_dir(study_dir: Path) -> Path:
    return study_dir / RUNS_DIR


def finished_folders(study_dir: Path) -> set[str]:
    """Ids of runs whose folder is complete (renamed into place, run.json inside)."""
    root = runs_dir(study_dir)
    if not root.is_dir():
        return set()
    return {e.name for e in os.scandir(root)
            if e.is_dir() and not e.name.startswith(".") and os.path.isfile(
                os.path.join(e.path, RUN_JSON))}


def read_record(folder: Path) -> dict:
    """A run's record from its folder: run.json plus summary.json (ok runs)."""
    rec = json.loads((folder / RUN_JSON).read_text())
    summary = folder / "summary.json"
    if rec.get("status") == "ok" and summary.is_file():
        rec["summary"] = json.loads(summary.read_text())
    return rec


def sync(con: duckdb.DuckDBPyConnection, study_dir: Path, fields: list[FieldDef],
         study: str) -> tuple[int, int]:
    """Bring the runs table in line with the run folders: (rows added, rows dropped)."""
    on_disk = finished_folders(study_dir)
    have = set(statuses(con))
    add = sorted(on_disk - have)
    drop = sorted(have - on_disk)
    rows = []
    for run_id in add:
        try:
            rows.append(row_from_record(read_record(runs_dir(study_dir) / run_id), fields,
                                        study))
        except (OSError, ValueError, KeyError):
            continue       # unreadable: left out, so that the run is done again
    for i in range(0, len(rows), 500):
        upsert(con, rows[i:i + 500])
    if drop:
        con.execute("DELETE FROM runs WHERE run_id IN (SELECT unnest(?))", [drop])
    return len(rows), len(drop)


def clean_tmp(study_dir: Path, older_than_s: float = 60.0) -> int:
    """Remove temporary run folders left by killed workers: those whose writer (a process on
    this host) is gone, and any older than `older_than_s` (writing a folder takes moments)."""
    import socket

    root = runs_dir(study_dir)
    if not root.is_dir():
        return 0
    n = 0
    now = time.time()
    host = socket.gethostname()
    for e in os.scandir(root):
        if not e.name.startswith(TMP_PREFIX):
            continue
        with contextlib.suppress(OSError):
            stale = now - e.stat().st_mtime > older_than_s
            writer = Path(e.path, WRITER)
            if not stale and writer.is_file():
                who, _, pid = writer.read_text().partition(" ")
                stale = who == host and pid.isdigit() and not _alive(int(pid))
            if stale:
                shutil.rmtree(e.path, ignore_errors=True)
                n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json_atomic(path: Path, value: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(clean_json(value), fh, indent=1)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


# --- reading: a consistent in-memory copy ----------------------------------------------------


def study_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and ((p / STUDY_JSON).is_file() or (p / CATALOG).is_file()))


def describe_of(study_dir: Path) -> dict | None:
    path = study_dir / STUDY_JSON
    if path.is_file():
        return json.loads(path.read_text())
    return None


def snapshot(study_dir: Path, timeout: float = 10.0,
             con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the study's tables, brought in line with its run folders.

    The catalog file is attached read-only just long enough to copy it, so reading works while
    a sweep is writing (and never blocks it for long)."""
    mem = con or duckdb.connect()
    describe = describe_of(study_dir)
    path = study_dir / CATALOG
    if path.is_file():
        deadline = time.monotonic() + timeout
        while True:
            try:
                mem.execute(f"ATTACH '{path}' AS cat (READ_ONLY)")
                break
            except (duckdb.IOException, duckdb.ConnectionException,
                    duckdb.BinderException) as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise CatalogBusy(f"catalog {path} stayed locked: {exc}") from None
                time.sleep(0.05)
        try:
            for (table,) in mem.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_catalog = 'cat'").fetchall():
                mem.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM cat."{table}"')
        finally:
            mem.execute("DETACH cat")
        if describe is None:
            describe = read_meta(mem, "study") if _has_table(mem, "meta") else None
    if describe is None:
        raise FileNotFoundError(f"{study_dir} holds no study (no {STUDY_JSON}, no {CATALOG})")
    fields = fields_of(describe)
    ensure_schema(mem, fields)
    sync(mem, study_dir, fields, describe["name"])
    write_meta(mem, "study", describe)
    return mem


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchone()[0])

"""A user's own time series: read from CSV or Parquet, checked, resampled to the run's grid.

A scenario names its series in a `data:` section (schema: `environment.scenario.SeriesSpec`):
a file, the value column, its unit and the timestamp column. Reading checks what goes wrong with
real data and names the file and the column in the message: a missing column, timestamps that
do not parse, repeat, go backwards or leave gaps (a daylight-saving change in local time is
the common one: give UTC offsets, `2024-03-31T03:00+02:00`, or UTC times), missing or
non-numeric values, a unit that does not fit the use, and a file that does not cover the run.

Timestamps mark the start of each interval; timestamps with UTC offsets are converted to UTC,
naive ones are taken as they are. Any regular resolution works: values are averaged onto a
coarser grid and held constant onto a finer one (energy per interval is first turned into
average power), so a 5-minute file drives an hourly run and an hourly file a 15-minute one.

pandas is imported only when a file is read, so that validating a scenario stays fast.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from environment.errors import ScenarioError, did_you_mean

# unit -> (kind, factor to MW, MWh per interval, p.u. or EUR/MWh)
UNITS: dict[str, tuple[str, float]] = {
    "W": ("power", 1e-6), "kW": ("power", 1e-3), "MW": ("power", 1.0), "GW": ("power", 1e3),
    "Wh": ("energy", 1e-6), "kWh": ("energy", 1e-3), "MWh": ("energy", 1.0),
    "GWh": ("energy", 1e3),
    "p.u.": ("share", 1.0),
    "EUR/MWh": ("price", 1.0), "EUR/kWh": ("price", 1e3),
}
SUFFIXES = (".csv", ".parquet", ".pq")
MAX_SHARE = 2.0
"""p.u. values above this are taken for a wrong unit (a capacity factor or a normalised shape
stays near or below 1)."""
SHOWN = 3


class DataError(ScenarioError):
    """A data series that cannot be used; the message names the file and the column."""


def unit_kind(unit: str) -> str:
    return UNITS[unit][0]


@dataclass(frozen=True)
class Series:
    """A checked series: `values` in MW (power and energy units), p.u. or EUR/MWh, one per
    interval of `step_minutes` from `start` (naive; UTC where the file gave offsets)."""

    name: str
    where: str
    unit: str
    start: dt.datetime
    step_minutes: int
    values: np.ndarray

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.step_minutes * len(self.values))

    @property
    def kind(self) -> str:
        return unit_kind(self.unit)

    def window(self, start: dt.datetime, n: int, step_minutes: int) -> np.ndarray:
        """`n` values on a grid of `step_minutes` from `start`: means of finer data, finer
        steps of coarser data; a `DataError` if the file does not cover it or its grid does not
        line up with the run's."""
        end = start + dt.timedelta(minutes=step_minutes * n)
        if start < self.start or end > self.end:
            raise DataError(f"{self.where}: covers {_t(self.start)} to {_t(self.end)}, the run "
                            f"needs {_t(start)} to {_t(end)} ({n} intervals of {step_minutes} "
                            "min): wrong length or period")
        g = math.gcd(self.step_minutes, step_minutes)
        offset = (start - self.start) / dt.timedelta(minutes=1)
        if offset % g:
            raise DataError(f"{self.where}: its timestamps ({self.step_minutes}-min steps from "
                            f"{_t(self.start)}) do not line up with the run's {step_minutes}-min "
                            f"grid from {_t(start)}")
        fine = np.repeat(self.values, self.step_minutes // g)
        first = int(offset // g)
        per = step_minutes // g
        return fine[first:first + n * per].reshape(n, per).mean(axis=1)


def _t(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


def check_spec(name: str, file: str, unit: str) -> list[str]:
    """Problems of a `data` entry that need no reading: the file, its type and the unit."""
    out = []
    p = Path(file)
    if p.suffix.lower() not in SUFFIXES:
        out.append(f"data.{name}.file = {file!r}: expected a .csv or .parquet file")
    elif p.is_dir():
        out.append(f"data.{name}.file = {file!r}: is a folder")
    elif not p.is_file():
        out.append(f"data.{name}.file = {file!r}: file not found")
    if unit not in UNITS:
        out.append(f"data.{name}.unit = {unit!r}: unknown unit{did_you_mean(unit, UNITS)}; "
                   f"known: {', '.join(UNITS)}")
    return out


def read_series(name: str, file: str, column: str, unit: str,
                timestamp: str | None = None) -> Series:
    """Read and check one series (cached per file version, so a sweep reads it once)."""
    p = Path(file)
    try:
        st = p.stat()
    except OSError as exc:
        raise DataError(f"data.{name}: file {file}: {exc.strerror}") from None
    return _read(name, str(p.resolve()), column, unit, timestamp, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _read(name: str, file: str, column: str, unit: str, timestamp: str | None,
          _mtime: int, _size: int) -> Series:
    import pandas as pd

    where = f"data.{name}: file {file}, column {column!r}"
    frame = _frame(name, file)
    cols = [str(c) for c in frame.columns]
    frame.columns = cols
    ts_col = timestamp if timestamp is not None else cols[0]
    for label, col in (("timestamp", ts_col), ("value", column)):
        if col not in cols:
            raise DataError(f"data.{name}: file {file} has no {label} column {col!r}"
                            f"{did_you_mean(col, cols)}; its columns: {cols}")
    if ts_col == column:
        raise DataError(f"{where}: the value column is also the timestamp column")
    if len(frame) < 1:
        raise DataError(f"{where}: no rows")
    stamps = _timestamps(frame[ts_col])
    bad = stamps.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)[:SHOWN]
        shown = ", ".join(f"row {r + 2} ({frame[ts_col].iloc[r]!r})" for r in rows)
        raise DataError(f"data.{name}: file {file}, timestamp column {ts_col!r}: {bad.sum()} "
                        f"value(s) are not timestamps: {shown}")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    t = stamps.to_numpy("datetime64[s]")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    missing = ~np.isfinite(values)
    if missing.any():
        idx = np.flatnonzero(missing)
        shown = ", ".join(str(t[i])[:16].replace("T", " ")
                          + ("" if pd.isna(frame[column].iloc[i]) else
                             f" ({frame[column].iloc[i]!r})") for i in idx[:SHOWN])
        raise DataError(f"{where}: {len(idx)} missing or non-numeric value(s) (NaN), at "
                        f"{shown}" + (" ..." if len(idx) > SHOWN else ""))
    step = _step(where, t)
    kind, factor = UNITS[unit]
    values = values * factor
    if kind == "energy":
        values = values / (step / 60)       # MWh per interval -> average MW
    if kind == "share" and values.max(initial=0) > MAX_SHARE:
        raise DataError(f"{where}: unit 'p.u.' but values reach {values.max():g}: a per-unit "
                        "series stays near or below 1; is the unit a power (kW, MW)?")
    start = t[0].astype("datetime64[s]").astype(dt.datetime)
    return Series(name, where, unit, start, step, values)


def _timestamps(raw):
    """Timestamps of a column: datetimes as they are; text as ISO 8601 (other formats
    inferred), in UTC where it carries offsets; NaT where a value is no timestamp."""
    import warnings

    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    text = raw.astype(str).str.strip()
    offsets = bool(text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).any())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stamps = pd.to_datetime(text, errors="coerce", utc=offsets, format="ISO8601")
        if stamps.isna().mean() > 0.5:
            stamps = pd.to_datetime(text, errors="coerce", utc=offsets, format="mixed")
    return stamps


def _frame(name: str, file: str):
    import pandas as pd

    try:
        if file.lower().endswith(".csv"):
            frame = pd.read_csv(file, comment="#")
            if frame.shape[1] == 1 and ";" in str(frame.columns[0]):
                frame = pd.read_csv(file, sep=";", comment="#")   # a semicolon-separated CSV
            return frame
        return pd.read_parquet(file)
    except (UnicodeDecodeError, ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"data.{name}: file {file} cannot be read as "
                        f"{'CSV' if file.lower().endswith('.csv') else 'Parquet'}: {first}") \
            from None
    except Exception as exc:  # pyarrow's own errors for a file that is not Parquet
        raise DataError(f"data.{name}: file {file} cannot be read: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def _step(where: str, t: np.ndarray) -> int:
    """The regular step in minutes; a `DataError` naming repeated, unordered or missing
    timestamps."""
    if len(t) < 2:
        raise DataError(f"{where}: one timestamp only; at least two are needed to tell the "
                        "resolution")
    d = np.diff(t).astype("timedelta64[s]").astype(np.int64)
    if (d <= 0).any():
        i = int(np.flatnonzero(d <= 0)[0])
        what = "repeats" if d[i] == 0 else "goes backwards"
        raise DataError(f"{where}: timestamp {_np(t[i + 1])} {what} (after {_np(t[i])}); "
                        "timestamps must increase (a daylight-saving change in local time? "
                        "give UTC offsets or UTC times)")
    step_s = int(np.min(d))
    if step_s % 60:
        raise DataError(f"{where}: step of {step_s} s: the resolution must be whole minutes")
    gaps = np.flatnonzero(d != step_s)
    if len(gaps):
        shown = ", ".join(f"after {_np(t[i])} ({d[i] // 60 - step_s // 60} min missing)"
                          for i in gaps[:SHOWN])
        raise DataError(f"{where}: missing timestamps in a {step_s // 60}-min series: {shown}"
                        + (f" and {len(gaps) - SHOWN} more gaps" if len(gaps) > SHOWN else "")
                        + " (a daylight-saving change in local time? give UTC offsets)")
    return step_s // 60


def _np(t) -> str:
    return str(t)[:16].replace("T", " ")


def file_digest(file: str) -> str:
    """A short content digest of a data file (part of a run's id: other data, another run)."""
    import hashlib

    h = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def digests(specs: dict) -> dict[str, str]:
    """{name: digest} of the files of a scenario's `data` section (missing files skipped)."""
    out = {}
    for name, spec in sorted(specs.items()):
        f = spec["file"] if isinstance(spec, dict) else spec.file
        if os.path.isfile(f):
            out[name] = file_digest(f)
    return out

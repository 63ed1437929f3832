"""A user's own time series: read from CSV and Parquet, checked (every bad file names the file
and the column), resampled to the run's grid, and driving a run through the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from environment.scenario import ScenarioError, load_scenario
from environment.series import DataError, read_series
from experiments.cli import main

DATA = Path(__file__).resolve().parent / "data"
OWN = DATA / "own_data.yaml"
CSV = DATA / "winter_week_2024.csv"


def _csv(tmp_path, text: str, name: str = "s.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_users_csv_drives_a_run(tmp_path, capsys):
    """tests/data/own_data.yaml: the default scenario in January 2024, households shaped by a
    CSV column and the rest of the system's load taken from another as it is (MW)."""
    out = tmp_path / "own"
    assert main(["run", str(OWN), "--out", str(out), "-q", "--no-figures"]) == 0
    text = capsys.readouterr().out
    assert "2024-01-15 (Mon) reads 2016-01-18 (Mon)" in text
    series = pd.read_parquet(out / "series.parquet")
    csv = pd.read_csv(CSV, comment="#")
    hourly = csv["system_mw"].to_numpy()[:48]
    np.testing.assert_allclose(series["system_load_mw"].to_numpy(), np.repeat(hourly, 4),
                               rtol=1e-12)
    assert series["timestamp"].iloc[0] == pd.Timestamp("2024-01-15")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["start"] == "2024-01-15"
    assert "reads 2016-01-18" in summary["run"]["profile_year"]
    # the households follow the CSV's shape: their evening peak hours are 17-22
    load = series.groupby(series["timestamp"].dt.hour)["prosumer_load_mw"].mean()
    assert load.loc[17:21].mean() > 2 * load.loc[0:5].mean()


def test_resampling_means_finer_and_holds_coarser(tmp_path):
    five = "t,v\n" + "".join(f"2024-01-01T00:{m:02d},{m}\n" for m in range(0, 60, 5))
    s = read_series("x", _csv(tmp_path, five + "2024-01-01T01:00,60\n"), "v", "kW")
    assert s.step_minutes == 5
    got = s.window(dt.datetime(2024, 1, 1), 4, 15)
    np.testing.assert_allclose(got, np.array([5, 20, 35, 50]) / 1e3)
    hourly = read_series("y", _csv(tmp_path, "t,v\n2024-01-01T00:00,1\n2024-01-01T01:00,3\n",
                                   "h.csv"), "v", "MW")
    np.testing.assert_allclose(hourly.window(dt.datetime(2024, 1, 1), 8, 15),
                               [1, 1, 1, 1, 3, 3, 3, 3])


def test_energy_per_interval_is_average_power(tmp_path):
    s = read_series("e", _csv(tmp_path, "t,e\n2024-01-01T00:00,250\n2024-01-01T00:15,500\n"),
                    "e", "kWh")
    np.testing.assert_allclose(s.values, [1.0, 2.0])  # 0.25 MWh in 15 min is 1 MW


def test_offsets_are_converted_to_utc_across_a_clock_change(tmp_path):
    text = ("time,v\n2024-03-31T01:00+01:00,1\n2024-03-31T03:00+02:00,2\n"
            "2024-03-31T04:00+02:00,3\n")
    s = read_series("d", _csv(tmp_path, text), "v", "MW")
    assert s.start == dt.datetime(2024, 3, 31, 0, 0) and s.step_minutes == 60
    np.testing.assert_allclose(s.values, [1, 2, 3])


def test_parquet_reads_like_csv(tmp_path):
    path = tmp_path / "s.parquet"
    pd.DataFrame({"when": pd.date_range("2024-01-01", periods=4, freq="15min"),
                  "pv": [0.0, 0.5, 1.0, 0.5]}).to_parquet(path)
    s = read_series("pv", str(path), "pv", "p.u.", "when")
    np.testing.assert_allclose(s.window(dt.datetime(2024, 1, 1), 1, 60), [0.5])


BAD = [
    ("nan", "t,v\n2024-01-01T00:00,1\n2024-01-01T01:00,\n2024-01-01T02:00,3\n", "v", "MW",
     r"1 missing or non-numeric value\(s\) \(NaN\), at 2024-01-01 01:00"),
    ("text-value", "t,v\n2024-01-01T00:00,1\n2024-01-01T01:00,n/a\n", "v", "MW",
     "missing or non-numeric"),
    ("gap", "t,v\n2024-01-01T00:00,1\n2024-01-01T01:00,1\n2024-01-01T03:00,1\n", "v", "MW",
     r"missing timestamps in a 60-min series: after 2024-01-01 01:00 \(60 min missing\)"),
    ("local-time-clock-change", "t,v\n2024-03-31T01:00,1\n2024-03-31T03:00,1\n"
     "2024-03-31T04:00,1\n", "v", "MW", "daylight-saving"),
    ("repeat", "t,v\n2024-01-01T00:00,1\n2024-01-01T00:00,2\n", "v", "MW", "repeats"),
    ("backwards", "t,v\n2024-01-01T01:00,1\n2024-01-01T00:00,2\n", "v", "MW", "goes backwards"),
    ("not-a-timestamp", "t,v\nyesterday,1\n2024-01-01T00:00,2\n", "v", "MW",
     r"not timestamps: row 2 \('yesterday'\)"),
    ("no-column", "t,v\n2024-01-01T00:00,1\n2024-01-01T01:00,1\n", "value", "MW",
     r"no value column 'value'.*columns: \['t', 'v'\]"),
    ("one-row", "t,v\n2024-01-01T00:00,1\n", "v", "MW", "one timestamp only"),
    ("pu-that-is-kw", "t,v\n2024-01-01T00:00,850\n2024-01-01T01:00,900\n", "v", "p.u.",
     "unit 'p.u.' but values reach 900"),
]


@pytest.mark.parametrize(("text", "column", "unit", "message"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_files_name_the_file_and_the_column(tmp_path, text, column, unit, message):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        read_series("x", path, column, unit)
    assert path in str(err.value) and "data.x" in str(err.value)


def test_a_file_that_does_not_cover_the_run(tmp_path):
    s = read_series("x", str(CSV), "system_mw", "MW")
    with pytest.raises(DataError, match=r"covers 2024-01-15 00:00 to 2024-01-22 00:00, the run "
                                        r"needs 2024-01-20 00:00 to 2024-01-24 00:00"):
        s.window(dt.datetime(2024, 1, 20), 16, 360)


def test_a_spreadsheet_is_not_read_as_csv(tmp_path):
    path = tmp_path / "book.csv"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"data.x: file .*book.csv"):
        read_series("x", str(path), "v", "MW")


def _own(tmp_path, **changes) -> Path:
    text = OWN.read_text().replace("file: winter_week_2024.csv", f"file: {CSV}")
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / "own.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ("unit: kW", "unit: EUR/MWh", r"prosumers\[0\].load_profiles\[0\] = 'household': series in "
                                  "EUR/MWh"),
    ("column: system_mw", "column: system", "no value column 'system'"),
    ("calendar: {start: 2024-01-15, days: 2}", "calendar: {start: 2024-01-21, days: 2}",
     "the run needs 2024-01-21 00:00 to 2024-01-23 00:00"),
])
def test_a_bad_series_stops_the_cli_before_simulating(tmp_path, capsys, old, new, message):
    out = tmp_path / "out"
    assert main(["run", str(_own(tmp_path, **{old: new})), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not out.exists()


def test_relative_data_paths_follow_the_file_that_names_them(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {OWN}\nseed: 3\n")
    s = load_scenario(child)
    assert Path(s.data["system"].file) == CSV
    with pytest.raises(ScenarioError, match="data.system.file"):
        load_scenario(_own(tmp_path, **{"file: " + str(CSV): "file: nowhere.csv"}))

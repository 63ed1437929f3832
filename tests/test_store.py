"""Runs never overwrite each other: run ids hash the resolved scenario, a folder with results is
replaced only with --overwrite, output paths are checked before any simulation, and a full disk
leaves the old results (or nothing) and says so in one line."""

from __future__ import annotations

import errno
import json
import time
import warnings

import pytest

from experiments.cli import main
from experiments.plan import plan_run
from experiments.store import DiskFull, OutputExists, check_output_dir, writing

SMALL = ["--days", "1", "--no-planner", "--no-figures", "-q"]


def test_two_runs_with_different_sets_leave_two_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *SMALL, "--set", "prosumers.0.count=20"]) == 0
    assert main(["run", *SMALL, "--set", "prosumers.0.count=30"]) == 0
    folders = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert len(folders) == 2, folders
    assert all(f.startswith("default-seed42-1d-") for f in folders)
    cfg = {f: (tmp_path / "results" / f / "config.yaml").read_text() for f in folders}
    assert sum("prosumers.0.count=30" in text for text in cfg.values()) == 1
    summaries = [json.loads((tmp_path / "results" / f / "summary.json").read_text())
                 for f in folders]
    assert sorted(s["run"]["overrides"]["prosumers.0.count"] for s in summaries) == [20, 30]
    assert {s["run"]["id"] for s in summaries} == set(folders)


def test_the_same_run_again_needs_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", *SMALL, "--set", "prosumers.0.count=10"]
    assert main(args) == 0
    (folder,) = (tmp_path / "results").iterdir()
    stamp = (folder / "summary.json").stat().st_mtime_ns
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds results already" in err and "--overwrite" in err and str(folder.name) in err
    assert time.perf_counter() - t0 < 5, "refused only after simulating"
    assert (folder / "summary.json").stat().st_mtime_ns == stamp
    assert main([*args, "--overwrite"]) == 0
    assert (folder / "summary.json").stat().st_mtime_ns != stamp
    assert [p.name for p in (tmp_path / "results").iterdir()] == [folder.name]


def test_run_id_hashes_the_resolved_scenario_and_data():
    a = plan_run("default", days=1, write=False)
    b = plan_run("default", days=1, overrides={"tso.pricing": "dual"}, write=False)
    c = plan_run("default", days=1, overrides={"tso.pricing": "single"}, write=False)
    assert a.run_id != b.run_id
    assert a.run_id == c.run_id      # setting the value it has is the same scenario
    assert a.run_id.startswith("default-seed42-1d-") and len(a.run_id.split("-")[-1]) == 8


@pytest.mark.parametrize("case", ["file", "under-a-file", "read-only", "holds-results"])
def test_output_paths_are_checked_before_simulating(tmp_path, capsys, case):
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "summary.json").write_text("{}")
    out = {"file": blocker, "under-a-file": blocker / "run", "read-only": "/sys/flexmarkets-run",
           "holds-results": full}[case]
    t0 = time.perf_counter()
    assert main(["run", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert str(out) in err
    assert time.perf_counter() - t0 < 5
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_full_disk_leaves_the_old_results_and_no_temporary_folder(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "summary.json").write_text("old")

    def fill_disk(folder):
        (folder / "half.parquet").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull, match="disk full while writing"):
        with writing(target, overwrite=True) as tmp:
            fill_disk(tmp)
    assert (target / "summary.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_writing_refuses_a_folder_with_results(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a").write_text("1")
    with pytest.raises(OutputExists), writing(tmp_path / "x"):
        pass
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()


def test_a_date_given_on_the_command_line_is_written_as_text(tmp_path):
    """`--set calendar.start=2016-01-06` reaches the run as a date (YAML reads it so); the
    summary states the override as ISO text instead of failing to write summary.json after the
    whole simulation, and the bar's warnings are kept until it closes."""
    import datetime

    from experiments.run import run_scenario

    out = tmp_path / "run"
    run_scenario(days=1, out=out, planner=False, figures=False, progress=True,
                 overrides={"prosumers.0.count": 20,
                            "calendar.start": datetime.date(2016, 1, 6)})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["overrides"]["calendar.start"] == "2016-01-06"


def test_warnings_held_under_the_bar_are_printed_when_the_run_fails(tmp_path, monkeypatch):
    """A run that fails after warning (e.g. a truncation before a crash) still shows the
    warning: it may be what explains the failure."""
    from environment.model import FlexMarketModel
    from experiments.run import run_scenario

    def warn_then_fail(self, progress=None):
        warnings.warn("held under the bar", UserWarning, stacklevel=1)
        raise RuntimeError("crash")

    monkeypatch.setattr(FlexMarketModel, "run", warn_then_fail)
    with pytest.warns(UserWarning, match="held under the bar"), \
            pytest.raises(RuntimeError, match="crash"):
        run_scenario(days=1, out=tmp_path / "run", planner=False, figures=False,
                     progress=True, overrides={"prosumers.0.count": 20})

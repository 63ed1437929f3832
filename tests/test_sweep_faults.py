"""Faults around a sweep stop cleanly: an unreachable Dask scheduler at once (one line, no
folder), a full disk with one line and its own exit status (the run is retried on resume),
failed runs counted from the run folders even when the catalog cannot be read, study files
that are not text or repeat a key, and `--dry-run` estimating the study's run time."""

from __future__ import annotations

import errno
import json
import socket
import time
from pathlib import Path

import yaml

import experiments.run
from experiments.cli import main
from experiments.sweep_cli import failed_runs

TINY = {"calendar.days": 1, "prosumers.0.count": 20, "planner.enabled": False}


def _study(tmp_path: Path, name: str = "f", **spec) -> Path:
    data = {"name": name, "base": "default", "overrides": dict(TINY), "seeds": [1, 2],
            "metrics": ["welfare_eur.total"], **spec}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_fails_at_once_without_a_folder(tmp_path, capsys):
    results = tmp_path / "results"
    t0 = time.perf_counter()
    code = main(["sweep", str(_study(tmp_path)), "--results", str(results), "--scheduler",
                 f"tcp://127.0.0.1:{_free_port()}", "-q"])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 5, (code, elapsed)
    assert err.count("\n") == 1 and "no Dask scheduler answers there" in err, err
    assert not results.exists()


def test_a_full_disk_stops_the_sweep_in_one_line_and_the_run_is_retried(tmp_path, capsys,
                                                                       monkeypatch):
    study, results = _study(tmp_path, seeds=[1, 2, 3]), tmp_path / "results"
    real = experiments.run.write_results
    calls = []

    def fill_up(result, out_dir, figures=True):
        calls.append(out_dir)
        if len(calls) == 2:
            (Path(out_dir) / "half.parquet").write_text("x")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(result, out_dir, figures)

    monkeypatch.setattr(experiments.run, "write_results", fill_up)
    code = main(["sweep", str(study), "--results", str(results), "--workers", "0", "-q"])
    err = capsys.readouterr().err
    assert code == 3, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "disk full" in lines[0] and "Traceback" not in err
    runs = results / "f" / "runs"
    done = [p.name for p in runs.iterdir() if not p.name.startswith(".")]
    assert len(done) == 1                     # the first run; the second left nothing
    monkeypatch.setattr(experiments.run, "write_results", real)
    assert main(["sweep", str(study), "--results", str(results), "--workers", "0", "-q"]) == 0
    statuses = [json.loads((p / "run.json").read_text())["status"] for p in runs.iterdir()]
    assert statuses == ["ok"] * 3


def test_failed_runs_are_counted_from_the_folders(tmp_path):
    runs = tmp_path / "runs"
    for run_id, status in (("a", "ok"), ("b", "failed"), ("c", "failed")):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "run.json").write_text(json.dumps({"status": status}))
    (tmp_path / "catalog.duckdb").write_text("not a database")
    assert failed_runs(tmp_path, {"a", "b", "c"}) == 2
    assert failed_runs(tmp_path, {"a"}) == 0


def test_study_files_that_are_not_text_or_repeat_a_key(tmp_path, capsys):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\x01PK\x03\x04")
    assert main(["sweep", str(binary), "--results", str(tmp_path / "r")]) == 2
    assert "not a text file" in capsys.readouterr().err
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: d\nbase: default\nseeds: 2\nseeds: 3\n")
    assert main(["sweep", str(dup), "--results", str(tmp_path / "r")]) == 2
    assert "key 'seeds' appears twice" in capsys.readouterr().err
    assert main(["sweep", "flex_penetraton", "--results", str(tmp_path / "r")]) == 2
    assert "did you mean flex_penetration" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_results_folder_that_is_a_file_stops_before_running(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("x")
    assert main(["sweep", str(_study(tmp_path)), "--results", str(blocker), "-q"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_dry_run_estimates_the_run_time(tmp_path, capsys):
    assert main(["sweep", str(_study(tmp_path, seeds=[1, 2, 3, 4])), "--results",
                 str(tmp_path / "r"), "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "estimated: 4 runs of 1 day, about" in out and "on 2 workers" in out


def test_every_shipped_study_states_its_run_time():
    import re

    from experiments.study_schema import shipped_studies

    for path in shipped_studies():
        head = "\n".join(ln for ln in path.read_text().splitlines() if ln.startswith("#"))
        assert re.search(r"\d+ (s|seconds?|minutes?|min|hours?)\b", head), path.name

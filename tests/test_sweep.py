"""Studies and sweeps: study files validated on load, runs resumable after any interruption,
failures recorded, Dask and local runners agreeing, the catalog and the reports.

Runs are tiny (1 day, 40 households, planner off unless a test needs longer runs) and go to
pytest's tmp dirs. The sweep command line is run as `python -m experiments.sweep_cli` (the
same `register_cli` that experiments/cli.py wires in as `flexmarkets sweep`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import psutil
import pytest
import yaml

import agents.aggregator
from environment.scenario import ScenarioError
from experiments import catalog as cat
from experiments.report import make_report
from experiments.study import load_study
from experiments.study_schema import StudyError, shipped_studies
from experiments.sweep import (
    DaskRunner,
    InlineRunner,
    LocalRunner,
    StudyBusy,
    run_study,
    study_lock,
)

ROOT = Path(__file__).resolve().parent.parent
TINY = {"calendar.days": 1, "prosumers.0.count": 40, "planner.enabled": False}
METRICS = ["welfare_eur.total", "congestion.red", "imbalance.system_abs_mwh"]
SHIPPED = {"flex_penetration", "pricing_sensitivity", "coupling_compensation",
         "tso_dso_coordination", "lfm_price_cap_gaming", "intraday_design", "lem_scope"}


def study_file(tmp_path: Path, name: str = "s", **spec) -> Path:
    data = {"name": name, "base": "default", "overrides": dict(TINY), "seeds": [1, 2],
            "metrics": METRICS, **spec}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def grid(**axes) -> dict:
    return {"grid": {k.replace("__", "."): v for k, v in axes.items()}}


@pytest.fixture(scope="module")
def runner():
    r = LocalRunner(2)
    r.start()
    yield r
    r.close()


def catalog_rows(study_dir: Path, cols: str = "*", order: str = "ORDER BY run_id"
                 ) -> list[tuple]:
    with cat.connect(study_dir / cat.CATALOG, read_only=True) as con:
        return con.execute(f"SELECT {cols} FROM runs {order}").fetchall()


def comparable(study_dir: Path) -> list[tuple]:
    """Run ids, params, seed, status and metrics (not timings) of every run."""
    with cat.connect(study_dir / cat.CATALOG, read_only=True) as con:
        fields = [r[0] for r in con.execute("SELECT column_name FROM fields ORDER BY 1")
                  .fetchall()]
        cols = ", ".join(["run_id", "status", "seed", "params"] + [f'"{f}"' for f in fields])
        return con.execute(f"SELECT {cols} FROM runs ORDER BY run_id").fetchall()


# --- study files --------------------------------------------------------------------------


BAD = [
    ("unknown-key", {"colour": "blue"}, ["colour", "'blue'", "unknown key"]),
    ("unknown-axis-path", {"axes": grid(markets__no_such_field=[1, 2])},
     ["markets.no_such_field", "no field 'no_such_field' in 'markets'"]),
    ("unknown-axis-root", {"axes": {"zip": {"settlement_x.compensation": ["none"]}}},
     ["settlement_x.compensation", "no field 'settlement_x'"]),
    ("axis-value-rejected", {"axes": grid(aggregators__0__enrolment=[0.5, 1.5])},
     ["axes.grid['aggregators.0.enrolment'][1] = 1.5", "aggregators[0].enrolment"]),
    ("axis-wrong-type", {"axes": grid(calendar__mtu_minutes=[15, "quarter"])},
     ["calendar.mtu_minutes", "'quarter'"]),
    ("index-out-of-range", {"axes": grid(aggregators__3__strategy=["truthful"])},
     ["aggregators.3.strategy", "has 1 item(s)"]),
    ("unknown-strategy", {"axes": grid(aggregators__0__strategy=["truthful", "psychic"])},
     ["aggregators[0].strategy = 'psychic'", "unknown strategy"]),
    ("zip-lengths", {"axes": {"zip": {"tso.up_markup_eur_mwh": [5, 10],
                                      "tso.down_markdown_eur_mwh": [5]}}},
     ["axes.zip", "differ in length"]),
    ("duplicate-values", {"axes": grid(tso__up_markup_eur_mwh=[5, 5])},
     ["tso.up_markup_eur_mwh", "duplicate"]),
    ("axis-and-override", {"axes": grid(calendar__days=[1, 2])},
     ["calendar.days", "also fixed in overrides"]),
    ("seed-axis", {"axes": grid(seed=[1, 2])}, ["'seed' cannot be an axis"]),
    ("sobol-not-power-of-2",
     {"axes": {"sample": {"method": "sobol", "n": 10,
                          "params": {"tso.up_markup_eur_mwh": [0, 60]}}}},
     ["axes.sample.n = 10", "power of 2"]),
    ("sample-bounds",
     {"axes": {"sample": {"method": "latin", "n": 8,
                          "params": {"forecast.load_error_sd": [0.3, 0.1]}}}},
     ["forecast.load_error_sd", "[0.3, 0.1]", "low must be below high"]),
    ("sample-non-numeric",
     {"axes": {"sample": {"method": "morris", "n": 4,
                          "params": {"tso.pricing": [0, 1]}}}},
     ["tso.pricing", "not a number"]),
    ("sample-method", {"axes": {"sample": {"method": "sobal", "n": 8,
                                           "params": {"tso.up_markup_eur_mwh": [0, 1]}}}},
     ["axes.sample.method = 'sobal'"]),
    ("seeds", {"seeds": "three"}, ["seeds = 'three'"]),
    ("seeds-negative", {"seeds": [1, -2]}, ["seeds = [1, -2]"]),
    ("metric-syntax", {"metrics": ["welfare eur total"]},
     ["metrics[0] = 'welfare eur total'", "dotted path"]),
    ("override-path", {"overrides": {"calendar.dayz": 1}},
     ["overrides['calendar.dayz']", "no field 'dayz' in 'calendar'"]),
    ("override-value", {"overrides": {"calendar.days": 0}}, ["calendar.days = 0"]),
    ("base-missing", {"base": "no_such_scenario"}, ["base = 'no_such_scenario'", "not found"]),
    ("combination", {"axes": grid(brps__0__customer_share=[0.6, 0.7])},
     ["brps.0.customer_share", "0.7", "must sum to 1"]),
]


@pytest.mark.parametrize("case,spec,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_study_fails_clearly(tmp_path, case, spec, expected):
    with pytest.raises(StudyError) as info:
        load_study(study_file(tmp_path, **spec))
    msg = str(info.value)
    assert isinstance(info.value, ScenarioError)
    assert "invalid study" in msg and str(tmp_path) in msg
    for text in expected:
        assert text in msg, (text, msg)


def test_bad_study_files(tmp_path):
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "nothing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("axes: [unclosed\n")
    with pytest.raises(StudyError, match="not valid YAML"):
        load_study(bad)
    bad.write_text("- a list\n")
    with pytest.raises(StudyError, match="top level must be a mapping"):
        load_study(bad)


def test_cli_bad_study_exits_2(tmp_path, capsys):
    path = study_file(tmp_path, axes=grid(markets__no_such_field=[1]))
    assert _main(["sweep", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "markets.no_such_field" in err and "error:" in err
    assert not (tmp_path / "r").exists()


def test_design_and_run_ids(tmp_path):
    path = study_file(tmp_path, axes={
        **grid(aggregators__0__enrolment=[0.0, 0.6]),
        "zip": {"tso.up_markup_eur_mwh": [5, 25], "tso.down_markdown_eur_mwh": [5, 25]},
        "factors": {"flex": {"low": {"prosumers.0.battery.share": 0.1},
                             "high": {"prosumers.0.battery.share": 0.5}}}})
    a, b = load_study(path), load_study(path)
    assert len(a.points) == 2 * 2 * 2 and len(a.runs) == 16 and a.seeds == [1, 2]
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert len({r.run_id for r in a.runs}) == 16
    p = a.points[-1]
    assert p.params == {"aggregators.0.enrolment": 0.6, "tso.up_markup_eur_mwh": 25,
                        "tso.down_markdown_eur_mwh": 25, "flex": "high"}
    assert p.scenario["prosumers"][0]["battery"]["share"] == 0.5
    # the id depends on the resolved scenario only: a changed base changes every id
    c = load_study(path, overrides={"prosumers.0.pv.share": 0.5})
    assert not {r.run_id for r in a.runs} & {r.run_id for r in c.runs}
    # seeds: a count means 1..n
    d = load_study(study_file(tmp_path, "d", seeds=3))
    assert d.seeds == [1, 2, 3] and len(d.runs) == 3


def test_sampled_design(tmp_path):
    spec = {"axes": {"sample": {"method": "sobol", "n": 4, "seed": 3, "params": {
        "tso.up_markup_eur_mwh": [0, 60], "prosumers.0.battery.share": [0.1, 0.4]}}}}
    s = load_study(study_file(tmp_path, overrides={"calendar.days": 1}, seeds=[1], **spec))
    assert len(s.points) == 4 * (2 + 2)
    assert all(0 <= p.params["tso.up_markup_eur_mwh"] <= 60 for p in s.points)
    m = load_study(study_file(tmp_path, "m", overrides={"calendar.days": 1}, axes={"sample": {
        "method": "morris", "n": 3, "params": {"prosumers.0.count": [20, 60],
                                               "tso.up_markup_eur_mwh": [0, 60]}}}))
    counts = [p.params["prosumers.0.count"] for p in m.points]
    assert all(isinstance(c, int) for c in counts), "int fields are sampled as ints"


def test_shipped_studies_validate():
    names = {p.stem for p in shipped_studies()}
    assert SHIPPED <= names
    fp = load_study("flex_penetration")
    assert len(fp.runs) == 36 and fp.metrics[:4] == ["cost_efficiency", "system_cost_eur",
                                                     "welfare_eur.total", "congestion.red"]
    ps = load_study("pricing_sensitivity")
    assert ps.sample.method == "sobol" and len(ps.runs) == 64 * (4 + 2)
    for name in SHIPPED:
        assert load_study(name).runs
    # the region's study is too large to run here (9,102 buses): it validates, and its
    # factor sets the three aggregators' enrolments together
    rc = load_study("region_competition")
    assert len(rc.runs) == 24
    assert {p.scenario["aggregators"][1]["enrolment"] for p in rc.points} == {0.0, 0.4}


def small_version(name: str, tmp_path: Path) -> Path:
    """A shipped study shrunk for a test: 1 day, 40 households, planner off, one seed, two
    values per axis, the smallest sample."""
    data = yaml.safe_load(Path(shipped_studies()[0].parent / f"{name}.yaml").read_text())
    axes = data.get("axes", {})
    paths = set(axes.get("grid", {})) | {p for lv in axes.get("factors", {}).values()
                                        for lvl in lv.values() for p in lvl}
    data["overrides"] = {**data.get("overrides", {}),
                         **{k: v for k, v in TINY.items() if k not in paths}}
    data["seeds"] = [1]
    for path, values in axes.get("grid", {}).items():
        axes["grid"][path] = values[:2]
    for f, levels in axes.get("factors", {}).items():
        axes["factors"][f] = dict(list(levels.items())[:2])
    if "sample" in axes:
        axes["sample"]["n"] = 4
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_study_small_version_runs(tmp_path, runner, name):
    study = load_study(small_version(name, tmp_path))
    res = run_study(study, results=tmp_path / "results", runner=runner, progress=False,
                    log=lambda m: None)
    assert res.ok == res.total == len(study.unique_runs) and res.failed == 0
    files = {f.name for f in make_report(res.study_dir)}
    assert {"report.md", "runs.csv", "points.csv"} <= files
    if study.sample is not None:
        assert "sensitivity.csv" in files
    else:
        assert any(f.startswith("vs_") and f.endswith(".png") for f in files)


# --- resuming -----------------------------------------------------------------------------


def _cli(study: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "experiments.cli", "sweep", str(study), "--results",
            str(results), "-q", "--workers", "2", *extra]


def _finished(runs: Path) -> dict[str, str]:
    """Finished runs by folder; a run still being written lives in a `.tmp-*` folder that
    is renamed when it is done (so it may vanish while this reads)."""
    if not runs.is_dir():
        return {}
    return {d.name: (d / "run.json").read_text() for d in runs.iterdir()
            if not d.name.startswith(".") and (d / "run.json").is_file()}


def _wait_for(runs: Path, k: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while len(_finished(runs)) < k:
        assert proc.poll() is None, f"sweep ended before {k} runs: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting for runs"
        time.sleep(0.02)


def test_interrupted_study_resumes_to_the_same_catalog(tmp_path, runner):
    path = study_file(tmp_path, "resume", seeds=[1, 2, 3, 4], axes=grid(
        aggregators__0__enrolment=[0.0, 0.3, 0.6, 0.9], tso__pricing=["single", "dual"]))
    study = load_study(path)
    results = tmp_path / "results"
    runs = results / "resume" / cat.RUNS_DIR
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # 1. Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
    p = subprocess.Popen(_cli(path, results), cwd=tmp_path, env=env, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(runs, 3, p)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "run the same command again to resume" in err
    first = _finished(runs)
    assert 3 <= len(first) < 32

    # 2. a killed driver (SIGKILL: no chance to clean up); its workers must not outlive it
    p = subprocess.Popen(_cli(path, results), cwd=tmp_path, env=env, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(runs, len(first) + 3, p)
    children = psutil.Process(p.pid).children(recursive=True)
    p.kill()
    p.communicate(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"workers outlived the killed driver: {alive}"
    second = _finished(runs)
    assert len(second) < 32, "killed too late to test anything"
    assert all(second[k] == v for k, v in first.items()), "finished runs were redone"

    # 3. the same command again finishes the study without redoing anything
    done = subprocess.run(_cli(path, results), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)  # a hang guard: a busy machine takes minutes
    assert done.returncode == 0, done.stderr
    assert f"{len(second)} done" in done.stderr
    final = _finished(runs)
    assert len(final) == 32 and all(final[k] == v for k, v in second.items())
    assert not [d for d in runs.iterdir() if d.name.startswith(".")], "temporary folders left"

    # the same catalog as an uninterrupted study
    ref = run_study(study, results=tmp_path / "ref", runner=runner, progress=False,
                    log=lambda m: None)
    assert ref.ok == 32
    got, want = comparable(results / "resume"), comparable(tmp_path / "ref" / "resume")
    assert len(got) == 32 and got == want
    rows = catalog_rows(results / "resume", "count(*), count(DISTINCT run_id)", order="")
    assert rows == [(32, 32)]


def test_catalog_is_rebuilt_from_run_folders(tmp_path, runner):
    path = study_file(tmp_path, "rebuild", axes=grid(tso__up_markup_eur_mwh=[5, 25]))
    study = load_study(path)
    res = run_study(study, results=tmp_path, runner=runner, progress=False, log=lambda m: None)
    assert res.ok == 4
    want = comparable(res.study_dir)
    # a lost catalog: readers and the next sweep rebuild it from the folders, nothing reruns
    (res.study_dir / cat.CATALOG).unlink()
    con = cat.snapshot(res.study_dir)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
    again = run_study(study, results=tmp_path, runner=runner, progress=False,
                      log=lambda m: None)
    assert again.ran == 0 and again.done_before == 4
    assert comparable(res.study_dir) == want
    # a deleted run folder is a run to do again
    victim = want[0][0]
    import shutil

    shutil.rmtree(res.study_dir / cat.RUNS_DIR / victim)
    again = run_study(study, results=tmp_path, runner=runner, progress=False,
                      log=lambda m: None)
    assert again.ran == 1 and comparable(res.study_dir) == want
    # a metric added to the study later is filled in from the stored summaries
    spec = yaml.safe_load(path.read_text())
    spec["metrics"] = METRICS + ["da_price_eur_mwh.mean"]
    path.write_text(yaml.safe_dump(spec))
    again = run_study(load_study(path), results=tmp_path, runner=runner, progress=False,
                      log=lambda m: None)
    assert again.ran == 0
    values = catalog_rows(res.study_dir, "da_price_eur_mwh_mean")
    assert all(v[0] is not None and v[0] > 0 for v in values)


def test_one_sweep_per_study_folder(tmp_path):
    study = load_study(study_file(tmp_path, "busy"))
    with study_lock(tmp_path / "busy"), pytest.raises(StudyBusy, match="in use by pid"):
        run_study(study, results=tmp_path, runner=InlineRunner(), progress=False,
                  log=lambda m: None)


# --- failures -----------------------------------------------------------------------------


def test_failing_run_is_recorded_and_the_rest_complete(tmp_path, runner):
    """An empty bus list passes validation but cannot place the households: the run raises
    in the worker process."""
    path = study_file(tmp_path, "fails", axes=grid(prosumers__0__buses=[None, []],
                                                    tso__up_markup_eur_mwh=[5, 25]))
    study = load_study(path)
    res = run_study(study, results=tmp_path, runner=runner, progress=False, log=lambda m: None)
    assert (res.ok, res.failed) == (4, 4)
    with cat.connect(res.study_dir / cat.CATALOG, read_only=True) as con:
        bad = con.execute("SELECT prosumers_0_buses, error, traceback, summary, "
                          "welfare_eur_total FROM runs WHERE status = 'failed'").fetchall()
        good = con.execute("SELECT prosumers_0_buses FROM runs WHERE status = 'ok'").fetchall()
    assert {b[0] for b in bad} == {"[]"} and {g[0] for g in good} == {None}
    for _, error, tb, summary, welfare in bad:
        assert error and "Traceback (most recent call last)" in tb
        assert summary is None and welfare is None
    # failed runs are finished runs: not redone unless asked
    again = run_study(study, results=tmp_path, runner=runner, progress=False,
                      log=lambda m: None)
    assert again.ran == 0
    again = run_study(study, results=tmp_path, runner=runner, progress=False,
                      log=lambda m: None, retry_failed=True)
    assert (again.ran, again.failed) == (4, 4)
    report = make_report(res.study_dir, figures=False)
    assert (res.study_dir / "report" / "failed.md") in report


def _boom_for_enrolment(self, *args, **kwargs):
    if self.model.config.aggregators[self.index].enrolment == 0.3:
        raise RuntimeError("boom in aggregator schedule")
    return _real_schedule(self, *args, **kwargs)


_real_schedule = agents.aggregator.Aggregator.schedule


def test_exception_in_a_run_is_recorded_with_traceback(tmp_path, monkeypatch, stop_tracemalloc):
    monkeypatch.setattr(agents.aggregator.Aggregator, "schedule", _boom_for_enrolment)
    study = load_study(study_file(tmp_path, "boom", seeds=[1],
                                  axes=grid(aggregators__0__enrolment=[0.0, 0.3, 0.6])))
    res = run_study(study, results=tmp_path, runner=InlineRunner(), progress=False,
                    log=lambda m: None)
    assert (res.ok, res.failed) == (2, 1)
    rows = catalog_rows(res.study_dir, "aggregators_0_enrolment, status, error, traceback")
    failed = [r for r in rows if r[1] == "failed"]
    assert len(failed) == 1 and failed[0][0] == 0.3
    assert "boom in aggregator schedule" in failed[0][2]
    assert "_boom_for_enrolment" in failed[0][3]


def test_lost_worker_is_retried(tmp_path):
    """A worker killed mid-run: the run is retried on a new worker, nothing is lost."""
    path = study_file(tmp_path, "lost", seeds=[1, 2], overrides={**TINY, "calendar.days": 2,
                                                                  "planner.enabled": True},
                      axes=grid(aggregators__0__enrolment=[0.0, 0.3, 0.6, 0.9]))
    study = load_study(path)
    local = LocalRunner(2)
    local.start()
    out = {}

    def sweep():
        out["res"] = run_study(study, results=tmp_path, runner=local, progress=False,
                               log=lambda m: None)

    t = threading.Thread(target=sweep)
    t.start()
    try:
        runs = tmp_path / "lost" / cat.RUNS_DIR
        deadline = time.monotonic() + 60
        while not _finished(runs) and time.monotonic() < deadline:
            time.sleep(0.02)
        killed = False
        while not killed and time.monotonic() < deadline:
            for pid in local.busy_pids():   # a run may end between listing and killing
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    break
                except ProcessLookupError:
                    continue
            time.sleep(0.01)
        assert killed, "no busy worker to kill"
        t.join(120)
    finally:
        local.close()
    res = out["res"]
    assert res.ok == 8 and res.failed == 0
    attempts = catalog_rows(tmp_path / "lost", "attempts")
    assert sorted(a[0] for a in attempts)[-1] == 2, "the killed worker's run was not retried"


# --- engines ------------------------------------------------------------------------------


def test_dask_local_cluster_matches_local_runner(tmp_path, runner):
    path = study_file(tmp_path, "engines", axes=grid(aggregators__0__enrolment=[0.0, 0.6],
                                                      tso__pricing=["single", "dual"]))
    study = load_study(path)
    local = run_study(study, results=tmp_path / "local", runner=runner, progress=False,
                      log=lambda m: None)
    dask = DaskRunner(workers=2)
    try:
        remote = run_study(study, results=tmp_path / "dask", runner=dask, progress=False,
                           log=lambda m: None)
    finally:
        dask.close()
    assert local.ok == remote.ok == 8
    assert comparable(tmp_path / "local" / "engines") == comparable(tmp_path / "dask" /
                                                                     "engines")
    # both engines run every run in a fresh process: nothing leaks from one run to the next
    for engine in ("local", "dask"):
        procs = catalog_rows(tmp_path / engine / "engines", "count(DISTINCT worker)", order="")
        assert procs == [(8,)], engine


# --- catalog, report, command line ---------------------------------------------------------


def _main(argv: list[str]) -> int:
    from experiments.cli import main

    return main(argv)


@pytest.mark.parametrize("command,expected", [
    ("sweep", ["--workers", "--scheduler", "--engine", "--results", "--retry-failed",
               "resume"]),
    ("report", ["--metrics", "--out", "sensitivity"]),
    ("runs", ["--sql", "--status", "--show", "runs", "design"]),
])
def test_cli_help(capsys, command, expected):
    with pytest.raises(SystemExit) as info:
        _main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out, text


def test_runs_report_and_metric_warning(tmp_path, runner, capsys):
    path = study_file(tmp_path, "cli", metrics=METRICS + ["welfare_eur.totl"], axes={
        **grid(aggregators__0__enrolment=[0.0, 0.6]), "factors": {"pricing": {
            "single": {"tso.pricing": "single"}, "dual": {"tso.pricing": "dual"}}}})
    res = run_study(load_study(path), results=tmp_path, runner=runner, progress=False,
                    log=lambda m: None)
    assert res.ok == 8
    assert any("welfare_eur.totl" in w and "welfare_eur.total" in w for w in res.warnings)
    assert {r[0] for r in catalog_rows(res.study_dir, "welfare_eur_totl")} == {None}

    assert _main(["runs", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cli" in out and "8" in out
    assert _main(["runs", "cli", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "aggregators.0.enrolment" in out and "welfare_eur.total" in out
    lines = out.splitlines()
    assert max(len(ln) for ln in lines) < 160      # readable on a terminal
    seeds = [int(ln.split()[3]) for ln in lines[1:9]]
    assert seeds == sorted(seeds) or lines[1].split()[0] == "0"   # in design order
    assert _main(["runs", "cli", "--results", str(tmp_path), "--format", "csv", "--sql",
                  "select pricing, count(*) as n, avg(welfare_eur_total) as w from runs "
                  "group by 1 order by 1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "pricing,n,w" and out[1].startswith("dual,4,")
    run_id = catalog_rows(res.study_dir, "run_id")[0][0]
    assert _main(["runs", "cli", "--results", str(tmp_path), "--show", run_id[:8]]) == 0
    assert run_id in capsys.readouterr().out
    assert _main(["runs", "--results", str(tmp_path), "--sql",
                  "select study, count(*) as n from runs group by 1"]) == 0
    assert "cli" in capsys.readouterr().out
    assert _main(["runs", "cli", "--results", str(tmp_path), "--sql", "select nope"]) == 2

    assert _main(["report", "cli", "--results", str(tmp_path)]) == 0
    report = res.study_dir / "report"
    for name in ("report.md", "runs.csv", "points.csv", "points_summary.md",
                 "compare_pricing.md",
                 "vs_aggregators_0_enrolment.png", "vs_pricing.png",
                 "pivot_welfare_eur_total.md"):
        assert (report / name).is_file(), name
    text = (report / "report.md").read_text()
    assert "welfare_eur.totl" in text and "null in every finished run" in text
    assert "welfare, total (EUR)" in text                    # labels in words, with units
    assert "1-day runs from 2016-01-11" in text              # the run length is stated
    assert "`calendar.days=1`" in text                       # and the overrides
    assert "e-1" not in text                                 # no float noise like -1.7e-14
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert max(ln.count("|") for ln in table) - 1 <= 12      # no 32-column table
    points_csv = pd.read_csv(report / "points.csv")
    assert (points_csv["congestion_red_lo95"].dropna() >= 0).all()   # counts never below 0
    assert (report / "compare_pricing.png").is_file()
    compare = pd.read_csv(report / "compare_pricing.csv")
    runs = pd.read_csv(report / "runs.csv")
    paired = runs.pivot_table(index=["seed", "aggregators_0_enrolment"], columns="pricing",
                              values="welfare_eur_total")
    dual = compare[(compare["metric"] == "welfare_eur.total") & (compare["pricing"] == "dual")]
    assert dual["diff_vs_single"].item() == pytest.approx(
        (paired["dual"] - paired["single"]).mean(), rel=1e-12, abs=1e-9)
    assert dual["pairs"].item() == 4
    points = (report / "points.csv").read_text().splitlines()
    assert len(points) == 1 + 4


def test_sensitivity_report(tmp_path, runner):
    path = study_file(tmp_path, "sobol", seeds=[1], overrides={"calendar.days": 1,
                                                               "planner.enabled": False},
                      axes={"sample": {"method": "sobol", "n": 8, "seed": 1, "params": {
                          "forecast.load_error_sd": [0.02, 0.2],
                          "prosumers.0.count": [20, 60],
                          "tso.up_markup_eur_mwh": [0, 60]}}})
    res = run_study(load_study(path), results=tmp_path, runner=runner, progress=False,
                    log=lambda m: None)
    assert res.ok == 8 * 5
    make_report(res.study_dir)
    import csv

    rows = list(csv.DictReader((res.study_dir / "report" / "sensitivity.csv").open()))
    params = {r["parameter"] for r in rows if r["metric"] == "imbalance.system_abs_mwh"}
    assert params == {"forecast.load_error_sd", "prosumers.0.count", "tso.up_markup_eur_mwh"}
    assert {"S1", "S1_conf", "ST", "ST_conf"} <= set(rows[0])
    assert (res.study_dir / "report" / "sensitivity_imbalance_system_abs_mwh.png").is_file()
    with duckdb.connect() as con:
        n = con.execute(f"SELECT count(*) FROM read_csv_auto("
                        f"'{res.study_dir / 'report' / 'runs.csv'}')").fetchone()[0]
    assert n == 40


def test_summary_json_round_trip(tmp_path, runner):
    """The catalog keeps each run's whole summary: any value can be queried later."""
    res = run_study(load_study(study_file(tmp_path, "json", seeds=[1])), results=tmp_path,
                    runner=runner, progress=False, log=lambda m: None)
    folder = res.study_dir / cat.RUNS_DIR
    with cat.connect(res.study_dir / cat.CATALOG, read_only=True) as con:
        run_id, mean = con.execute("SELECT run_id, (summary->>'$.da_price_eur_mwh.mean')"
                                   "::DOUBLE FROM runs").fetchone()
    summary = json.loads((folder / run_id / "summary.json").read_text())
    assert mean == pytest.approx(summary["da_price_eur_mwh"]["mean"])
    assert (folder / run_id / "series.parquet").is_file()


def test_an_interrupt_swallowed_below_the_sweep_loop_still_stops_it(tmp_path):
    """Ctrl-C that a library turns into its own error (DuckDB: "Query interrupted") or drops
    sets the flag the loop checks: the study stops as interrupted, its finished runs kept."""
    from experiments.sweep import INTERRUPTED, InlineRunner

    class Swallowing(InlineRunner):
        def run(self, tasks):
            for n, rec in enumerate(super().run(tasks)):
                if n == 1:
                    INTERRUPTED.set()     # as the CLI's handler does; the exception is lost
                yield rec

    study = load_study(study_file(tmp_path, "swallow", seeds=[1, 2, 3, 4]))
    try:
        res = run_study(study, results=tmp_path, runner=Swallowing(), progress=False,
                        log=lambda m: None)
    finally:
        INTERRUPTED.clear()
    assert res.interrupted and res.ran == 1
    assert len(_finished(res.study_dir / cat.RUNS_DIR)) == 2
    again = run_study(study, results=tmp_path, runner=InlineRunner(), progress=False,
                      log=lambda m: None)
    assert again.done_before == 2 and again.ran == 2 and not again.interrupted

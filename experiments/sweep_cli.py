"""Command line for studies: `flexmarkets sweep`, `flexmarkets report`, `flexmarkets runs`.

Wired into experiments/cli.py by `register_cli(sub)` on its subparsers."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from experiments.runs_cli import report_command, runs_command

SWEEP_EPILOG = """\
examples:
  flexmarkets sweep flex_penetration                    a shipped study, all local cores
  flexmarkets sweep my_study.yaml --workers 2
  flexmarkets sweep my_study.yaml --engine dask         a local Dask cluster
  flexmarkets sweep my_study.yaml --scheduler tcp://10.0.0.5:8786
  flexmarkets sweep flex_penetration --set calendar.days=1 --set prosumers.0.count=40
  flexmarkets sweep my_study.yaml --dry-run             validate, show the design, check metrics

Stop a sweep at any time (Ctrl-C, kill, a lost worker) and run the same command again: runs
that finished are kept (their folder under results/<study>/runs/ is the record), the others
run. A run's id is a hash of its resolved scenario and seed, so changing the study (or --set)
adds runs rather than overwriting them. Failed runs are kept as failed (the simulation is
deterministic); --retry-failed runs them again. Delete a run's folder to have it redone.

exit status: 0 all runs ok, 1 some runs failed, 2 invalid study, output folder, scheduler
address or a busy study folder (nothing was run), 3 disk full (free space and run the same
command again: runs not stored are run again), 130 interrupted (resume by running the same
command again)."""

REPORT_EPILOG = """\
writes into results/<study>/report/ (or --out):
  report.md                 the whole report, figures linked
  runs.csv                  one row per design run: params, seed, status, metrics
  points.csv / .md          per design point: mean, sd and 95% interval over seeds
  vs_<axis>.png             each metric against each axis, 95% band over seeds (bars with
                            error bars for a categorical axis such as a scheme)
  pivot_<metric>.md         mean [95% CI] on the first two axes
  compare_<axis>.csv / .md  axes of up to 12 levels: each level against the first, paired on seed
                            and the other axes, with compare_<axis>.png (the paired
                            differences and their 95% intervals)
  sensitivity.csv / .md     sampled studies: Sobol S1/ST(/S2), Morris mu*/sigma, RBD-FAST
                            (latin, random) indices, per metric, with
                            sensitivity_<metric>.png and scatter_<metric>.png
  failed.md                 failed runs and the first line of their error

examples:
  flexmarkets report flex_penetration
  flexmarkets report flex_penetration --metrics welfare_eur.total welfare_eur.aggregators"""

RUNS_EPILOG = """\
tables you can query with --sql (DuckDB SQL; the catalog is results/<study>/catalog.duckdb):
  runs    one row per run: run_id, study, status ('ok'/'failed'), seed, one column per axis
          (dots as underscores: aggregators_0_enrolment), one per metric (welfare_eur_total),
          wall_s, solver_s, planner_s, max_rss_mb, task_s, cpu_s, started_at, finished_at,
          worker, attempts, error, traceback, path, and params, scenario, summary as JSON
  design  point, seed, run_id, grp, sample_row, x, params: the study's design
  fields  column_name, name, kind (param/metric), axis_kind, sql_type
  meta    key, value (JSON): 'study' describes the study
Without STUDY, --sql queries `runs` over every study under the results folder.

examples:
  flexmarkets runs                                      the studies and their run counts
  flexmarkets runs flex_penetration                     its runs, one line each
  flexmarkets runs flex_penetration --status failed
  flexmarkets runs flex_penetration --show 1a2b3c4d5e6f7a8b
  flexmarkets runs flex_penetration --sql "select aggregators_0_enrolment, \\
      avg(welfare_eur_total), count(*) from runs where status = 'ok' group by 1 order by 1"
  flexmarkets runs flex_penetration --sql "select run_id, summary->>'$.da_price_eur_mwh.mean' \\
      as da_mean from runs"
  flexmarkets runs --sql "select study, count(*) from runs group by study" """


def register_cli(subparsers) -> None:
    """Add the `sweep`, `report` and `runs` subcommands to an argparse subparsers object."""
    fmt = argparse.RawDescriptionHelpFormatter
    sw = subparsers.add_parser(
        "sweep", help="run a study: parameter sweeps, replications, sensitivity samples",
        formatter_class=fmt, epilog=SWEEP_EPILOG,
        description="Run every (design point, seed) of a study file as an independent task on "
                    "local worker processes or a Dask cluster, store each run under "
                    "results/<study>/runs/<run-id>/ (Parquet tables, summary.json, "
                    "config.yaml, run.json) and index them in the catalog "
                    "results/<study>/catalog.duckdb. A progress bar shows runs done, failed "
                    "and the time left.")
    sw.add_argument("study", help="study YAML file, or the name of a shipped study in "
                                  "experiments/studies/ (e.g. flex_penetration, "
                                  "pricing_sensitivity)")
    sw.add_argument("-j", "--workers", type=int, metavar="N",
                    help="worker processes (default: the cores available); 0 runs in this "
                         "process (debugging). With --scheduler the cluster's workers are used")
    sw.add_argument("--engine", choices=["local", "dask"], default="local",
                    help="local: worker processes of this machine (default); dask: the Dask "
                         "distributed engine, a local cluster of N processes unless "
                         "--scheduler is given")
    sw.add_argument("--scheduler", metavar="ADDRESS",
                    help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                         "(implies --engine dask; workers need flexmarkets installed and the "
                         "results folder on a shared file system)")
    sw.add_argument("--reuse-workers", action="store_true",
                    help="let a worker process run several runs (saves a fork per run, about "
                         "0.1 s; by default every run gets a fresh process forked from a "
                         "preloaded server, so no state can leak from one run to the next)")
    sw.add_argument("--results", default="results", metavar="DIR",
                    help="results root (default: results); the study goes to DIR/<name>/")
    sw.add_argument("--set", action="append", metavar="PATH=VALUE",
                    help="override a field of the study's base scenario for every run, e.g. "
                         "--set calendar.days=1 (repeatable; changes the run ids)")
    sw.add_argument("--retry-failed", action="store_true",
                    help="run the study's failed runs again")
    sw.add_argument("--limit", type=int, metavar="N",
                    help="stop after N runs (run the command again to go on)")
    sw.add_argument("--dry-run", action="store_true",
                    help="validate the study, print its design and how many runs are done, run "
                         "its first point for one day (planner on) to check the metric paths, "
                         "and stop")
    sw.add_argument("--report", action="store_true", help="write the report when done")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)

    rp = subparsers.add_parser(
        "report", help="tables and figures comparing a study's runs",
        formatter_class=fmt, epilog=REPORT_EPILOG,
        description="Write the comparison report of a study from its catalog: metric against "
                    "parameter with 95%% confidence bands over seeds, scheme-against-scheme "
                    "comparisons paired on seed, and sensitivity indices (SALib) where the "
                    "study sampled for them. Works on a partial study (runs still pending "
                    "are left out) and while a sweep is running.")
    rp.add_argument("study", help="study name (its folder under the results root) or the "
                                  "study YAML file")
    rp.add_argument("--results", default="results", metavar="DIR",
                    help="results root (default: results)")
    rp.add_argument("--out", metavar="DIR",
                    help="where to write (default: results/<study>/report/)")
    rp.add_argument("--metrics", nargs="+", metavar="PATH",
                    help="metrics to report (default: the study's); any dotted path into "
                         "summary.json works, also one the study did not list")
    rp.add_argument("--no-figures", action="store_true", help="tables only")
    rp.set_defaults(func=report_command)

    rn = subparsers.add_parser(
        "runs", help="list and query the runs of studies (SQL)",
        formatter_class=fmt, epilog=RUNS_EPILOG,
        description="Without STUDY: the studies under the results root with their run counts. "
                    "With STUDY: its runs (status, seed, parameters, metrics, wall time), or "
                    "the result of an SQL query on its catalog. Reading never blocks a running "
                    "sweep; runs finished but not yet in the catalog are included.")
    rn.add_argument("study", nargs="?", help="study name (its folder under the results root) "
                                             "or the study YAML file")
    rn.add_argument("--results", default="results", metavar="DIR",
                    help="results root (default: results)")
    rn.add_argument("--sql", metavar="QUERY", help="a DuckDB SQL query (tables: runs, design, "
                                                   "fields, meta)")
    rn.add_argument("--status", choices=["ok", "failed"], help="only runs with this status")
    rn.add_argument("--show", metavar="RUN_ID",
                    help="everything about one run: params, metrics, error and traceback")
    rn.add_argument("--format", choices=["table", "csv", "md", "json"], default="table",
                    help="output format (default: table)")
    rn.add_argument("--limit", type=int, default=200, metavar="N",
                    help="rows shown in the default listing (default 200; 0: all)")
    rn.set_defaults(func=runs_command)


# --- sweep ------------------------------------------------------------------------------------


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _sweep(args: argparse.Namespace) -> int:
    from experiments.overrides import parse_sets
    from experiments.sweep_dask import check_scheduler

    if args.workers is not None and args.workers < 0:
        return _err(f"--workers {args.workers}: must be 0 or more")
    if args.scheduler and not args.dry_run:
        check_scheduler(args.scheduler)             # at once, before the study is read
    _preflight(args.study, Path(args.results))
    from experiments.catalog import CatalogBusy
    from experiments.store import check_output_dir
    from experiments.study import load_study
    from experiments.study_schema import StudyError
    from experiments.sweep import (
        INTERRUPTED,
        StudyBusy,
        make_runner,
        raise_keyboard_interrupt,
        run_study,
    )

    overrides = parse_sets(args.set, StudyError)
    runner = None
    starter = None
    if not args.dry_run:
        runner = make_runner(args.engine, args.workers, args.scheduler, args.reuse_workers)
        if runner.name == "local":
            # start the workers' server (it imports the model) while the study loads
            starter = threading.Thread(target=runner.start, daemon=True)
            starter.start()
    INTERRUPTED.clear()
    old_term = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    old_int = signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    try:
        study = load_study(args.study, overrides=overrides)
        check_output_dir(Path(args.results) / study.name, "results folder")
        if args.dry_run:
            from experiments.sweep_runners import dry_check

            return _dry_run(study, Path(args.results), dry_check, args.workers)
        if starter is not None:
            starter.join()
        try:
            res = run_study(study, results=args.results, runner=runner,
                            retry_failed=args.retry_failed, progress=not args.quiet,
                            limit=args.limit)
        except (StudyBusy, CatalogBusy) as exc:
            return _err(str(exc))
    except KeyboardInterrupt:
        print("interrupted before any run started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if runner is not None:
            if starter is not None:
                starter.join()
            runner.close()
    elapsed = _duration(res.elapsed_s)
    if res.interrupted:
        print(f"interrupted: {res.ran} runs finished in this sweep ({res.failed} failed), "
              f"{res.remaining} still to run; run the same command again to resume",
              file=sys.stderr)
        return 130
    done = res.done_before + res.ran
    print(f"study {res.study}: {done} of {res.total} runs done ({res.ran} in this sweep, "
          f"{res.failed} failed) in {elapsed}; catalog {res.study_dir / 'catalog.duckdb'}")
    if res.failed:
        print(f"  failed runs: flexmarkets runs {res.study} --results {args.results} "
              "--status failed")
    if args.report:
        from experiments.report import make_report

        files = make_report(res.study_dir)
        print(f"  report: {res.study_dir / 'report' / 'report.md'} ({len(files)} files)")
    else:
        print(f"  report: flexmarkets report {res.study}"
              + (f" --results {args.results}" if args.results != "results" else ""))
    return 1 if failed_runs(res.study_dir, {r.run_id for r in study.unique_runs}) else 0


def _preflight(study: str, results: Path) -> None:
    """What can be checked in milliseconds, before the workers start and the (slower) study
    validation: the file is text, valid YAML without a key given twice, and its results
    folder can be written."""
    from environment.yamlio import read_yaml
    from experiments.store import check_output_dir
    from experiments.study_schema import StudyError, study_path

    path = study_path(study)
    if not path.is_file():
        return                      # load_study names it, with the shipped studies
    data = read_yaml(path, "study", StudyError)
    name = data.get("name") if isinstance(data, dict) else None
    check_output_dir(results / str(name or path.stem), "results folder")


def failed_runs(study_dir: Path, run_ids: set[str]) -> int:
    """How many of the study's runs are recorded as failed, read from the run folders (the
    truth; the catalog may lag behind or be locked), so that an unreadable catalog never
    makes a sweep with failed runs exit 0."""

    from experiments import catalog as cat

    n = 0
    for run_id in cat.finished_folders(study_dir) & run_ids:
        try:
            status = json.loads((cat.runs_dir(study_dir) / run_id / cat.RUN_JSON).read_text())
        except (OSError, ValueError):
            n += 1              # a folder without a readable record counts as failed
            continue
        n += status.get("status") != "ok"
    return n


def _dry_run(study, results: Path, dry_check, workers: int | None = None) -> int:
    from experiments import catalog as cat

    n_unique = len(study.unique_runs)
    print(f"study {study.name}: {len(study.points)} points x {len(study.seeds)} seeds = "
          f"{len(study.runs)} runs ({n_unique} distinct)")
    for a in study.axes:
        vals = "sampled" if a.values is None else ", ".join(map(str, a.values))
        print(f"  axis {a.name} ({a.kind}): {vals}")
    print(f"  seeds: {', '.join(map(str, study.seeds))}")
    print(f"  metrics: {', '.join(study.metrics)}")
    done = cat.finished_folders(results / study.name)
    n_done = sum(1 for r in study.unique_runs if r.run_id in done)
    print(f"  done: {n_done} of {n_unique} in {results / study.name}")
    warnings, t = dry_check(study)
    print(f"  first point, two days: set-up {t['build_s']:.1f} s, first day "
          f"{t['first_day_s']:.1f} s, second day {t['day_s']:.1f} s")
    todo = n_unique - n_done
    if todo:
        from experiments.sweep_runners import available_cpus

        w = max(1, workers or available_cpus())
        days = t["days"]
        per_run = t["build_s"] + t["first_day_s"] + (days - 1) * t["day_s"]
        per_run *= 1.1 if w > 1 else 1.0          # with every core busy, ~10% slower each
        total = per_run * todo / w
        print(f"  estimated: {todo} runs of {days} day{'s' if days != 1 else ''}, about "
              f"{_duration(per_run)} each: {_duration(total)} on {w} worker"
              f"{'s' if w != 1 else ''} (from the first point; points with more "
              "flexibility or congestion take longer)")
    for w in warnings:
        print(f"  warning: {w}")
    if not warnings:
        print("  every metric path is in the summary")
    return 0


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"

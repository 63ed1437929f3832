"""Study files: a base scenario, axes over any of its fields, seeds and metrics.

A study is a YAML file (shipped ones live in experiments/studies/):

```yaml
name: flex_penetration            # results go to results/<name>/ (default: the file's stem)
base: default                     # a shipped scenario name or a scenario YAML path
overrides: {calendar.days: 7}     # fixed changes to the base, dotted paths
axes:
  grid:                           # every combination of these values
    aggregators.0.enrolment: [0.0, 0.3, 0.6, 0.9]
  zip:                            # values taken together, i-th with i-th (equal lengths);
    tso.up_markup_eur_mwh: [5, 15]   #   a list of such mappings gives several zipped blocks
    tso.down_markdown_eur_mwh: [5, 15]
  factors:                        # a named factor whose levels each set several fields
    flex_level:
      low: {prosumers.0.battery.share: 0.1, aggregators.0.enrolment: 0.3}
      high: {prosumers.0.battery.share: 0.5, aggregators.0.enrolment: 0.9}
  sample:                         # random / quasi-random points for sensitivity analysis
    method: sobol                 # sobol (Saltelli), morris, latin, random
    n: 64                         # base sample size (sobol: a power of 2; morris: trajectories)
    seed: 0
    params:
      forecast.load_error_sd: [0.02, 0.2]           # uniform bounds, or
      tso.up_markup_eur_mwh: {bounds: [0, 60], dist: unif, integer: false}
seeds: 3                          # replications: 3 means seeds 1, 2, 3; or a list [7, 11]
metrics: [cost_efficiency, welfare_eur.total]     # dotted paths into summary.json
tables: all                       # Parquet tables kept per run: all, none or a list of names
```

The design is the product of the grid, each zip block, each factor and the sample rows; every
design point runs once per seed. Loading checks everything that can be checked before a run
starts and raises a `StudyError` (a `ScenarioError`) with one line per problem naming the field
and the value: unknown keys, axis paths the scenario schema does not know, axis values the
scenario rejects, combinations it rejects, unknown strategy or profile names, bad sampling
bounds, seeds and metric paths that are not dotted names.

Metric paths are checked for syntax only: summary.json gains keys as the model grows and some
keys exist only in some runs (cost_efficiency only with the planner on, imbalance by party named
after the agents), so a path that is missing from a run's summary is stored as null, and the
sweep warns, with the closest existing paths, as soon as the first run finished without it.
`flexmarkets sweep --dry-run` runs one design point for one day and checks them up front.

A run's id is a hash of its resolved scenario (seed included): the same study run again finds
the runs it already has, whatever order or process produced them.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from environment.errors import did_you_mean
from environment.paths import lookup
from environment.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    with_overrides,
)
from environment.scenario_files import find_scenario
from environment.yamlio import parse_yaml, read_text
from experiments.study_schema import (
    FACTOR_RE,
    MAX_RUNS,
    METRIC_RE,
    NAME_RE,
    RESERVED_COLUMNS,
    Axis,
    Sample,
    StudyError,
    StudyFile,
    canonical_json,
    check_path,
    column_name,
    draw_sample,
    fail,
    format_validation,
    is_number,
    make_axis,
    no_duplicates,
    reference_lines,
    round_value,
    run_id_of,
    salib_problem,
    scenario_lines,
    seeds_of,
    shipped_studies,
    shown,
    study_path,
)

# --- what a loaded study is ------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    index: int
    params: dict                 # axis name -> value
    group: int                   # which combination of the non-sampled axes
    sample_row: int | None       # row of the sample matrix (sampled studies)
    x: tuple[float, ...] | None  # that row, as drawn (before rounding)
    scenario: dict               # the resolved scenario (JSON types), seed not set


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    point: int
    seed: int


@dataclass
class Study:
    name: str
    description: str
    source: Path | None
    text: str
    spec: StudyFile
    base: str
    overrides: dict
    axes: list[Axis]
    points: list[Point]
    seeds: list[int]
    runs: list[RunSpec]
    metrics: list[str]
    metric_columns: dict[str, str]
    tables: str | list[str]
    figures: bool
    sample: Sample | None = None
    extra_overrides: dict = field(default_factory=dict)

    @property
    def unique_runs(self) -> list[RunSpec]:
        """Runs with distinct ids (a sampled design may visit a point twice), in design order."""
        seen: set[str] = set()
        out = []
        for r in self.runs:
            if r.run_id not in seen:
                seen.add(r.run_id)
                out.append(r)
        return out

    def scenario_data(self, run: RunSpec) -> dict:
        return {**self.points[run.point].scenario, "seed": run.seed}

    def run_length(self) -> dict:
        """Days, first day and MTU of the runs (the same for every point unless an axis
        changes them: then those of the first point)."""
        cal = self.points[0].scenario.get("calendar", {}) if self.points else {}
        return {"days": cal.get("days"), "start": cal.get("start"),
                "mtu_minutes": cal.get("mtu_minutes")}

    def describe(self) -> dict:
        """JSON-able description stored in the catalog (reports need no study file)."""
        s = self.sample
        return {
            "name": self.name, "description": self.description,
            "source": str(self.source) if self.source else None,
            "base": self.base, "overrides": self.overrides,
            "extra_overrides": self.extra_overrides, **self.run_length(),
            "axes": [{"name": a.name, "kind": a.kind, "column": a.column,
                      "values": list(a.values) if a.values is not None else None,
                      "numeric": a.numeric, "paths": list(a.paths)} for a in self.axes],
            "seeds": self.seeds, "metrics": self.metrics, "metric_columns": self.metric_columns,
            "points": len(self.points), "runs": len(self.runs),
            "unique_runs": len(self.unique_runs),
            "sample": None if s is None else {
                "method": s.method, "n": s.n, "seed": s.seed, "second_order": s.second_order,
                "levels": s.levels, "problem": salib_problem(s)},
            "text": self.text,
        }



def _fmt_point(changes: dict) -> str:
    return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in changes.items()) + "}"



def load_study(study: str | Path | dict, *, overrides: dict | None = None,
               check_references: bool = True) -> Study:
    """Read, validate and expand a study file (or a mapping as read from one).

    `overrides` are extra dotted-path changes to the base (e.g. from `sweep --set`); they
    change the runs' scenarios and therefore their ids."""
    if isinstance(study, dict):
        data, source, text, folder, stem = study, "<dict>", yaml.safe_dump(study), None, None
    else:
        path = study_path(study)
        source, folder, stem = str(path), path.parent, path.stem
        if not path.exists():
            shipped = [p.stem for p in shipped_studies()]
            raise StudyError(f"study file not found: {path}{did_you_mean(str(study), shipped)} "
                             f"(shipped studies: {', '.join(shipped)})")
        text = read_text(path, "study", StudyError)
        data = parse_yaml(text, source, "study", StudyError)
    if not isinstance(data, dict):
        raise StudyError(f"invalid study {source}: top level must be a mapping, got "
                         f"{type(data).__name__}")
    try:
        spec = StudyFile.model_validate(data)
    except ValidationError as exc:
        raise fail(source, format_validation(exc)) from None

    problems: list[str] = []
    name = spec.name or stem or "study"
    if not NAME_RE.fullmatch(name):
        problems.append(f"name = {name!r}: use letters, digits, '_', '-' and '.' only "
                        "(it names the results folder)")

    # base scenario and fixed overrides
    try:
        base = load_scenario(find_scenario(spec.base, folder))
    except ScenarioError as exc:
        raise fail(source, [f"base = {spec.base!r}: {ln}" for ln in scenario_lines(exc)]) \
            from None
    fixed = {**spec.overrides, **(overrides or {})}
    for key in fixed:
        if key == "seed":
            problems.append(f"overrides.seed = {fixed[key]!r}: set seeds with `seeds`")
    fixed.pop("seed", None)
    base_data = base.model_dump(mode="json")
    for key in fixed:
        why = check_path(key, base_data)
        if why:
            problems.append(f"overrides[{key!r}]: {why}")
    if problems:
        raise fail(source, problems)
    try:
        base = with_overrides(base, fixed) if fixed else base
    except ScenarioError as exc:
        raise fail(source, [f"overrides: {ln}" for ln in scenario_lines(exc)]) from None
    base_data = base.model_dump(mode="json")

    # axes: paths the schema knows, no path set twice
    ax = spec.axes
    zips = ax.zip if isinstance(ax.zip, list) else ([ax.zip] if ax.zip else [])
    owner: dict[str, str] = {}

    def claim(path: str, where: str) -> None:
        if path == "seed":
            problems.append(f"{where}: 'seed' cannot be an axis; list replications in `seeds`")
            return
        why = check_path(path, base_data)
        if why:
            problems.append(f"{where}: {path}: {why}")
        if path in owner:
            problems.append(f"{where}: {path} is already set by {owner[path]}")
        elif path in fixed:
            problems.append(f"{where}: {path} is also fixed in overrides; set it in one place")
        owner.setdefault(path, where)

    for path, values in ax.grid.items():
        claim(path, f"axes.grid[{path!r}]")
        no_duplicates(values, f"axes.grid[{path!r}]", problems)
    for b, block in enumerate(zips):
        where = f"axes.zip[{b}]" if isinstance(ax.zip, list) else "axes.zip"
        lengths = {p: len(v) for p, v in block.items()}
        if not block:
            problems.append(f"{where} = {{}}: a zip block needs at least one path")
        elif len(set(lengths.values())) > 1:
            problems.append(f"{where}: zipped value lists differ in length: {lengths}")
        elif 0 in lengths.values():
            problems.append(f"{where}: zipped value lists are empty")
        for path in block:
            claim(path, f"{where}[{path!r}]")
        rows = list(zip(*block.values(), strict=False))
        no_duplicates([canonical_json(list(r)) for r in rows], where, problems)
    for fname, levels in ax.factors.items():
        where = f"axes.factors.{fname}"
        if not FACTOR_RE.fullmatch(fname):
            problems.append(f"axes.factors[{fname!r}]: a factor's name is an identifier "
                            "(letters, digits, '_'), not a dotted path")
        if fname in owner:
            problems.append(f"{where}: the name {fname!r} is also a path")
        paths = sorted({p for lv in levels.values() for p in lv})
        for lv, changes in levels.items():
            if not changes:
                problems.append(f"{where}[{lv!r}] = {{}}: a level sets at least one field")
            if sorted(changes) != paths:
                problems.append(f"{where}[{lv!r}]: every level must set the same fields "
                                f"({', '.join(paths)}); this one sets {', '.join(changes)}")
            if not (is_number(lv) or isinstance(lv, str | bool)):
                problems.append(f"{where}: level {lv!r}: a level is a number or a string")
        for p in paths:
            claim(p, f"{where}[{p!r}]")
        no_duplicates([canonical_json(c) for c in levels.values()], where, problems)
    sample_int: dict[str, bool] = {}
    if ax.sample is not None:
        s = ax.sample
        for path, p in s.params.items():
            where = f"axes.sample.params[{path!r}]"
            claim(path, where)
            try:
                cur = lookup(base_data, path)
            except KeyError:
                cur = None
            if cur is not None and not is_number(cur):
                problems.append(f"{where}: the base value {shown(cur)} is not a number; only "
                                "numeric fields can be sampled (use grid or factors)")
            lo, hi = p.bounds
            if p.dist == "unif" and not lo < hi:
                problems.append(f"{where}.bounds = {list(p.bounds)}: low must be below high")
            if p.dist != "unif" and not hi > 0:
                problems.append(f"{where}.bounds = {list(p.bounds)}: the {p.dist} standard "
                                "deviation (second value) must be positive")
            if p.dist != "unif" and s.method == "morris":
                problems.append(f"{where}.dist = {p.dist!r}: morris samples on a grid of "
                                "levels and needs unif bounds")
            sample_int[path] = p.integer if p.integer is not None else isinstance(cur, int) \
                and not isinstance(cur, bool)
        if s.method == "sobol" and s.n & (s.n - 1):
            problems.append(f"axes.sample.n = {s.n}: sobol (Saltelli) sampling needs a power "
                            "of 2, e.g. 64, 128, 256")
        if s.method == "sobol" and len(s.params) < 2 and s.second_order:
            problems.append("axes.sample.second_order = True: needs at least two params")
    seeds = seeds_of(spec, base, problems)
    metrics = list(spec.metrics)
    for i, m in enumerate(metrics):
        if not METRIC_RE.fullmatch(m):
            problems.append(f"metrics[{i}] = {m!r}: not a dotted path into summary.json "
                            "(e.g. welfare_eur.total)")
    no_duplicates(metrics, "metrics", problems)
    if isinstance(spec.tables, list):
        for i, t in enumerate(spec.tables):
            if not re.fullmatch(r"\w+", t):
                problems.append(f"tables[{i}] = {t!r}: not a table name")
    if problems:
        raise fail(source, problems)

    # each axis value on its own: errors name the axis and the value; names the scenario
    # refers to (strategies, profiles, clearing) are checked too, each problem reported once
    seen_refs: set[str] = set()

    def references(sc: Scenario, where: str) -> None:
        if not check_references:
            return
        for ln in reference_lines(sc):
            if ln not in seen_refs:
                seen_refs.add(ln)
                problems.append(f"{where}: {ln}")

    references(base, "base" if not fixed else "base with overrides")

    def try_changes(changes: dict, where: str) -> Scenario | None:
        try:
            sc = with_overrides(base, changes)
        except ScenarioError as exc:
            problems.extend(f"{where}: {ln}" for ln in scenario_lines(exc))
            return None
        references(sc, where)
        return sc

    for path, values in ax.grid.items():
        for i, v in enumerate(values):
            try_changes({path: v}, f"axes.grid[{path!r}][{i}] = {shown(v)}")
    for b, block in enumerate(zips):
        for path, values in block.items():
            where = f"axes.zip[{b}]" if isinstance(ax.zip, list) else "axes.zip"
            for i, v in enumerate(values):
                try_changes({path: v}, f"{where}[{path!r}][{i}] = {shown(v)}")
    for fname, levels in ax.factors.items():
        for lv, changes in levels.items():
            try_changes(dict(changes), f"axes.factors.{fname}[{lv!r}]")
    if ax.sample is not None:
        for path, p in ax.sample.params.items():
            if p.dist == "unif":
                for v in p.bounds:
                    v = round_value(v, sample_int[path])
                    try_changes({path: v}, f"axes.sample.params[{path!r}].bounds: {v!r}")
    if problems:
        raise fail(source, problems)

    # the design
    axes: list[Axis] = []
    blocks: list[list[tuple[dict, dict]]] = []   # per block: [(params, changes)]
    for path, values in ax.grid.items():
        axes.append(make_axis(path, "grid", values, (path,)))
        blocks.append([({path: v}, {path: v}) for v in values])
    for block in zips:
        for path, values in block.items():
            axes.append(make_axis(path, "zip", values, (path,)))
        rows = zip(*block.values(), strict=True)
        blocks.append([(dict(zip(block, r, strict=True)),) * 2 for r in rows])
    for fname, levels in ax.factors.items():
        paths = tuple(sorted({p for lv in levels.values() for p in lv}))
        axes.append(make_axis(fname, "factor", list(levels), paths))
        blocks.append([({fname: lv}, dict(changes)) for lv, changes in levels.items()])
    sample_rows = None
    if ax.sample is not None:
        for path in ax.sample.params:
            axes.append(Axis(path, "sample", column_name(path), None, True, (path,)))
        sample_rows = draw_sample(ax.sample)
    n_groups = math.prod(len(b) for b in blocks)
    n_rows = 1 if sample_rows is None else len(sample_rows)
    n_runs = n_groups * n_rows * len(seeds)
    if n_runs > MAX_RUNS:
        raise fail(source, [f"axes: the design has {n_runs:,} runs ({n_groups:,} combinations "
                             f"x {n_rows:,} samples x {len(seeds)} seeds), more than "
                             f"{MAX_RUNS:,}"])
    cols: dict[str, str] = {}
    for a in axes:
        if a.column in RESERVED_COLUMNS or a.column in cols:
            other = cols.get(a.column, "a catalog column")
            problems.append(f"axes: {a.name!r} maps to catalog column {a.column!r}, like "
                            f"{other}; rename it")
        cols[a.column] = a.name
    metric_columns: dict[str, str] = {}
    for m in metrics:
        col = column_name(m)
        if col in RESERVED_COLUMNS or col in cols:
            col = f"m_{col}"
        if col in cols:
            problems.append(f"metrics: {m!r} maps to catalog column {col!r} like {cols[col]!r}")
        cols[col] = m
        metric_columns[m] = col
    if problems:
        raise fail(source, problems)

    points: list[Point] = []
    seen: dict[str, int] = {}
    resolved_by_key: dict[str, dict] = {}
    for g, combo in enumerate(itertools.product(*blocks)):
        params: dict = {}
        changes: dict = {}
        for p, c in combo:
            params.update(p)
            changes.update(c)
        for r in range(n_rows):
            pparams, pchanges, x = dict(params), dict(changes), None
            if sample_rows is not None:
                x = tuple(float(v) for v in sample_rows[r])
                for path, v in zip(ax.sample.params, x, strict=True):
                    v = round_value(v, sample_int[path])
                    pparams[path] = v
                    pchanges[path] = v
            key = canonical_json(pchanges)
            if key not in resolved_by_key:
                sc = try_changes(pchanges, f"axes: point {_fmt_point(pparams)}")
                if sc is None:
                    if len(problems) > 20:
                        raise fail(source, problems)
                    continue
                data = sc.model_dump(mode="json")
                data.pop("seed")
                resolved_by_key[key] = data
            data = resolved_by_key[key]
            digest = run_id_of(data)
            if sample_rows is None and digest in seen:
                problems.append(f"axes: points {_fmt_point(points[seen[digest]].params)} and "
                                f"{_fmt_point(pparams)} resolve to the same scenario")
            seen.setdefault(digest, len(points))
            points.append(Point(len(points), pparams, g, None if x is None else r, x, data))
    if problems:
        raise fail(source, problems)
    runs = [RunSpec(run_id_of({**p.scenario, "seed": sd}), p.index, sd)
            for sd in seeds for p in points]
    return Study(name=name, description=spec.description, source=None if stem is None
                 else Path(source), text=text, spec=spec, base=spec.base, overrides=fixed,
                 axes=axes, points=points, seeds=seeds, runs=runs, metrics=metrics,
                 metric_columns=metric_columns, tables=spec.tables, figures=spec.figures,
                 sample=ax.sample, extra_overrides=dict(overrides or {}))

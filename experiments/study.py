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
metrics: [welfare_eur.total, planner_share]     # dotted paths into summary.json
tables: all                       # Parquet tables kept per run: all, none or a list of names
```

The design is the product of the grid, each zip block, each factor and the sample rows; every
design point runs once per seed. Loading checks everything that can be checked before a run
starts and raises a `StudyError` (a `ScenarioError`) with one line per problem naming the field
and the value: unknown keys, axis paths the scenario schema does not know, axis values the
scenario rejects, combinations it rejects, unknown strategy or profile names, bad sampling
bounds, seeds and metric paths that are not dotted names.

Metric paths are checked for syntax only: summary.json gains keys as the model grows and some
keys exist only in some runs (planner_share only with the planner on, imbalance by party named
after the agents), so a path that is missing from a run's summary is stored as null, and the
sweep warns, with the closest existing paths, as soon as the first run finished without it.
`flexmarkets sweep --dry-run` runs one design point for one day and checks them up front.

A run's id is a hash of its resolved scenario (seed included): the same study run again finds
the runs it already has, whatever order or process produced them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import types
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from environment.errors import did_you_mean
from environment.paths import lookup
from environment.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
    with_overrides,
)
from environment.yamlio import parse_yaml, read_text

DEFAULT_METRICS = ["welfare_eur.total", "planner_share", "congestion.red",
                   "imbalance.system_abs_mwh"]
MAX_RUNS = 1_000_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
METRIC_RE = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")
FACTOR_RE = re.compile(r"^[A-Za-z_]\w*$")
# Columns of the catalog's runs table that are not params or metrics (see catalog.py).
RESERVED_COLUMNS = {"run_id", "study", "status", "seed", "wall_s", "solver_s", "planner_s",
                    "max_rss_mb", "task_s", "cpu_s", "started_at", "finished_at", "worker",
                    "attempts",
                    "error", "traceback", "path", "params", "scenario", "summary"}


class StudyError(ScenarioError):
    """A study file that cannot be run; each line names a field and its value."""


# --- the file's schema -----------------------------------------------------------------------


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SampleParam(_M):
    """One sampled field: `bounds` are [low, high] for unif, [mean, sd] for norm and lognorm
    (of the log for lognorm); `integer` rounds samples (default: if the base value is an int)."""

    bounds: Annotated[list[float], Field(min_length=2, max_length=2)]
    dist: Literal["unif", "norm", "lognorm"] = "unif"
    integer: bool | None = None


class Sample(_M):
    method: Literal["sobol", "morris", "latin", "random"]
    n: Annotated[int, Field(ge=2, le=1_000_000)]
    seed: Annotated[int, Field(ge=0)] = 0
    second_order: bool = False
    levels: Annotated[int, Field(ge=2, le=100)] = 4
    params: Annotated[dict[str, SampleParam], Field(min_length=1)]

    @field_validator("params", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"bounds": p} if isinstance(p, list) else p for k, p in v.items()}
        return v


class Axes(_M):
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    zip: dict[str, list[Any]] | list[dict[str, list[Any]]] = {}
    factors: dict[str, Annotated[dict[Any, dict[str, Any]], Field(min_length=1)]] = {}
    sample: Sample | None = None


class StudyFile(_M):
    name: str | None = None
    description: str = ""
    base: str = "default"
    overrides: dict[str, Any] = {}
    axes: Axes = Axes()
    seeds: Any = None                 # checked in _seeds for a clearer message than a union's
    metrics: Annotated[list[str], Field(min_length=1)] = DEFAULT_METRICS
    tables: Literal["all", "none"] | list[str] = "all"
    figures: bool = False


# --- what a loaded study is ------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    name: str                    # the dotted path, or the factor's name
    kind: str                    # grid | zip | factor | sample
    column: str                  # its column in the catalog's runs table
    values: tuple | None         # levels (None for a sampled axis)
    numeric: bool                # numbers (not booleans): plotted on an x axis
    paths: tuple[str, ...]       # the scenario fields it sets


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

    def describe(self) -> dict:
        """JSON-able description stored in the catalog (reports need no study file)."""
        s = self.sample
        return {
            "name": self.name, "description": self.description,
            "source": str(self.source) if self.source else None,
            "base": self.base, "overrides": self.overrides,
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


# --- helpers shared with the sweep, catalog and report ----------------------------------------


def study_path(name_or_path: str | Path) -> Path:
    """A study YAML file, or the name of one shipped in experiments/studies/."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return Path(str(resources.files("experiments") / "studies" / f"{name_or_path}.yaml"))


def shipped_studies() -> list[Path]:
    folder = Path(str(resources.files("experiments") / "studies"))
    return sorted(folder.glob("*.yaml"))


def _scenario_path(name_or_path: str, relative_to: Path | None) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        if not p.is_absolute() and relative_to is not None and (relative_to / p).exists():
            return relative_to / p
        return p
    return Path(str(resources.files("experiments") / "scenarios" / f"{name_or_path}.yaml"))


def column_name(name: str) -> str:
    """A catalog column for a dotted path: `aggregators.0.enrolment` -> aggregators_0_enrolment."""
    col = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower()
    return col if col and not col[0].isdigit() else f"c_{col}"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def run_id_of(scenario: dict) -> str:
    """The id of a run: a hash of its resolved scenario, seed included."""
    return hashlib.sha256(canonical_json(scenario).encode()).hexdigest()[:16]


def flat_paths(tree: Any, prefix: str = "") -> list[str]:
    """Every dotted path to a leaf of a nested dict (for suggestions)."""
    out = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += flat_paths(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def salib_problem(sample: Sample) -> dict:
    names = list(sample.params)
    return {"num_vars": len(names), "names": names,
            "bounds": [list(p.bounds) for p in sample.params.values()],
            "dists": [p.dist for p in sample.params.values()]}


def draw_sample(sample: Sample):
    """The sample matrix (rows x params) of a study's `axes.sample` block."""
    import numpy as np

    problem = salib_problem(sample)
    if sample.method == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, sample.n, calc_second_order=sample.second_order,
                            seed=sample.seed)
    if sample.method == "morris":
        from SALib.sample import morris

        return morris.sample(problem, sample.n, num_levels=sample.levels, seed=sample.seed)
    if sample.method == "latin":
        from SALib.sample import latin

        return latin.sample(problem, sample.n, seed=sample.seed)
    u = np.random.default_rng(sample.seed).random((sample.n, problem["num_vars"]))
    return _scale(u, sample)


def _scale(u, sample: Sample):
    import numpy as np
    from scipy import stats

    out = np.empty_like(u)
    for j, p in enumerate(sample.params.values()):
        a, b = p.bounds
        if p.dist == "unif":
            out[:, j] = a + u[:, j] * (b - a)
        elif p.dist == "norm":
            out[:, j] = stats.norm.ppf(u[:, j], a, b)
        else:
            out[:, j] = np.exp(stats.norm.ppf(u[:, j], a, b))
    return out


# --- the scenario schema, walked by dotted path ----------------------------------------------


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            arms = [a for a in get_args(tp) if a is not type(None)]
            if len(arms) != 1:
                return tp
            tp = arms[0]
        else:
            return tp


def check_path(path: str, data: dict, root: type[BaseModel] = Scenario) -> str | None:
    """None if `path` names a field of the scenario schema (list indices must exist in `data`,
    the base scenario after overrides); otherwise why not."""
    parts = path.split(".")
    if not all(parts):
        return "not a dotted path (empty part)"
    tp: Any = root
    node: Any = data
    walked: list[str] = []
    i = 0
    while i < len(parts):
        seg = parts[i]
        i += 1
        where = "'" + ".".join(walked) + "'" if walked else "the top level"
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if seg not in tp.model_fields:
                return (f"the scenario schema has no field {seg!r} in {where} "
                        f"(its fields: {', '.join(tp.model_fields)})")
            tp = tp.model_fields[seg].annotation
            node = node.get(seg) if isinstance(node, dict) else None
        elif origin is list:
            if not seg.isdigit():
                return f"{where} is a list: expected an item index, got {seg!r}"
            if isinstance(node, list) and int(seg) >= len(node):
                return (f"{where} has {len(node)} item(s) in the base scenario (after "
                        f"overrides), no index {seg}; to add items, set the whole list in "
                        "`overrides`")
            tp = get_args(tp)[0] if get_args(tp) else Any
            node = node[int(seg)] if isinstance(node, list) else None
        elif origin is dict:
            tp = get_args(tp)[1] if get_args(tp) else Any
            if isinstance(node, dict):
                for j in range(len(parts), i - 1, -1):
                    if ".".join(parts[i - 1:j]) in node:
                        seg, i = ".".join(parts[i - 1:j]), j
                        break
            node = node.get(seg) if isinstance(node, dict) else None
        elif tp is Any:
            return None
        else:
            kind = getattr(tp, "__name__", str(tp))
            return f"{where} is a value ({kind}), it has no field {seg!r}"
        walked.append(seg)
    return None


# --- loading ---------------------------------------------------------------------------------


def _loc(loc: tuple) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and re.fullmatch(r"[A-Za-z_]\w*", p):
            out += f".{p}"
        else:
            out += f"[{p!r}]"
    return out.lstrip(".")


def _shown(v: Any) -> str:
    if isinstance(v, dict):
        return "{...}"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_validation(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        # unions report each arm under a label such as 'list[dict[str,list[any]]]'
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p
                                                  and p.startswith(("list[", "dict["))))
        path = _loc(loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{path} = {_shown(err.get('input'))}: unknown key")
        else:
            lines.append(f"{path} = {_shown(err.get('input'))}: {msg}")
    return list(dict.fromkeys(lines))


def _scenario_lines(exc: ScenarioError) -> list[str]:
    """The per-field lines of a ScenarioError (without its 'invalid scenario ...' header)."""
    text = str(exc)
    head, _, rest = text.partition(":\n")
    lines = [ln.strip() for ln in rest.splitlines() if ln.strip()] if rest else [text]
    return lines


def _fail(source: str, lines: list[str], limit: int = 20) -> StudyError:
    shown = lines[:limit]
    if len(lines) > limit:
        shown.append(f"... and {len(lines) - limit} more")
    return StudyError(f"invalid study {source}:\n  " + "\n  ".join(shown))


def _fmt_point(changes: dict) -> str:
    return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in changes.items()) + "}"


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
        raise _fail(source, _format_validation(exc)) from None

    problems: list[str] = []
    name = spec.name or stem or "study"
    if not NAME_RE.fullmatch(name):
        problems.append(f"name = {name!r}: use letters, digits, '_', '-' and '.' only "
                        "(it names the results folder)")

    # base scenario and fixed overrides
    try:
        base = load_scenario(_scenario_path(spec.base, folder))
    except ScenarioError as exc:
        raise _fail(source, [f"base = {spec.base!r}: {ln}" for ln in _scenario_lines(exc)]) \
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
        raise _fail(source, problems)
    try:
        base = with_overrides(base, fixed) if fixed else base
    except ScenarioError as exc:
        raise _fail(source, [f"overrides: {ln}" for ln in _scenario_lines(exc)]) from None
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
        _no_duplicates(values, f"axes.grid[{path!r}]", problems)
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
        _no_duplicates([canonical_json(list(r)) for r in rows], where, problems)
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
        _no_duplicates([canonical_json(c) for c in levels.values()], where, problems)
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
                problems.append(f"{where}: the base value {_shown(cur)} is not a number; only "
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
    seeds = _seeds(spec, base, problems)
    metrics = list(spec.metrics)
    for i, m in enumerate(metrics):
        if not METRIC_RE.fullmatch(m):
            problems.append(f"metrics[{i}] = {m!r}: not a dotted path into summary.json "
                            "(e.g. welfare_eur.total)")
    _no_duplicates(metrics, "metrics", problems)
    if isinstance(spec.tables, list):
        for i, t in enumerate(spec.tables):
            if not re.fullmatch(r"\w+", t):
                problems.append(f"tables[{i}] = {t!r}: not a table name")
    if problems:
        raise _fail(source, problems)

    # each axis value on its own: errors name the axis and the value; names the scenario
    # refers to (strategies, profiles, clearing) are checked too, each problem reported once
    seen_refs: set[str] = set()

    def references(sc: Scenario, where: str) -> None:
        if not check_references:
            return
        for ln in _reference_lines(sc):
            if ln not in seen_refs:
                seen_refs.add(ln)
                problems.append(f"{where}: {ln}")

    references(base, "base" if not fixed else "base with overrides")

    def try_changes(changes: dict, where: str) -> Scenario | None:
        try:
            sc = with_overrides(base, changes)
        except ScenarioError as exc:
            problems.extend(f"{where}: {ln}" for ln in _scenario_lines(exc))
            return None
        references(sc, where)
        return sc

    for path, values in ax.grid.items():
        for i, v in enumerate(values):
            try_changes({path: v}, f"axes.grid[{path!r}][{i}] = {_shown(v)}")
    for b, block in enumerate(zips):
        for path, values in block.items():
            where = f"axes.zip[{b}]" if isinstance(ax.zip, list) else "axes.zip"
            for i, v in enumerate(values):
                try_changes({path: v}, f"{where}[{path!r}][{i}] = {_shown(v)}")
    for fname, levels in ax.factors.items():
        for lv, changes in levels.items():
            try_changes(dict(changes), f"axes.factors.{fname}[{lv!r}]")
    if ax.sample is not None:
        for path, p in ax.sample.params.items():
            if p.dist == "unif":
                for v in p.bounds:
                    v = _round(v, sample_int[path])
                    try_changes({path: v}, f"axes.sample.params[{path!r}].bounds: {v!r}")
    if problems:
        raise _fail(source, problems)

    # the design
    axes: list[Axis] = []
    blocks: list[list[tuple[dict, dict]]] = []   # per block: [(params, changes)]
    for path, values in ax.grid.items():
        axes.append(_axis(path, "grid", values, (path,)))
        blocks.append([({path: v}, {path: v}) for v in values])
    for block in zips:
        for path, values in block.items():
            axes.append(_axis(path, "zip", values, (path,)))
        rows = zip(*block.values(), strict=True)
        blocks.append([(dict(zip(block, r, strict=True)),) * 2 for r in rows])
    for fname, levels in ax.factors.items():
        paths = tuple(sorted({p for lv in levels.values() for p in lv}))
        axes.append(_axis(fname, "factor", list(levels), paths))
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
        raise _fail(source, [f"axes: the design has {n_runs:,} runs ({n_groups:,} combinations "
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
        raise _fail(source, problems)

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
                    v = _round(v, sample_int[path])
                    pparams[path] = v
                    pchanges[path] = v
            key = canonical_json(pchanges)
            if key not in resolved_by_key:
                sc = try_changes(pchanges, f"axes: point {_fmt_point(pparams)}")
                if sc is None:
                    if len(problems) > 20:
                        raise _fail(source, problems)
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
        raise _fail(source, problems)
    runs = [RunSpec(run_id_of({**p.scenario, "seed": sd}), p.index, sd)
            for sd in seeds for p in points]
    return Study(name=name, description=spec.description, source=None if stem is None
                 else Path(source), text=text, spec=spec, base=spec.base, overrides=fixed,
                 axes=axes, points=points, seeds=seeds, runs=runs, metrics=metrics,
                 metric_columns=metric_columns, tables=spec.tables, figures=spec.figures,
                 sample=ax.sample, extra_overrides=dict(overrides or {}))


def _round(v: float, integer: bool) -> float | int:
    return int(round(v)) if integer else float(v)


def _axis(name: str, kind: str, values: list, paths: tuple) -> Axis:
    numeric = all(is_number(v) for v in values)
    return Axis(name, kind, column_name(name), tuple(values), numeric, paths)


def _no_duplicates(values: list, where: str, problems: list[str]) -> None:
    keys = [canonical_json(v) if not isinstance(v, str) else v for v in values]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        problems.append(f"{where}: duplicate values {', '.join(dups)}")


def _seeds(spec: StudyFile, base: Scenario, problems: list[str]) -> list[int]:
    v = spec.seeds
    if v is None:
        return [base.seed]
    if is_number(v) and isinstance(v, int) and 1 <= v <= 100_000:
        return list(range(1, v + 1))
    if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool)
                                         and x >= 0 for x in v):
        if len(set(v)) != len(v):
            problems.append(f"seeds = {v}: duplicate seeds")
        return list(v)
    problems.append(f"seeds = {_shown(v)}: expected a number of replications (3 means seeds "
                    "1, 2, 3) or a non-empty list of distinct seeds >= 0")
    return []


def _reference_lines(sc: Scenario) -> list[str]:
    """Unknown strategy, clearing and profile names (checked without building the grid)."""
    from environment.model import validate_references

    try:
        validate_references(sc)
    except ScenarioError as exc:
        return _scenario_lines(exc)
    return []


def parse_value(text: str) -> Any:
    """A --set value as YAML (numbers, booleans, lists, strings)."""
    return yaml.safe_load(text)


def parse_sets(items: list[str] | None) -> dict:
    out = {}
    for kv in items or []:
        if "=" not in kv:
            raise StudyError(f"--set {kv!r}: expected PATH=VALUE, e.g. calendar.days=1")
        key, text = kv.split("=", 1)
        out[key.strip()] = parse_value(text)
    return out


def check_metrics(metrics: list[str], summary: dict) -> list[str]:
    """Warnings for metric paths missing from (or not numbers in) a run's summary."""
    import difflib

    out = []
    paths = flat_paths(summary)
    for m in metrics:
        try:
            v = lookup(summary, m)
        except KeyError:
            close = difflib.get_close_matches(m, paths, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            out.append(f"metric {m!r} is not in the run's summary.json (stored as null){hint}")
            continue
        if not (is_number(v) or isinstance(v, bool) or v is None):
            kind = f"a mapping with keys {', '.join(list(v)[:6])}" if isinstance(v, dict) \
                else type(v).__name__
            out.append(f"metric {m!r} is {kind}, not a number (stored as null)")
    return out


def dry_check(study: Study, days: int = 1) -> tuple[list[str], float]:
    """Run the first design point for `days` day(s), as the study runs it, and check the
    metric paths against its summary; returns the warnings and the wall time of a day."""
    from experiments.run import run_scenario

    data = study.scenario_data(study.runs[0])
    data["calendar"] = {**data["calendar"], "days": days}
    result = run_scenario(parse_scenario(data, "dry run"), write=False, figures=False)
    return check_metrics(study.metrics, result.summary), result.summary["timing"]["wall_s"] / days

"""What a study file may say and the helpers the study, the sweep, the catalog and the report
share: the file's schema (pydantic), catalog column names, run ids, sampling, the scenario
schema walked by dotted path, and the formatting of problems (one line per field and value).
experiments/study.py documents the file format and expands a file into its design."""

from __future__ import annotations

import hashlib
import json
import re
import types
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from environment.paths import lookup
from environment.scenario import (
    Scenario,
    ScenarioError,
)

DEFAULT_METRICS = ["cost_efficiency", "system_cost_eur", "welfare_eur.total", "congestion.red",
                   "imbalance.system_abs_mwh"]
MAX_RUNS = 1_000_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
METRIC_RE = re.compile(r"^[A-Za-z_][\w-]*(\.[\w/-]+)*$")  # "/": levels.MV/LV.red
FACTOR_RE = re.compile(r"^[A-Za-z_]\w*$")
# Columns of the catalog's runs table that are not params or metrics (see catalog.py).
RESERVED_COLUMNS = {"run_id", "study", "status", "seed", "wall_s", "solver_s", "planner_s",
                    "max_rss_mb", "task_s", "cpu_s", "started_at", "finished_at", "worker",
                    "attempts",
                    "error", "traceback", "path", "params", "scenario", "summary"}


class StudyError(ScenarioError):
    """A study file that cannot be run; each line names a field and its value."""


# --- the file's schema -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SampleParam(_Strict):
    """One sampled field: `bounds` are [low, high] for unif, [mean, sd] for norm and lognorm
    (of the log for lognorm); `integer` rounds samples (default: if the base value is an int)."""

    bounds: Annotated[list[float], Field(min_length=2, max_length=2)]
    dist: Literal["unif", "norm", "lognorm"] = "unif"
    integer: bool | None = None


class Sample(_Strict):
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


class Axes(_Strict):
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    zip: dict[str, list[Any]] | list[dict[str, list[Any]]] = {}
    factors: dict[str, Annotated[dict[Any, dict[str, Any]], Field(min_length=1)]] = {}
    sample: Sample | None = None


class StudyFile(_Strict):
    name: str | None = None
    description: str = ""
    base: str = "default"
    overrides: dict[str, Any] = {}
    axes: Axes = Axes()
    seeds: Any = None                 # checked in _seeds for a clearer message than a union's
    metrics: Annotated[list[str], Field(min_length=1)] = DEFAULT_METRICS
    tables: Literal["all", "none"] | list[str] = "all"
    figures: bool = False



@dataclass(frozen=True)
class Axis:
    name: str                    # the dotted path, or the factor's name
    kind: str                    # grid | zip | factor | sample
    column: str                  # its column in the catalog's runs table
    values: tuple | None         # levels (None for a sampled axis)
    numeric: bool                # numbers (not booleans): plotted on an x axis
    paths: tuple[str, ...]       # the scenario fields it sets



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


def shown(v: Any) -> str:
    if isinstance(v, dict):
        return "{...}"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def format_validation(exc: ValidationError) -> list[str]:
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
            lines.append(f"{path} = {shown(err.get('input'))}: unknown key")
        else:
            lines.append(f"{path} = {shown(err.get('input'))}: {msg}")
    return list(dict.fromkeys(lines))


def scenario_lines(exc: ScenarioError) -> list[str]:
    """The per-field lines of a ScenarioError (without its 'invalid scenario ...' header)."""
    text = str(exc)
    head, _, rest = text.partition(":\n")
    lines = [ln.strip() for ln in rest.splitlines() if ln.strip()] if rest else [text]
    return lines


def fail(source: str, lines: list[str], limit: int = 20) -> StudyError:
    shown = lines[:limit]
    if len(lines) > limit:
        shown.append(f"... and {len(lines) - limit} more")
    return StudyError(f"invalid study {source}:\n  " + "\n  ".join(shown))



def round_value(v: float, integer: bool) -> float | int:
    return int(round(v)) if integer else float(v)


def make_axis(name: str, kind: str, values: list, paths: tuple) -> Axis:
    numeric = all(is_number(v) for v in values)
    return Axis(name, kind, column_name(name), tuple(values), numeric, paths)


def no_duplicates(values: list, where: str, problems: list[str]) -> None:
    keys = [canonical_json(v) if not isinstance(v, str) else v for v in values]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        problems.append(f"{where}: duplicate values {', '.join(dups)}")


def seeds_of(spec: StudyFile, base: Scenario, problems: list[str]) -> list[int]:
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
    problems.append(f"seeds = {shown(v)}: expected a number of replications (3 means seeds "
                    "1, 2, 3) or a non-empty list of distinct seeds >= 0")
    return []


def reference_lines(sc: Scenario) -> list[str]:
    """Unknown strategy, clearing and profile names (checked without building the grid)."""
    from environment.inputs import validate_references

    try:
        validate_references(sc)
    except ScenarioError as exc:
        return scenario_lines(exc)
    return []



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



"""What both kinds of scenario share (environment/scenario.py, environment/transmission/
scenario.py) and nothing else, so that reading a transmission scenario does not build the
distribution-grid schema: the strict base of every section and its number types, the `data`
entries naming the user's series, and the formatting of validation errors (one line per field
and value)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from environment.errors import ScenarioError

NonNeg = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class Model(BaseModel):
    """A section of a scenario: unknown keys, wrong types and NaN refused; frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SeriesSpec(Model):
    """A time series from the user's own file (environment/series.py): CSV or Parquet, one
    timestamp column (default: the first) and the value column, with its unit: W, kW, MW, GW
    (power), Wh, kWh, MWh, GWh (energy per interval), p.u. (share of peak or capacity), EUR/MWh
    or EUR/kWh (prices). Household load, PV, heat-pump and EV series give shapes: normalised to
    their peak over the file (a p.u. series is used as it is) and scaled like simbench's."""

    file: Annotated[str, Field(min_length=1)]
    column: Annotated[str, Field(min_length=1)]
    unit: str
    timestamp: str | None = None



def format_errors(exc: ValidationError, source: str) -> ScenarioError:
    """A pydantic validation error as a ScenarioError: one line per field and value."""
    lines = []
    for err in exc.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        if err["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        elif path:
            lines.append(f"{path} = {shown}: {msg}")
        else:
            lines.append(msg)
    return ScenarioError(f"invalid scenario {source}:\n  " + "\n  ".join(lines))


class Rollout(Model):
    """An electrification rollout on top of the grid data's devices (`devices: simbench`):
    per kind, the share of the households without one in the grid data that get one, drawn
    with the group's size and profile settings of that kind."""

    pv: Share = 0.0
    battery: Share = 0.0
    ev: Share = 0.0
    heat_pump: Share = 0.0

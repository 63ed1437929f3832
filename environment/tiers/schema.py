"""A distribution region under a transmission node: a `regions:` entry of a zonal
transmission scenario (environment/transmission/scenario.py reads it; a module of its own,
light, so the schema needs no distribution model to parse)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")]


class Region(BaseModel):
    """`name` (letters, digits, `_`, `-`: it prefixes the region's ledger accounts), the
    transmission `node` it hangs under, the distribution `scenario` it runs (a shipped name
    or a path) and dotted-path `overrides` of that scenario as `--set` takes them (e.g.
    `prosumers.0.count: 80`). Its calendar, seed and day-ahead price range follow the
    transmission run (environment/tiers/regions.py says how). `pass_up`: the flexibility
    its local place did not clear is offered up to its zone's TSO with its DSO's limits
    attached (the national place, environment/tiers/national.py); off, its DER balance only
    its own region."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    name: Name
    node: Annotated[str, Field(min_length=1)]
    scenario: Annotated[str, Field(min_length=1)] = "default"
    overrides: dict[str, Any] = {}
    pass_up: bool = False

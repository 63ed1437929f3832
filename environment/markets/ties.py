"""The scenario's tie rule handed to a clearing mechanism that has one.

A uniform-price auction whose demand meets the supply curve exactly at a step is cleared by a
whole interval of prices; `markets.dayahead.tie_price` says which one is paid (see
`environment.scenario.DayAhead`). Mechanisms without ties (continuous trading) are returned
as they are."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable


def with_tie_price(clear: Callable, tie_price: str) -> Callable:
    """`clear` with `tie_price` bound when it takes that argument."""
    if "tie_price" not in inspect.signature(clear).parameters:
        return clear

    @functools.wraps(clear)
    def bound(*args, **kwargs):
        return clear(*args, **{"tie_price": tie_price, **kwargs})

    return bound

"""Baseline rules: how the energy an aggregator moved out of (or into) its customers' suppliers'
perimeters is measured, per market (`settlement.baseline`).

A baseline is the consumption the aggregator's devices would have had without it; what they
metered below it is energy the aggregator moved out (it sells it, and compensates the supplier
under `settlement.compensation`). Rules, by name (seed 003, 3.4; the demand-response baselines
of PJM, NYISO and CAISO; the "meter before" of balancing products):

* ``declared``: the schedule the aggregator declared before the day-ahead auction. It cannot be
  checked, so a declaration above the plan is energy sold without being moved.
* ``historical`` ("X of Y"): per MTU, the mean of the X highest-consumption days among the last
  Y days of the same kind (weekday or weekend) of its devices' metered consumption.
* ``rolling``: the mean of the last N days of the same kind.
* ``metered``: the metered reading of the MTU before an activation, held over it (only for the
  markets that activate: the DSO's local market and real-time balancing).

A historical or rolling rule has no history on the first days of a run: it then uses the
devices' own forecast without control (EVs charging on arrival, heat pumps on their heat
demand, batteries idle), which the aggregator cannot move either."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

BASELINES: dict[str, Callable] = {}
LOOKBACK = {"historical": (5, 4), "rolling": (5, None)}  # default (days, top), PJM's 4 of 5
MARKETS = ("dayahead", "lfm", "balancing")


def register_baseline(name: str):
    def deco(fn):
        BASELINES[name] = fn
        return fn

    return deco


@dataclass
class History:
    """An aggregator's metered device consumption per supplier (BRPs, T) by day, with the
    day's kind (weekend or not)."""

    days: dict = field(default_factory=dict)   # day -> (weekend, (BRPs, T) MW)

    def record(self, day: int, weekend: bool, reading: np.ndarray) -> None:
        self.days[day] = (weekend, reading.copy())

    def similar(self, day: int, weekend: bool, n: int) -> list[np.ndarray]:
        """The readings of the last `n` days before `day` of the same kind, latest first."""
        past = sorted((d for d, (w, _) in self.days.items() if d < day and w == weekend),
                      reverse=True)
        return [self.days[d][1] for d in past[:n]]


@register_baseline("declared")
def declared(rule, declared: np.ndarray, history: list, fallback: np.ndarray) -> np.ndarray:
    return declared


@register_baseline("historical")
def historical(rule, declared: np.ndarray, history: list, fallback: np.ndarray) -> np.ndarray:
    """The mean of the `top` days of highest energy among the `days` last similar ones."""
    if len(history) < rule.n_top:
        return fallback
    energy = np.array([h.sum() for h in history])
    best = np.argsort(-energy, kind="stable")[:rule.n_top]
    return np.mean([history[i] for i in best], axis=0)


@register_baseline("rolling")
def rolling(rule, declared: np.ndarray, history: list, fallback: np.ndarray) -> np.ndarray:
    return np.mean(history, axis=0) if history else fallback


@register_baseline("metered")
def metered(rule, declared: np.ndarray, history: list, fallback: np.ndarray) -> np.ndarray:
    """Before real time the reading is not known: the aggregator's own schedule stands in."""
    return declared


def held_before(reading: np.ndarray, active: np.ndarray, before: np.ndarray) -> np.ndarray:
    """(BRPs, T) `before` with each block of consecutive `active` MTUs replaced by `reading`
    at the MTU before the block (a block from the first MTU keeps `before`)."""
    out = before.copy()
    t_n = active.shape[0]
    start = np.flatnonzero(active & ~np.concatenate([[False], active[:-1]]))
    for t0 in start:
        t1 = t0
        while t1 < t_n and active[t1]:
            t1 += 1
        if t0 > 0:
            out[:, t0:t1] = reading[:, t0 - 1:t0]
    return out

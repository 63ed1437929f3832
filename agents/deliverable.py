"""Offer sets deliverable together: the energy bookkeeping behind `Aggregator.deliverable`.

An aggregator's pool at one location offers MW up (consume less) and down (consume more) at
some MTUs (the window of a round, or a balancing block). Any part of those offers may be bought
at any of them. The offers are deliverable together when every such purchase leaves the pool a
re-plan that honours it and every earlier commitment: per device kind, the energy moved away
from the plan stays within the kind's energy envelope until spare power at later (or, ahead of
an offer, earlier) free MTUs has made it up, by the end of the day at the latest, and that
making up (the rebound) stays inside the grid headroom the re-plan is held to.

Per device kind the state is the battery's charge or the EV's or heat pump's cumulative
consumption. Consuming 1 MWh less moves a battery's charge by up to 1/eta (discharging more)
and moving it back restores at least eta (charging more); EVs and heat pumps move 1:1. Counting
every loss at its worst and buying everything as the worst case of each direction makes the
check exact for any part: making up is monotone in what was moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


def each_mtu(pool, plan: dict, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) MW a pool could move around its plan at each MTU alone: power limits, the
    battery's charge and the EV's and heat pump's envelopes at that MTU (not together)."""
    p, dt = plan, dt_h
    soc_before = np.concatenate([[pool.battery_soc], p["soc"][:-1]])
    eta = pool.battery_eta
    evc, hpc = np.cumsum(p["ev"]) * dt, np.cumsum(p["hp"]) * dt
    up = (np.minimum(p["ch"] + pool.battery_mw - p["dis"],
                     p["ch"] + soc_before * eta / dt - p["dis"])
          + np.minimum(p["ev"], np.clip((evc - pool.ev.lower) / dt, 0, None))
          + np.minimum(p["hp"], np.clip((hpc - pool.hp.lower) / dt, 0, None)))
    down = (np.minimum(p["dis"] + pool.battery_mw - p["ch"],
                       p["dis"] + (pool.battery_mwh - soc_before) / (eta * dt) - p["ch"])
            + np.minimum(pool.ev.pmax - p["ev"], np.clip((pool.ev.upper - evc) / dt, 0, None))
            + np.minimum(pool.hp.pmax - p["hp"], np.clip((pool.hp.upper - hpc) / dt, 0, None)))
    return up, down


def kinds(pool, plan: dict, dt_h: float) -> list[tuple]:
    """Per device kind of a pool around its plan: MW it could consume less and more each MTU,
    how far its state may fall and rise by the end of each MTU, and the state change per MWh
    moved away from the plan (at most) and back (at least). A battery ends the day at its
    starting charge; an EV's or heat pump's cumulative consumption stays in its envelope."""
    out = []
    if pool.battery_mw > 0:
        net = plan["ch"] - plan["dis"]
        low, high = plan["soc"].copy(), pool.battery_mwh - plan["soc"]
        low[-1] = high[-1] = 0.0
        eta = pool.battery_eta
        out.append((pool.battery_mw + net, pool.battery_mw - net, low, high, 1 / eta, eta))
    for key, env in (("ev", pool.ev), ("hp", pool.hp)):
        x = np.cumsum(plan[key]) * dt_h
        out.append((plan[key], env.pmax - plan[key], x - env.lower, env.upper - x, 1.0, 1.0))
    return [tuple(np.ascontiguousarray(np.clip(a, 0, None), dtype=float)
                  if isinstance(a, np.ndarray) else float(a) for a in kind) for kind in out]


def location_boxes(pool, plan: dict, dt_h: float, window: np.ndarray, free: np.ndarray,
                   room: np.ndarray | None = None, cap: np.ndarray | None = None,
                   parts: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) MW one location's pool can offer at the `window` MTUs (zero elsewhere),
    at most `cap` (T, 2: up, down; None: no cap), deliverable together with its rebound at
    the `free` MTUs, there within the grid headroom `room` (T, 2: less, more consumption;
    None: unbounded) shared over its device kinds. The earliest MTUs are served first.
    `parts`: the pool's `kinds` around this plan where the caller keeps them (read only)."""
    t_n = len(window)
    cap = np.full((t_n, 2), np.inf) if cap is None else cap
    grid = [np.full(t_n, np.inf) if room is None
            else np.ascontiguousarray(np.clip(room[:, d], 0, None), dtype=float)
            for d in (0, 1)]
    up, down = np.zeros(t_n), np.zeros(t_n)
    for less, more, low, high, gain, loss in (kinds(pool, plan, dt_h) if parts is None
                                              else parts):
        fall, rise = np.zeros(t_n), np.zeros(t_n)   # worst-case state paths of this kind
        for offered, power, drain, span, other, g, path, opposite, most in (
                (up, less, more, low, high, grid[1], fall, rise, cap[:, 0]),
                (down, more, less, high, low, grid[0], rise, fall, cap[:, 1])):
            power = np.minimum(power, np.clip(most - offered, 0, None))
            mw, used = np.zeros(t_n), np.zeros(t_n)
            budget(power, span - path, drain, g, window, free, gain, loss, dt_h, mw, used, path)
            ahead(power, other, drain, g, window, free, gain, loss, dt_h, mw, used, opposite)
            offered += mw
            g -= used
    return up, down


@njit(cache=True)
def budget(power, span, drain, grid, window, free, gain, loss, dt, offer, used, path):
    """Offers in one direction for one device kind whose rebound follows them, earliest MTUs
    first (added to `offer`), the spare power at free MTUs that rebound uses at most (added to
    `used`, MW) and the state moved away from the plan (added to `path`, MWh).

    What is offered at a `window` MTU moves the state by `gain` per MWh when bought; each
    following `free` MTU makes it up by its spare `drain` power within the `grid` headroom
    (`loss` per MWh), and what is still moved must never exceed `span` at the end of an MTU.
    `bound` is the most the end of each MTU may carry and still be made up in time."""
    t_n = len(power)
    bound = np.empty(t_n)
    b = max(span[t_n - 1], 0.0)
    bound[t_n - 1] = b
    for t in range(t_n - 2, -1, -1):
        if free[t + 1]:
            b += max(min(drain[t + 1], grid[t + 1]), 0.0) * dt * loss
        b = min(max(span[t], 0.0), b)
        bound[t] = b
    moved = 0.0
    for t in range(t_n):
        if window[t]:
            mw = min(max(power[t], 0.0), max(bound[t] - moved, 0.0) / (dt * gain))
            offer[t] += mw
            moved += mw * dt * gain
        elif free[t] and moved > 0.0:
            back = min(moved, max(min(drain[t], grid[t]), 0.0) * dt * loss)
            used[t] += back / (dt * loss)
            moved -= back
        path[t] += moved


@njit(cache=True)
def ahead(power, span, drain, grid, window, free, gain, loss, dt, offer, used, path):
    """More offers in the same direction whose rebound comes first: what `offer` leaves of
    `power` at a `window` MTU is matched with spare `drain` power at earlier free MTUs (the
    nearest first; what `used` leaves of it within `grid`), which moves the state the other
    way from there until the offer's MTU, within `span` less what `path` already moves there
    (added to `path`). The re-plan moves a matched part ahead only if it was bought, so the
    worst case of each part is its own."""
    t_n = len(power)
    for t in range(t_n):
        if not window[t]:
            continue
        rest = max(power[t] - offer[t], 0.0)
        head = np.inf
        for r in range(t - 1, -1, -1):
            if rest <= 0.0:
                break
            head = min(head, span[r] - path[r])
            if head <= 0.0:
                break
            if not free[r]:
                continue
            spare = max(min(drain[r], grid[r]) - used[r], 0.0)
            mw = min(rest, spare * loss / gain, head / (dt * gain))
            if mw <= 0.0:
                continue
            offer[t] += mw
            rest -= mw
            used[r] += mw * gain / loss
            for x in range(r, t):
                path[x] += mw * dt * gain
            head -= mw * dt * gain


@dataclass(frozen=True)
class OfferRound:
    """What an aggregator knows of a flexibility round when it makes its offers: the most
    the DSO may buy at each MTU, location and direction (T, K, 2: its request, zero where it
    buys nothing), the first MTU still tradable, whether the platform clears energy in it,
    whether the TSO holds capacity in it (holding is no activation: outside the MTUs anyone
    may activate, each MTU's own flexibility can be held), and the share of the grid headroom
    (T, K, 2) a coupled scheme holds the re-plans after it to (None: free)."""

    dso: np.ndarray
    after: int = 0
    platform: bool = False
    hold: bool = False
    room: np.ndarray | None = None

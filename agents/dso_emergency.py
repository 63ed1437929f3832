"""The DSO's real-time emergency actions (`Dso.red_actions`): where limits are still broken
after the markets (RED) it steers contracted devices or curtails at a regulated price, cleared
as a local market of its own tiers; where even that fails, it disconnects (BLACK)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from agents.prosumer import DayProfiles
from environment.coupling import COUPLING
from environment.markets.lfm import FlexOffers, clear_lfm


def red_actions(dso, ctx, real: dict, prof: DayProfiles) -> dict:
    """Real time, where limits are still broken after the markets (RED): the DSO's emergency
    actions (`dso.emergency_actions`), the same safety net under every coupling scheme. It
    curtails EV and heat-pump consumption (overloads, undervoltage) or PV (reverse flow,
    overvoltage) at the regulated compensation; under a scheme whose real-time regime is
    direct control (conditional coupling, USEF's red regime) it first steers the resources
    aggregators hold under contract (their batteries, EVs and heat pumps) at
    `dso.direct_control_eur_mwh`, paid to the aggregator. Where even that cannot restore the
    limits and loading exceeds `dso.black_loading`, the area is disconnected (BLACK)."""
    model = dso.model
    f, dt, t_n = model.fleet, ctx.dt_h, ctx.n_mtu
    cfg = model.config.dso
    k_n = model.grid.n_locations
    loc = model.grid.bus_location[f.bus]
    net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
    q = dso.reactive(dso.nodal(prof.load + real["hp"]))
    res, flags = dso.assess(dso.nodal(net), q)
    out = {"red": flags["violated"].copy(), "black": np.zeros((t_n, k_n), bool),
           "curtailed_mwh": np.zeros(f.n), "direct_mwh": np.zeros(f.n)}
    if not flags["violated"].any():
        return out
    tiers = red_tiers(model, real, prof)
    parts, weights = [], np.zeros((t_n, model.grid.n_bus, 2))
    t_idx, k_idx = (a.ravel() for a in np.meshgrid(np.arange(t_n), np.arange(k_n),
                                                   indexing="ij"))
    at_k = {}   # (tier, d) -> (T, K) MW it can move per location
    for i, tier in enumerate(tiers):
        for d, direction, arr in ((0, 1, tier.up), (1, -1, tier.down)):
            at_k[i, d] = by_location(loc, arr, k_n)
            parts.append(FlexOffers(np.full(t_n * k_n, i), k_idx, t_idx,
                                    np.full(t_n * k_n, direction), at_k[i, d].ravel(),
                                    np.full(t_n * k_n, tier.price)))
            weights[..., d] += dso.nodal(arr)
    lfm = clear_lfm(FlexOffers.concat(parts), dso.grid_limits(res, weights), dt,
                    "pay_as_bid", None, model.config.markets.lfm.unresolved_cost_eur_mwh,
                    np.flatnonzero(flags["violated"].any(1)))
    acc = lfm.accepted_mw.reshape(len(tiers), 2, t_n, k_n)
    for i, tier in enumerate(tiers):
        for d, arr in ((0, tier.up), (1, tier.down)):
            share = np.divide(acc[i, d], at_k[i, d], out=np.zeros((t_n, k_n)),
                              where=at_k[i, d] > 0)
            moved = arr * share.T[loc]          # (N, T) MW moved per prosumer
            out[tier.booked] += moved.sum(1) * dt
            tier.apply(real, prof, moved, d)
    net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
    q = dso.reactive(dso.nodal(prof.load + real["hp"]))
    _, after = dso.assess(dso.nodal(net), q)
    black = after["violated"] & (after["max_loading"] > cfg.black_loading)
    out["black"] = black
    dso.charge(loc, out["curtailed_mwh"] * cfg.red_compensation_eur_mwh
               + out["direct_mwh"] * cfg.direct_control_eur_mwh)
    for t, k in zip(*np.nonzero(black), strict=True):
        m = loc == k
        for arr in (prof.load, prof.pv, real["battery"], real["ev"], real["hp"]):
            arr[m, t] = 0.0
    return out


@njit(cache=True)
def by_location(loc, arr, k_n):
    """(T, K) the rows of `arr` (N, T) summed per location `loc` (N,), in row order from
    zero: the sums `np.add.at` makes, without its per-element dispatch."""
    n, t_n = arr.shape
    out = np.zeros((t_n, k_n))
    for i in range(n):
        k = loc[i]
        for t in range(t_n):
            out[t, k] += arr[i, t]
    return out


@dataclass(frozen=True)
class RedTier:
    """One tier of the DSO's real-time actions: what it can move per prosumer (N, T) MW less
    (up) and more (down) consumption, at which price, on which devices (EVs and heat pumps of
    the masked prosumers; contracted batteries; PV), and where the energy is booked."""

    up: np.ndarray
    down: np.ndarray
    price: float
    ev: np.ndarray
    hp: np.ndarray
    battery: np.ndarray | None
    booked: str

    def apply(self, real: dict, prof: DayProfiles, moved: np.ndarray, d: int) -> None:
        """Apply MW moved per prosumer (N, T) in direction d to the devices, in proportion to
        what each contributed."""
        if d == 1:
            if self.battery is not None:   # less discharging: battery power rises toward 0
                real["battery"] += np.where(self.battery[:, None], moved, 0.0)
            else:
                prof.pv -= moved
            return
        parts = [np.where(self.ev[:, None], real["ev"], 0.0),
                 np.where(self.hp[:, None], real["hp"], 0.0)]
        if self.battery is not None:
            parts.append(np.where(self.battery[:, None], np.clip(real["battery"], 0, None),
                                  0.0))
        total = sum(parts)
        frac = np.divide(moved, total, out=np.zeros_like(moved), where=total > 0)
        real["ev"] -= parts[0] * frac
        real["hp"] -= parts[1] * frac
        if self.battery is not None:
            real["battery"] -= parts[2] * frac


def red_tiers(model, real: dict, prof: DayProfiles) -> list[RedTier]:
    """The tiers of the DSO's real-time actions: direct control of contracted devices first
    where the scheme provides it (less charging and consumption up, less discharging down),
    then curtailment of the rest (EV and heat-pump consumption up, PV down)."""
    f, cfg = model.fleet, model.config.dso
    e = f.enrolled
    everyone = np.ones(f.n, bool)
    ev, hp = everyone, everyone
    tiers = []
    if COUPLING[model.config.markets.coupling].realtime == "direct_control":
        bat = np.where(e["battery"][:, None], real["battery"], 0.0)
        tiers.append(RedTier(
            np.where(e["ev"][:, None], real["ev"], 0.0)
            + np.where(e["heat_pump"][:, None], real["hp"], 0.0) + np.clip(bat, 0, None),
            np.clip(-bat, 0, None), cfg.direct_control_eur_mwh, e["ev"], e["heat_pump"],
            e["battery"], "direct_mwh"))
        ev, hp = ~e["ev"], ~e["heat_pump"]
    tiers.append(RedTier(np.where(ev[:, None], real["ev"], 0.0)
                          + np.where(hp[:, None], real["hp"], 0.0), prof.pv.copy(),
                          cfg.red_compensation_eur_mwh, ev, hp, None, "curtailed_mwh"))
    return tiers

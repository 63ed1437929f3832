"""Aggregators: pool prosumer flexibility into envelopes, schedule it, and dispatch set-points."""

from __future__ import annotations

from dataclasses import dataclass

import mesa
import numpy as np

from agents.prosumer import Envelope
from agents.strategies import make_strategy


@dataclass
class Pool:
    """An aggregator's flexibility for one day as one virtual device of each kind."""

    battery_mwh: float
    battery_mw: float
    battery_soc: float
    battery_eta: float
    ev: Envelope
    hp: Envelope


def allocate(total: np.ndarray, env: Envelope, dt_h: float) -> np.ndarray:
    """Split a pooled schedule over members, least laxity first.

    Each MTU every member first gets what keeps it above its lower cumulative bound; the rest
    is shared in proportion to the headroom below its upper bound and power limit. Where the
    pool's relaxation promised more than the members can do, the split falls short."""
    n, t = env.lower.shape
    out = np.zeros((n, t))
    cum = np.zeros(n)
    for k in range(t):
        cap = np.clip(np.minimum(env.pmax[:, k], (env.upper[:, k] - cum) / dt_h), 0, None)
        must = np.minimum(np.clip((env.lower[:, k] - cum) / dt_h, 0, None), cap)
        rest = total[k] - must.sum()
        head = cap - must
        room = head.sum()
        frac = min(1.0, rest / room) if rest > 0 and room > 0 else 0.0
        out[:, k] = must + frac * head
        cum += out[:, k] * dt_h
    return out


class Aggregator(mesa.Agent):
    """Pools the batteries, EVs and heat pumps of its contracted prosumers.

    It is balance responsible for the devices it controls (they are sub-metered out of the
    supplier's perimeter), pays each prosumer a flexibility fee per device and day, and sells
    them the energy its devices consume at their retail price."""

    agent_class = "aggregators"

    def __init__(self, model, cfg, index: int):
        super().__init__(model)
        self.name = cfg.name
        self.index = index
        self.degradation = cfg.degradation_eur_mwh
        self.fee = cfg.fee_eur_per_device_day
        self.strategy = make_strategy("aggregator", cfg.strategy)
        self.pool: Pool | None = None
        self.plan: dict[str, np.ndarray] = {}
        self.realised_net: np.ndarray | None = None

    @property
    def members(self) -> np.ndarray:
        return self.model.fleet.aggregator == self.index

    def masks(self) -> dict[str, np.ndarray]:
        f = self.model.fleet
        m = self.members
        return {d: m & f.enrolled[d] for d in ("battery", "ev", "heat_pump")}

    def build_pool(self, ctx) -> Pool:
        f, m = self.model.fleet, self.masks()
        b = m["battery"]
        eta = float(f.eta[b].mean()) if b.any() else 1.0
        self.pool = Pool(f.batt_mwh[b].sum(), f.batt_mw[b].sum(), f.soc[b].sum(), eta,
                         ctx.ev_env.pooled(m["ev"]), ctx.hp_env_forecast.pooled(m["heat_pump"]))
        self.pool.ev.lower = np.minimum(self.pool.ev.lower, self.pool.ev.upper)
        self.pool.hp.lower = np.minimum(self.pool.hp.lower, self.pool.hp.upper)
        return self.pool

    def schedule(self, ctx, prices: np.ndarray) -> None:
        self.build_pool(ctx)
        self.plan = self.strategy.schedule(self, ctx, prices)
        self.plan["baseline"] = self.pool_baseline(ctx)

    def pool_baseline(self, ctx) -> np.ndarray:
        m = self.masks()
        return ctx.forecast.ev[m["ev"]].sum(0) + ctx.forecast.hp[m["heat_pump"]].sum(0)

    def planned_net_mw(self) -> np.ndarray:
        p = self.plan
        return p["ch"] - p["dis"] + p["ev"] + p["hp"]

    def flexibility_envelope(self, ctx) -> tuple[np.ndarray, np.ndarray]:
        """Upward (less consumption) and downward (more consumption) MW available around the
        schedule each MTU, from power limits alone (energy limits bind over several MTUs)."""
        p, pool = self.plan, self.pool
        up = (p["ch"] + pool.battery_mw - p["dis"]) + p["ev"] + p["hp"]
        down = (pool.battery_mw - p["ch"] + p["dis"]) + (pool.ev.pmax - p["ev"]) \
            + (pool.hp.pmax - p["hp"])
        return up, np.clip(down, 0, None)

    def setpoints(self, ctx, devices: dict[str, np.ndarray]) -> None:
        """Disaggregate the plan into per-device set-points (MW, rows = prosumers), in place."""
        f, m, p, dt = self.model.fleet, self.masks(), self.plan, ctx.dt_h
        b = m["battery"]
        if b.any():
            share = f.batt_mwh[b] / f.batt_mwh[b].sum()
            devices["battery"][b] = np.outer(share, p["ch"] - p["dis"])
        for key, mask, env in (("ev", m["ev"], ctx.ev_env),
                               ("hp", m["heat_pump"], ctx.hp_env_forecast)):
            if mask.any():
                sub = Envelope(env.lower[mask], env.upper[mask], env.pmax[mask])
                devices[key][mask] = allocate(p[key], sub, dt)

    def realise(self, ctx, devices: dict[str, np.ndarray]) -> None:
        """Real time: batteries follow set-points (and cycle back to their start), heat pumps
        deviate by the error in their heat-demand forecast."""
        f, m = self.model.fleet, self.masks()
        b = m["battery"]
        if b.any():
            d = devices["battery"][b]
            eta = f.eta[b][:, None]
            delta = (np.clip(d, 0, None) * eta + np.clip(d, None, 0) / eta).sum(1) * ctx.dt_h
            f.soc[b] = np.clip(f.soc[b] + delta, 0, f.batt_mwh[b])
        h = m["heat_pump"]
        if h.any():
            dev = ctx.profiles.hp[h] - ctx.forecast.hp[h]
            devices["hp"][h] = np.clip(devices["hp"][h] + dev, 0, f.hp_mw[h][:, None])
        self.realised_net = devices["battery"][b].sum(0) + devices["ev"][m["ev"]].sum(0) \
            + devices["hp"][h].sum(0)

    def realised_mw(self, ctx, position_mw=None) -> np.ndarray:
        """Metered consumption of the devices it controls (sub-metered out of the supplier's
        perimeter)."""
        return self.realised_net

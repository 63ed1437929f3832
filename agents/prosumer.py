"""Prosumers: households with inflexible load, PV, battery, EV and heat pump.

The physics of thousands of prosumers steps as arrays over the whole fleet (struct of arrays);
a `Prosumer` Mesa agent is a light view on one row, so the model keeps one agent per prosumer
for inspection and visualisation without one Python call per prosumer per MTU.
"""

from __future__ import annotations

from dataclasses import dataclass

import mesa
import numpy as np
from numba import njit

from agents.prosumer_devices import ConnectionDevices, household_connections
from environment.profiles import ProfileBank

ROWS_PER_WEEK = 7 * 96


@dataclass
class DayProfiles:
    """One delivery day of the fleet, MW per prosumer (rows) and MTU (columns)."""

    load: np.ndarray
    pv: np.ndarray
    ev: np.ndarray
    hp: np.ndarray


@dataclass
class Envelope:
    """Cumulative-energy envelope of a shiftable device (EV, heat pump) over one day:
    the cumulative consumption after MTU t must lie in [lower[t], upper[t]] MWh, with power
    in [0, pmax[t]] MW. A pool's envelope is the sum of its members' (a relaxation)."""

    lower: np.ndarray
    upper: np.ndarray
    pmax: np.ndarray

    def pooled(self, mask: np.ndarray) -> Envelope:
        return Envelope(self.lower[mask].sum(0), self.upper[mask].sum(0), self.pmax[mask].sum(0))

    def tightened(self, dt_h: float) -> Envelope:
        """Bounds every feasible path respects: cumulative energy never falls, rises at most
        pmax per MTU, and must be able to reach the next MTU's lower bound; without this a
        greedy split can stray where the end-of-day pin cannot be met any more."""
        lo, up = _tighten(np.ascontiguousarray(self.lower, dtype=float),
                          np.ascontiguousarray(self.upper, dtype=float),
                          np.ascontiguousarray(self.pmax * dt_h, dtype=float))
        return Envelope(lo, up, self.pmax)


class ProsumerFleet:
    """All prosumers as arrays; sampled once from the scenario with the model's RNG, their
    devices drawn by share or (`devices: simbench`) taken from `owned`, the grid data's."""

    def __init__(self, groups, grid, loads, bank_names: list[str], rng: np.random.Generator,
                 brp_shares: np.ndarray, owned: ConnectionDevices | None = None):
        from environment.scenario import ScenarioError

        household_buses, weights, household_profiles = household_connections(grid, loads)
        cols: dict[str, list] = {k: [] for k in (
            "bus", "group", "load_profile", "annual_mwh", "pv_profile", "pv_mw", "batt_mwh",
            "batt_mw", "ev_profile", "ev_mw", "hp_profile", "hp_mw", "hp_band_h", "ev_park_h",
            "eta")}
        self.group_names = [g.name for g in groups]
        for gi, g in enumerate(groups):
            n = g.count
            if g.connections == "each":
                if n > len(household_buses):
                    raise ScenarioError(
                        f"invalid scenario: prosumers[{gi}].count = {n}: connections 'each' "
                        f"places one member per household connection point and grid "
                        f"{grid.code} has {len(household_buses)}")
                buses = household_buses[:n]
            elif g.buses is None:
                buses = rng.choice(household_buses, size=n, p=weights)
            else:
                idx = []
                for j, name in enumerate(g.buses):
                    if name not in grid.bus_index:
                        raise ScenarioError(
                            f"invalid scenario: prosumers[{gi}].buses[{j}] = {name!r}: not a bus "
                            f"of grid {grid.code} (e.g. {list(grid.bus_index)[1:4]})")
                    idx.append(grid.bus_index[name])
                buses = np.asarray(idx)[rng.integers(0, len(idx), size=n)]
            cols["bus"].append(buses)
            cols["group"].append(np.full(n, gi))
            drawn = rng.choice(g.load_profiles, size=n)
            if g.connections == "each":   # the connection's own simbench profile, if listed
                own = household_profiles[:n]
                drawn = np.where(np.isin(own, g.load_profiles), own, drawn)
            cols["load_profile"].append(drawn)
            cols["annual_mwh"].append(np.maximum(0.3, rng.normal(g.annual_mwh_mean,
                                                                 g.annual_mwh_sd, n)))
            # simbench's devices discard the draws, so the random numbers after them (forecast
            # errors, weather) stay those of the same scenario with drawn devices
            drawn = _draw_devices(cols if g.devices == "drawn" else {k: [] for k in cols}, g, rng)
            if g.devices == "simbench":
                _take_devices(cols, g, owned, drawn)
            cols["eta"].append(np.full(n, g.battery.efficiency))
            cols["ev_park_h"].append(np.full(n, g.ev.parking_hours))
            cols["hp_band_h"].append(np.full(n, g.heat_pump.storage_hours))
        a = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
        self.n = len(a["bus"])
        self.bus = a["bus"].astype(int)
        self.group = a["group"].astype(int)
        self.load_idx = _indices(a["load_profile"], bank_names)
        self.pv_idx = _indices(a["pv_profile"], bank_names)
        self.ev_idx = _indices(a["ev_profile"], bank_names)
        self.hp_idx = _indices(a["hp_profile"], bank_names)
        self.load_profile_names = a["load_profile"]
        self.annual_mwh = a["annual_mwh"]
        self.pv_mw = a["pv_mw"]
        self.batt_mwh = a["batt_mwh"]
        self.batt_mw = a["batt_mw"]
        self.eta = a["eta"]
        socs = np.concatenate([np.full(g.count, g.battery.initial_soc) for g in groups]) \
            if self.n else np.zeros(0)
        self.soc = self.batt_mwh * socs
        self.ev_mw = a["ev_mw"]
        self.ev_park_h = a["ev_park_h"]
        self.hp_mw = a["hp_mw"]
        self.hp_band_mwh = a["hp_band_h"] * self.hp_mw
        self.shift = rng.integers(-3, 4, self.n) * ROWS_PER_WEEK
        self.brp = rng.choice(len(brp_shares), size=self.n, p=brp_shares)
        self.aggregator = np.full(self.n, -1)
        self.enrolled = {k: np.zeros(self.n, bool) for k in ("battery", "ev", "heat_pump")}

    def enrol(self, aggregator: int, share: float, devices: list[str], rng: np.random.Generator,
              eligible: np.ndarray | None = None):
        """Contract a share of the not yet enrolled (and `eligible`) prosumers owning a
        flexible device."""
        owns = {"battery": self.batt_mwh > 0, "ev": self.ev_mw > 0, "heat_pump": self.hp_mw > 0}
        candidate = (self.aggregator < 0) & np.any([owns[d] for d in devices], axis=0)
        if eligible is not None:
            candidate &= eligible
        chosen = candidate & (rng.random(self.n) < share)
        self.aggregator[chosen] = aggregator
        for d in devices:
            self.enrolled[d] |= chosen & owns[d]

    def day_profiles(self, bank: ProfileBank, day: int) -> DayProfiles:
        """Realised device baselines for one day; load scaled to each member's annual energy."""
        load_peak = self.annual_mwh / np.array(
            [bank.annual_energy_per_peak(p) for p in self.load_profile_names]) \
            if self.n else np.zeros(0)
        return DayProfiles(
            load=bank.day(self.load_idx, day, self.shift) * load_peak[:, None],
            pv=bank.day(self.pv_idx, day, 0) * self.pv_mw[:, None],
            ev=bank.day(self.ev_idx, day, self.shift) * self.ev_mw[:, None],
            hp=bank.day(self.hp_idx, day, self.shift) * self.hp_mw[:, None],
        )

    def ev_envelope(self, ev: np.ndarray, dt_h: float) -> Envelope:
        """Uncontrolled (as-soon-as-possible) charging is the upper bound; the lower bound
        delays it by each car's parking slack, and all of the day's energy is due by midnight."""
        cum = np.cumsum(ev, axis=1) * dt_h
        t = ev.shape[1]
        delay = np.clip(np.round(self.ev_park_h / dt_h).astype(int), 0, t)
        cols = np.arange(t)[None, :] - delay[:, None]
        lower = np.where(cols >= 0, np.take_along_axis(cum, np.clip(cols, 0, t - 1), 1), 0.0)
        lower[:, -1] = cum[:, -1]
        charging = (ev > 0).astype(int)
        c = np.concatenate([np.zeros((len(ev), 1), int), np.cumsum(charging, 1)], axis=1)
        start = np.clip(np.arange(t)[None, :] - delay[:, None], 0, t)
        connected = (c[:, 1:] - np.take_along_axis(c, start, 1)) > 0
        pmax = np.where(connected, self.ev_mw[:, None], 0.0)
        return Envelope(lower, cum, np.maximum(pmax, ev)).tightened(dt_h)

    def hp_envelope(self, hp: np.ndarray, dt_h: float) -> Envelope:
        """Thermal inertia lets a heat pump run ahead or behind its baseline by `band` MWh of
        electricity; it ends the day on its baseline energy."""
        cum = np.cumsum(hp, axis=1) * dt_h
        band = self.hp_band_mwh[:, None]
        lower = np.maximum(cum - band, 0.0)
        upper = cum + band
        lower[:, -1] = upper[:, -1] = cum[:, -1]
        pmax = np.broadcast_to(np.maximum(self.hp_mw[:, None], hp), hp.shape).copy()
        return Envelope(lower, upper, pmax).tightened(dt_h)

    def self_consumption(self, surplus: np.ndarray, mask: np.ndarray, dt_h: float
                         ) -> np.ndarray:
        """Rule-based home batteries (not enrolled): charge PV surplus, discharge into deficit.

        Returns their power (MW, + charging) from the current states of charge, which it
        leaves as they are (`commit_soc` moves them once real time is final)."""
        out = np.zeros_like(surplus)
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return out
        power, _ = _self_consume(np.ascontiguousarray(surplus[idx], dtype=float),
                                 self.batt_mwh[idx], self.batt_mw[idx], self.eta[idx],
                                 self.soc[idx], float(dt_h))
        out[idx] = power
        return out

    def keep_within_soc(self, power: np.ndarray, dt_h: float) -> float:
        """Cut battery power (N, T) MW, in place, where following it from the current states
        of charge would leave [0, capacity]: a battery stops charging when full and
        discharging when empty. Needed where real time cut a planned path short (a BLACK
        disconnection zeroes a discharge the plan counted on); returns the MWh of power cut."""
        b = np.flatnonzero(self.batt_mwh > 0)
        if b.size == 0:
            return 0.0
        kept, cut = _within_soc(np.ascontiguousarray(power[b], dtype=float), self.batt_mwh[b],
                                self.eta[b], self.soc[b].copy(), float(dt_h))
        power[b] = kept
        return cut if cut > 1e-9 else 0.0

    def follow(self, power: np.ndarray, rows: np.ndarray, dt_h: float) -> np.ndarray:
        """Battery power (len(rows), T) MW of `rows` as planned, cut where following it from
        the current states of charge would leave [0, capacity] (a plan made from them is
        kept as it is, but for solver tolerance)."""
        if rows.size == 0:
            return np.zeros((0, power.shape[1]))
        kept, _ = _within_soc(np.ascontiguousarray(power, dtype=float), self.batt_mwh[rows],
                              self.eta[rows], self.soc[rows].copy(), float(dt_h))
        return kept

    def commit_soc(self, power: np.ndarray, dt_h: float) -> float:
        """Move every battery's state of charge along its realised power (N, T) MW (+ charging,
        losses on both sides); returns the MWh that fell outside [0, capacity] and was clipped
        (none where the power path was planned within the bounds and nothing cut it short)."""
        b = np.flatnonzero(self.batt_mwh > 0)
        if b.size == 0:
            return 0.0
        d, eta = power[b], self.eta[b][:, None]
        new = self.soc[b] + (np.clip(d, 0, None) * eta + np.clip(d, None, 0) / eta).sum(1) * dt_h
        kept = np.clip(new, 0, self.batt_mwh[b])
        self.soc[b] = kept
        lost = float(np.abs(new - kept).sum())
        return lost if lost > 1e-9 else 0.0


@njit(cache=True)
def _tighten(lower, upper, step):
    """`Envelope.tightened` per member: the upper bound never above a later one nor more than
    pmax above the previous MTU's; the lower bound reachable from the next MTU's."""
    n, t_n = upper.shape
    up = np.empty_like(upper)
    lo = lower.copy()
    for i in range(n):
        m = np.inf
        for t in range(t_n - 1, -1, -1):
            m = min(m, upper[i, t])
            up[i, t] = m
        prev = 0.0
        for t in range(t_n):
            prev = min(up[i, t], prev + step[i, t])
            up[i, t] = prev
        for t in range(t_n - 2, -1, -1):
            lo[i, t] = max(lo[i, t], lo[i, t + 1] - step[i, t + 1])
        for t in range(t_n):
            lo[i, t] = min(lo[i, t], up[i, t])
    return lo, up


@njit(cache=True)
def _self_consume(surplus, e, p, eta, soc, dt_h):
    """Charge what surplus the battery can take, discharge into deficit, MTU by MTU (a
    sequential rule, compiled); returns power (+ charging) and the final states of charge."""
    n, t_n = surplus.shape
    power = np.zeros((n, t_n))
    end = soc.copy()
    for i in range(n):
        x = soc[i]
        for t in range(t_n):
            s = surplus[i, t]
            charge = min(min(max(s, 0.0), p[i]), (e[i] - x) / (eta[i] * dt_h))
            discharge = min(min(max(-s, 0.0), p[i]), x * eta[i] / dt_h)
            x = x + (charge * eta[i] - discharge / eta[i]) * dt_h
            power[i, t] = charge - discharge
        end[i] = x
    return power, end


@njit(cache=True)
def _within_soc(power, e, eta, soc, dt_h):
    """`power` cut MTU by MTU so that the state of charge stays in [0, e]; and the MWh cut."""
    n, t_n = power.shape
    out = power.copy()
    cut = 0.0
    for i in range(n):
        x = soc[i]
        for t in range(t_n):
            d = power[i, t]
            if d > 0:
                d = min(d, max(e[i] - x, 0.0) / (eta[i] * dt_h))
                x = x + d * eta[i] * dt_h
            else:
                d = max(d, -max(x, 0.0) * eta[i] / dt_h)
                x = x + d / eta[i] * dt_h
            cut += abs(power[i, t] - d) * dt_h
            out[i, t] = d
    return out, cut


def _draw_devices(cols: dict[str, list], g, rng: np.random.Generator) -> dict:
    """A group's devices drawn by share and size (`devices: drawn`). Returns what it drew for
    every member: per kind the uniform number its share is compared with (`u`), and the
    size and profile a member gets with that kind, for a rollout on simbench's devices."""
    n = g.count
    u = {k: rng.random(n) for k in ("pv", "battery", "ev", "heat_pump")}
    has = {k: u[k] < getattr(g, k).share for k in u}
    has["battery"] &= has["pv"] | (rng.random(n) < 0.25)
    out = {"u": u, "pv_profile": rng.choice(g.pv.profiles, size=n),
           "pv_mw": np.maximum(1.0, rng.normal(g.pv.kwp_mean, g.pv.kwp_sd, n)) / 1e3,
           "batt_mwh": np.maximum(2.0, rng.normal(g.battery.capacity_kwh_mean,
                                                  g.battery.capacity_kwh_sd, n)) / 1e3}
    out["batt_mw"] = out["batt_mwh"] / g.battery.duration_h
    out["ev_profile"] = rng.choice(g.ev.profiles, size=n)
    out["ev_mw"] = np.array([g.ev.charger_kw.get(p, 3.7) for p in out["ev_profile"]]) / 1e3
    out["hp_profile"] = rng.choice(g.heat_pump.profiles, size=n)
    out["hp_mw"] = np.maximum(1.0, rng.normal(g.heat_pump.kw_mean, g.heat_pump.kw_sd, n)) / 1e3
    for kind, keys in ROLLOUT_KEYS.items():
        for key in keys:
            value = out[key]
            cols[key].append(value if key.endswith("profile") else has[kind] * value)
    return out


ROLLOUT_KEYS = {"pv": ("pv_mw", "pv_profile"), "battery": ("batt_mwh", "batt_mw"),
                "ev": ("ev_mw", "ev_profile"), "heat_pump": ("hp_mw", "hp_profile")}
"""The fleet's columns of each device kind: its size (first) and profile."""


def _take_devices(cols: dict[str, list], g, owned: ConnectionDevices, drawn: dict) -> None:
    """A group's devices from the grid data at its connection points (`devices: simbench`);
    a member without a device keeps the group's first profile of that kind, at 0 MW. Where
    `rollout` sets a kind, the members without one in the grid data whose draw falls below
    its share get the drawn one (`drawn`, of `_draw_devices`)."""
    n = g.count
    first = {"pv_profile": g.pv.profiles[0], "ev_profile": g.ev.profiles[0],
             "hp_profile": g.heat_pump.profiles[0]}
    for kind, keys in ROLLOUT_KEYS.items():
        gets = (drawn["u"][kind] < getattr(g.rollout, kind)) \
            & (getattr(owned, keys[0])[:n] <= 0)
        for key in keys:
            mine = getattr(owned, key)[:n]
            if key in first:
                mine = np.where(mine == "", first[key], mine).astype(str)
            cols[key].append(np.where(gets, drawn[key], mine))


def _indices(names: np.ndarray, bank_names: list[str]) -> np.ndarray:
    lookup = {n: i for i, n in enumerate(bank_names)}
    return np.array([lookup[n] for n in names], dtype=int)


class Prosumer(mesa.Agent):
    """One household; its state lives in the fleet arrays (row `index`)."""

    def __init__(self, model: mesa.Model, fleet: ProsumerFleet, index: int):
        super().__init__(model)
        self.fleet = fleet
        self.index = index

    @property
    def bus(self) -> int:
        return int(self.fleet.bus[self.index])

    @property
    def devices(self) -> dict[str, float]:
        f, i = self.fleet, self.index
        return {"pv_kw": f.pv_mw[i] * 1e3, "battery_kwh": f.batt_mwh[i] * 1e3,
                "ev_kw": f.ev_mw[i] * 1e3, "heat_pump_kw": f.hp_mw[i] * 1e3}

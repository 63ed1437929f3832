"""Household connection points of a simbench grid and the devices simbench places there.

With `devices: simbench` a household's PV, battery, EV and heat pump are the grid data's
(`environment.inputs.household_devices`) rather than drawn by share. An element at a bus with
several household connection points (an apartment building: several H0 loads at one bus) is
split evenly among them: simbench states the building's installation, not which flat owns it,
an even split keeps every bus's total as the grid data has it without an arbitrary choice (no
random draw), and each household's net load keeps its share. Several elements of a kind at one
bus (two home chargers where one household lives) add up; their profile is then the mix of
theirs weighted by rating, so the household's baseline is exactly their sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("pv", "battery", "ev", "heat_pump")
EV_PROFILES = "HLS_"
HEAT_PUMP_PROFILES = ("Air_", "Soil_")


def household_connections(grid, loads) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Household connection points of a simbench grid (in the grid's order), weighted by
    their rated power, and the load profile simbench gives each."""
    households = loads[loads.profile.astype(str).str.startswith("H0")]
    if not households.empty:
        loads = households
    buses = np.array([grid.load_bus(b) for b in loads.bus])
    w = loads.p_mw.to_numpy(float)
    return buses, w / w.sum(), loads.profile.astype(str).to_numpy()


@dataclass(frozen=True)
class ConnectionDevices:
    """Devices per household connection point (rows in `household_connections` order): MW
    (battery also MWh) and profile names ("" where it has none). `mixes` are the blended
    profiles (name: (simbench profile, weight), ...) for `environment.profiles.ProfileBank`;
    `unplaced` the MW (battery: MWh) of each kind at buses without a household."""

    pv_mw: np.ndarray
    pv_profile: np.ndarray
    batt_mwh: np.ndarray
    batt_mw: np.ndarray
    ev_mw: np.ndarray
    ev_profile: np.ndarray
    hp_mw: np.ndarray
    hp_profile: np.ndarray
    mixes: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    unplaced: dict[str, float] = field(default_factory=dict)

    @property
    def profile_names(self) -> list[str]:
        names = np.concatenate([self.pv_profile, self.ev_profile, self.hp_profile])
        return sorted(set(names.tolist()) - {""})


def connection_devices(grid, loads, devices) -> ConnectionDevices:
    """Each household connection point's share of the devices at its bus (see the module
    docstring); `devices` is the table of `environment.inputs.household_devices`."""
    connection_bus, _, _ = household_connections(grid, loads)
    households = np.bincount(connection_bus, minlength=grid.n_bus)
    bus = np.array([grid.pp_bus_map.get(int(b), -1) for b in devices.bus], dtype=int)
    placed = bus >= 0
    placed[placed] = households[bus[placed]] > 0
    mixes: dict[str, tuple[tuple[str, float], ...]] = {}
    out, unplaced = {}, {}
    for kind in KINDS:
        sel = (devices.kind == kind).to_numpy()
        here = sel & placed
        value = devices.e_mwh if kind == "battery" else devices.p_mw
        unplaced[kind] = float(value.to_numpy()[sel & ~placed].sum())
        share = 1.0 / households[connection_bus]
        for col, what in (("mw", devices.p_mw), ("mwh", devices.e_mwh)):
            per_bus = np.bincount(bus[here], weights=what.to_numpy()[here], minlength=grid.n_bus)
            out[kind, col] = per_bus[connection_bus] * share
        profile_of_bus = _bus_profiles(bus[here], devices.profile.to_numpy()[here],
                                       devices.p_mw.to_numpy()[here], mixes)
        out[kind, "profile"] = np.array([profile_of_bus.get(int(b), "") for b in connection_bus],
                                        dtype=object)
    return ConnectionDevices(
        pv_mw=out["pv", "mw"], pv_profile=out["pv", "profile"],
        batt_mwh=out["battery", "mwh"], batt_mw=out["battery", "mw"],
        ev_mw=out["ev", "mw"], ev_profile=out["ev", "profile"],
        hp_mw=out["heat_pump", "mw"], hp_profile=out["heat_pump", "profile"],
        mixes=mixes, unplaced=unplaced)


def _bus_profiles(bus: np.ndarray, profile: np.ndarray, mw: np.ndarray,
                  mixes: dict[str, tuple[tuple[str, float], ...]]) -> dict[int, str]:
    """The profile at each bus: its elements' own where they share one, else their mix
    weighted by rating (added to `mixes`, named by its exact recipe so equal mixes are one)."""
    by_bus: dict[int, dict[str, float]] = {}
    for b, p, w in zip(bus.tolist(), profile.tolist(), mw.tolist(), strict=True):
        if p:
            by_bus.setdefault(b, {})
            by_bus[b][p] = by_bus[b].get(p, 0.0) + w
    out = {}
    for b, parts in by_bus.items():
        if len(parts) == 1:
            out[b] = next(iter(parts))
            continue
        total = sum(parts.values())
        recipe = tuple((p, w / total) for p, w in sorted(parts.items()))
        name = "+".join(f"{p}*{w!r}" for p, w in recipe)
        mixes[name] = recipe
        out[b] = name
    return out

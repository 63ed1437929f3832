"""Published load and generation profiles (simbench, 15-minute, year 2016), shipped offline.

All profiles are normalised to a peak of 1 by simbench; callers scale them. A profile bank
holds the ones a scenario names as one matrix so a whole fleet is indexed at once.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from environment.calendar import Calendar
from environment.datacache import cached

SIMBENCH_PROFILE_LEVEL = 2  # the scenario-2 data set is the one with heat-pump and EV profiles


@lru_cache(maxsize=1)
def simbench_profiles() -> dict[str, np.ndarray]:
    """Active-power profiles by name: load profiles without the `_pload` suffix, renewables as
    named by simbench (PV1.., WP1..)."""
    return cached(f"profiles-level{SIMBENCH_PROFILE_LEVEL}", _read_profiles)


def _read_profiles() -> dict[str, np.ndarray]:
    import simbench

    raw = simbench.get_all_simbench_profiles(SIMBENCH_PROFILE_LEVEL)
    out: dict[str, np.ndarray] = {}
    for col in raw["load"].columns:
        if col.endswith("_pload"):
            out[col.removesuffix("_pload")] = raw["load"][col].to_numpy(float)
    for col in raw["renewables"].columns:
        if col != "time":
            out.setdefault(col, raw["renewables"][col].to_numpy(float))
    return out


class ProfileBank:
    """The named profiles of one run as a matrix, with per-day extraction on the run's MTUs."""

    def __init__(self, names: list[str], calendar: Calendar):
        available = simbench_profiles()
        missing = sorted(set(names) - set(available))
        if missing:
            raise KeyError(f"unknown simbench profile(s) {missing}; known e.g. "
                           f"{sorted(available)[:12]}")
        self.names = list(dict.fromkeys(names))
        self.index = {n: i for i, n in enumerate(self.names)}
        # simbench's PV and wind series dip to -1e-5 at night; a device cannot go below zero.
        self.matrix = np.clip(np.stack([available[n] for n in self.names]), 0.0, None)
        self.calendar = calendar
        self._annual: dict[str, float] = {}

    def day(self, idx: np.ndarray | int, day: int, shift_rows: np.ndarray | int = 0) -> np.ndarray:
        """Profile values for delivery day `day` on the run's MTU grid.

        `idx` selects profiles (one per fleet member), `shift_rows` offsets each member in
        15-minute rows (wrapping within the year) so that members sharing a profile differ."""
        rows = self.calendar.profile_rows(day)
        n_rows = self.matrix.shape[1]
        idx = np.asarray(idx)
        shift = np.asarray(shift_rows)
        if idx.ndim == 0:
            values = self.matrix[idx][(rows + shift) % n_rows]
        else:
            r = (rows[None, :, :] + shift.reshape(-1, 1, 1)) % n_rows
            values = self.matrix[idx[:, None, None], r]
        # one profile row per MTU (15 minutes or shorter) needs no averaging
        return values[..., 0] if rows.shape[1] == 1 else values.mean(axis=-1)

    def annual_energy_per_peak(self, name: str) -> float:
        """MWh per year per MW of profile peak (profiles are per-unit of peak, 15-min rows);
        kept per profile, as every day's load scaling asks for it once per member."""
        if name not in self._annual:
            self._annual[name] = float(self.matrix[self.index[name]].sum() * 0.25)
        return self._annual[name]

"""Published load and generation profiles (simbench, 15-minute, year 2016), shipped offline,
and the user's own series (environment/series.py) in their place.

All profiles are normalised to a peak of 1 by simbench; callers scale them. A profile bank
holds the ones a scenario names as one matrix so a whole fleet is indexed at once. A user's
series is held on the run's own dates (`OwnProfile`): it is read for the run's days as given,
without the per-household shift in time that makes members sharing a simbench profile differ.
"""

from __future__ import annotations

from dataclasses import dataclass
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


HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class OwnProfile:
    """A user's series on 15-minute rows from the run's first day (`rows`, normalised to the
    file's peak unless given in p.u.) and its energy per unit of peak extrapolated to a year
    from the file's mean."""

    rows: np.ndarray
    annual_energy_per_peak: float


class ProfileBank:
    """The named profiles of one run as a matrix, with per-day extraction on the run's MTUs.

    `mixes` are profiles blended from simbench's (name: (profile, weight), ...): the devices
    of one household that simbench states as several elements (`agents.prosumer_devices`)."""

    def __init__(self, names: list[str], calendar: Calendar,
                 own: dict[str, OwnProfile] | None = None,
                 mixes: dict[str, tuple[tuple[str, float], ...]] | None = None):
        own = own or {}
        available = simbench_profiles()
        if mixes:
            available = {**available, **{n: sum(w * available[p] for p, w in recipe)
                                         for n, recipe in mixes.items()}}
        missing = sorted(set(names) - set(available) - set(own))
        if missing:
            raise KeyError(f"unknown simbench profile(s) {missing}; known e.g. "
                           f"{sorted(available)[:12]}")
        self.names = list(dict.fromkeys(names))
        self.index = {n: i for i, n in enumerate(self.names)}
        n_rows = len(next(iter(available.values())))
        # simbench's PV and wind series dip to -1e-5 at night; a device cannot go below zero.
        self.matrix = np.clip(np.stack([np.zeros(n_rows) if n in own else available[n]
                                        for n in self.names]), 0.0, None)
        self.own = np.array([n in own for n in self.names], bool)
        self.own_matrix = _pad_stack([own[n].rows if n in own else None for n in self.names])
        self.calendar = calendar
        self._annual: dict[str, float] = {n: o.annual_energy_per_peak for n, o in own.items()}

    def day(self, idx: np.ndarray | int, day: int, shift_rows: np.ndarray | int = 0) -> np.ndarray:
        """Profile values for delivery day `day` on the run's MTU grid.

        `idx` selects profiles (one per fleet member), `shift_rows` offsets each member in
        15-minute rows (wrapping within the year) so that members sharing a profile differ."""
        rows = self.calendar.profile_rows(day)
        n_rows = self.matrix.shape[1]
        idx = np.asarray(idx)
        shift = np.asarray(shift_rows)
        if idx.ndim == 0:
            values = self.own_matrix[idx][self.calendar.own_rows(day)] if self.own[idx] \
                else self.matrix[idx][(rows + shift) % n_rows]
        else:
            r = (rows[None, :, :] + shift.reshape(-1, 1, 1)) % n_rows
            values = self.matrix[idx[:, None, None], r]
            mine = self.own[idx]
            if mine.any():
                values[mine] = self.own_matrix[idx[mine][:, None, None],
                                               self.calendar.own_rows(day)[None]]
        # one profile row per MTU (15 minutes or shorter) needs no averaging
        return values[..., 0] if rows.shape[1] == 1 else values.mean(axis=-1)

    def annual_energy_per_peak(self, name: str) -> float:
        """MWh per year per MW of profile peak (profiles are per-unit of peak, 15-min rows);
        kept per profile, as every day's load scaling asks for it once per member."""
        if name not in self._annual:
            self._annual[name] = float(self.matrix[self.index[name]].sum() * 0.25)
        return self._annual[name]


def _pad_stack(rows: list[np.ndarray | None]) -> np.ndarray:
    """Own rows stacked, zero rows for simbench profiles (never read: `own` says which)."""
    width = max((len(r) for r in rows if r is not None), default=0)
    return np.stack([r if r is not None else np.zeros(width) for r in rows]) if rows \
        else np.zeros((0, 0))


def own_profiles(scenario, calendar: Calendar, names: list[str]) -> dict[str, OwnProfile]:
    """The user's series a run reads as profiles (`names` that are in `scenario.data`), on the
    run's 15-minute rows."""
    import datetime as dt

    from environment.calendar import PROFILE_MINUTES
    from environment.series import read_series

    out = {}
    start = dt.datetime.combine(calendar.start, dt.time())
    n = calendar.days * (1440 // PROFILE_MINUTES)
    for name in dict.fromkeys(names):
        spec = scenario.data.get(name)
        if spec is None:
            continue
        series = read_series(name, spec.file, spec.column, spec.unit, spec.timestamp)
        peak = 1.0 if series.kind == "share" else float(series.values.max(initial=0.0))
        if peak <= 0:
            from environment.series import DataError

            raise DataError(f"{series.where}: no positive value, nothing to scale")
        rows = series.window(start, n, PROFILE_MINUTES) / peak
        if (rows < 0).any():
            from environment.series import DataError

            raise DataError(f"{series.where}: negative values in the run's period; a load or "
                            "generation profile is not negative")
        out[name] = OwnProfile(rows, float(series.values.mean() / peak * HOURS_PER_YEAR))
    return out


def own_peak_mw(spec) -> float:
    """The peak of a user's series in MW (a `SeriesSpec` in a power or energy unit)."""
    from environment.series import read_series

    return float(read_series("", spec.file, spec.column, spec.unit, spec.timestamp)
                 .values.max(initial=0.0))

"""Market time units (MTU) and the daily cycle; the simulation steps one delivery day at a time.

A run may start in any year; simbench's profiles are of 2016, read by `profile_date`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROFILE_YEAR = 2016
PROFILE_YEAR_START = dt.date(PROFILE_YEAR, 1, 1)
PROFILE_YEAR_END = dt.date(PROFILE_YEAR, 12, 31)
PROFILE_MINUTES = 15


def profile_date(date: dt.date) -> dt.date:
    """The day of simbench's profile year (2016) a date reads: itself in 2016; otherwise the
    2016 day of the same weekday nearest the same calendar date (at most three days away), so
    that season and weekday are kept. Dates near the year's ends stay inside 2016."""
    if date.year == PROFILE_YEAR:
        return date
    same = dt.date(PROFILE_YEAR, date.month, date.day)   # 2016 is a leap year: Feb 29 exists
    shift = (date.weekday() - same.weekday() + 3) % 7 - 3
    out = same + dt.timedelta(days=shift)
    if out < PROFILE_YEAR_START:
        out += dt.timedelta(days=7)
    elif out > PROFILE_YEAR_END:
        out -= dt.timedelta(days=7)
    return out


@dataclass(frozen=True)
class Calendar:
    start: dt.date
    days: int
    mtu_minutes: int = 15
    da_gate_closure_hour: int = 12

    @property
    def mtu_per_day(self) -> int:
        return 1440 // self.mtu_minutes

    @property
    def mtu_hours(self) -> float:
        return self.mtu_minutes / 60

    @property
    def n_mtu(self) -> int:
        return self.days * self.mtu_per_day

    def day_slice(self, day: int) -> slice:
        """MTU indices (run-wide) of delivery day `day` (0-based)."""
        return slice(day * self.mtu_per_day, (day + 1) * self.mtu_per_day)

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)

    def timestamps(self) -> pd.DatetimeIndex:
        return pd.date_range(pd.Timestamp(self.start), periods=self.n_mtu,
                             freq=f"{self.mtu_minutes}min")

    @property
    def maps_profile_year(self) -> bool:
        """Whether some day of the run reads simbench's profiles of another date."""
        return any(profile_date(self.date(d)) != self.date(d) for d in range(self.days))

    def profile_mapping(self) -> str:
        """What the run reads of simbench's 2016 profiles, in words ('' if its own dates)."""
        if not self.maps_profile_year:
            return ""
        first, last = self.date(0), self.date(self.days - 1)
        return (f"simbench's profiles are of 2016: {first:%Y-%m-%d} ({first:%a}) reads "
                f"{profile_date(first):%Y-%m-%d} ({profile_date(first):%a}), ..., "
                f"{last:%Y-%m-%d} reads {profile_date(last):%Y-%m-%d} (same weekday, nearest "
                "date)")

    def day_rows(self, day: int) -> np.ndarray:
        """Offsets of the 15-minute rows covering one day, shaped (mtu_per_day, rows_per_mtu):
        average across axis 1 to resample, 5-minute MTUs repeat."""
        if self.mtu_minutes >= PROFILE_MINUTES:
            per = self.mtu_minutes // PROFILE_MINUTES
            return np.arange(self.mtu_per_day * per).reshape(self.mtu_per_day, per)
        rep = PROFILE_MINUTES // self.mtu_minutes
        return np.repeat(np.arange(1440 // PROFILE_MINUTES), rep).reshape(-1, 1)

    def profile_rows(self, day: int) -> np.ndarray:
        """Rows of the 15-minute profile year covering delivery day `day` (of its
        `profile_date`), shaped as `day_rows`."""
        first = (profile_date(self.date(day)) - PROFILE_YEAR_START).days \
            * (1440 // PROFILE_MINUTES)
        return first + self.day_rows(day)

    def own_rows(self, day: int) -> np.ndarray:
        """Rows of delivery day `day` in a 15-minute series that starts with the run."""
        return day * (1440 // PROFILE_MINUTES) + self.day_rows(day)

"""Market time units (MTU) and the daily cycle; the simulation steps one delivery day at a time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROFILE_YEAR_START = dt.date(2016, 1, 1)
PROFILE_MINUTES = 15


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

    def profile_rows(self, day: int) -> np.ndarray:
        """Rows of the 15-minute profile year covering delivery day `day`, shaped
        (mtu_per_day, rows_per_mtu): average across axis 1 to resample, 5-minute MTUs repeat."""
        first = (self.date(day) - PROFILE_YEAR_START).days * (1440 // PROFILE_MINUTES)
        if self.mtu_minutes >= PROFILE_MINUTES:
            per = self.mtu_minutes // PROFILE_MINUTES
            return first + np.arange(self.mtu_per_day * per).reshape(self.mtu_per_day, per)
        rep = PROFILE_MINUTES // self.mtu_minutes
        return first + np.repeat(np.arange(1440 // PROFILE_MINUTES), rep).reshape(-1, 1)

"""The data dictionary's entry: a summary key or table column with its unit, sign convention,
definition and label (experiments/dictionary.py reads them all)."""

from __future__ import annotations

import re
from dataclasses import dataclass

EUR, EUR_MWH, MWH, MW = "EUR", "EUR/MWh", "MWh", "MW"
RECEIVED = "+ received, - paid (net over the run)"


@dataclass(frozen=True)
class Entry:
    name: str
    unit: str
    definition: str
    sign: str = ""
    label: str = ""
    count: bool = False     # a count of MTU-locations, rounds...: never below 0

    @property
    def pattern(self) -> re.Pattern:
        return re.compile("^" + re.sub(r"<[^>]+>", r"[^.]+",
                                       re.escape(self.name).replace(r"\<", "<")
                                       .replace(r"\>", ">")) + "$")


def E(name, unit, definition, sign="", label="", count=False) -> Entry:  # noqa: N802
    return Entry(name, unit, definition, sign, label, count)

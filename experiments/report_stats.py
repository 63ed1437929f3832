"""Numbers and words of the study reports: 95% intervals over seeds (clipped at zero for counts),
labels from the data dictionary, and formatting without float noise."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from experiments.dictionary import is_count, label

NOISE = 1e-9
"""|x| below this prints as 0 (residuals of sums that cancel, -1.7e-14)."""


def slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", str(text)).strip("_").lower() or "x"


def fmt_number(v, digits: int = 4) -> str:
    """Large values in full (welfare differences live in the last digits), others to `digits`
    significant digits, float noise as 0."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        return str(v)
    v = float(v)
    if abs(v) < NOISE:
        return "0"
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.{digits}g}"


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    def cell(v) -> str:
        if isinstance(v, float | np.floating | int | np.integer) and not isinstance(v, bool):
            return fmt_number(v, digits)
        if v is None:
            return ""
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in df.itertuples(index=False, name=None)]
    return "\n".join([head, sep, *rows]) + "\n"


def ci95(values, count: bool = False) -> tuple[float, float, float, float, int]:
    """mean, sd, low, high (t interval) of the finite values; n. For a count (`count`) the
    interval is clipped at 0: a count is never negative."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    n = len(x)
    if n == 0:
        return (math.nan,) * 4 + (0,)
    m = float(x.mean())
    if n == 1:
        return m, math.nan, math.nan, math.nan, 1
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    lo, hi = m - half, m + half
    if count:
        lo, hi = max(lo, 0.0), max(hi, 0.0)
    return m, sd, lo, hi, n


def interval(mean: float, lo: float, hi: float, n: int) -> str:
    """'mean [lo, hi]' (just the mean for one run, empty for none)."""
    if n == 0:
        return ""
    return fmt_number(mean) + (f" [{fmt_number(lo)}, {fmt_number(hi)}]" if n > 1 else "")


def level_label(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def metric_label(path: str) -> str:
    """A metric's readable label with its unit (experiments/dictionary.py)."""
    return label(path)


def metric_is_count(path: str) -> bool:
    return is_count(path)


def param_label(path: str) -> str:
    """A scenario path or factor as words: `aggregators.0.enrolment` -> `aggregators[0]
    enrolment`, `tso.up_markup_eur_mwh` -> `tso up markup (EUR/MWh)`."""
    unit = ""
    for suffix, u in (("_eur_mwh", "EUR/MWh"), ("_eur_mw_h", "EUR/MW/h"), ("_eur", "EUR"),
                      ("_mwh", "MWh"), ("_kw", "kW"), ("_mw", "MW"), ("_h", "h")):
        if path.endswith(suffix):
            path, unit = path[: -len(suffix)], u
            break
    text = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", path).replace(".", " ").replace("_", " ")
    return f"{text} ({unit})" if unit else text

"""The numbers and words of study reports: count intervals never below zero, no float noise,
labels in words with units."""

from __future__ import annotations

import math

import pandas as pd

from experiments.report_stats import (
    ci95,
    fmt_number,
    interval,
    markdown_table,
    metric_label,
    param_label,
)


def test_count_intervals_are_clipped_at_zero():
    """congestion.red 1 [-1.484, 3.484] was reported: a count cannot be negative."""
    mean, _, lo, hi, n = ci95([0, 0, 3], count=True)
    assert mean == 1 and lo == 0 and hi > 3 and n == 3
    _, _, lo_free, _, _ = ci95([0, 0, 3])
    assert lo_free < 0           # other metrics keep the plain t interval


def test_float_noise_prints_as_zero_and_large_values_in_full():
    assert fmt_number(-1.7e-14) == "0"
    assert fmt_number(118911.2) == "118,911" and fmt_number(0.90721) == "0.9072"
    assert fmt_number(math.nan) == ""
    assert interval(1.0, 0.0, 3.5, 3) == "1 [0, 3.5]" and interval(2.0, 0, 0, 1) == "2"
    table = markdown_table(pd.DataFrame({"x": [-1.7e-14, 2.5]}))
    assert "e-14" not in table and "| 0 |" in table


def test_labels_are_words():
    assert metric_label("congestion.red") == "red MTU-locations"
    assert metric_label("welfare_eur.total") == "welfare, total (EUR)"
    assert param_label("aggregators.0.enrolment") == "aggregators[0] enrolment"
    assert param_label("tso.up_markup_eur_mwh") == "tso up markup (EUR/MWh)"


def test_the_report_names_the_differences_whose_interval_excludes_zero():
    """Of three paired differences only the one whose interval lies above 0 is named; with
    none such the report says the axis makes no clear difference over the seeds."""
    from experiments.report import Report

    rows = [{"metric": "cost_efficiency", "c": "none", "runs": 3},
            {"metric": "cost_efficiency", "c": "central", "diff_vs_none": 0.05,
             "diff_lo95": 0.03, "diff_hi95": 0.07, "pairs": 9},
            {"metric": "welfare_eur.dso", "c": "central", "diff_vs_none": -1.0,
             "diff_lo95": -3.0, "diff_hi95": 1.0, "pairs": 9},
            {"metric": "welfare_eur.brps", "c": "central", "diff_vs_none": -1.0,
             "diff_lo95": -3.0, "diff_hi95": -0.5, "pairs": 1}]
    text = Report._clear_differences({"name": "c"}, rows, "none")
    assert "excludes 0 for 1 of 3" in text and "central: +0.05 [0.03, 0.07]" in text
    assert "dso" not in text and "brps" not in text
    assert "no metric" in Report._clear_differences({"name": "c"}, rows[2:3], "none")

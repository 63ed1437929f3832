"""The data dictionary covers every summary key and table column of real runs of both kinds,
docs/outputs.md is generated from it, and labels read as words with units."""

from __future__ import annotations

from pathlib import Path

from experiments import dictionary
from experiments.run import run_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_every_key_and_column_of_a_distribution_run_is_documented():
    r = run_scenario(days=1, overrides={"prosumers.0.count": 40,
                                        "markets.lfm.exclude_position_changers": True},
                     planner=True, write=False, figures=False)
    assert dictionary.undocumented(r.summary, r.tables) == []


def test_every_key_and_column_of_a_transmission_run_is_documented():
    """Through the one run path: the twin's keys (two_node_incdec) and a wholesale-only case's."""
    for name in ("two_node_incdec", "wholesale_week"):
        r = run_scenario(name, write=False, figures=False)
        assert dictionary.undocumented(r.summary, r.tables) == [], name


def test_docs_outputs_md_is_generated_from_the_dictionary():
    assert (ROOT / "docs" / "outputs.md").read_text() == dictionary.markdown(), \
        "run `python -m experiments.dictionary > docs/outputs.md`"


def test_labels_are_words_with_units():
    assert dictionary.label("welfare_eur.total") == "welfare, total (EUR)"
    assert dictionary.label("welfare_eur.aggregators") == "welfare of aggregators (EUR)"
    assert dictionary.label("congestion.red") == "red MTU-locations"
    assert dictionary.label("settlement.aggregators.flexco.margin_eur") == \
        "margin of flexco (EUR)"
    assert dictionary.label("not.in.the.dictionary_x") == "dictionary x"
    assert dictionary.is_count("congestion.red") and not dictionary.is_count("welfare_eur.total")

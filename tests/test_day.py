"""The typed day and the parties: a gate can publish only what `DayContext` declares, and the
parties answer the day-ahead gate through Mesa's AgentSet in their fixed order."""

from __future__ import annotations

import dataclasses

import pytest

from agents.party import Party
from environment import dayaheadstage
from environment.day import DayContext, RealTime
from environment.model import FlexMarketModel
from environment.scenario import with_overrides


@pytest.fixture(scope="module")
def model(default_scenario):
    """A model of the default scenario with 40 households, before its first day."""
    return FlexMarketModel(with_overrides(default_scenario, {"prosumers.0.count": 40}))


def test_an_undeclared_field_of_the_day_raises(model):
    ctx = model.open_day(0)
    ctx.da_price = None                          # declared: fine
    with pytest.raises(AttributeError):
        ctx.da_prices = None                     # a typo, or a field nobody declared


@pytest.mark.parametrize("cls", [DayContext, RealTime])
def test_the_day_declares_its_fields_with_slots(cls):
    assert {f.name for f in dataclasses.fields(cls)} == set(vars(cls)["__slots__"])


def test_the_parties_are_an_agentset_in_their_fixed_order(model):
    m = model
    assert list(m.parties) == [*m.brps, m.system_brp, *m.aggregators, *m.producers]
    assert all(isinstance(p, Party) for p in m.parties)
    assert [m.party_slot[p.unique_id] for p in m.parties] == list(range(len(m.parties)))


def test_each_party_answers_the_dayahead_gate_with_its_strategys_orders(model):
    m = model
    ctx = m.open_day(0)
    dayaheadstage.plan(m, ctx)
    books = m.parties.map("da_orders", ctx)
    assert len(books) == len(m.parties)
    for p, book in zip(m.parties, books, strict=True):
        assert set(book.owner) <= {p.unique_id}

"""Shared fixtures: one default-scenario run for the whole session, and helpers.

The simbench grid and profiles come from the default on-disk cache (~/.cache/flexmarkets), so
the slow simbench read happens once per machine, not once per test session.
"""

from __future__ import annotations

import copy
import tracemalloc
from pathlib import Path

import pytest
import yaml

from environment.scenario import Scenario, load_scenario
from experiments.run import RunResult, run_scenario, scenario_path

ROOT = Path(__file__).resolve().parent.parent

# The default scenario with fewer households, so that a 2-day run takes a few seconds.
SMALL = {"prosumers.0.count": 80}
DEFAULT_DAYS = 2


@pytest.fixture(scope="session")
def default_yaml_path() -> Path:
    path = scenario_path(None)
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def default_scenario(default_yaml_path) -> Scenario:
    return load_scenario(default_yaml_path)


@pytest.fixture(scope="session")
def _default_data(default_yaml_path) -> dict:
    return yaml.safe_load(default_yaml_path.read_text())


@pytest.fixture
def default_data(_default_data) -> dict:
    """The default scenario as read from YAML; a fresh copy a test may mutate."""
    return copy.deepcopy(_default_data)


@pytest.fixture(scope="session")
def default_run() -> RunResult:
    """The default scenario, 2 days, 80 households, planner on, nothing written to disk."""
    return run_scenario(days=DEFAULT_DAYS, overrides=dict(SMALL), planner=True, write=False,
                        figures=False)


@pytest.fixture
def stop_tracemalloc():
    """For tests of failing runs: should a failed run leave tracemalloc tracing (an earlier
    run_scenario did), switch it off so the rest of the session is not slowed down."""
    yield
    if tracemalloc.is_tracing():
        tracemalloc.stop()

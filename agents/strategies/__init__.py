"""Bidding and scheduling strategies; importing this package registers the built-in ones."""

from agents.strategies import (  # noqa: F401
    gaming,
    hems,
    learning,
    market_power,
    options,
    transmission,
    truthful,
)
from agents.strategies.registry import (
    STRATEGIES,
    agent_params,
    known,
    make_strategy,
    register_strategy,
)

__all__ = ["STRATEGIES", "agent_params", "known", "make_strategy", "register_strategy"]

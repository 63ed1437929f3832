"""Bidding and scheduling strategies; importing this package registers the built-in ones."""

from agents.strategies import gaming, market_power, options, truthful  # noqa: F401
from agents.strategies.registry import STRATEGIES, known, make_strategy, register_strategy

__all__ = ["STRATEGIES", "known", "make_strategy", "register_strategy"]

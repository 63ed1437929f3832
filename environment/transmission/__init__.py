"""Transmission-level redispatch: a small N-node grid, zonal day-ahead market, market-based or
cost-based redispatch, and twin runs that measure inc-dec gaming."""

from environment.transmission.model import TransmissionModel, TxContext
from environment.transmission.scenario import (
    TxScenario,
    is_transmission,
    load_tx_scenario,
    parse_tx_scenario,
    tx_with_overrides,
)

__all__ = ["TransmissionModel", "TxContext", "TxScenario", "is_transmission", "load_tx_scenario",
           "parse_tx_scenario", "tx_with_overrides"]

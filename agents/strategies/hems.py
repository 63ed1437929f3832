"""How home energy managers price their LEM orders (role `hems`; `markets.lem.strategy`).

Every household can always buy from its supplier at the retail price plus the full network
tariff and sell to it at the feed-in price (PARITY D4.3 6.3.2: the supplier covers what the
LEM does not). A peer purchase at price p costs p + the local tariff + its share of the LEMO
fee (+ the DSO's locational grid price under the implicit LFM); a peer sale earns p less its
share of the fee (+ that grid price, which relieves the location). So the most a buyer gains
from is p = retail + full tariff - local tariff - fee_buyer - grid price, and the least a
seller gains from is p = feed-in + fee_seller - grid price: its reservation prices
(`Reservation`). Truthful managers bid and ask at them; any price between them leaves both
better off than their outside options, and the tariff saving (full - local) is what makes
local trade worth it at all when retail + full tariff exceeds feed-in. Strategies see arrays
over the fleet (households x MTUs) and return arrays: one call per day, none per household."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.strategies.registry import register_strategy


@dataclass(frozen=True)
class Reservation:
    """(N, T) EUR/MWh: the highest price a household's purchase and the lowest its sale on the
    LEM beats its supplier at (module docstring)."""

    bid: np.ndarray
    ask: np.ndarray


@register_strategy("hems", "truthful")
class TruthfulHems:
    """Bid and ask at the reservation prices: the outside options, net of tariffs and fees."""

    def prices(self, reservation: Reservation) -> tuple[np.ndarray, np.ndarray]:
        return reservation.bid, reservation.ask


@register_strategy("hems", "markup")
class MarkupHems(TruthfulHems):
    """Shade both sides by `markup_eur_mwh`: bid that much below the reservation price, ask
    that much above it. Under the double auction the midpoint price moves little while volume
    at the margin is lost; under continuous matching the resting side earns the markup."""

    def __init__(self, markup_eur_mwh: float = 20.0):
        if markup_eur_mwh < 0:
            raise ValueError(f"markup_eur_mwh = {markup_eur_mwh}: must be non-negative")
        self.markup = float(markup_eur_mwh)

    def prices(self, reservation: Reservation) -> tuple[np.ndarray, np.ndarray]:
        return reservation.bid - self.markup, reservation.ask + self.markup

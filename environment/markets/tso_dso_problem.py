"""One real-time balancing clearing under a TSO-DSO coordination scheme: the problem every
scheme in `environment.markets.tso_dso` solves, its result, and what a result does to the
distribution grid.

Sign conventions (all schemes):

* ``need_mw`` > 0: the system is short and needs upward energy; < 0: surplus.
* Producers (transmission level) follow `environment.markets.balancing`: an up offer is paid
  ``up_price``, a down offer *pays* ``down_price`` (so its cost to the system is
  ``-down_price``). Emergency up costs ``emergency_up_price``; emergency down earns
  ``emergency_down_price`` (cost ``-emergency_down_price``; negative prices are a cost).
* DER bids (`FlexOffers`): direction +1 lowers consumption (upward energy for the system),
  -1 raises it. ``price`` is what the provider asks in both directions: every accepted MW
  costs ``price * mw * dt_h``.
* Balance per MTU: sum producer up - sum producer down + sum direction * DER MW + emergency
  up - emergency down == need (`delivered` returns the left-hand side).
* ``system_price`` is d(total cost)/d(need) in EUR/MWh: the marginal up price when short, the
  marginal down price in the producers' convention (what down providers pay) when long, i.e.
  the single imbalance price; NaN where nothing was activated (callers fall back to the DA
  price, as `balancing.imbalance_prices` does).

Costs are always as bid (producers, DER), plus emergency energy, plus the distribution
violation left, as the load the DSO's last resort would shed to restore it (`lfm_cuts.GridCuts`),
at ``unresolved_cost``. On that common basis every sequential scheme's
activations are a feasible point of the `common` LP, so `common` costs no more than any of them
(see `environment.markets.tso_dso.common`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from environment.markets.balancing import BalancingOffers
from environment.markets.lfm import FlexOffers, GridLimits, location_moves, unresolved_mw


@dataclass(frozen=True)
class BalancingProblem:
    """One real-time balancing clearing; see the module docstring for signs and prices.

    ``limits``: the distribution grid around the realised-preview flows (a base that already
    violates limits is the DSO's local need); None: no distribution constraints.
    ``interface_mw``: the distribution area's deviation from its agreed TSO-DSO interface
    schedule (+: it consumes more than scheduled), used by `shared_balancing`.
    ``interface_cost``: EUR/MWh the DSO weighs deviation it leaves at the interface; below
    ``unresolved_cost`` so it never breaks a grid limit to keep its schedule, above DER prices
    so it cancels whatever its local bids allow. ``mtus``: clear only these MTUs.
    ``price_cap``: no DER bid is paid more than this (EUR/MWh; bids above it are not
    admissible, the caller filters them)."""

    need_mw: np.ndarray
    producers: BalancingOffers
    der: FlexOffers
    limits: GridLimits | None
    dt_h: float
    emergency_up_price: float
    emergency_down_price: float
    unresolved_cost: float = 5000.0
    interface_mw: np.ndarray | None = None
    mtus: np.ndarray | None = None
    interface_cost: float = 1000.0
    price_cap: float = np.inf

    @property
    def t_n(self) -> int:
        return len(self.need_mw)

    @property
    def k_n(self) -> int:
        return 0 if self.limits is None else self.limits.flow_per_mw.shape[1]

    @property
    def active(self) -> np.ndarray:
        """(T,) MTUs being cleared."""
        if self.mtus is None:
            return np.ones(self.t_n, bool)
        return np.isin(np.arange(self.t_n), self.mtus)

    def moves(self, mw: np.ndarray) -> np.ndarray:
        """(T, K, 2) location moves of DER activations `mw` per bid (K = 0 without a grid)."""
        if self.limits is None:
            return np.zeros((self.t_n, 0, 2))
        return location_moves(self.der, mw, self.t_n, self.k_n)

    def unresolved_mw(self, der_mw: np.ndarray) -> float:
        """Load to shed (MW summed over the MTUs being cleared) left after activations `der_mw`,
        as the DSO's last resort would shed it (`lfm.unresolved_mw`)."""
        if self.limits is None:
            return 0.0
        return unresolved_mw(self.limits, location_moves(self.der, der_mw, self.t_n, self.k_n),
                             self.unresolved_cost, np.flatnonzero(self.active))

    def prices(self) -> tuple[np.ndarray, np.ndarray]:
        """Producer up and down prices as (P, T)."""
        shape = self.producers.up_mw.shape
        up = np.broadcast_to(np.asarray(self.producers.up_price, float).reshape(shape[0], -1),
                             shape)
        down = np.broadcast_to(
            np.asarray(self.producers.down_price, float).reshape(shape[0], -1), shape)
        return up, down


@dataclass(frozen=True)
class BalancingResult:
    """Outcome of one scheme. DER arrays are per bid of ``problem.der``; ``der_tso_price`` and
    ``der_dso_price`` are the EUR/MWh a bid earns for its TSO and its DSO use (0 where none),
    so the TSO pays ``der_tso_price * der_tso_mw * dt_h`` and the DSO
    ``der_dso_price * der_dso_mw * dt_h``; ``der_paid_price`` is their volume-weighted mean.
    ``counteracting_mw`` (T, K): MW of the TSO's DER activations at location k (summed over
    directions) that push a branch or voltage limit that ends up further beyond its limit than
    before the TSO acted (SmartNet CONCLUSION: "counteracting effects")."""

    scheme: str
    producer_up_mw: np.ndarray
    producer_down_mw: np.ndarray
    der_tso_mw: np.ndarray
    der_dso_mw: np.ndarray
    emergency_up_mw: np.ndarray
    emergency_down_mw: np.ndarray
    system_price: np.ndarray
    der_tso_price: np.ndarray
    der_dso_price: np.ndarray
    tso_cost_eur: float
    dso_cost_eur: float
    procurement_cost_eur: float
    unresolved_mw: float
    counteracting_mw: np.ndarray
    converged: bool = True   # False: a constraint generation stopped at its round limit

    @property
    def der_paid_price(self) -> np.ndarray:
        total = self.der_tso_mw + self.der_dso_mw
        paid = self.der_tso_price * self.der_tso_mw + self.der_dso_price * self.der_dso_mw
        return np.where(total > 0, paid / np.where(total > 0, total, 1.0), 0.0)


def delivered(problem: BalancingProblem, result: BalancingResult) -> np.ndarray:
    """(T,) net upward energy (MW) the activations deliver; equals need on cleared MTUs."""
    der = problem.der
    net = np.bincount(der.mtu, der.direction * (result.der_tso_mw + result.der_dso_mw),
                      minlength=problem.t_n)
    return (result.producer_up_mw.sum(0) - result.producer_down_mw.sum(0) + net
            + result.emergency_up_mw - result.emergency_down_mw)

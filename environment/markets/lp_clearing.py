"""Uniform-price auction as a linear programme, solved with HiGHS via Pyomo.

This is an independent reference for the merit-order clearing in
:mod:`environment.markets.dayahead`, used to test it; it shares only the
:class:`Clearing` container, not the algorithm. The price is the dual of the
per-MTU balance constraint, which is unique only when some order is partially
accepted; on a vertical step HiGHS returns some price in the clearing interval.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory

from environment.markets.orders import Clearing, OrderBook

SOLVER = "highs"
"""Name in the ``pyomo.contrib.solver`` factory (the appsi successor in Pyomo 6.10)."""


def clear_lp(
    book: OrderBook,
    n_mtu: int,
    price_floor: float = -500.0,
    price_cap: float = 4000.0,
) -> Clearing:
    """Clear ``book`` by solving max sum_b p*x - sum_s p*y s.t. per-MTU balance.

    Limit prices are clipped to ``[price_floor, price_cap]`` like in the
    merit-order clearing. MTUs without orders get price NaN and no constraint.
    """
    if not price_floor < price_cap:
        raise ValueError(f"price_floor {price_floor} must be below price_cap {price_cap}")
    book.validate(n_mtu)
    n = len(book)
    live = [int(i) for i in np.flatnonzero(book.volume != 0.0)]
    price = np.clip(book.price, price_floor, price_cap)
    sign = np.sign(book.volume)
    size = np.abs(book.volume)
    mtus = sorted({int(book.mtu[i]) for i in live})
    accepted = np.zeros(n)
    clearing_price = np.full(n_mtu, np.nan)
    if live:
        m = pyo.ConcreteModel()
        m.x = pyo.Var(live, bounds=lambda _m, i: (0.0, float(size[i])))
        m.obj = pyo.Objective(
            expr=sum(float(sign[i] * price[i]) * m.x[i] for i in live), sense=pyo.maximize
        )
        members = {t: [i for i in live if book.mtu[i] == t] for t in mtus}
        m.balance = pyo.Constraint(
            mtus, rule=lambda _m, t: sum(float(sign[i]) * m.x[i] for i in members[t]) == 0
        )
        results = SolverFactory(SOLVER).solve(m)
        duals = results.solution_loader.get_duals([m.balance[t] for t in mtus])
        for t in mtus:
            # d(welfare)/d(rhs) of "buys - sells == 0" is the value of one more MWh
            # of demand served, i.e. the market price, for a maximisation.
            clearing_price[t] = duals[m.balance[t]]
        for i in live:
            accepted[i] = sign[i] * pyo.value(m.x[i]) + 0.0

    mtu = book.mtu
    buy = book.volume > 0
    inflexible = (book.volume != 0) & np.where(buy, price >= price_cap, price <= price_floor)
    return Clearing(
        price=clearing_price,
        volume=np.bincount(mtu, np.where(buy, accepted, 0.0), minlength=n_mtu),
        accepted=accepted,
        welfare=np.bincount(mtu, accepted * price, minlength=n_mtu),
        curtailed=np.bincount(
            mtu, np.where(inflexible, np.abs(book.volume - accepted), 0.0), minlength=n_mtu
        ),
    )

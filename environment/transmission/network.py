"""The transmission grid as a DC power flow (PTDF), the zonal day-ahead clearing that ignores it,
and the one LP (least-cost dispatch changes under line limits, with nodal prices) that serves
both the grid operator's redispatch and the cost-based benchmark."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from environment.markets.dayahead import clear_uniform_price
from environment.markets.orders import OrderBook

FLOW_TOL = 1e-7
"""MW of overload below which a line counts as within its limit (LP round-off)."""


@dataclass(frozen=True)
class Network:
    """`ptdf[l, n]`: MW on line l per MW injected at node n and withdrawn at the slack (node 0);
    with balanced injections the slack choice does not change any flow."""

    nodes: tuple[str, ...]
    lines: tuple[str, ...]
    limit: np.ndarray
    ptdf: np.ndarray

    @classmethod
    def from_scenario(cls, s) -> Network:
        idx = {n: i for i, n in enumerate(s.node_names)}
        n, m = len(idx), len(s.lines)
        inc = np.zeros((m, n))
        for k, ln in enumerate(s.lines):
            inc[k, idx[ln.from_]], inc[k, idx[ln.to]] = 1.0, -1.0
        b = np.array([1 / ln.reactance for ln in s.lines])
        ptdf = np.zeros((m, n))
        if n > 1:
            bbus = inc.T @ (b[:, None] * inc)
            red = bbus[1:, 1:]
            if m < n - 1 or np.linalg.matrix_rank(red) < n - 1:
                raise ValueError("the lines do not connect all nodes")
            ptdf[:, 1:] = (b[:, None] * inc[:, 1:]) @ np.linalg.inv(red)
        return cls(tuple(idx), tuple(ln.name for ln in s.lines),
                   np.array([ln.limit_mw for ln in s.lines]), ptdf)

    def flows(self, injection_mw: np.ndarray) -> np.ndarray:
        return self.ptdf @ injection_mw

    def overload(self, injection_mw: np.ndarray) -> np.ndarray:
        return np.maximum(np.abs(self.flows(injection_mw)) - self.limit, 0.0)


def clear_zonal(owner: np.ndarray, price: np.ndarray, mw: np.ndarray, load_mw: float,
                floor: float, cap: float, tie_price: str = "midpoint") -> tuple[float, np.ndarray]:
    """Uniform-price merit order of the offer steps (`owner`, `price`, `mw`) against an
    inelastic load, lines ignored: the zonal day-ahead market. Returns the price and the
    accepted MW of each step."""
    prices, accepted = clear_zonal_periods(np.zeros(len(mw), int), owner, price, mw,
                                           np.array([load_mw], float), floor, cap, tie_price)
    return float(prices[0]), accepted


def clear_zonal_periods(period: np.ndarray, owner: np.ndarray, price: np.ndarray,
                        mw: np.ndarray, load_mw: np.ndarray, floor: float, cap: float,
                        tie_price: str = "midpoint") -> tuple[np.ndarray, np.ndarray]:
    """`clear_zonal` of every period in one call (the auction clears all its MTUs at once):
    offer steps tagged with their `period`, one inelastic load per period. Returns the prices
    (one per period) and the accepted MW of each step."""
    # a load below the LPs' round-off (an area that only passes energy on) is none: the
    # auction would leave 1e-9 MW unserved and price it at the cap
    load_mw = np.where(np.abs(load_mw) < FLOW_TOL, 0.0, np.asarray(load_mw, float))
    n = len(load_mw)
    book = OrderBook.from_arrays(owner=np.append(owner, np.full(n, -1)),
                                 mtu=np.append(period, np.arange(n)),
                                 price=np.append(price, np.full(n, cap)),
                                 volume=np.append(-np.asarray(mw, float), load_mw), n_mtu=n)
    c = clear_uniform_price(book, n, floor, cap, tie_price)
    short = np.abs(c.volume - load_mw) > 1e-6 * np.maximum(1.0, load_mw)
    if short.any():
        from environment.solver import InfeasibleError

        t = int(np.flatnonzero(short)[0])
        raise InfeasibleError(f"day-ahead period {t}: {load_mw[t]:g} MW of load but "
                              f"{c.volume[t]:g} MW cleared")
    return c.price, -c.accepted[:len(mw)]


@dataclass
class NodalDispatch:
    x: np.ndarray
    cost: float
    nodal_price: np.ndarray


def nodal_lp(net: Network, cost: np.ndarray, upper: np.ndarray, node: np.ndarray,
             sign: np.ndarray, injection0: np.ndarray, what: str) -> NodalDispatch:
    """Least-cost changes x_k in [0, upper_k] (each adding `sign_k` MW at node `node_k`, at
    `cost_k` per MW) that balance the base injections `injection0` and keep every line within
    its limit. The nodal price is d cost / d load at the node: the balance dual plus the
    line duals weighted by the node's PTDF column.

    With x = output and injection0 = -load this is the cost-based nodal dispatch; with
    x = inc/dec volumes and injection0 = the day-ahead net injections it is redispatch."""
    import scipy.sparse as sp

    from environment.solver import solve_lp
    n_var, n_node = len(cost), len(net.nodes)
    place = sp.csr_array((sign, (node, np.arange(n_var))), shape=(n_node, n_var))
    a_eq = sp.csr_array(np.ones((1, n_node))) @ place
    b_eq = np.array([-injection0.sum()])
    flow = sp.csr_array(net.ptdf) @ place
    f0 = net.flows(injection0)
    a_ub = sp.vstack([flow, -flow], format="csr")
    b_ub = np.concatenate([net.limit - f0, net.limit + f0])
    res = solve_lp(cost, a_eq=a_eq, b_eq=b_eq, a_ub=a_ub, b_ub=b_ub,
                   bounds=list(zip(np.zeros(n_var), upper, strict=True)), what=what)
    y_bal = float(res.eqlin.marginals[0])
    m = len(net.lines)
    y_up, y_dn = res.ineqlin.marginals[:m], res.ineqlin.marginals[m:]
    price = y_bal + net.ptdf.T @ (y_up - y_dn)
    return NodalDispatch(res.x, float(cost @ res.x), price)


def cost_based_dispatch(net: Network, node: np.ndarray, capacity: np.ndarray,
                        marginal_cost: np.ndarray, load: np.ndarray) -> NodalDispatch:
    """The grid-constrained dispatch at marginal cost (the planner's optimum and the nodal
    prices a well-informed producer expects)."""
    return nodal_lp(net, marginal_cost, capacity, node, np.ones(len(node)), -load,
                    "cost-based nodal dispatch")

"""Home batteries that answer the local electricity market (`markets.lem.hems_battery`).

Without it the LEM is a financial overlay: managers post what the self-consumption rule already
plans. With it, D-1 before the day-ahead market, the manager of every participating household
whose battery no aggregator holds re-plans that battery for the day against the prices it
expects (`LocalMarket.expected_prices`) and the suppliers buy for the new plan; its LEM orders
are then the new plan's net positions, and in real time the battery follows the plan (cut only
where it would leave its state-of-charge bounds), so local trade moves physical energy.

The plan is one LP over all those households (separate blocks, one HiGHS call a day): per
household and MTU, battery charge c and discharge d within its power, state of charge within
its capacity (efficiency on each side, as `ProsumerFleet.commit_soc` moves it), grid export e
>= 0 and import base + c - d + e >= 0 (a row: with import a column of its own and a balance row
the simplex took 1.1 to 1.7 times the iterations to the same optimal cost); cost = import x
expected buy price - export x expected sell price - the end-of-day state of charge x efficiency
x feed-in (what stored energy earns at least: without this value the battery would empty itself
at the day's end). With the buy price above the sell price the cost is convex and no MTU
imports and exports at once. A cost of 1e-4 EUR/MWh x (t + 1) / T on c and d breaks ties the
way the self-consumption rule does (charge and discharge as early as is worth as much); where
plans still tie (most household-days), the one returned is the vertex the simplex reaches.
Energies are solved in kWh, so HiGHS's absolute tolerances stay far below what the bounds
check."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from environment.solver import WarmLP

KW = 1e3
TIE_EUR_MWH = 1e-4


class BatteryPlanner:
    """The day's LP for a fixed set of households (module docstring). Its matrix depends only
    on their efficiencies and the MTU length, so it is built once and kept in HiGHS across
    days (`WarmLP`): each day changes costs and right-hand sides and re-solves from the last
    basis, several times faster than a cold solve (where the optimum is not unique, the one
    returned follows the sequence of days, itself deterministic)."""

    def __init__(self, e_mwh: np.ndarray, p_mw: np.ndarray, eta: np.ndarray, n_mtu: int,
                 dt_h: float):
        h, t = len(e_mwh), n_mtu
        self.h, self.t, self.dt, self.eta = h, t, float(dt_h), np.asarray(eta, float)
        k = h * t
        eye = sp.identity(k, format="csr")
        zero = sp.csr_array((k, k))
        # columns c, d, e, soc; import: c - d + e >= -base
        # state of charge: soc_t - soc_{t-1} - eta dt c_t + dt / eta d_t = 0 (soc_{-1} given)
        prev = sp.kron(sp.identity(h), sp.eye(t, k=-1), format="csr")
        eta_k = np.repeat(self.eta, t)
        imports = sp.hstack([eye, -eye, eye, zero])
        charge = sp.hstack([sp.diags(-eta_k * dt_h), sp.diags(dt_h / eta_k), zero,
                            eye - prev])
        self.a = sp.vstack([imports, charge], format="csc")
        self.upper = np.concatenate([np.repeat(p_mw * KW, t), np.repeat(p_mw * KW, t),
                                     np.full(k, np.inf), np.repeat(e_mwh * KW, t)])
        self.import_upper = np.full(k, np.inf)
        self.tie = np.tile(TIE_EUR_MWH * (np.arange(t) + 1) / t * dt_h, h)
        self.lp: WarmLP | None = None

    def plan(self, base_mw: np.ndarray, buy: np.ndarray, sell: np.ndarray,
             soc_mwh: np.ndarray, feed_in: np.ndarray) -> np.ndarray:
        """(H, T) battery power, MW (+ charging), minimising each household's expected cost
        from its net consumption before the battery `base_mw` (H, T), expected prices `buy` >=
        `sell` (H, T) EUR/MWh, initial states of charge and feed-in prices (H,)."""
        h, t, dt = self.h, self.t, self.dt
        if h == 0 or t == 0:
            return np.zeros((h, t))
        k = h * t
        rhs_soc = np.zeros((h, t))
        rhs_soc[:, 0] = soc_mwh * KW
        lower = np.concatenate([-(base_mw * KW).ravel(), rhs_soc.ravel()])
        upper = np.concatenate([self.import_upper, rhs_soc.ravel()])
        terminal = np.zeros((h, t))
        terminal[:, -1] = -self.eta * feed_in
        # import = base + c - d + e at the buy price (its constant part base x buy dropped)
        b = (buy * dt).ravel()
        cost = np.concatenate([self.tie + b, self.tie - b, b - (sell * dt).ravel(),
                               terminal.ravel()]) / KW
        if self.lp is None:
            self.lp = WarmLP(cost, self.a, lower, upper, np.zeros(4 * k), self.upper,
                             "home batteries against the LEM")
        x = self.lp.solve(c=cost, row_lower=lower, row_upper=upper).x
        c, d = x[:k].reshape(h, t), x[k:2 * k].reshape(h, t)
        return (np.clip(c, 0, None) - np.clip(d, 0, None)) / KW


def schedule_batteries(base_mw: np.ndarray, buy: np.ndarray, sell: np.ndarray,
                       e_mwh: np.ndarray, p_mw: np.ndarray, eta: np.ndarray,
                       soc_mwh: np.ndarray, feed_in: np.ndarray, dt_h: float) -> np.ndarray:
    """One day's plan (`BatteryPlanner.plan`) with capacities, powers and efficiencies (H,)."""
    return BatteryPlanner(e_mwh, p_mw, eta, base_mw.shape[1], dt_h).plan(
        base_mw, buy, sell, soc_mwh, feed_in)

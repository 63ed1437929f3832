"""The DSO: owns the distribution grid model, validates the day-ahead schedules on it, sets
the traffic light per MTU and location, and collects network tariffs. Its purchases in the
flexibility markets are cleared in `environment.flexstage` and `environment.balancingstage`."""

from __future__ import annotations

from enum import IntEnum

import mesa
import numpy as np
import scipy.sparse as sp

from environment.grid.lindistflow import LinDistFlow
from environment.grid.shed import Shed, ShedMaps, least_shed

LIMIT_TOL = 1e-9  # loading (share of rating) and voltage (p.u.) within which a limit holds


class Light(IntEnum):
    GREEN = 0
    YELLOW = 1
    RED = 2
    BLACK = 3


class Dso(mesa.Agent):
    agent_class = "dso"

    def __init__(self, model, grid, grid_cfg, dso_cfg, prosumer_bus: np.ndarray):
        super().__init__(model)
        self.name = "dso"
        self.grid = grid
        self.flow = LinDistFlow(grid)
        self.loading_limit = grid_cfg.loading_limit
        self.yellow_margin = dso_cfg.yellow_margin
        self.v_min = np.full(grid.n_bus, grid_cfg.v_min_pu) if grid_cfg.v_min_pu \
            else np.asarray(grid.v_min_pu)
        self.v_max = np.full(grid.n_bus, grid_cfg.v_max_pu) if grid_cfg.v_max_pu \
            else np.asarray(grid.v_max_pu)
        self.tan_phi = np.tan(np.arccos(grid_cfg.load_power_factor))
        self.tariff = dso_cfg.network_tariff_eur_mwh
        n = len(prosumer_bus)
        self.bus_of = sp.csr_array((np.ones(n), (prosumer_bus, np.arange(n))),
                                   shape=(grid.n_bus, n))
        # per location: its branches and its buses other than the slack (whose voltage is
        # held), and the tightest voltage band among its buses
        k_n = grid.n_locations
        self._branches = [np.flatnonzero(grid.branch_location == k) for k in range(k_n)]
        bus_loc = np.asarray(grid.bus_location).copy()
        bus_loc[0] = -1
        self._buses = [np.flatnonzero(bus_loc == k) for k in range(k_n)]
        self.shed_maps = ShedMaps.of(grid, self.flow)
        # EUR paid per location in the LFM and in RED, for the summary by level; each payment
        # as (MTU or -1 where it has none, location, EUR), for the level it relieved
        self.cost_by_location = np.zeros(k_n)
        self.payments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._v_band = (np.array([self.v_min[grid.bus_location == k].max() for k in range(k_n)]),
                        np.array([self.v_max[grid.bus_location == k].min() for k in range(k_n)]))

    def charge(self, location: np.ndarray, eur: np.ndarray,
               mtu: np.ndarray | None = None) -> None:
        """Count what the DSO paid for flexibility at each `location` (index per entry), in
        the run's `mtu` per entry where the payment is for one."""
        location, eur = np.asarray(location), np.broadcast_to(eur, np.shape(location))
        np.add.at(self.cost_by_location, location, eur)
        at = np.full(len(location), -1) if mtu is None else np.asarray(mtu)
        self.payments.append((at, location, np.array(eur, dtype=float)))

    def validate(self, ctx) -> None:
        """D-1 afternoon: the schedules after the auction on the grid; where one breaks a
        limit the location is under the YELLOW regime for the day, and (with
        `markets.lfm.exclude_position_changers`) the aggregators whose plan moved towards
        such a congestion are kept out of the day's LFM."""
        m = self.model
        _, _, ctx.da_flags = m.forecast_grid(ctx, ctx.retail_net_forecast, ctx.forecast)
        ctx.yellow = ctx.da_flags["violated"]
        if m.config.markets.lfm.exclude_position_changers:
            ctx.lfm_excluded = self.position_changers(ctx, m.aggregators)

    def position_changers(self, ctx, aggregators) -> frozenset:
        """Aggregators whose D-1 plan at a forecast-congested MTU-location (or one upstream of
        it) moved towards the congestion, compared with a cost-based plan of the same pool
        against the same prices: the footprint of inc-dec gaming."""
        yellow, worse = ctx.da_flags["violated"], ctx.da_flags["direction"]
        served = np.unique(self.grid.bus_location[self.model.fleet.bus])
        upstream = np.setdiff1d(np.arange(self.grid.n_locations), served)
        out = set()
        for agg in aggregators:
            refs = agg.reference_net(ctx)
            for k, net in agg.location_net_mw().items():
                cols = [k, *upstream]
                moved = (net - refs[k])[:, None] * worse[:, cols]
                if (yellow[:, cols] & (moved > 1e-6)).any():
                    out.add(agg.unique_id)
                    break
        return frozenset(out)

    def nodal(self, per_prosumer: np.ndarray) -> np.ndarray:
        """(N, T) prosumer powers -> (T, B) bus powers."""
        return (self.bus_of @ per_prosumer).T

    def assess(self, p_mw: np.ndarray, q_mvar: np.ndarray, margin: float = 0.0):
        """Flows, voltages and per-location violation flags for (T, B) nodal consumption.

        Returns the flow result and a dict of (T, K) arrays by location: max loading, min and
        max voltage, overload MW, the violation flag (loading above the limit less `margin`,
        or a voltage outside the band narrowed by `margin`/10) and its direction."""
        res = self.flow.solve(p_mw, q_mvar)
        g = self.grid
        n_loc = g.n_locations
        t = p_mw.shape[0]
        max_loading = np.zeros((t, n_loc))
        v_lo = np.ones((t, n_loc))
        v_hi = np.ones((t, n_loc))
        over_mw = np.zeros((t, n_loc))
        limit = self.loading_limit * (1 - margin)
        excess = np.clip(res.loading - self.loading_limit, 0, None) * g.s_max_mva
        consuming = np.ones((t, n_loc))
        for k in range(n_loc):
            br, bu = self._branches[k], self._buses[k]
            if len(br):
                loading = res.loading[:, br]
                max_loading[:, k] = loading.max(1)
                over_mw[:, k] = excess[:, br].max(1)
                worst = br[loading.argmax(1)]
                consuming[:, k] = np.where(res.p_mw[np.arange(t), worst] >= 0, 1.0, -1.0)
            if len(bu):
                v = res.v_pu[:, bu]
                v_lo[:, k] = v.min(1)
                v_hi[:, k] = v.max(1)
        band = margin / 10
        v_min_loc, v_max_loc = self._v_band
        # a clearing that brings a flow or voltage to its limit leaves it there up to rounding
        under = v_lo < v_min_loc + band - LIMIT_TOL
        over = v_hi > v_max_loc - band + LIMIT_TOL
        violated = (max_loading > limit + LIMIT_TOL) | under | over
        # +1 where more consumption makes it worse (load-driven overload, undervoltage),
        # -1 where less does (reverse flow, overvoltage)
        direction = np.where(over, -1.0, np.where(under, 1.0, consuming))
        return res, {"max_loading": max_loading, "v_min": v_lo, "v_max": v_hi,
                     "overload_mw": over_mw, "violated": violated, "direction": direction}

    def load_to_shed(self, res) -> Shed:
        """The least load to shed (or injection to curtail) per MTU and bus that restores
        every branch and voltage limit of the flows `res` (`environment.grid.shed`): a
        violation counted once, however many branches in series it overloads."""
        s_max = self.grid.s_max_mva * self.loading_limit
        p_lim = np.sqrt(np.clip(s_max[None, :] ** 2 - res.q_mvar ** 2, 0, None))
        return least_shed(self.shed_maps, res.p_mw, res.v_pu ** 2, p_lim, self.v_min ** 2,
                          self.v_max ** 2)

    def reactive(self, p_inductive: np.ndarray) -> np.ndarray:
        return p_inductive * self.tan_phi

    def traffic_light(self, forecast_violated: np.ndarray, real_violated: np.ndarray,
                      black: np.ndarray | None = None):
        """GREEN: no violation forecast at D-1; YELLOW: a forecast violation (the markets
        may still solve it); RED: a violation in real time that the markets did not solve;
        BLACK: the constrained area was disconnected."""
        light = np.where(forecast_violated, Light.YELLOW, Light.GREEN)
        light = np.where(real_violated, Light.RED, light)
        if black is not None:
            light = np.where(black, Light.BLACK, light)
        return light.astype(np.int8)

"""The DSO: owns the distribution grid model, validates the day-ahead schedules on it, sets
the traffic light per MTU and location, and collects network tariffs. It decides what it buys
in each flexibility round (where, how much, whether to buy again or reserve availability) and
in each balancing block's re-check, and acts in real time where limits are still broken
(`red_actions`, `agents.dso_emergency`); the stages (`environment.flexstage`,
`environment.balancingstage`) clear and apply what it decided."""

from __future__ import annotations

from enum import IntEnum

import mesa
import numpy as np
import scipy.sparse as sp

from agents.dso_emergency import red_actions
from environment.grid.by_location import location_extremes
from environment.grid.lindistflow import FlowResult, LinDistFlow
from environment.grid.shed import Shed, ShedMaps, least_shed
from environment.markets.lfm import GridLimits, participation, relief_request

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
        k_n = grid.n_locations
        self.shed_maps = ShedMaps.of(grid, self.flow)
        # EUR paid per location in the LFM and in RED, for the summary by level; each payment
        # as (MTU or -1 where it has none, location, EUR), for the level it relieved
        self.cost_by_location = np.zeros(k_n)
        self.payments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # per location the tightest voltage band among its buses
        self._v_band = (np.array([self.v_min[grid.bus_location == k].max() for k in range(k_n)]),
                        np.array([self.v_max[grid.bus_location == k].min() for k in range(k_n)]))
        # the day's consumption and reactive consumption (T, B) of the grid's elements that
        # are no household's (`grid.background`), in every flow it computes; None: none
        self.background: tuple[np.ndarray, np.ndarray] | None = None

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

    def grid_limits(self, res: FlowResult, weights: np.ndarray) -> GridLimits:
        """What it clears against: the flows `res` of a nodal schedule and the linear effect
        of one MW at each location, spread over buses by `weights` (T, B, 2)."""
        grid = self.grid
        flow_per_mw, w_per_mw = participation(grid, weights, self.flow)
        return GridLimits(res.p_mw, res.q_mvar, res.v_pu ** 2,
                          grid.s_max_mva * self.loading_limit, self.v_min, self.v_max,
                          flow_per_mw, w_per_mw, grid.branch_location, grid.bus_location)

    def congestion(self, flags: dict, stage: str, first_mtu: int) -> np.ndarray:
        """(T, K) where it buys in a flexibility round of `stage` ("da", "id"): the forecast
        violations `flags` at MTUs still tradable (from `first_mtu`), where its LFM runs at
        that stage (nowhere else)."""
        lfm = self.model.config.markets.lfm
        violated = flags["violated"] if (lfm.enabled and (stage == "da" or lfm.intraday)) \
            else np.zeros_like(flags["violated"])
        violated[:first_mtu] = False  # MTUs before the gate can no longer be traded
        return violated

    def excess_mw(self, flows, first_mtu: int) -> float:
        """MW (summed over the tradable MTUs) its last resort would shed in the flows."""
        return float(self.load_to_shed(flows).per_mtu[first_mtu:].sum())

    def buys_again(self, before: float, excess: float) -> bool:
        """After its re-check of a round: buy again only where the last round relieved at
        least `markets.lfm.min_relief` of the forecast excess `before` (where what it bought
        is undone by the rebound or not delivered, buying it again would not help)."""
        return not excess > before * (1 - self.model.config.markets.lfm.min_relief) - 1e-9

    @staticmethod
    def regime(violated: np.ndarray, yellow: np.ndarray | None) -> np.ndarray:
        """(T, K) the YELLOW regime a round manages: its congestion, and the day-ahead
        YELLOW locations where it was declared (`yellow`)."""
        return violated if yellow is None else (violated | yellow)

    @staticmethod
    def relief_request(limits: GridLimits, violated: np.ndarray) -> np.ndarray:
        """(T, K, 2) what it asks the aggregators for at its congested MTUs (`relief_request`,
        USEF's FlexRequest per congestion point)."""
        return relief_request(limits, np.flatnonzero(violated.any(1)))

    def availability_fee(self) -> float:
        """EUR per MW and hour it pays for availability (conditional products; 0: none)."""
        return self.model.config.markets.lfm.reservation_eur_mw_h

    def reserves_availability(self, stage: str) -> bool:
        """It reserves flexibility at D-1 (and activates from it intraday) rather than buying
        activations, where it pays for availability."""
        return stage == "da" and self.availability_fee() > 0

    def activates_reserved(self, stage: str, round_index: int) -> bool:
        """It activates what it reserved first, in the first intraday round."""
        return stage == "id" and round_index == 0 and self.availability_fee() > 0

    def still_broken(self, limits: GridLimits, mtus: np.ndarray) -> bool:
        """Whether a re-check of a balancing block clears it again: a branch or (non-slack)
        voltage limit broken at some MTU of `mtus` on the members' set-points."""
        return bool(limits.broken()[mtus].any())

    @staticmethod
    def interface_deviation(ctx, preview: dict, mtus: np.ndarray) -> np.ndarray:
        """(T,) the distribution area's deviation from its agreed interface schedule at the
        block's MTUs, as the preview of real time shows it (what it balances under
        `shared_balancing`)."""
        out = np.zeros(ctx.n_mtu)
        out[mtus] = preview["area_net"][mtus] - ctx.interface_schedule[mtus]
        return out

    def red_actions(self, ctx, real: dict, prof) -> dict:
        """Real time, RED and BLACK: its emergency actions on the devices `real` and profiles
        `prof` (changed in place), where limits are still broken after the markets
        (`agents.dso_emergency.red_actions`)."""
        return red_actions(self, ctx, real, prof)

    def nodal(self, per_prosumer: np.ndarray) -> np.ndarray:
        """(N, T) prosumer powers -> (T, B) bus powers."""
        return (self.bus_of @ per_prosumer).T

    def flows(self, p_mw: np.ndarray, q_mvar: np.ndarray) -> FlowResult:
        """Flows and voltages of the households' (T, B) nodal consumption with the day's
        background added: what the grid carries, where the markets move the households only."""
        if self.background is None:
            return self.flow.solve(p_mw, q_mvar)
        return self.flow.solve(p_mw + self.background[0], q_mvar + self.background[1])

    def assess(self, p_mw: np.ndarray, q_mvar: np.ndarray, margin: float = 0.0):
        """Flows (`flows`: with the background), voltages and per-location violation flags for
        the households' (T, B) nodal consumption.

        Returns the flow result and a dict of (T, K) arrays by location: max loading, min and
        max voltage, overload MW, the violation flag (loading above the limit less `margin`,
        or a voltage outside the band narrowed by `margin`/10) and its direction."""
        res = self.flows(p_mw, q_mvar)
        g = self.grid
        max_loading, over_mw, consuming, v_lo, v_hi = location_extremes(
            res.loading, res.p_mw, res.v_pu, g.branch_location, g.bus_location,
            g.n_locations, self.loading_limit, g.s_max_mva)
        limit = self.loading_limit * (1 - margin)
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

"""The transmission model: one `step()` is one period (an hour) of the market chain

    zonal day-ahead clearing (lines ignored) -> line flows of that dispatch ->
    redispatch by the grid operator (least-cost inc/dec restoring the limits) -> settlement,

repeated for `periods` per episode and `episodes` episodes (the same day again, so adaptive
producers can learn). Every payment is a ledger row: loads pay the exchange, the exchange pays
producers; the grid operator pays incs and is paid decs and recovers the net cost from the
loads through a network charge in the same period; producers pay their fuel to `external`."""

from __future__ import annotations

from dataclasses import dataclass, field

import mesa
import numpy as np
import pandas as pd

from agents.tx_producer import TxProducer
from environment.ledger import Ledger
from environment.transmission.network import (
    FLOW_TOL,
    Network,
    clear_zonal,
    cost_based_dispatch,
    nodal_lp,
)
from environment.transmission.scenario import TxScenario

EXCHANGE, GRID_OPERATOR, EXTERNAL = "exchange", "grid_operator", "external"
PRICE_TOL = 1e-9
"""EUR/MWh by which the nodal price forecast must differ from the zonal one for a node to count
as exporting or importing."""


@dataclass
class TxContext:
    """What producers know when they bid in a period: the market limits and forecasts made
    from everyone's costs (a truthful zonal price, cost-based nodal prices); `side(node)` is +1
    where the node is expected to export into a congestion, -1 where it imports, else 0."""

    episode: int
    period: int
    price_floor: float
    price_cap: float
    da_price_forecast: float
    nodal_price_forecast: np.ndarray

    def side(self, node: int) -> int:
        gap = self.nodal_price_forecast[node] - self.da_price_forecast
        return 1 if gap < -PRICE_TOL else (-1 if gap > PRICE_TOL else 0)


@dataclass
class EpisodeResult:
    """A producer's own episode: EUR received per market (fuel paid is negative)."""

    episode: int
    eur_by_market: dict
    da_price: np.ndarray

    @property
    def profit_eur(self) -> float:
        return float(sum(self.eur_by_market.values()))


@dataclass
class Redispatch:
    inc_mw: np.ndarray
    dec_mw: np.ndarray
    inc_price: np.ndarray
    dec_price: np.ndarray
    nodal_price: np.ndarray
    regulated_inc: np.ndarray
    regulated_dec: np.ndarray

    @property
    def cost_eur(self) -> float:
        return float(self.inc_mw @ self.inc_price - self.dec_mw @ self.dec_price)


@dataclass
class _Rows:
    periods: list = field(default_factory=list)
    producers: list = field(default_factory=list)


class TransmissionModel(mesa.Model):
    """A run of a transmission scenario; `step()` simulates one period."""

    def __init__(self, scenario: TxScenario, seed: int | None = None):
        seed = scenario.seed if seed is None else seed
        super().__init__(rng=seed)
        self.config = s = scenario
        self.net = Network.from_scenario(s)
        self.load = s.load_mw()
        self.ledger = Ledger()
        self.exchange = self.ledger.account(EXCHANGE, "exchange")
        self.grid_operator = self.ledger.account(GRID_OPERATOR, "grid_operator")
        self.external = self.ledger.account(EXTERNAL, "external")
        node = {n: i for i, n in enumerate(self.net.nodes)}
        self.load_accounts = [self.ledger.account(ld.name, "consumer") for ld in s.loads]
        self.load_node = np.array([node[ld.node] for ld in s.loads])
        self.load_share = np.array([np.broadcast_to(np.asarray(ld.mw, float), s.periods)
                                    for ld in s.loads])
        self.producers = [TxProducer(self, cfg, i) for i, cfg in enumerate(s.producers)]
        self.node_of = np.array([p.node_index for p in self.producers])
        self.capacity = np.array([p.capacity for p in self.producers])
        self.cost = np.array([p.marginal_cost for p in self.producers])
        self.forecast = [self._forecast(t) for t in range(s.periods)]
        self.step_index = 0
        self.rows = _Rows()
        self._mark = 0
        self._da_prices: list[float] = []

    def _forecast(self, t: int) -> tuple[float, np.ndarray, float]:
        """Truthful zonal price, cost-based nodal prices and the planner's cost of period t."""
        da, _ = clear_zonal(np.arange(len(self.producers)), self.cost, self.capacity,
                            float(self.load[t].sum()), self.config.day_ahead.price_floor,
                            self.config.day_ahead.price_cap)
        opt = cost_based_dispatch(self.net, self.node_of, self.capacity, self.cost, self.load[t])
        return da, opt.nodal_price, opt.cost

    @property
    def planner_cost_eur(self) -> float:
        """Fuel cost of the grid-constrained optimum over the whole run."""
        return self.config.episodes * sum(f[2] for f in self.forecast)

    def run(self) -> TransmissionModel:
        while self.running:
            self.step()
        return self

    def step(self) -> None:
        s = self.config
        t, episode = self.step_index % s.periods, self.step_index // s.periods
        if t == 0:
            self._mark, self._da_prices = self.ledger.mark(), []
        da_fc, nodal_fc, _ = self.forecast[t]
        ctx = TxContext(episode, t, s.day_ahead.price_floor, s.day_ahead.price_cap, da_fc,
                        nodal_fc)
        load = self.load[t]
        owners, prices, mws = [], [], []
        for p in self.producers:
            price, mw = p.da_offer(ctx)
            owners.append(np.full(len(mw), p.index))
            prices.append(price)
            mws.append(mw)
        owner = np.concatenate(owners)
        da_price, accepted = clear_zonal(owner, np.concatenate(prices), np.concatenate(mws),
                                         float(load.sum()), s.day_ahead.price_floor,
                                         s.day_ahead.price_cap)
        da_mw = np.bincount(owner, accepted, minlength=len(self.producers))
        for p, q in zip(self.producers, da_mw, strict=True):
            p.da_mw = float(q)
        injection = np.bincount(self.node_of, da_mw, minlength=len(self.net.nodes)) - load
        flow_da = self.net.flows(injection)
        rd = self._redispatch(ctx, da_mw, injection)
        final = da_mw + rd.inc_mw - rd.dec_mw
        self._check(t, episode, final, load)
        self._settle(t, da_price, da_mw, rd, final)
        self._da_prices.append(da_price)
        self._record(t, episode, da_price, flow_da, da_mw, rd, final)
        self.step_index += 1
        if t == s.periods - 1:
            self._end_of_episode(episode)
        self.running = self.step_index < s.periods * s.episodes

    def _redispatch(self, ctx: TxContext, da_mw: np.ndarray, injection: np.ndarray) -> Redispatch:
        """Least-cost inc/dec restoring the line limits. Offers beyond the cap (floor), and all
        offers under cost-based redispatch, are taken at marginal cost; under pay-as-clear the
        market offers get the nodal price (within the cap and floor)."""
        cfg = self.config.redispatch
        n = len(self.producers)
        if cfg.mechanism == "cost_based":
            inc_bid, dec_bid = self.cost.copy(), self.cost.copy()
            reg_inc = reg_dec = np.ones(n, bool)
        else:
            bids = np.array([p.strategy.redispatch_prices(p, ctx) for p in self.producers],
                            float).reshape(n, 2)
            inc_bid, dec_bid = bids[:, 0], bids[:, 1]
            reg_inc = np.zeros(n, bool) if cfg.price_cap is None else inc_bid > cfg.price_cap
            reg_dec = np.zeros(n, bool) if cfg.dec_price_floor is None \
                else dec_bid < cfg.dec_price_floor
            inc_bid = np.where(reg_inc, self.cost, inc_bid)
            dec_bid = np.where(reg_dec, self.cost, dec_bid)
        zero = np.zeros(n)
        if not (self.net.overload(injection) > FLOW_TOL).any():
            return Redispatch(zero, zero.copy(), inc_bid, dec_bid,
                              np.full(len(self.net.nodes), np.nan), reg_inc, reg_dec)
        lp = nodal_lp(self.net, np.concatenate([inc_bid, -dec_bid]),
                      np.concatenate([self.capacity - da_mw, da_mw]),
                      np.concatenate([self.node_of, self.node_of]),
                      np.concatenate([np.ones(n), -np.ones(n)]), injection,
                      f"redispatch episode {ctx.episode} period {ctx.period}")
        inc, dec = lp.x[:n], lp.x[n:]
        inc_price, dec_price = inc_bid, dec_bid
        if cfg.mechanism == "market" and cfg.pricing == "pay_as_clear":
            nodal = lp.nodal_price[self.node_of]
            clear_inc = nodal if cfg.price_cap is None else np.minimum(nodal, cfg.price_cap)
            clear_dec = nodal if cfg.dec_price_floor is None \
                else np.maximum(nodal, cfg.dec_price_floor)
            inc_price = np.where(reg_inc, self.cost, clear_inc)
            dec_price = np.where(reg_dec, self.cost, clear_dec)
        return Redispatch(inc, dec, inc_price, dec_price, lp.nodal_price, reg_inc, reg_dec)

    def _check(self, t: int, episode: int, final: np.ndarray, load: np.ndarray) -> None:
        """Energy balances and the redispatched flows respect the limits, or the run stops."""
        gap = final.sum() - load.sum()
        over = self.net.overload(np.bincount(self.node_of, final, len(self.net.nodes)) - load)
        if abs(gap) > 1e-6 * max(1.0, load.sum()) or (over > 1e-6).any():
            raise RuntimeError(f"episode {episode} period {t}: imbalance {gap:g} MW, overload "
                               f"{over.max(initial=0):g} MW after redispatch")

    def _settle(self, t: int, da_price: float, da_mw: np.ndarray, rd: Redispatch,
                final: np.ndarray) -> None:
        led, mtu = self.ledger, self.step_index
        prod = np.array([p.account for p in self.producers])
        loads = self.load_share[:, t]
        led.pay(self.load_accounts, self.exchange, "day_ahead", mtu, loads, da_price)
        led.pay(self.exchange, prod, "day_ahead", mtu, da_mw, da_price)
        led.pay(self.grid_operator, prod, "redispatch_inc", mtu, rd.inc_mw, rd.inc_price)
        led.pay(prod, self.grid_operator, "redispatch_dec", mtu, rd.dec_mw, rd.dec_price)
        led.pay(prod, self.external, "fuel", mtu, final, self.cost)
        if loads.sum() > 0:
            led.pay(self.load_accounts, self.grid_operator, "network_charge", mtu, loads,
                    rd.cost_eur / loads.sum())

    def _record(self, t, episode, da_price, flow_da, da_mw, rd: Redispatch, final) -> None:
        row = {"step": self.step_index, "episode": episode, "period": t,
               "da_price_eur_mwh": da_price, "load_mw": float(self.load[t].sum()),
               "redispatch_mw": float(rd.inc_mw.sum()),
               "redispatch_cost_eur": rd.cost_eur, "fuel_eur": float(final @ self.cost)}
        for name, f in zip(self.net.lines, flow_da, strict=True):
            row[f"flow_da_{name}_mw"] = float(f)
        for name, price in zip(self.net.nodes, rd.nodal_price, strict=True):
            row[f"redispatch_price_{name}_eur_mwh"] = float(price)
        self.rows.periods.append(row)
        for i, p in enumerate(self.producers):
            self.rows.producers.append({
                "step": self.step_index, "episode": episode, "period": t, "producer": p.name,
                "da_mw": da_mw[i], "inc_mw": rd.inc_mw[i], "dec_mw": rd.dec_mw[i],
                "final_mw": final[i], "inc_price_eur_mwh": rd.inc_price[i],
                "dec_price_eur_mwh": rd.dec_price[i],
                "markup_eur_mwh": getattr(getattr(p.strategy, "learner", None), "markup",
                                          np.nan)})

    def _end_of_episode(self, episode: int) -> None:
        for p in self.producers:
            hook = getattr(p.strategy, "end_of_day", None)
            if hook is not None:
                hook(p, EpisodeResult(episode, self.ledger.received_since(self._mark, p.account),
                                      np.array(self._da_prices)))

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"periods": pd.DataFrame(self.rows.periods),
                "producers": pd.DataFrame(self.rows.producers),
                "ledger": self.ledger.frame()}

    def profits(self) -> pd.Series:
        """Net EUR received per account over the run."""
        return self.ledger.balances()

    def summary(self) -> dict:
        periods = pd.DataFrame(self.rows.periods)
        bal = self.ledger.balances()
        classes = self.ledger.account_classes()
        fuel = float(periods["fuel_eur"].sum())
        return {
            "run": {"scenario": self.config.name, "seed": self.config.seed,
                    "episodes": self.config.episodes, "periods": self.config.periods,
                    "nodes": list(self.net.nodes), "lines": list(self.net.lines)},
            "da_price_eur_mwh": {"mean": float(periods["da_price_eur_mwh"].mean()),
                                 "min": float(periods["da_price_eur_mwh"].min()),
                                 "max": float(periods["da_price_eur_mwh"].max())},
            "redispatch": {"mwh": float(periods["redispatch_mw"].sum()),
                           "cost_eur": float(periods["redispatch_cost_eur"].sum())},
            "fuel_eur": fuel,
            "planner_fuel_eur": self.planner_cost_eur,
            "welfare_loss_vs_planner_eur": fuel - self.planner_cost_eur,
            "eur_by_class": {k: float(v) for k, v in bal.groupby(classes).sum().items()},
            "eur_by_account": {k: float(v) for k, v in bal.items()},
            "ledger_sum_eur": float(bal.sum()),
        }

"""The transmission model: the market chain of one period (an hour)

    zonal day-ahead clearing (lines ignored) -> line flows of that dispatch ->
    redispatch by the grid operator (least-cost inc/dec restoring the limits) -> settlement,

for `periods` per episode and `episodes` episodes (the same periods again, so adaptive
producers can learn). Every payment is a ledger row: loads pay the exchange, the exchange pays
producers; the grid operator pays incs and is paid decs and recovers the net cost from the
loads through a network charge in the same period; producers pay their fuel to `external`.

Producers bid each period from what they know before the auction (forecasts made from
everyone's costs), never from the same episode's outcomes, so an episode's day-ahead auction
clears all its periods in one call. Without lines (a wholesale-only case: one node) nothing
else couples the periods either: there is no redispatch, the forecasts are one truthful
clearing of all periods rather than one LP per period, and a `step()` is a whole episode,
settled at once. With lines, a `step()` is one period.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mesa
import numpy as np
import pandas as pd

from agents.strategies.transmission import TruthfulTxProducer
from agents.tx_producer import TxProducer
from environment.ledger import Ledger
from environment.transmission.network import (
    FLOW_TOL,
    Network,
    clear_zonal_periods,
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
    da_price_forecast: float | np.ndarray
    nodal_price_forecast: np.ndarray

    def side(self, node: int) -> int:
        """`da_price_forecast` is one price, or with zones one per node (its zone's)."""
        da = self.da_price_forecast
        gap = self.nodal_price_forecast[node] - (da[node] if np.ndim(da) else da)
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
    """Recorded columns, one block per period (lines) or per episode (no lines)."""

    periods: list = field(default_factory=list)
    producers: list = field(default_factory=list)


@dataclass
class _Auction:
    """An episode's day-ahead auction: price per period, MW per period and producer."""

    price: np.ndarray
    mw: np.ndarray


class TransmissionModel(mesa.Model):
    """A run of a transmission scenario (see the module docstring for what a step is)."""

    def __init__(self, scenario: TxScenario, seed: int | None = None):
        seed = scenario.seed if seed is None else seed
        super().__init__(rng=seed)
        self.config = s = scenario
        self.net = self._network()
        self.load = s.load_mw()
        self.cost = s.marginal_cost()
        self.ledger = Ledger()
        self.exchange = self.ledger.account(EXCHANGE, "exchange")
        self.grid_operator = self.ledger.account(GRID_OPERATOR, "grid_operator")
        self.external = self.ledger.account(EXTERNAL, "external")
        node = {n: i for i, n in enumerate(self.net.nodes)}
        self.load_accounts = [self.ledger.account(ld.name, "consumer") for ld in s.loads]
        self.load_node = np.array([node[ld.node] for ld in s.loads])
        self.load_share = s.load_by_load()
        self.producers = [TxProducer(self, cfg, i) for i, cfg in enumerate(s.producers)]
        for p in self.producers:
            p.marginal_cost = float(self.cost[0, p.index])
        self.node_of = np.array([p.node_index for p in self.producers])
        self.capacity = np.array([p.capacity for p in self.producers])
        self.prod_accounts = np.array([p.account for p in self.producers])
        self.batch = len(self.net.lines) == 0
        self.forecast = self._forecasts()
        self.timestamps = s.timestamps()
        self.step_index = 0
        self.rows = _Rows()
        self._mark = 0
        self._auction: _Auction | None = None

    def _network(self) -> Network:
        return Network.from_scenario(self.config)

    # --- forecasts ----------------------------------------------------------------------------

    def _forecasts(self) -> list[tuple[float, np.ndarray, float]]:
        """Per period: truthful zonal price, cost-based nodal prices and the planner's cost.
        Without lines the nodal prices are the zonal one and the planner's dispatch is the
        merit order: one clearing of all periods; with lines one LP per period."""
        s, n_p = self.config, self.config.periods
        if self.batch:
            g = len(self.producers)
            price, acc = clear_zonal_periods(
                np.repeat(np.arange(n_p), g), np.tile(np.arange(g), n_p), self.cost.ravel(),
                np.tile(self.capacity, n_p), self.load.sum(1), s.day_ahead.price_floor,
                s.day_ahead.price_cap, s.day_ahead.tie_price)
            cost = (acc.reshape(n_p, g) * self.cost).sum(1)
            return [(float(price[t]), np.full(len(self.net.nodes), price[t]), float(cost[t]))
                    for t in range(n_p)]
        out = []
        for t in range(n_p):
            da, _ = clear_zonal_periods(np.zeros(len(self.producers), int),
                                        np.arange(len(self.producers)), self.cost[t],
                                        self.capacity, self.load[t:t + 1].sum(1),
                                        s.day_ahead.price_floor, s.day_ahead.price_cap,
                                        s.day_ahead.tie_price)
            opt = cost_based_dispatch(self.net, self.node_of, self.capacity, self.cost[t],
                                      self.load[t])
            out.append((float(da[0]), opt.nodal_price, opt.cost))
        return out

    @property
    def planner_cost_eur(self) -> float:
        """Fuel cost of the grid-constrained optimum over the whole run."""
        return self.config.episodes * sum(f[2] for f in self.forecast)

    def _context(self, episode: int, t: int) -> TxContext:
        s = self.config
        da_fc, nodal_fc, _ = self.forecast[t]
        return TxContext(episode, t, s.day_ahead.price_floor, s.day_ahead.price_cap, da_fc,
                         nodal_fc)

    def _set_costs(self, t: int) -> None:
        for p in self.producers:
            p.marginal_cost = float(self.cost[t, p.index])

    # --- the day-ahead auction of an episode -----------------------------------------------------

    def _auction_of(self, episode: int) -> _Auction:
        """Every producer's offers for every period of the episode, cleared in one call."""
        s, n_p, g = self.config, self.config.periods, len(self.producers)
        period_a, owner_a, price_a, mw_a = self.offers(episode)
        prices, accepted = clear_zonal_periods(
            period_a, owner_a, price_a, mw_a, self.load.sum(1),
            s.day_ahead.price_floor, s.day_ahead.price_cap, s.day_ahead.tie_price)
        da_mw = np.bincount(period_a * g + owner_a, accepted, minlength=n_p * g).reshape(n_p, g)
        return _Auction(prices, da_mw)

    def offers(self, episode: int) -> tuple[np.ndarray, ...]:
        """The episode's offer steps: period, producer, price and MW of each. A producer whose
        strategy bids as the truthful one offers its capacity at cost each period: built for
        all periods at once."""
        n_p = self.config.periods
        period, owner, price, mw = [], [], [], []
        at_cost = [type(p.strategy).da_offer is TruthfulTxProducer.da_offer
                   for p in self.producers]
        for i, p in enumerate(self.producers):
            if at_cost[i]:
                period.append(np.arange(n_p))
                owner.append(np.full(n_p, i))
                price.append(self.cost[:, i])
                mw.append(np.full(n_p, p.capacity))
        for t in range(n_p):
            self._set_costs(t)
            ctx = self._context(episode, t)
            for i, p in enumerate(self.producers):
                if not at_cost[i]:
                    pr, q = p.da_offer(ctx)
                    period.append(np.full(len(q), t))
                    owner.append(np.full(len(q), i))
                    price.append(pr)
                    mw.append(q)
        return (np.concatenate(period), np.concatenate(owner), np.concatenate(price),
                np.concatenate(mw))

    # --- running ---------------------------------------------------------------------------------

    def run(self) -> TransmissionModel:
        while self.running:
            self.step()
        return self

    def step(self) -> None:
        """One episode without lines, one period with lines."""
        s = self.config
        t, episode = self.step_index % s.periods, self.step_index // s.periods
        if t == 0:
            self._mark = self.ledger.mark()
            self._auction = self._auction_of(episode)
        if self.batch:
            self._episode_without_lines(episode)
        else:
            self._period_with_lines(episode, t)
        self.running = self.step_index < s.periods * s.episodes

    def _period_with_lines(self, episode: int, t: int) -> None:
        self._set_costs(t)
        ctx = self._context(episode, t)
        load = self.load[t]
        da_price = float(self._auction.price[t])
        da_mw = self._auction.mw[t]
        for p, q in zip(self.producers, da_mw, strict=True):
            p.da_mw = float(q)
        injection = np.bincount(self.node_of, da_mw, minlength=len(self.net.nodes)) - load
        flow_da = self.net.flows(injection)
        rd = self._redispatch(ctx, da_mw, injection)
        final = da_mw + rd.inc_mw - rd.dec_mw
        self._check(t, episode, final, load)
        self._settle(t, da_price, da_mw, rd, final)
        self._record(t, episode, da_price, flow_da, da_mw, rd, final)
        self.step_index += 1
        if t == self.config.periods - 1:
            self._end_of_episode(episode)

    def _episode_without_lines(self, episode: int) -> None:
        """All periods of an episode at once: no redispatch, the day-ahead dispatch is final."""
        n_p = self.config.periods
        a = self._auction
        mtu = self.step_index + np.arange(n_p)
        gap = a.mw.sum(1) - self.load.sum(1)
        bad = np.abs(gap) > 1e-6 * np.maximum(1.0, self.load.sum(1))
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            raise RuntimeError(f"episode {episode} period {t}: imbalance {gap[t]:g} MW")
        led = self.ledger
        loads = self.load_share
        led.pay(np.array(self.load_accounts)[:, None], self.exchange, "day_ahead", mtu[None, :],
                loads, a.price[None, :])
        led.pay(self.exchange, self.prod_accounts[None, :], "day_ahead", mtu[:, None], a.mw,
                a.price[:, None])
        led.pay(self.prod_accounts[None, :], self.external, "fuel", mtu[:, None], a.mw,
                self.cost)
        has_load = loads.sum(0) > 0
        led.pay(np.array(self.load_accounts)[:, None], self.grid_operator, "network_charge",
                mtu[None, has_load], loads[:, has_load], 0.0)
        for p, q in zip(self.producers, a.mw[-1], strict=True):
            p.da_mw = float(q)
        self._set_costs(n_p - 1)
        zero = np.zeros_like(a.mw)
        self.rows.periods.append({
            "step": mtu, "episode": np.full(n_p, episode), "period": np.arange(n_p),
            "da_price_eur_mwh": a.price, "load_mw": self.load.sum(1),
            "redispatch_mw": np.zeros(n_p), "redispatch_cost_eur": np.zeros(n_p),
            "fuel_eur": (a.mw * self.cost).sum(1),
            **{f"redispatch_price_{name}_eur_mwh": np.full(n_p, np.nan)
               for name in self.net.nodes}})
        g = len(self.producers)
        self.rows.producers.append({
            "step": np.repeat(mtu, g), "episode": np.full(n_p * g, episode),
            "period": np.repeat(np.arange(n_p), g),
            "producer": np.tile(np.array([p.name for p in self.producers], object), n_p),
            "da_mw": a.mw.ravel(), "inc_mw": zero.ravel(), "dec_mw": zero.ravel(),
            "final_mw": a.mw.ravel(), "inc_price_eur_mwh": self.cost.ravel(),
            "dec_price_eur_mwh": self.cost.ravel(),
            "markup_eur_mwh": np.tile(self._markups(), n_p)})
        self.step_index += n_p
        self._end_of_episode(episode)

    def _markups(self) -> np.ndarray:
        return np.array([getattr(getattr(p.strategy, "learner", None), "markup", np.nan)
                         for p in self.producers], float)

    def _redispatch(self, ctx: TxContext, da_mw: np.ndarray, injection: np.ndarray) -> Redispatch:
        """Least-cost inc/dec restoring the line limits. Offers beyond the cap (floor), and all
        offers under cost-based redispatch, are taken at marginal cost; under pay-as-clear the
        market offers get the nodal price (within the cap and floor)."""
        cfg = self.config.redispatch
        n = len(self.producers)
        cost = self.cost[ctx.period]
        if cfg.mechanism == "cost_based":
            inc_bid, dec_bid = cost.copy(), cost.copy()
            reg_inc = reg_dec = np.ones(n, bool)
        else:
            bids = np.array([p.strategy.redispatch_prices(p, ctx) for p in self.producers],
                            float).reshape(n, 2)
            inc_bid, dec_bid = bids[:, 0], bids[:, 1]
            reg_inc = np.zeros(n, bool) if cfg.price_cap is None else inc_bid > cfg.price_cap
            reg_dec = np.zeros(n, bool) if cfg.dec_price_floor is None \
                else dec_bid < cfg.dec_price_floor
            inc_bid = np.where(reg_inc, cost, inc_bid)
            dec_bid = np.where(reg_dec, cost, dec_bid)
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
            inc_price = np.where(reg_inc, cost, clear_inc)
            dec_price = np.where(reg_dec, cost, clear_dec)
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
        prod = self.prod_accounts
        loads = self.load_share[:, t]
        led.pay(self.load_accounts, self.exchange, "day_ahead", mtu, loads, da_price)
        led.pay(self.exchange, prod, "day_ahead", mtu, da_mw, da_price)
        led.pay(self.grid_operator, prod, "redispatch_inc", mtu, rd.inc_mw, rd.inc_price)
        led.pay(prod, self.grid_operator, "redispatch_dec", mtu, rd.dec_mw, rd.dec_price)
        led.pay(prod, self.external, "fuel", mtu, final, self.cost[t])
        if loads.sum() > 0:
            led.pay(self.load_accounts, self.grid_operator, "network_charge", mtu, loads,
                    rd.cost_eur / loads.sum())

    def _record(self, t, episode, da_price, flow_da, da_mw, rd: Redispatch, final) -> None:
        row = {"step": self.step_index, "episode": episode, "period": t,
               "da_price_eur_mwh": da_price, "load_mw": float(self.load[t].sum()),
               "redispatch_mw": float(rd.inc_mw.sum()),
               "redispatch_cost_eur": rd.cost_eur, "fuel_eur": float(final @ self.cost[t])}
        for name, f in zip(self.net.lines, flow_da, strict=True):
            row[f"flow_da_{name}_mw"] = float(f)
        for name, price in zip(self.net.nodes, rd.nodal_price, strict=True):
            row[f"redispatch_price_{name}_eur_mwh"] = float(price)
        self.rows.periods.append({k: np.array([v]) for k, v in row.items()})
        g = len(self.producers)
        self.rows.producers.append({
            "step": np.full(g, self.step_index), "episode": np.full(g, episode),
            "period": np.full(g, t), "producer": np.array([p.name for p in self.producers],
                                                          object),
            "da_mw": da_mw, "inc_mw": rd.inc_mw, "dec_mw": rd.dec_mw, "final_mw": final,
            "inc_price_eur_mwh": rd.inc_price, "dec_price_eur_mwh": rd.dec_price,
            "markup_eur_mwh": self._markups()})

    def _end_of_episode(self, episode: int) -> None:
        for p in self.producers:
            hook = getattr(p.strategy, "end_of_day", None)
            if hook is not None:
                hook(p, EpisodeResult(episode, self.ledger.received_since(self._mark, p.account),
                                      np.array(self._auction.price)))

    # --- results ---------------------------------------------------------------------------------

    def _table(self, blocks: list[dict]) -> pd.DataFrame:
        if not blocks:
            return pd.DataFrame()
        df = pd.DataFrame({c: np.concatenate([b[c] for b in blocks]) for c in blocks[0]})
        if self.timestamps is not None and "period" in df:
            df.insert(0, "timestamp", pd.DatetimeIndex(self.timestamps)[df["period"].to_numpy()])
        return df

    def period_table(self) -> pd.DataFrame:
        return self._table(self.rows.periods)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"periods": self.period_table(), "producers": self._table(self.rows.producers),
                "ledger": self.ledger.frame()}

    def totals(self) -> dict[str, float]:
        """EUR over the run: redispatch cost and fuel (the twin compares them)."""
        return {k: float(sum(b[k].sum() for b in self.rows.periods))
                for k in ("redispatch_cost_eur", "fuel_eur", "redispatch_mw")}

    def profits(self) -> pd.Series:
        """Net EUR received per account over the run."""
        return self.ledger.balances()

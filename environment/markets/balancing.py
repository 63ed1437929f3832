"""TSO balancing energy: merit-order activation of the system imbalance and the imbalance price.

Activation is pay-as-clear: every activated upward offer earns the marginal upward price, every
downward one pays the marginal downward price. When offers run out, emergency assistance from
outside the system closes the gap at the emergency prices, so energy balances every MTU."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BalancingOffers:
    """Offers of P providers over T MTUs: prices per provider and direction, (P,) or (P, T),
    and MW per MTU (P, T)."""

    provider: np.ndarray
    up_price: np.ndarray
    up_mw: np.ndarray
    down_price: np.ndarray
    down_mw: np.ndarray


@dataclass(frozen=True)
class Activation:
    up_mw: np.ndarray
    down_mw: np.ndarray
    emergency_up_mw: np.ndarray
    emergency_down_mw: np.ndarray
    marginal_up: np.ndarray
    marginal_down: np.ndarray


def merit_order(mtu: np.ndarray, price: np.ndarray, mw: np.ndarray, need: np.ndarray,
                running_sum: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Activate candidates cheapest first per MTU until `need` (T,) MW are met: MW per candidate,
    and the marginal price per MTU (that of the last candidate accepted, the highest), NaN
    where nothing was accepted. Candidate i offers `mw[i]` MW at `price[i]` in MTU `mtu[i]`;
    ties go by candidate order.

    `running_sum` is the order of the floating-point sum of the MW offered before a candidate,
    the one thing in which the TSO-DSO schemes' merit order differed from the TSO's: False sums
    per MTU from zero (`activate`); True keeps one running total over the MTUs in order and
    subtracts the total reached at the candidate's MTU (`tso_dso`). The two agree to rounding,
    but the last bits decide whether a remainder of ~1e-13 MW is activated, so each caller keeps
    its order and every shipped scenario its tables."""
    t_n = len(need)
    order = np.lexsort((np.arange(len(mtu)), price, mtu))
    ts, ms = mtu[order], mw[order]
    start = np.searchsorted(ts, np.arange(t_n + 1))
    if running_sum:
        cs = np.cumsum(ms)
        before = cs - ms - np.concatenate([[0.0], cs])[start[:-1]][ts]
    else:
        rank = np.arange(len(ts)) - start[ts]
        column = np.zeros((int(np.diff(start).max(initial=0)), t_n))
        column[rank, ts] = ms
        before = np.cumsum(column, axis=0)[rank, ts] - ms
    act_sorted = np.clip(need[ts] - before, 0, ms)
    act = np.zeros(len(mtu))
    act[order] = act_sorted
    used = np.flatnonzero(act_sorted > 1e-12)
    last = np.full(t_n, -1)
    np.maximum.at(last, ts[used], used)
    marginal = np.full(t_n, np.nan)
    cols = np.flatnonzero(last >= 0)
    marginal[cols] = price[order][last[cols]]
    return act, marginal


def _merit_by_provider(prices: np.ndarray, mw: np.ndarray, need: np.ndarray):
    """`merit_order` on offers of P providers over T MTUs: prices (P,) or (P, T), MW (P, T)."""
    p_n, t_n = mw.shape
    prices = np.broadcast_to(np.asarray(prices, float).reshape(p_n, -1), mw.shape)
    act, marginal = merit_order(np.tile(np.arange(t_n), p_n), prices.ravel(),
                                np.asarray(mw, float).ravel(), need)
    return act.reshape(p_n, t_n), marginal


def activate(offers: BalancingOffers, system_short_mw: np.ndarray, emergency_up_price: float,
             emergency_down_price: float) -> Activation:
    """`system_short_mw` > 0: the system lacks energy (upward activation); < 0: surplus."""
    need_up = np.clip(system_short_mw, 0, None)
    need_down = np.clip(-system_short_mw, 0, None)
    up, m_up = _merit_by_provider(offers.up_price, offers.up_mw, need_up)
    down, m_down = _merit_by_provider(-offers.down_price, offers.down_mw, need_down)
    em_up = np.clip(need_up - up.sum(0), 0, None)
    em_down = np.clip(need_down - down.sum(0), 0, None)
    m_up = np.where(em_up > 1e-12, emergency_up_price, m_up)
    m_down = np.where(em_down > 1e-12, emergency_down_price, -m_down)
    return Activation(up, down, em_up, em_down, m_up, m_down)


def with_der_price(act: Activation, der_price: np.ndarray) -> Activation:
    """The marginal prices once DER activated earlier at `der_price` (NaN where none) count
    too: the dearest upward and the cheapest downward bid of either pass."""
    return dataclasses.replace(act, marginal_up=np.fmax(act.marginal_up, der_price),
                               marginal_down=np.fmin(act.marginal_down, der_price))


def imbalance_prices(act: Activation, system_short_mw: np.ndarray, da_price: np.ndarray,
                     pricing: str, escalation: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Prices (EUR/MWh) paid by short and received by long parties.

    single: one price, the marginal activated bid in the system's direction (DA price when
    nothing was activated). dual: a party on the side that aggravates the system pays or
    receives the marginal bid; one that helps settles at the DA price. `escalation` EUR/MWh
    per MW of system imbalance moves the aggravating side's price against it, so that the
    price of a large imbalance exceeds any bid a party could arbitrage against.

    Direction rule: in a short system the price is never below the day-ahead price, in a long
    one never above it (`direction_rule`), so that being short never buys energy cheaper, nor
    being long sells it dearer, than the day-ahead market would have."""
    short = system_short_mw > 1e-12
    long_ = system_short_mw < -1e-12
    marginal = np.where(short, act.marginal_up, np.where(long_, act.marginal_down, np.nan))
    one = direction_rule(np.where(np.isnan(marginal), da_price, marginal), system_short_mw,
                         da_price) + escalation * system_short_mw
    if pricing == "single":
        return one, one
    if pricing == "dual":
        return np.where(short, one, da_price), np.where(long_, one, da_price)
    raise ValueError(f"tso.pricing = {pricing!r}: expected 'single' or 'dual'")


def direction_rule(price: np.ndarray, system_short_mw: np.ndarray,
                   da_price: np.ndarray) -> np.ndarray:
    """The imbalance price kept on the system's side of the day-ahead price: at least it when
    the system is short, at most it when long.

    This is the Nordic regulating-price rule against the day-ahead price itself (Fingrid's
    published up- and down-regulating prices: the dearest up-regulation bid used, at least
    the Elspot price of the area; the cheapest down-regulation bid used, at most it; the
    Elspot price where no regulation in that direction was used). Germany couples its
    imbalance price to the exchange the same way (Bundesnetzagentur BK6-12-024,
    "Börsenpreiskopplung", since July 2020 against the intraday quarter-hour index: in a
    short system at least the index, in a long one at most it), so that leaving an
    imbalance never beats trading; the EU balancing guideline bounds it by the activated
    balancing energy in the same directions (Regulation 2017/2195, Art. 55(4) and (5)).
    Without the rule the marginal bid of the balancing merit order can lie on the wrong side
    of the day-ahead price where DER or producers' headroom are offered below it."""
    return np.where(system_short_mw > 1e-12, np.maximum(price, da_price),
                    np.where(system_short_mw < -1e-12, np.minimum(price, da_price), price))

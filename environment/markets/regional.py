"""The regional balance place (seed 000 NGM, the Regional Balance place; seed 004 SmartNet on
TSO-TSO reserve sharing): the TSOs of several zones share balancing energy across the
interconnectors, within the headroom the day-ahead exchange left on them.

One period's problem (`BalancingPeriod`): each zone's imbalance (+ short: it lacks energy),
its TSO's balancing offers (up: more output at `up_price`, paid by the TSO; down: less output,
the provider paying the TSO `down_price` for the fuel it saves), and each interconnector's
headroom per direction. Options, registered by name in `environment.markets.registry.SHARING`:

* `none`: each TSO activates its own merit order (cheapest up first, highest-paying down
  first); what its offers cannot cover is emergency energy at the emergency prices.
* `imbalance_netting`: opposite imbalances net first: energy flows from long zones to short
  ones up to the headroom (the most netted volume, a transport problem), and each TSO balances
  what is left with its own merit order. Netting looks at volumes, not prices: it saves money
  when the short zones' up prices exceed the long zones' down prices, as they do when offers
  are at cost after a coupled day-ahead market, but it is not guaranteed to.
* `common_merit_order`: one least-cost activation over all zones' offers (an LP) with the
  exchange limited to the headroom, upward activation no more than the zones' total shortage
  and downward no more than their total surplus, and no counter-activation: a zone activates
  up only if it is short or the zones together are short, down only if it is long or the
  zones together are long (so a long zone's or a balanced zone's up offers serve a net
  shortage through the headroom, but nothing runs up in a long zone while a short one runs
  down), and emergency energy runs only in a zone with an imbalance, up to it, and last,
  after every offer, as in a TSO's own merit order (scenarios refuse emergency prices that
  undercut the offers: environment/transmission/scenario.py). Never dearer
  than balancing alone or netting, which are feasible points of the same problem. (Each
  activation serves an imbalance, but the LP still prefers a short zone's cheap up offer plus
  a long zone's well-paid down offer to netting the two when that is cheaper, as balancing
  alone would.)

Exchanges between TSOs are settled at one price per interconnector, the same rule under
either option: the mean of the two zones' marginal balancing prices after sharing (the price
of the dearest up offer activated in a zone that activated upward on balance, of the cheapest
down offer in one that activated downward, the emergency price where emergency energy ran),
so an exchange within one price area pays the area's price and a binding one splits its
congestion rent equally; where one zone activated nothing the other's price; where neither
did (pure netting), the mean of the marginal prices the two would have paid balancing alone;
0 where nothing flows. Energy passing through a transit zone (no imbalance, nothing
activated) is settled at one price along its path: the interconnectors joined by transit zones
take the mean of the prices at the path's outer ends, so a transit TSO pays and is paid the
same and ends at 0. The importing TSO pays the exporting one. (The common merit order LP's
balance duals would be the textbook price, but its activation caps make them degenerate: two
zones joined by an interconnector that does not bind can get different duals.) A TSO's shared
cost is its activation cost plus what it paid other TSOs; the value of sharing is its cost
alone minus its shared cost (summed over TSOs the settlements cancel)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from environment.markets.balancing import merit_order
from environment.markets.registry import get_sharing, register_sharing

FLOW_PENALTY = 1e-6
"""EUR/MWh charged per MW exchanged in the LPs, so that among equally cheap solutions the one
with the least exchange (no loop flows, no exchange where none saves anything) is chosen."""
TOL = 1e-9


@dataclass(frozen=True)
class BalancingPeriod:
    """One period of Z zones, K offers and E interconnectors (index arrays count from 0)."""

    short_mw: np.ndarray
    offer_zone: np.ndarray
    up_price: np.ndarray
    up_mw: np.ndarray
    down_price: np.ndarray
    down_mw: np.ndarray
    ic_from: np.ndarray
    ic_to: np.ndarray
    headroom_fwd_mw: np.ndarray
    headroom_back_mw: np.ndarray
    emergency_up_price: float
    emergency_down_price: float

    @property
    def zones(self) -> int:
        return len(self.short_mw)

    def net_import(self, flow: np.ndarray) -> np.ndarray:
        """MW each zone receives from the interconnectors (flow + from -> to)."""
        z = self.zones
        return np.bincount(self.ic_to, flow, z) - np.bincount(self.ic_from, flow, z)


@dataclass(frozen=True)
class Sharing:
    """The outcome of a period: activations per offer, emergency energy per zone, the exchange
    per interconnector (+ from -> to) and its settlement price, and per zone (TSO) the
    activation cost, the settlement paid to other TSOs and the cost had it balanced alone."""

    up_mw: np.ndarray
    down_mw: np.ndarray
    emergency_up_mw: np.ndarray
    emergency_down_mw: np.ndarray
    flow_mw: np.ndarray
    price_eur_mwh: np.ndarray
    activation_eur: np.ndarray
    settlement_eur: np.ndarray
    alone_eur: np.ndarray

    @property
    def shared_eur(self) -> np.ndarray:
        return self.activation_eur + self.settlement_eur

    @property
    def value_eur(self) -> np.ndarray:
        """Per TSO: cost alone minus cost shared (+ sharing saved it money)."""
        return self.alone_eur - self.shared_eur


@dataclass(frozen=True)
class Local:
    """Each zone balancing its need alone: activations, emergency energy, cost per zone, and
    the marginal up and down prices (NaN where nothing was activated in that direction)."""

    up_mw: np.ndarray
    down_mw: np.ndarray
    emergency_up_mw: np.ndarray
    emergency_down_mw: np.ndarray
    cost_eur: np.ndarray
    marginal_up: np.ndarray
    marginal_down: np.ndarray


def balance_locally(p: BalancingPeriod, short_mw: np.ndarray) -> Local:
    """Each TSO's own merit order against `short_mw` (+ up, - down), emergency energy beyond."""
    z = p.zones
    up, m_up = merit_order(p.offer_zone, p.up_price, p.up_mw, np.clip(short_mw, 0, None))
    down, m_down = merit_order(p.offer_zone, -p.down_price, p.down_mw,
                               np.clip(-short_mw, 0, None))
    em_up = np.clip(short_mw - np.bincount(p.offer_zone, up, z), 0, None)
    em_down = np.clip(-short_mw - np.bincount(p.offer_zone, down, z), 0, None)
    em_up[em_up < TOL] = 0.0
    em_down[em_down < TOL] = 0.0
    cost = (np.bincount(p.offer_zone, up * p.up_price - down * p.down_price, z)
            + em_up * p.emergency_up_price - em_down * p.emergency_down_price)
    return Local(up, down, em_up, em_down, cost,
                 np.where(em_up > 0, p.emergency_up_price, m_up),
                 np.where(em_down > 0, p.emergency_down_price, -m_down))


def share(option: str, p: BalancingPeriod) -> Sharing:
    """The period balanced under the sharing option `option` (a name of `SHARING`)."""
    return get_sharing(option)(p)


def _outcome(p: BalancingPeriod, local: Local, flow: np.ndarray, price: np.ndarray,
             alone: Local) -> Sharing:
    z = p.zones
    price = np.where(np.abs(flow) > TOL, price, 0.0)
    paid = flow * price
    settlement = np.bincount(p.ic_to, paid, z) - np.bincount(p.ic_from, paid, z)
    return Sharing(local.up_mw, local.down_mw, local.emergency_up_mw, local.emergency_down_mw,
                   flow, price, local.cost_eur, settlement, alone.cost_eur)


@register_sharing("none")
def share_none(p: BalancingPeriod) -> Sharing:
    alone = balance_locally(p, p.short_mw)
    e = len(p.ic_from)
    return _outcome(p, alone, np.zeros(e), np.zeros(e), alone)


@register_sharing("imbalance_netting")
def share_netting(p: BalancingPeriod) -> Sharing:
    alone = balance_locally(p, p.short_mw)
    flow = netting_flows(p)
    rest = balance_locally(p, p.short_mw - p.net_import(flow))
    return _outcome(p, rest, flow, settlement_prices(p, rest, alone, flow), alone)


def netting_flows(p: BalancingPeriod) -> np.ndarray:
    """The exchange netting the most opposite imbalance within the headroom: a short zone only
    receives up to its shortage, a long zone only sends up to its surplus, a balanced zone
    only passes energy on, so netting never turns a zone's imbalance round."""
    import scipy.sparse as sp

    from environment.solver import solve_lp

    z, e = p.zones, len(p.ic_from)
    if e == 0 or not ((p.short_mw > TOL).any() and (p.short_mw < -TOL).any()):
        return np.zeros(e)
    sign = np.sign(np.where(np.abs(p.short_mw) > TOL, p.short_mw, 0.0))
    # columns: flow forward (e), flow back (e); residual = short - net import, kept on the
    # side of the imbalance; minimise sum |residual| = sum sign * residual.
    cols = np.arange(e)
    inc = sp.csr_array((np.concatenate([np.ones(e), -np.ones(e)]),
                        (np.concatenate([p.ic_to, p.ic_from]), np.concatenate([cols, cols]))),
                       shape=(z, e))
    net_in = sp.hstack([inc, -inc], format="csr")
    cost = -(sign @ net_in.toarray()) + FLOW_PENALTY
    lo = np.where(sign > 0, 0.0, p.short_mw)
    hi = np.where(sign < 0, 0.0, p.short_mw)
    res = solve_lp(cost, a=net_in, row_lower=p.short_mw - hi, row_upper=p.short_mw - lo,
                   lower=np.zeros(2 * e),
                   upper=np.concatenate([p.headroom_fwd_mw, p.headroom_back_mw]),
                   what="imbalance netting")
    flow = res.x[:e] - res.x[e:]
    flow[np.abs(flow) < TOL] = 0.0
    return flow


def marginal_prices(p: BalancingPeriod, local: Local) -> np.ndarray:
    """Per zone, the price of its marginal activation in the direction of its net activation:
    the dearest up offer taken, the cheapest down offer, the emergency price; NaN where it
    activated nothing."""
    z = p.zones
    up, down = local.up_mw > TOL, local.down_mw > TOL
    m_up = np.full(z, -np.inf)
    m_down = np.full(z, np.inf)
    np.maximum.at(m_up, p.offer_zone[up], p.up_price[up])
    np.minimum.at(m_down, p.offer_zone[down], p.down_price[down])
    m_up = np.where(local.emergency_up_mw > 0, p.emergency_up_price, m_up)
    m_down = np.where(local.emergency_down_mw > 0, p.emergency_down_price, m_down)
    net = (np.bincount(p.offer_zone, local.up_mw - local.down_mw, z)
           + local.emergency_up_mw - local.emergency_down_mw)
    return np.where(net > TOL, m_up, np.where(net < -TOL, m_down, np.nan))


def settlement_prices(p: BalancingPeriod, shared: Local, alone: Local,
                      flow: np.ndarray | None = None) -> np.ndarray:
    """Per interconnector, the settlement price of the module docstring. With `flow`, the
    interconnectors carrying energy through a transit zone (no imbalance, nothing activated)
    form one path priced by its ends: the mean of the prices at the ends outside transit
    zones, so a transit TSO pays and is paid one price and ends at 0."""
    after = marginal_prices(p, shared)
    avoided = np.where(p.short_mw > TOL, alone.marginal_up,
                       np.where(p.short_mw < -TOL, alone.marginal_down, np.nan))
    e = len(p.ic_from)
    path = np.arange(e)
    transit = (np.abs(p.short_mw) <= TOL) & np.isnan(after)
    if flow is not None:
        moving = np.abs(flow) > TOL
        for zone in np.flatnonzero(transit):
            on = moving & ((p.ic_from == zone) | (p.ic_to == zone))
            if on.sum() > 1:
                path[np.isin(path, path[on])] = path[on].min()
    price = np.zeros(e)
    outer = ~np.vstack([transit[p.ic_from], transit[p.ic_to]])
    for ends in (avoided, after):
        pair = np.vstack([ends[p.ic_from], ends[p.ic_to]])
        for g in np.unique(path):
            links = path == g
            if links.sum() == 1:
                continue
            vals = pair[:, links][outer[:, links]]
            pair[:, links] = np.nan
            if np.isfinite(vals).any():
                pair[0, links] = np.nanmean(vals)
        known = np.isfinite(pair).any(0)
        price[known] = np.nanmean(pair[:, known], axis=0)
    return price


@register_sharing("common_merit_order")
def share_common(p: BalancingPeriod) -> Sharing:
    """One LP over all zones: columns up (K), down (K), emergency up (Z), emergency down (Z),
    flow forward (E), flow back (E); one balance row per zone, and two rows capping all up
    (down) activation, emergency included, at the zones' total shortage (surplus); a zone's up
    offers are open only if it is short or the zones together are, its down offers only if it
    is long or the zones together are, and emergency energy runs only in a zone with an
    imbalance, up to it: energy is activated only to cover imbalances, never up in one zone and
    down in another to trade round the day-ahead and redispatch outcome."""
    import scipy.sparse as sp

    from environment.solver import solve_lp

    alone = balance_locally(p, p.short_mw)
    z, k, e = p.zones, len(p.offer_zone), len(p.ic_from)
    kk, zz, ee = np.arange(k), np.arange(z), np.arange(e)
    rows = np.concatenate([p.offer_zone, p.offer_zone, zz, zz, p.ic_to, p.ic_from, p.ic_to,
                           p.ic_from])
    col0 = np.cumsum([0, k, k, z, z, e])
    cols = np.concatenate([kk, col0[1] + kk, col0[2] + zz, col0[3] + zz, col0[4] + ee,
                           col0[4] + ee, col0[5] + ee, col0[5] + ee])
    vals = np.concatenate([np.ones(k), -np.ones(k), np.ones(z), -np.ones(z), np.ones(e),
                           -np.ones(e), -np.ones(e), np.ones(e)])
    n = col0[5] + e
    up_cols = np.concatenate([kk, col0[2] + zz])
    down_cols = np.concatenate([col0[1] + kk, col0[3] + zz])
    caps = sp.csr_array((np.ones(2 * (k + z)), (np.repeat([0, 1], k + z),
                                                np.concatenate([up_cols, down_cols]))),
                        shape=(2, n))
    a = sp.vstack([sp.csr_array((vals, (rows, cols)), shape=(z, n)), caps], format="csr")
    # emergency energy is the last resort, as in each TSO's own merit order: ranked after
    # every offer even where its price would undercut one (the money booked is its price)
    em_up = max(p.emergency_up_price, p.up_price.max(initial=-np.inf) + 1.0)
    em_down = min(p.emergency_down_price, p.down_price.min(initial=np.inf) - 1.0)
    cost = np.concatenate([p.up_price, -p.down_price, np.full(z, em_up), np.full(z, -em_down),
                           np.full(2 * e, FLOW_PENALTY)])
    net = p.short_mw.sum()
    up_ok = (p.short_mw > TOL) | (net > TOL)
    down_ok = (p.short_mw < -TOL) | (net < -TOL)
    upper = np.concatenate([np.where(up_ok[p.offer_zone], p.up_mw, 0.0),
                            np.where(down_ok[p.offer_zone], p.down_mw, 0.0),
                            np.clip(p.short_mw, 0, None), np.clip(-p.short_mw, 0, None),
                            p.headroom_fwd_mw, p.headroom_back_mw])
    need_up, need_down = np.clip(p.short_mw, 0, None).sum(), np.clip(-p.short_mw, 0, None).sum()
    res = solve_lp(cost, a=a, row_lower=np.concatenate([p.short_mw, [0.0, 0.0]]),
                   row_upper=np.concatenate([p.short_mw, [need_up, need_down]]),
                   lower=np.zeros(len(cost)), upper=upper, what="common merit order")
    x = np.where(np.abs(res.x) < TOL, 0.0, res.x)
    up, down = x[:k], x[col0[1]:col0[2]]
    em_up, em_down = x[col0[2]:col0[3]], x[col0[3]:col0[4]]
    flow = x[col0[4]:col0[5]] - x[col0[5]:]
    cost_z = (np.bincount(p.offer_zone, up * p.up_price - down * p.down_price, z)
              + em_up * p.emergency_up_price - em_down * p.emergency_down_price)
    local = Local(up, down, em_up, em_down, cost_z, alone.marginal_up, alone.marginal_down)
    return _outcome(p, local, flow, settlement_prices(p, local, alone, flow), alone)

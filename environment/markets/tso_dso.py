"""TEMPORARY scratch for integration testing (replaced by helper's module)."""
from __future__ import annotations
from dataclasses import dataclass
import numpy as np
from environment.markets.balancing import BalancingOffers, activate
from environment.markets.lfm import FlexOffers, GridLimits

@dataclass(frozen=True)
class BalancingProblem:
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

@dataclass(frozen=True)
class BalancingResult:
    scheme: str
    producer_up_mw: np.ndarray
    producer_down_mw: np.ndarray
    der_tso_mw: np.ndarray
    der_dso_mw: np.ndarray
    emergency_up_mw: np.ndarray
    emergency_down_mw: np.ndarray
    system_price: np.ndarray
    der_paid_price: np.ndarray
    tso_cost_eur: float
    dso_cost_eur: float
    procurement_cost_eur: float
    unresolved_mw: float
    counteracting_mw: np.ndarray

TSO_DSO = {}
def centralized(p):
    t = len(p.need_mw); d = p.der
    T = np.arange(t)
    prov = np.concatenate([p.producers.provider, -1 - np.arange(len(d))])
    up_p = np.vstack([np.broadcast_to(p.producers.up_price, p.producers.up_mw.shape), np.zeros((len(d), t))])
    up_q = np.vstack([p.producers.up_mw, np.zeros((len(d), t))])
    dn_p = np.vstack([np.broadcast_to(p.producers.down_price, p.producers.down_mw.shape), np.zeros((len(d), t))])
    dn_q = np.vstack([p.producers.down_mw, np.zeros((len(d), t))])
    for i in range(len(d)):
        r = len(p.producers.provider) + i
        if d.direction[i] > 0:
            up_p[r, d.mtu[i]] = d.price[i]; up_q[r, d.mtu[i]] = d.mw[i]; up_p[r, np.arange(t) != d.mtu[i]] = 1e9
        else:
            dn_p[r, d.mtu[i]] = d.price[i]; dn_q[r, d.mtu[i]] = d.mw[i]; dn_p[r, np.arange(t) != d.mtu[i]] = -1e9
    act = activate(BalancingOffers(prov, up_p, up_q, dn_p, dn_q), p.need_mw, p.emergency_up_price, p.emergency_down_price)
    n = len(p.producers.provider)
    der_mw = np.where(d.direction > 0, act.up_mw[n:, :][np.arange(len(d)), d.mtu], act.down_mw[n:, :][np.arange(len(d)), d.mtu])
    price = np.where(p.need_mw > 0, act.marginal_up, act.marginal_down)
    return BalancingResult("centralized", act.up_mw[:n], act.down_mw[:n], der_mw, np.zeros(len(d)), act.emergency_up_mw, act.emergency_down_mw, price, np.zeros(len(d)), 0.0, 0.0, 0.0, 0.0, np.zeros((t, p.limits.flow_per_mw.shape[1])))
TSO_DSO["centralized"] = centralized

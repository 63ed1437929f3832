"""What an independent aggregator owes per MWh it moves, under the compensation regime.

The settlement (`environment.settlement.settle_compensation`, seed 001 4.2) charges an
independent aggregator, per MTU t, the regime's transfer price T_t for every MWh its devices
consumed below the declared baseline (and pays it T_t per MWh above): `none` 0, `contractual`
and `regulated` their flat prices, `corrected` the suppliers' energy component (members'
average), `central` the day-ahead price. Where its perimeter is corrected (every regime but
`none`, unless `perimeter_correction` says otherwise) the MWh it moved is also its own: sold
(or bought) in the intraday market or settled as imbalance, at about the day-ahead price
lambda_t. Net, a MWh moved out of the suppliers' perimeters at t costs it

    w_t = T_t - [corrected] * lambda_t.

Its devices shift energy, they do not destroy it: a battery ends the day where it started, EVs
and heat pumps still get their energy, so the MWh comes back (the rebound) at other MTUs of the
day, where it is settled the other way. Not knowing where the re-plan will put it, the
aggregator expects it at the mean of w over the day's other MTUs (over the later ones in
real-time balancing, whose re-plans fix everything up to the block's end). What it owes per
MWh moved up (less consumption) at t is therefore

    o_t = w_t - mean_{s != t} w_s      (and -o_t per MWh moved down).

Under `none` and `central` w is 0 (nothing paid; or the DA price paid and recovered at the DA
price) and so is o. Under a flat price (`contractual`, `regulated`, `corrected`) the flat part
cancels against the rebound and o_t = mean_{s != t} lambda_s - lambda_t: the energy value of
the shift, which under `none` falls on the supplier (its imbalance) and under `central` on the
settlement entity's transfer, is the aggregator's own. A truthful aggregator adds it to its
asks (`agents.strategies.truthful`), so the same activation can be bought under `none` and
`central` and not under `corrected` (tests/test_compensation.py derives one by hand).

Supplier-owned and own-BRP aggregators owe nothing here (no compensation; their shifts are
inside their own firm or perimeter, priced as before)."""

from __future__ import annotations

import numpy as np


def transfer_price(settlement, energy_component: float, da_price: np.ndarray) -> np.ndarray:
    """(T,) EUR per MWh the regime moves from the aggregator to the supplier per MWh consumed
    below the baseline at each MTU (`settlement.settle_compensation`)."""
    regime = settlement.compensation
    t = len(da_price)
    if regime == "none":
        return np.zeros(t)
    if regime == "central":
        return np.asarray(da_price, float)
    return np.full(t, {"contractual": settlement.contractual_price_eur_mwh,
                       "regulated": settlement.regulated_price_eur_mwh,
                       "corrected": energy_component}[regime], dtype=float)


def owed_per_mwh(settlement, energy_component: float, corrected: bool,
                 da_price: np.ndarray, later: bool = False) -> np.ndarray:
    """(T,) o_t: EUR the aggregator owes, net of the rebound and of the energy's value in its
    own perimeter, per MWh moved up at each MTU (module docstring). `later`: the rebound can
    only fall after t (real-time balancing: the re-plan fixes everything up to the block's
    end), at the mean of the later MTUs; at the last MTU, where nothing is left to make it up
    in, it owes the whole w_t (an EV or heat pump left short by it is not made up today)."""
    lam = np.asarray(da_price, float)
    w = transfer_price(settlement, energy_component, lam) - (lam if corrected else 0.0)
    t = len(w)
    if t < 2:
        return np.zeros(t)
    if not later:
        return w - (w.sum() - w) / (t - 1)
    n_after = np.arange(t - 1, -1, -1)
    after = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])
    return np.where(n_after > 0, w - after / np.maximum(n_after, 1), w)


def owed(agg, ctx, later: bool = False) -> np.ndarray | float:
    """(T,) o_t for aggregator `agg` on the day of `ctx` (0 but for independent ones), read
    only. Asked per location, direction and round, it is kept per aggregator for the day's
    prices (compared by identity) and everything else it reads."""
    if not independent(agg):
        return 0.0
    model = agg.model
    settlement = model.config.settlement
    key = (later, agg.corrected, settlement.compensation, settlement.contractual_price_eur_mwh,
           settlement.regulated_price_eur_mwh,
           tuple(b.energy_component for b in model.brps))
    kept = getattr(agg, "owed_kept", None)
    if kept is None or kept[0] is not ctx.da_price or key not in kept[1]:
        if kept is None or kept[0] is not ctx.da_price:
            kept = agg.owed_kept = (ctx.da_price, {})
        component = float(sum(s * c for s, c in zip(_brp_share(agg), key[-1], strict=True)))
        o = owed_per_mwh(settlement, component, agg.corrected, ctx.da_price, later)
        o.flags.writeable = False
        kept[1][key] = o
    return kept[1][key]


def _brp_share(agg) -> np.ndarray:
    """Its members' shares per supplier (contracts are fixed once the model is built)."""
    share = getattr(agg, "brp_share", None)
    if share is None:
        model = agg.model
        members = model.fleet.brp[agg.members]
        share = agg.brp_share = (np.bincount(members, minlength=len(model.brps))
                                 / max(len(members), 1))
    return share


def independent(agg) -> bool:
    return getattr(agg, "kind", None) == "independent"


def exposed(agg) -> bool:
    """Whether the energy it moves is its own (a perimeter to trade and settle it in): an
    independent aggregator without perimeter correction leaves it to the supplier."""
    return not independent(agg) or agg.corrected

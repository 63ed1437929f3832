"""Real time: the devices follow their set-points as far as their states of charge allow, the
DSO acts where limits are still broken (RED, BLACK), every party is metered, and the TSO
activates producers on the imbalance that is left and prices it."""

from __future__ import annotations

import numpy as np

from agents.producer import Producer
from environment.day import RealTime


def meter(model, ctx, real: dict, prof, settle: bool = True) -> np.ndarray:
    """(parties, T) metered net consumption: suppliers' perimeters, aggregators' devices,
    the system load and producers' output at their positions (`settle`: the reading
    compensation is settled on). Publishes the suppliers' metered consumption."""
    e = model.fleet.enrolled
    net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
    ctx.retail_net = net - np.where(e["battery"][:, None], real["battery"], 0.0) \
        - np.where(e["ev"][:, None], real["ev"], 0.0) \
        - np.where(e["heat_pump"][:, None], real["hp"], 0.0)
    for agg in model.aggregators:
        agg.meter(ctx, real, settle)
    return np.array([p.realised_mw(ctx, ctx.position[i]) for i, p in enumerate(model.parties)])


def corrections(model, ctx) -> np.ndarray:
    """(parties, T) MW of real-time activations (+ up: consumed less) that count as sold
    by the parties with a perimeter of their own: their imbalance is measured against
    their market position less these."""
    own = np.array([p.trades_energy for p in model.parties])
    return np.where(own[:, None], ctx.der_tso + ctx.der_dso, 0.0)


def realise(model, ctx) -> RealTime:
    """The day in real time, up to the TSO's last activation and the traffic light."""
    f, dt = model.fleet, ctx.dt_h
    real, prof = model.realtime_devices(ctx, commit=True)
    # batteries follow their set-points only as far as their states of charge allow (a
    # pooled plan that charged and discharged at once would otherwise store energy the
    # metered net power never delivered)
    model.note_truncation("battery_cut_mwh", f.keep_within_soc(real["battery"], dt))
    e = f.enrolled
    own = (f.batt_mwh > 0) & ~e["battery"]
    ctx.planner_fixed = prof.load - prof.pv + np.where(own[:, None], real["battery"], 0.0) \
        + np.where(e["ev"][:, None], 0.0, prof.ev) \
        + np.where(e["heat_pump"][:, None], 0.0, prof.hp)
    before = meter(model, ctx, real, prof)
    red = model.dso.red_actions(ctx, real, prof) if model.config.dso.emergency_actions \
        else None
    if red is not None and red["black"].any():
        # a disconnection zeroed part of the batteries' paths: what follows must stay
        # within their states of charge
        model.note_truncation("battery_cut_mwh", f.keep_within_soc(real["battery"], dt))
    # states of charge follow the final power path
    model.note_truncation("soc_clipped_mwh", f.commit_soc(real["battery"], dt))
    realised = meter(model, ctx, real, prof, settle=False) if red is not None else before
    prosumer_net = prof.load - prof.pv + real["battery"] + real["ev"] + real["hp"]
    # Perimeter correction: parties settle what they would have metered without the DSO's
    # RED actions and real-time DER activations; the DSO is balance responsible for the
    # energy it moved. The system imbalance is what it was before any TSO activation; DER
    # the TSO activated in corrected perimeters already sold their part of it.
    activated = corrections(model, ctx)
    imbalance_mw = ctx.position - activated - before
    dso_imbalance = -(realised - before).sum(0) + ctx.dso_realtime_mw
    # The system imbalance is the sum of the settled imbalances (ENTSO-E). Producers'
    # balancing energy closes what is physically left: market positions net to zero, so
    # that is the metered net consumption after DER activations.
    system_short = -imbalance_mw.sum(0) - dso_imbalance
    offers = model.tso.producer_offers(ctx)
    act, p_short, p_long = model.tso.balance(offers, realised.sum(0), ctx.da_price,
                                             system_short, ctx.der_price)
    balancing = np.zeros((len(model.parties), ctx.n_mtu))   # producers' (MW, + up)
    for i, p in enumerate(model.parties):
        k = np.flatnonzero(offers.provider == p.unique_id) if isinstance(p, Producer) else []
        if len(k):
            balancing[i] = act.up_mw[k[0]] - act.down_mw[k[0]]
    dso = model.dso
    q_real = dso.reactive(dso.nodal(prof.load + real["hp"]))
    flows, flags = dso.assess(dso.nodal(prosumer_net), q_real)
    red_flags = red["red"] if red is not None else flags["violated"]
    black = red["black"] if red is not None else np.zeros_like(red_flags)
    return RealTime(
        real=real, prof=prof, before=before, realised=realised, red=red,
        prosumer_net=prosumer_net, activated=activated, imbalance_mw=imbalance_mw,
        dso_imbalance=dso_imbalance, system_short=system_short, offers=offers, act=act,
        price_short=p_short, price_long=p_long, balancing=balancing, q_real=q_real,
        flows=flows, flags=flags, light=dso.traffic_light(ctx.da_flags["violated"], red_flags,
                                                          black),
        shed=dso.load_to_shed(flows))

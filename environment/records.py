"""What a run records of each day: the rows of its tables (series, grid, positions,
aggregators, days; the flexibility rounds add `flex`) and the energy services it valued."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.producer import Producer


def record_day(model, ctx) -> None:
    """Append the day's rows to `model.records` (one list of parts per table)."""
    rt, grid, rec = ctx.realtime, model.grid, model.records
    t, dt = ctx.n_mtu, ctx.dt_h
    mtus = ctx.mtu0 + np.arange(t)
    act, real, prof, flows, clearing = rt.act, rt.real, rt.prof, rt.flows, ctx.da_clearing
    producer = np.array([isinstance(p, Producer) for p in model.parties])
    generation = -rt.realised[producer].sum(0) + act.up_mw.sum(0) - act.down_mw.sum(0) \
        + act.emergency_up_mw - act.emergency_down_mw
    trafo = grid.branch_kind == "trafo"
    rec.setdefault("series", []).append(pd.DataFrame({
        "mtu": mtus,
        "day": ctx.day,
        "da_price": clearing.price,
        "da_price_forecast": ctx.price_forecast,
        "da_volume_mwh": clearing.volume,
        "da_curtailed_mwh": clearing.curtailed,
        "id_price": ctx.id_price,
        "id_volume_mwh": ctx.id_volume,
        "system_short_mw": rt.system_short,
        "dso_imbalance_mwh": rt.dso_imbalance * dt,
        "activated_up_mw": act.up_mw.sum(0),
        "activated_down_mw": act.down_mw.sum(0),
        "emergency_up_mw": act.emergency_up_mw,
        "emergency_down_mw": act.emergency_down_mw,
        "der_balancing_up_mw": ctx.der_tso.sum(0),
        "der_dso_realtime_up_mw": ctx.der_dso.sum(0),
        "tso_dso_counteracting_mw": ctx.counteracting.sum(1),
        "imbalance_price_short": rt.price_short,
        "imbalance_price_long": rt.price_long,
        "generation_mw": generation,
        "demand_mw": rt.realised[~producer].sum(0),
        "system_load_mw": model.system_brp.realised_mw(ctx),
        "prosumer_load_mw": prof.load.sum(0),
        "pv_mw": prof.pv.sum(0),
        "ev_mw": real["ev"].sum(0),
        "heat_pump_mw": real["hp"].sum(0),
        "battery_mw": real["battery"].sum(0),
        "trafo_loading": flows.loading[:, trafo].max(1) if trafo.any()
        else flows.loading.max(1),
        "max_loading": flows.loading.max(1),
        "v_min_pu": flows.v_pu[:, 1:].min(1),
        "v_max_pu": flows.v_pu[:, 1:].max(1),
        "load_to_shed_mw": rt.shed.per_mtu,
    }))
    model.der_tso_mwh += np.array([ctx.der_tso.clip(min=0).sum(),
                                   -ctx.der_tso.clip(max=0).sum()]) * dt
    if model.dso.background is not None:
        rec["series"][-1]["background_mw"] = model.dso.background[0].sum(1)
    _record_grid(model, ctx)
    _record_positions(model, ctx)
    _record_aggregators(model, ctx)
    red = rt.red
    stats = {"day": ctx.day, "curtailed_mwh": float(red["curtailed_mwh"].sum())
             if red is not None else 0.0,
             **{f"balancing_{k}": v for k, v in ctx.balancing_cost.items()}}
    for r in ctx.round_stats:
        stats[f"{r['stage']}_rounds"] = stats.get(f"{r['stage']}_rounds", 0) + 1
        stats[f"{r['stage']}_unresolved_mw"] = r["unresolved_mw"]
        stats[f"{r['stage']}_refused_mw"] = r["refused_mw"]
    rec.setdefault("days", []).append(pd.DataFrame([stats]))


def _record_grid(model, ctx) -> None:
    """Per MTU and location: the traffic light and the flags it came from."""
    rt, grid = ctx.realtime, model.grid
    n_loc, real_flags = grid.n_locations, rt.flags
    mtus = ctx.mtu0 + np.arange(ctx.n_mtu)
    model.records.setdefault("grid", []).append(pd.DataFrame({
        "mtu": np.repeat(mtus, n_loc),
        "location": np.tile(np.array(grid.locations, dtype=object), ctx.n_mtu),
        "light": rt.light.ravel(),
        "forecast_violated": ctx.da_flags["violated"].ravel(),
        "forecast_violated_after_markets": ctx.final_flags["violated"].ravel(),
        "real_violated_before_dso": (rt.red["red"] if rt.red is not None
                                     else real_flags["violated"]).ravel(),
        "real_violated": real_flags["violated"].ravel(),
        "forecast_max_loading": ctx.da_flags["max_loading"].ravel(),
        "max_loading": real_flags["max_loading"].ravel(),
        "v_min_pu": real_flags["v_min"].ravel(),
        "v_max_pu": real_flags["v_max"].ravel(),
        "overload_mw": real_flags["overload_mw"].ravel(),
        "load_to_shed_mw": rt.shed.per_location(grid.bus_location, n_loc).ravel(),
        **({} if ctx.lem_before_flags is None else {   # the LEM's congestion before (lemstage)
            "forecast_violated_before_lem": ctx.lem_before_flags["violated"].ravel(),
            "forecast_max_loading_before_lem": ctx.lem_before_flags["max_loading"].ravel()}),
    }))


def _record_positions(model, ctx) -> None:
    """Per party and MTU: market position, metered energy and what settled it."""
    rt, parties, t, dt = ctx.realtime, model.parties, ctx.n_mtu, ctx.dt_h
    names = np.array([p.name for p in parties], dtype=object)
    classes = np.array([p.agent_class for p in parties], dtype=object)
    model.records.setdefault("positions", []).append(pd.DataFrame({
        "mtu": np.tile(ctx.mtu0 + np.arange(t), len(parties)),
        "party": np.repeat(names, t),
        "class": np.repeat(classes, t),
        "position_mwh": (ctx.position * dt).ravel(),
        "realised_mwh": (rt.realised * dt).ravel(),
        "perimeter_correction_mwh": ((rt.realised - rt.before) * dt).ravel(),
        "activated_mwh": (rt.activated * dt).ravel(),
        "imbalance_mwh": (rt.imbalance_mw * dt).ravel(),
        "balancing_mwh": (rt.balancing * dt).ravel(),
    }))


def _record_aggregators(model, ctx) -> None:
    """Per aggregator and MTU: baseline, schedule, flexibility left and what it missed."""
    t, real = ctx.n_mtu, ctx.realtime.real
    mtus = ctx.mtu0 + np.arange(t)
    for agg in model.aggregators:
        flex = agg.flexibility(ctx)
        bat = agg.masks()["battery"]
        model.records.setdefault("aggregators", []).append(pd.DataFrame({
            "mtu": mtus, "aggregator": agg.name, "baseline_mw": agg.baseline,
            "schedule_mw": agg.planned_net_mw(),
            "up_mw": sum((u for u, _ in flex.values()), np.zeros(t)),
            "down_mw": sum((d for _, d in flex.values()), np.zeros(t)),
            "missed_mw": agg.missed_mw(),
            "battery_throughput_mwh": np.abs(real["battery"][bat]).sum(0) * ctx.dt_h}))


def tables(records: dict[str, list], timestamps) -> dict[str, pd.DataFrame]:
    """The recorded parts of each table concatenated, with a timestamp per MTU."""
    out = {}
    for k, parts in records.items():
        if isinstance(parts[0], dict):   # recorded as columns
            df = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
        else:
            df = pd.concat(parts, ignore_index=True)
        if "mtu" in df:
            df.insert(0, "timestamp", timestamps[df["mtu"].to_numpy()])
        out[k] = df
    return out


def value_energy(model, ctx) -> None:
    """Energy services with value in welfare: every load, EV and heat pump's baseline
    energy for the day. What the day did not deliver of it (an EV or heat pump left
    short, a load curtailed or disconnected) has failed that much service, valued like
    lost load; over-consumption is only a cost."""
    dt, base, real, prof = ctx.dt_h, ctx.profiles, ctx.realtime.real, ctx.realtime.prof
    sys_mwh = float(model.system_brp.realised_mw(ctx).sum() * dt)
    service = float((base.load + base.ev + base.hp).sum() * dt)
    short = float(np.clip((base.load - prof.load).sum(1) * dt, 0, None).sum())
    for key, prof_d in (("ev", base.ev), ("hp", base.hp)):
        short += float(np.clip((prof_d - real[key]).sum(1) * dt, 0, None).sum())
    model.valued["prosumers"] += service - short
    model.valued["consumers"] += sys_mwh
    model.service_mwh += service + sys_mwh
    model.shortfall_mwh += short

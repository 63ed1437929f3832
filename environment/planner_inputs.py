"""The planner's day from the simulated one: the same realised data with every
market-controllable device free (`environment.planner` solves it)."""

from __future__ import annotations

import time

import numpy as np

from environment.planner import PlannerDay, PlannerResult, solve_day


def plan_day(model, ctx) -> None:
    """Solve the planner's day and keep it (its time counted apart from the simulation's)."""
    t0 = time.perf_counter()
    model.planner_days.append(solve_planner_day(model, ctx))
    model.note_truncation("planner", not model.planner_days[-1].converged)
    model.planner_seconds += time.perf_counter() - t0


def solve_planner_day(model, ctx) -> PlannerResult:
    """Batteries, EVs and heat pumps an aggregator controls pooled per bus; the rest of the
    day as it was realised (`ctx.planner_fixed`, after the DSO's actions)."""
    f, dt, dso, b_n = model.fleet, ctx.dt_h, model.dso, model.grid.n_bus
    bat = f.enrolled["battery"]
    sums = {k: np.bincount(f.bus[bat], weights=v[bat], minlength=b_n) for k, v in
            (("e", f.batt_mwh), ("p", f.batt_mw), ("soc", ctx.soc_start), ("eta", f.eta))}
    count = np.bincount(f.bus[bat], minlength=b_n)
    wear = np.zeros(f.n)
    for agg in model.aggregators:
        wear[agg.members] = agg.degradation
    wear_bus = np.bincount(f.bus[bat], weights=(wear * f.batt_mwh)[bat], minlength=b_n)
    battery = {int(b): (sums["e"][b], sums["p"][b], sums["soc"][b],
                        sums["eta"][b] / count[b]) for b in np.flatnonzero(sums["e"] > 0)}
    degradation = {b: wear_bus[b] / battery[b][0] for b in battery}

    def pooled(env, mask):
        lo, up, pm = (dso.bus_of @ np.where(mask[:, None], a, 0.0)
                      for a in (env.lower, env.upper, env.pmax))
        return {int(b): (np.minimum(lo[b], up[b]), up[b], pm[b])
                for b in np.flatnonzero(up[:, -1] > 0)}

    day = PlannerDay(
        dt_h=dt, fixed_bus_mw=dso.nodal(ctx.planner_fixed),
        pv_bus_mw=dso.nodal(ctx.profiles.pv),
        q_bus_mvar=ctx.realtime.q_real + (0.0 if dso.background is None else dso.background[1]),
        system_load_mw=model.system_brp.realised_mw(ctx),
        gen_cost=np.array([p.marginal_cost for p in model.producers]),
        gen_avail_mw=np.array([p.available_mw(ctx) for p in model.producers]),
        battery=battery, degradation=degradation,
        ev=pooled(ctx.ev_env, f.enrolled["ev"]),
        hp=pooled(f.hp_envelope(ctx.profiles.hp, dt), f.enrolled["heat_pump"]),
        emergency_up_price=model.tso.cfg.emergency_price_eur_mwh,
        emergency_down_price=model.tso.emergency_down_price,
        value_of_load=model.config.value_of_load_eur_mwh,
        background_bus_mw=None if dso.background is None else dso.background[0])
    return solve_day(day, dso.flow, dso.v_min, dso.v_max, dso.loading_limit,
                     model.config.planner.grid_constrained)

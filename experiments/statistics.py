"""Every figure a run reports, computed from its tables: the one reading surface for results.

`distribution_summary` and `transmission_summary` build summary.json (the figures studies,
reports, `compare` and the catalog read by dotted path); the functions below them compute its
parts, and the view's figures (profit by class and market, gaming profit) come from here too
(the twins' comparisons, built on them, from experiments/twin_statistics.py), so a figure has
one definition. Names, units, signs and definitions of every
key are in experiments/dictionary.py."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

CLASSES = ["consumers", "prosumers", "producers", "brps", "aggregators", "dso", "tso",
           "market_operators"]


def device_counts(fleet) -> dict:
    """Households owning each device and their ratings summed (battery also capacity)."""
    out = {k: {"households": int((mw > 0).sum()), "mw": float(mw.sum())} for k, mw in
           (("pv", fleet.pv_mw), ("battery", fleet.batt_mw), ("ev", fleet.ev_mw),
            ("heat_pump", fleet.hp_mw))}
    out["battery"]["mwh"] = float(fleet.batt_mwh.sum())
    return out


def distribution_summary(model, tables: dict[str, pd.DataFrame]) -> dict:
    """summary.json of a distribution-grid run: efficiency first (the run's system cost against
    the planner's), then welfare by class, prices, imbalance, congestion, flexibility,
    settlement and checks."""
    from environment.settlement import EXCHANGE
    from experiments.lem_summary import lem_summary
    from experiments.levels import levels_summary
    from experiments.region_split import region_summary

    s, cal = model.config, model.calendar
    dt = cal.mtu_hours
    series = tables["series"]
    ledger = tables["ledger"]
    value = model.valued_energy_mwh()
    v = s.value_of_load_eur_mwh
    violation_mwh = float(series["load_to_shed_mw"].sum() * dt)
    violation_cost = violation_mwh * v
    welfare = welfare_split(ledger, model.ledger.account_classes(),
                            pd.Series({k: q * v for k, q in value.items()}), violation_cost)
    cost = system_cost(ledger, model.shortfall_mwh, violation_mwh, v)
    out: dict = {"system_cost_eur": cost["total_eur"]}
    if model.planner_days:
        planner = planner_system_cost(model.planner_days, v)
        out["planner_system_cost_eur"] = planner["total_eur"]
        out["cost_efficiency"] = efficiency(planner["total_eur"], cost["total_eur"])
        out["system_cost"] = {"run": cost, "planner": planner}
    else:
        out["system_cost"] = {"run": cost}
    out["run"] = {"scenario": s.name, "seed": s.seed, "days": cal.days,
                  "mtu_minutes": cal.mtu_minutes, "start": str(cal.start),
                  "grid": s.grid.simbench_code, "prosumers": model.fleet.n,
                  "aggregated_devices": {k: int(m.sum()) for k, m in
                                         model.fleet.enrolled.items()},
                  "devices": device_counts(model.fleet),
                  "coupling": s.markets.coupling, "tso_dso_scheme": s.markets.tso_dso_scheme,
                  "compensation": s.settlement.compensation}
    if model.background is not None:
        out["run"]["background"] = {**model.background.summary(),
                                    "mwh": float(series["background_mw"].sum() * dt)}
    out.update({
        "welfare_eur": welfare,
        "grid_violation_cost_eur": violation_cost,
        "load_to_shed_mwh": violation_mwh,
        "device_energy_shortfall_mwh": model.shortfall_mwh,
        **summarise(series, tables["grid"], tables["positions"], dt),
        "ledger": ledger_checks(ledger, cal.n_mtu, EXCHANGE),
        "flexibility": flexibility(tables.get("flex"), ledger, model.dso.name, dt,
                                   float(tables["days"]["curtailed_mwh"].sum())),
        "settlement": settlement(ledger, tables["positions"], series, tables["days"],
                                 [b.name for b in model.brps], [a.name for a in model.aggregators],
                                 model.tso.name, dt),
        "truncation": dict(model.truncated),
    })
    if s.grid.locations == "levels":
        out["levels"] = levels_summary(model, tables, out["flexibility"]["dso_cost"]["total_eur"])
    if s.markets.dayahead.wholesale.kind != "closed":
        out.update(region_summary(model, tables, violation_mwh,
                                  out["flexibility"]["dso_cost"]["total_eur"]))
    if model.planner_days:
        out["planner"] = {
            "welfare_eur": v * model.service_mwh - sum(d.cost for d in model.planner_days),
            "grid_constraints_added": sum(d.grid_constraints for d in model.planner_days),
            "max_rounds": max(d.rounds for d in model.planner_days),
        }
    if "lem_areas" in tables:
        out["lem"] = lem_summary(tables["lem_areas"], ledger, tables["grid"],
                         s.dso.network_tariff_eur_mwh - s.markets.lem.local_tariff_eur_mwh)
    return out


def transmission_summary(model, tables: dict[str, pd.DataFrame]) -> dict:
    """summary.json of a transmission run, under the distribution kind's names where the
    quantity is the same: its system cost is the fuel burnt (no storage, emergency energy or
    unserved load in this kind; with zones, emergency balancing energy too), the planner's the
    fuel of the grid-constrained optimum (of the forecast: forecast errors are not foreseen)."""
    from environment.transmission.scenario import PERIOD_MINUTES

    periods, ledger = tables["periods"], tables["ledger"]
    bal = model.ledger.balances()
    classes = model.ledger.account_classes()
    tot = model.totals()
    fuel = tot["fuel_eur"]
    planner = model.planner_cost_eur
    s = model.config
    out = {
        "system_cost_eur": fuel,
        "planner_system_cost_eur": planner,
        "cost_efficiency": efficiency(planner, fuel),
        "system_cost": {"run": {"fuel_eur": fuel, "total_eur": fuel},
                        "planner": {"fuel_eur": planner, "total_eur": planner}},
        "welfare_loss_vs_planner_eur": fuel - planner,
        "run": {"scenario": s.name, "seed": s.seed, "episodes": s.episodes,
                "periods": s.periods, "mtu_minutes": PERIOD_MINUTES,
                "start": None if s.start is None else str(s.start),
                "nodes": list(model.net.nodes), "lines": list(model.net.lines)},
        "da_price_eur_mwh": price_stats(periods["da_price_eur_mwh"]),
        "redispatch": {"mwh": tot["redispatch_mw"], "cost_eur": tot["redispatch_cost_eur"]},
        "eur_by_class": {k: float(v) for k, v in bal.groupby(classes).sum().items()},
        "eur_by_account": {k: float(v) for k, v in bal.items()},
        "ledger": {"rows": int(len(ledger)), "sum_eur": float(bal.sum())},
    }
    if "zones" in tables:
        from experiments.regional_summary import regional_summary

        em = ledger[ledger["market"] == "balancing_emergency"]
        emergency = float(em.loc[em["payee"] == "external", "eur"].sum()
                          - em.loc[em["payer"] == "external", "eur"].sum())
        out["system_cost"]["run"].update(emergency_eur=emergency, total_eur=fuel + emergency)
        out["system_cost_eur"] = fuel + emergency
        out["cost_efficiency"] = efficiency(planner, fuel + emergency)
        out["welfare_loss_vs_planner_eur"] = fuel + emergency - planner
        out["regional"] = regional_summary(model, tables)
    return out


def efficiency(planner_eur: float, run_eur: float) -> float | None:
    """The planner's system cost over the run's (1: the run reached the optimum)."""
    return planner_eur / run_eur if run_eur > 0 else None


def welfare_split(ledger: pd.DataFrame, classes: pd.Series, value: pd.Series,
                  violation_cost: float) -> dict[str, float]:
    """Surplus per agent class: value of the energy it consumed plus its net receipts.

    Transfers cancel, so the total equals consumers' value less what left the system (fuel,
    wear, emergency assistance) less the cost of grid violations left unsolved."""
    paid = ledger.groupby("payer", observed=False)["eur"].sum()
    got = ledger.groupby("payee", observed=False)["eur"].sum()
    bal = got.reindex(classes.index, fill_value=0) - paid.reindex(classes.index, fill_value=0)
    by_class = bal.groupby(classes).sum()
    out = {c: float(by_class.get(c, 0.0) + value.get(c, 0.0)) for c in CLASSES}
    out["grid_violations"] = -float(violation_cost)
    out["total"] = float(sum(out.values()))
    out["external"] = float(by_class.get("external", 0.0))
    return out


EXTERNAL_COSTS = {"fuel": "fuel_eur", "battery_wear": "wear_eur",
                  "balancing_emergency": "emergency_eur"}


def system_cost(ledger: pd.DataFrame, unserved_mwh: float, violation_mwh: float,
                value_of_load: float) -> dict[str, float]:
    """The resources a run used, on the planner's basis (`environment.planner`): producers'
    fuel for what they generated, battery wear, emergency energy from outside the system (net
    of what it paid for surplus taken), energy services not delivered (EVs and heat pumps left
    short, load curtailed or disconnected) and grid violations left, both at the value of lost
    load, the latter as the least load to shed that would restore every limit. Payments
    between agents (market prices, activation asks, fees, compensation) are transfers and
    cancel; only what left the system through `external` counts."""
    ext = ledger[(ledger["payee"] == "external") | (ledger["payer"] == "external")]
    sign = np.where(ext["payee"] == "external", 1.0, -1.0)
    by_market = (ext["eur"] * sign).groupby(ext["market"].astype(str)).sum()
    out = {v: float(by_market.get(k, 0.0)) for k, v in EXTERNAL_COSTS.items()}
    other = float(by_market.drop(list(EXTERNAL_COSTS), errors="ignore").sum())
    if other:
        out["other_external_eur"] = other
    out["unserved_eur"] = float(unserved_mwh * value_of_load)
    out["violation_eur"] = float(violation_mwh * value_of_load)
    out["total_eur"] = float(sum(out.values()))
    return out


def planner_system_cost(days: list, value_of_load: float) -> dict[str, float]:
    """The planner's cost on the same basis as `system_cost`: its shedding for grid limits
    (relief entering the grid rows only) is the violation part of its unserved cost."""
    violation = sum(d.load_to_shed_mwh for d in days) * value_of_load
    out = {"fuel_eur": sum(d.fuel for d in days), "wear_eur": sum(d.wear for d in days),
           "emergency_eur": sum(d.emergency for d in days),
           "unserved_eur": sum(d.unserved_cost for d in days) - violation,
           "violation_eur": violation}
    out = {k: float(v) for k, v in out.items()}
    out["total_eur"] = float(sum(out.values()))
    return out


def ledger_checks(ledger: pd.DataFrame, n_mtu: int, exchange: str) -> dict[str, float]:
    """The DA exchange passes every euro through in every MTU: what buyers paid is what sellers
    got (double entry itself sums to zero by construction and is not reported)."""
    ex = np.zeros(n_mtu)
    da = ledger[ledger["market"] == "dayahead"]
    np.add.at(ex, da["mtu"].to_numpy()[(da["payee"] == exchange).to_numpy()],
              da["eur"].to_numpy()[(da["payee"] == exchange).to_numpy()])
    np.add.at(ex, da["mtu"].to_numpy()[(da["payer"] == exchange).to_numpy()],
              -da["eur"].to_numpy()[(da["payer"] == exchange).to_numpy()])
    return {"exchange_max_abs_eur_per_mtu": float(np.abs(ex).max()), "rows": int(len(ledger))}


def price_stats(s: pd.Series) -> dict[str, float]:
    return {"mean": float(s.mean()), "min": float(s.min()), "max": float(s.max()),
            "std": float(s.std(ddof=0))}


def system_imbalance_mwh(series: pd.DataFrame, dt_h: float) -> float:
    """The system's absolute imbalance over the MTUs so far, MWh."""
    return float(series["system_short_mw"].abs().sum() * dt_h)


def summarise(series: pd.DataFrame, grid: pd.DataFrame, positions: pd.DataFrame,
              dt_h: float) -> dict:
    """Prices, imbalance, congestion and energy of a distribution-grid run."""
    imb = positions.groupby("party")["imbalance_mwh"].agg(lambda x: float(np.abs(x).sum()))
    return {
        "da_price_eur_mwh": price_stats(series["da_price"]),
        "da_price_forecast_mae": float((series["da_price"] - series["da_price_forecast"])
                                       .abs().mean()),
        "imbalance_price_eur_mwh": price_stats(series["imbalance_price_short"]),
        "imbalance": {
            "system_abs_mwh": system_imbalance_mwh(series, dt_h),
            "activated_up_mwh": float(series["activated_up_mw"].sum() * dt_h),
            "activated_down_mwh": float(series["activated_down_mw"].sum() * dt_h),
            "emergency_mwh": float((series["emergency_up_mw"] + series["emergency_down_mw"])
                                   .sum() * dt_h),
            "by_party_abs_mwh": {k: float(v) for k, v in imb.items()},
        },
        "congestion": congestion(grid, dt_h),
        "energy": {
            "demand_mwh": float(series["demand_mw"].sum() * dt_h),
            "max_abs_balance_residual_mw": float((series["generation_mw"]
                                                  - series["demand_mw"]).abs().max()),
        },
    }


def congestion(grid: pd.DataFrame, dt_h: float) -> dict:
    """Traffic-light counts over MTU-locations, violations at each stage, loading, voltages."""
    light_counts = grid["light"].value_counts().to_dict()
    return {
        "mtu_locations": int(len(grid)),
        "green": int(light_counts.get(0, 0)),
        "yellow": int(light_counts.get(1, 0)),
        "red": int(light_counts.get(2, 0)),
        "black": int(light_counts.get(3, 0)),
        "forecast_violations": int(grid["forecast_violated"].sum()),
        "forecast_violations_after_markets":
            int(grid["forecast_violated_after_markets"].sum()),
        "real_violations_before_dso": int(grid["real_violated_before_dso"].sum()),
        "real_violations_remaining": int(grid["real_violated"].sum()),
        "overload_mwh": float(grid["overload_mw"].sum() * dt_h),
        "max_loading": float(grid["max_loading"].max()),
        "v_min_pu": float(grid["v_min_pu"].min()),
        "v_max_pu": float(grid["v_max_pu"].max()),
    }


DSO_MARKETS = {"lfm_da": "lfm_da_eur", "lfm_id": "lfm_id_eur",
               "lfm_realtime": "lfm_realtime_eur", "lfm_reservation": "reservation_eur",
               "red_compensation": "red_compensation_eur",
               "red_direct_control": "direct_control_eur"}
"""Every market the DSO pays in for flexibility: the day-ahead and intraday LFM, its share
of real-time DER activations under the TSO-DSO scheme, availability payments, RED
compensation and direct control of contracted devices."""


def flexibility(flex: pd.DataFrame | None, ledger: pd.DataFrame, dso: str, dt_h: float,
                curtailed_mwh: float) -> dict:
    """Flexibility volumes and prices by market, the DSO's cost, and the two failures of
    uncoupled markets: MW sold twice and trades counteracting the DSO's purchases."""
    out: dict = {"curtailed_mwh": curtailed_mwh}
    paid = ledger[ledger["payer"] == dso].groupby("market", observed=True)["eur"].sum()
    got = ledger[ledger["payee"] == dso].groupby("market", observed=True)["eur"].sum()
    cost = {v: float(paid.get(k, 0.0)) for k, v in DSO_MARKETS.items()}
    cost["implicit_tariff_revenue_eur"] = float(got.get("implicit_tariff", 0.0))
    cost["total_eur"] = sum(v for k, v in cost.items() if k != "implicit_tariff_revenue_eur")
    out["dso_cost"] = cost
    if flex is None or flex.empty:
        return out
    vols = {}
    for stage, g in flex.groupby("stage"):
        for col in ("dso_up_mw", "dso_down_mw", "platform_up_mw", "platform_down_mw",
                    "tso_held_up_mw", "tso_held_down_mw"):
            vols[f"{stage}_{col.removesuffix('_mw')}_mwh"] = float(g[col].sum() * dt_h)
    out["volumes"] = vols
    for market in ("lfm_da", "lfm_id", "platform"):
        rows = ledger[ledger["market"] == market]
        energy = rows["mwh"].abs().sum()
        out[f"{market}_avg_price_eur_mwh"] = (float(rows["eur"].abs().sum() / energy)
                                              if energy > 0 else None)
    out["double_sold_mwh"] = float(flex["double_sold_mw"].sum() * dt_h)
    out["counteracting_mwh"] = float(flex["counteracting_mw"].sum() * dt_h)
    return out


LFM_STAGES = ("da", "id")


def with_flexibility(series: pd.DataFrame, flex: pd.DataFrame | None,
                     dt_h: float) -> pd.DataFrame:
    """`series` plus, per MTU: lfm_<stage>_price (EUR/MWh the DSO paid, volume-weighted over
    locations; NaN where it bought nothing), lfm_<stage>_up_mwh / _down_mwh (energy bought) and
    platform_up_mwh / platform_down_mwh."""
    out = series.copy()
    if flex is None or flex.empty:
        return out
    f = flex.assign(up=flex["dso_up_mw"] * dt_h, down=flex["dso_down_mw"] * dt_h,
                    pay=np.nan_to_num(flex["lfm_price_up"]) * flex["dso_up_mw"] * dt_h
                    + np.nan_to_num(flex["lfm_price_down"]) * flex["dso_down_mw"] * dt_h,
                    p_up=flex["platform_up_mw"] * dt_h, p_down=flex["platform_down_mw"] * dt_h)
    for stage in LFM_STAGES:
        g = f[f["stage"] == stage].groupby("mtu")[["up", "down", "pay"]].sum()
        g = g.reindex(out["mtu"], fill_value=0.0)
        vol = (g["up"] + g["down"]).to_numpy()
        out[f"lfm_{stage}_price"] = np.where(vol > 0, g["pay"].to_numpy() / np.where(vol > 0,
                                                                                   vol, 1), np.nan)
        out[f"lfm_{stage}_up_mwh"] = g["up"].to_numpy()
        out[f"lfm_{stage}_down_mwh"] = g["down"].to_numpy()
    p = f.groupby("mtu")[["p_up", "p_down"]].sum().reindex(out["mtu"], fill_value=0.0)
    out["platform_up_mwh"] = p["p_up"].to_numpy()
    out["platform_down_mwh"] = p["p_down"].to_numpy()
    return out


def _net_by(ledger: pd.DataFrame, account: str, markets: tuple[str, ...] | None = None) -> dict:
    """Net EUR an account received per market (negative: paid)."""
    rows = ledger if markets is None else ledger[ledger["market"].isin(markets)]
    got = rows[rows["payee"] == account].groupby("market", observed=True)["eur"].sum()
    paid = rows[rows["payer"] == account].groupby("market", observed=True)["eur"].sum()
    net = got.sub(paid, fill_value=0.0)
    return {str(k): float(v) for k, v in net.items() if abs(v) > 0}


def settlement(ledger: pd.DataFrame, positions: pd.DataFrame, series: pd.DataFrame,
               days: pd.DataFrame, brps: list[str], aggregators: list[str], tso: str,
               dt_h: float) -> dict:
    """Balancing and settlement (issue 4's metrics): imbalance volume and cost per BRP, the
    TSO's balancing cost, compensation paid and received, each aggregator's margin after
    compensation, DER balancing volumes, TSO activations that pushed a distribution limit,
    and the real-time procurement cost of the TSO-DSO scheme."""
    imb = ledger[ledger["market"] == "imbalance"]
    out: dict = {"brps": {}, "aggregators": {}}
    for b in brps:
        vol = positions.loc[positions["party"] == b, "imbalance_mwh"]
        out["brps"][b] = {
            "imbalance_abs_mwh": float(vol.abs().sum()),
            "imbalance_cost_eur": float(imb.loc[imb["payer"] == b, "eur"].sum()
                                        - imb.loc[imb["payee"] == b, "eur"].sum()),
            "compensation_received_eur": _net_by(ledger, b, ("compensation",))
            .get("compensation", 0.0),
            "sourcing_cost_eur": -sum(_net_by(ledger, b, ("dayahead", "intraday", "imbalance",
                                                          "platform", "compensation")).values()),
        }
    for a in aggregators:
        by_market = _net_by(ledger, a)
        out["aggregators"][a] = {"by_market_eur": by_market,
                                 "compensation_paid_eur": -by_market.get("compensation", 0.0),
                                 "margin_eur": float(sum(by_market.values()))}
    tso_net = _net_by(ledger, tso)
    out["tso_balancing_cost_eur"] = -sum(v for k, v in tso_net.items()
                                         if k.startswith("balancing"))
    out["tso_imbalance_revenue_eur"] = tso_net.get("imbalance", 0.0)
    out["der_balancing_up_mwh"] = float(series["der_balancing_up_mw"].clip(lower=0).sum() * dt_h)
    out["der_balancing_down_mwh"] = float(-series["der_balancing_up_mw"].clip(upper=0).sum()
                                          * dt_h)
    out["der_dso_realtime_mwh"] = float(series["der_dso_realtime_up_mw"].abs().sum() * dt_h)
    out["counteracting_tso_dso_mwh"] = float(series["tso_dso_counteracting_mw"].sum() * dt_h)
    for key in ("tso", "dso", "procurement"):
        col = f"balancing_{key}"
        out[f"realtime_{key}_cost_eur"] = float(days[col].sum()) if col in days else 0.0
    return out


MARKET_ORDER = ["dayahead", "intraday", "lfm", "lfm_reservation", "platform", "balancing",
                "balancing_emergency", "imbalance", "red_compensation", "retail", "feed_in",
                "network_tariff", "aggregator_energy", "flexibility_fee", "fuel", "battery_wear"]
GAMING = re.compile(r"gaming|arbitrage|inc_?dec", re.IGNORECASE)
"""How `profit_table` orders markets, and the names that mark a gaming or arbitrage profit."""


def profit_table(ledger: pd.DataFrame, classes: pd.Series) -> pd.DataFrame:
    """Net receipts (EUR, received minus paid) by agent class (rows) and market (columns)."""
    if ledger.empty:
        return pd.DataFrame()
    market = ledger["market"].astype(str).to_numpy()
    eur = ledger["eur"].to_numpy(float)
    long = pd.DataFrame({
        "class": np.concatenate([ledger["payee"].astype(str).map(classes).to_numpy(object),
                                 ledger["payer"].astype(str).map(classes).to_numpy(object)]),
        "market": np.concatenate([market, market]),
        "eur": np.concatenate([eur, -eur])})
    table = long.pivot_table(index="class", columns="market", values="eur", aggfunc="sum",
                             fill_value=0.0)
    table.index.name, table.columns.name = "class", "market"
    rows = [c for c in [*CLASSES, "external"] if c in table.index]
    rows += [c for c in table.index if c not in rows]
    cols = [m for m in MARKET_ORDER if m in table.columns]
    cols += sorted(m for m in table.columns if m not in cols)
    table = table.loc[rows, cols]
    return table.loc[table.abs().sum(axis=1) > 1e-9, table.abs().sum(axis=0) > 1e-9]


def gaming_profit(tables: dict[str, pd.DataFrame], profits: pd.DataFrame) -> dict[str, float]:
    """Gaming / arbitrage profit by who earned it, where the model records it: a ledger market
    or a table column whose name says gaming, arbitrage or inc-dec."""
    out: dict[str, float] = {}
    for m in [c for c in profits.columns if GAMING.search(str(c))]:
        for cls, v in profits[m].items():
            if abs(v) > 1e-9:
                out[f"{cls} ({m})"] = out.get(f"{cls} ({m})", 0.0) + float(v)
    for name, df in tables.items():
        if name == "ledger" or df is None:
            continue
        for c in df.columns:
            if GAMING.search(str(c)) and pd.api.types.is_numeric_dtype(df[c]):
                key = next((k for k in ("aggregator", "party", "class") if k in df.columns),
                           None)
                if key:
                    for who, v in df.groupby(key)[c].sum().items():
                        out[f"{who} ({c})"] = float(v)
                else:
                    out[f"{name}.{c}"] = float(df[c].sum())
    return out


def profit_by_market(led: pd.DataFrame, classes: pd.Series) -> pd.DataFrame:
    """Net EUR each account received per market: columns account, class, market, eur (the
    twin's comparison)."""
    flows = pd.concat([
        pd.DataFrame({"account": led["payee"].astype(str), "market": led["market"].astype(str),
                      "eur": led["eur"]}),
        pd.DataFrame({"account": led["payer"].astype(str), "market": led["market"].astype(str),
                      "eur": -led["eur"]})])
    out = flows.groupby(["account", "market"])["eur"].sum().reset_index()
    out.insert(1, "class", out["account"].map(classes))
    return out

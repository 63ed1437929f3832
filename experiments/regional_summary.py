"""The `regional` block of a zonal transmission run's summary.json: per zone its day-ahead
price, exchange and imbalances; per interconnector its flows, hours at the limit and
congestion rent; the balancing cost of the TSOs alone against shared under the scenario's
sharing option, in total and per TSO. Built from the run's `zones` and `interconnectors`
tables (environment/transmission/zonal_model.py); definitions in experiments/dictionary.py."""

from __future__ import annotations

import pandas as pd

BIND_TOL = 1e-6


def regional_summary(model, tables: dict[str, pd.DataFrame]) -> dict:
    zones, ics = tables["zones"], tables["interconnectors"]
    imb = zones["imbalance_mw"]
    zone_block = {}
    for name, z in zones.groupby("zone", sort=False):
        i = z["imbalance_mw"]
        zone_block[name] = {
            "tso": str(z["tso"].iloc[0]),
            "da_price_eur_mwh": {"mean": float(z["da_price_eur_mwh"].mean()),
                                 "min": float(z["da_price_eur_mwh"].min()),
                                 "max": float(z["da_price_eur_mwh"].max())},
            "load_mwh": float(z["load_mw"].sum()),
            "net_import_mwh": float(z["net_import_mw"].sum()),
            "short_mwh": float(i.clip(lower=0).sum()), "long_mwh": float((-i).clip(lower=0).sum()),
            "redispatch_cost_eur": float(z["redispatch_cost_eur"].sum()),
            "emergency_mwh": float(z["emergency_mw"].abs().sum())}
    ic_block = {}
    for name, e in ics.groupby("interconnector", sort=False):
        f = e["flow_da_mw"]
        at_limit = (f >= e["limit_mw"] - BIND_TOL) | (f <= -e["reverse_limit_mw"] + BIND_TOL)
        ic_block[name] = {
            "from": str(e["from_zone"].iloc[0]), "to": str(e["to_zone"].iloc[0]),
            "limit_mw": float(e["limit_mw"].iloc[0]),
            "reverse_limit_mw": float(e["reverse_limit_mw"].iloc[0]),
            "flow_mwh": float(f.sum()), "flow_abs_mwh": float(f.abs().sum()),
            "hours_at_limit": int(at_limit.sum()),
            "congestion_rent_eur": float(e["congestion_rent_eur"].sum()),
            "balancing_exchange_mwh": float(e["balancing_flow_mw"].abs().sum())}
    by_tso = {}
    for tso, z in zones.groupby("tso", sort=False):
        alone, shared = float(z["balancing_alone_eur"].sum()), float(
            z["balancing_shared_eur"].sum())
        by_tso[tso] = {"alone_eur": alone, "shared_eur": shared, "value_eur": alone - shared,
                       "settlement_eur": float(z["balancing_settlement_eur"].sum()),
                       "congestion_rent_eur": 0.0}
    for e in ics.itertuples():
        for zone in (e.from_zone, e.to_zone):
            by_tso[zone_block[zone]["tso"]]["congestion_rent_eur"] += 0.5 * e.congestion_rent_eur
    per_period = zones.groupby("step")["sharing_value_eur"].sum()
    alone, shared = float(zones["balancing_alone_eur"].sum()), float(
        zones["balancing_shared_eur"].sum())
    return {
        "sharing": model.config.balancing.sharing,
        "zones": zone_block,
        "interconnectors": ic_block,
        "congestion_rent_eur": float(ics["congestion_rent_eur"].sum()),
        "imbalance_mwh": float(imb.abs().sum()),
        "balancing": {"alone_eur": alone, "shared_eur": shared, "value_eur": alone - shared,
                      "periods_with_value": int((per_period > 1e-6).sum()),
                      "max_period_value_eur": float(per_period.max()) if len(per_period) else 0.0,
                      "by_tso": by_tso},
    }

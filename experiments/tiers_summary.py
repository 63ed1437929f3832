"""summary.json of a run with distribution regions under transmission nodes (environment/tiers):
the transmission run's summary (its `regional` block: zones, interconnectors, the regional
balance place) with a block per lower tier.

* `local`: per region (its DSO's area, the local place) figures of the region's own summary
  (experiments/statistics.py `distribution_summary` of its model and tables, not re-derived):
  LFM volume, DSO cost, traffic-light counts, imbalance, and its exchange with the node.
* `national`: the national places (one per zone and TSO): the keys of a price-taking region's
  `national` block (experiments/region_split.py), here the transmission system's fuel, load
  and imbalance, and per zone its price, redispatch, balancing cost and the DER its regions
  activated for balancing; where regions pass their flexibility up (`regions[*].pass_up`,
  environment/tiers/national.py), per zone and region what they offered, the DSOs cut,
  the zone's TSO activated and paid, and the value of the pass-up to the zone.

The transmission planner sees no region, so the run's efficiency against a planner of all
tiers is not reported yet (issue 20, item 4)."""

from __future__ import annotations

import pandas as pd

PLANNER_KEYS = ("planner_system_cost_eur", "cost_efficiency", "welfare_loss_vs_planner_eur")


def tiers_summary(model, tables: dict[str, pd.DataFrame]) -> dict:
    from environment.tiers.model import account_of
    from experiments.statistics import distribution_summary, transmission_summary

    tx = model.tx
    out = transmission_summary(tx, tx.tables())
    for key in PLANNER_KEYS:
        out.pop(key)
    out["system_cost"].pop("planner")
    out["run"]["regions"] = [m.config.name for m in model.regions]
    regions = tables["regions"]
    local, der = {}, {}
    for m, node, zone in zip(model.regions, tx.region_node, tx.region_zone, strict=True):
        t = m.tables()
        t["ledger"] = m.ledger.frame()
        s = distribution_summary(m, t)
        dt = m.calendar.mtu_hours
        mine = regions[regions["region"] == m.config.name]
        flex = s["flexibility"]
        vols = flex.get("volumes", {})
        up, down = (float(x) for x in m.der_tso_mwh)
        was = der.get(int(zone), (0.0, 0.0))
        der[int(zone)] = (was[0] + up, was[1] + down)
        local[m.config.name] = {
            "dso": account_of(m.config.name, m.dso.name), "node": tx.net.nodes[node],
            "zone": tx.zones.names[zone], "coupling": m.config.markets.coupling,
            "prosumers": m.fleet.n,
            "lfm_mwh": float(sum(v for k, v in vols.items() if "_dso_" in k)),
            "dso_cost_eur": flex["dso_cost"]["total_eur"],
            "congestion": {k: s["congestion"][k] for k in ("green", "yellow", "red", "black")},
            "load_to_shed_mwh": s["load_to_shed_mwh"],
            "imbalance_abs_mwh": s["imbalance"]["system_abs_mwh"],
            "der_balancing_up_mwh": up,
            "der_balancing_down_mwh": down,
            "da_import_mwh": float(mine["da_import_mw"].sum() * dt),
            "real_import_mwh": float(mine["real_import_mw"].sum() * dt),
            "deviation_abs_mwh": float(mine["deviation_mw"].abs().sum() * dt),
            "da_price_eur_mwh": float(mine["da_price_eur_mwh"].mean())}
    zones = tables["zones"]
    led = tx.ledger.frame()
    national = {"fuel_eur": float(led.loc[led["market"] == "fuel", "eur"].sum()),
                "load_mwh": float(zones["load_mw"].sum()),
                "imbalance_abs_mwh": float(zones["imbalance_mw"].abs().sum()), "zones": {}}
    for name, z in zones.groupby("zone", sort=False):
        here = [r for r, v in local.items() if v["zone"] == name]
        national["zones"][name] = {
            "tso": str(z["tso"].iloc[0]),
            "da_price_eur_mwh": float(z["da_price_eur_mwh"].mean()),
            "redispatch_cost_eur": float(z["redispatch_cost_eur"].sum()),
            "balancing_cost_eur": float(z["balancing_shared_eur"].sum()),
            "regions_da_import_mwh": float(sum(local[r]["da_import_mwh"] for r in here)),
            "regions_deviation_abs_mwh": float(
                regions.loc[regions["zone"] == name].groupby(["period", "region"])
                ["deviation_mw"].mean().groupby(level=0).sum().abs().sum()),
            **dict(zip(("der_balancing_up_mwh", "der_balancing_down_mwh"),
                       der.get(tx.zones.names.index(name), (0.0, 0.0)), strict=True))}
    if "national" in tables:
        passed = tables["national_der"]
        nat = tables["national"]
        for name, z in nat.groupby("zone", sort=False):
            mine = passed[passed["zone"] == name]
            national["zones"][name]["passed_up"] = {
                "regions": sorted(mine["region"].unique().tolist()),
                **passed_up(mine),
                "value_eur": float(z["value_eur"].sum())}
        for region, mine in passed.groupby("region", sort=False):
            local[region]["passed_up"] = passed_up(mine)
    out["local"] = local
    out["national"] = national
    return out


def passed_up(rows: pd.DataFrame) -> dict:
    """Offered, cut, activated MWh and cost of some rows of the `national_der` table (hourly
    rows: MW = MWh)."""
    return {"offered_mwh": float((rows["offered_up_mw"] + rows["offered_down_mw"]).sum()),
            "cut_by_dso_mwh": float(rows["cut_by_dso_mw"].sum()),
            "activated_up_mwh": float(rows["activated_up_mw"].sum()),
            "activated_down_mwh": float(rows["activated_down_mw"].sum()),
            "cost_eur": float(rows["cost_eur"].sum())}

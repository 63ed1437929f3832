"""The data dictionary's entries of a run with distribution regions under transmission nodes
(environment/tiers; experiments/tiers_summary.py): the `local` and `national` blocks, the
`regions` table and the tier column of the ledger (experiments/dictionary.py reads them)."""

from __future__ import annotations

from experiments.dictionary_entry import EUR, EUR_MWH, MW, MWH, E, Entry

TIERS: list[Entry] = [
    E("run.regions", "", "Transmission with regions: the distribution regions under its nodes."),
    E("local.<region>.dso", "", "The region's DSO, by its account in the run's ledger "
      "(<region>/<account>)."),
    E("local.<region>.node", "", "The transmission node the region hangs under."),
    E("local.<region>.zone", "", "The node's bidding zone."),
    E("local.<region>.coupling", "", "The region's coupling scheme (its local place's rules)."),
    E("local.<region>.prosumers", "count", "Households simulated in the region.", count=True),
    E("local.<region>.lfm_mwh", MWH, "Flexibility the region's DSO bought in its LFM (day-ahead "
      "and intraday, up and down: the region's flexibility.volumes *_dso_* summed).",
      label="LFM volume of <region>"),
    E("local.<region>.dso_cost_eur", EUR, "The region's DSO's flexibility cost (its "
      "flexibility.dso_cost.total_eur).", "+ paid by the DSO", "DSO cost of <region>"),
    E("local.<region>.congestion.<light>", "count", "The region's MTU-locations by traffic "
      "light (its congestion.<light>).", label="<light> MTU-locations of <region>", count=True),
    E("local.<region>.load_to_shed_mwh", MWH, "Grid violations left in the region, as the "
      "least load to shed (its load_to_shed_mwh)."),
    E("local.<region>.imbalance_abs_mwh", MWH, "Absolute imbalance of the region's parties "
      "(its imbalance.system_abs_mwh)."),
    E("local.<region>.der_balancing_mwh", MWH, "DER the region's TSO agent activated for "
      "balancing inside the region, |MW| x h."),
    E("local.<region>.da_import_mwh", MWH, "The region's net day-ahead purchase from the "
      "coupled market (its accepted net position at its node).", "+ imported, - exported"),
    E("local.<region>.real_import_mwh", MWH, "What the region took from the grid above in "
      "real time: the day-ahead position, intraday trades with the grid, its TSO agent's "
      "activations of the grid and emergency energy.", "+ imported, - exported"),
    E("local.<region>.deviation_abs_mwh", MWH, "|real import - day-ahead import| summed over "
      "the region's MTUs: the imbalance it passes to its zone's TSO."),
    E("local.<region>.da_price_eur_mwh", EUR_MWH, "Mean day-ahead price the region cleared at "
      "(its zone's coupled price)."),
    E("national.zones.<zone>.tso", "", "The zone's TSO (its national place)."),
    E("national.zones.<zone>.da_price_eur_mwh", EUR_MWH, "Mean coupled day-ahead price of the "
      "zone."),
    E("national.zones.<zone>.redispatch_cost_eur", EUR, "The TSO's redispatch cost in the "
      "zone.", "+ paid by the TSO"),
    E("national.zones.<zone>.balancing_cost_eur", EUR, "The TSO's balancing cost after sharing "
      "(= regional.balancing.by_tso shared_eur for a TSO of one zone).", "+ paid by the TSO"),
    E("national.zones.<zone>.regions_da_import_mwh", MWH, "Net day-ahead purchase of the "
      "zone's regions.", "+ imported, - exported"),
    E("national.zones.<zone>.regions_deviation_abs_mwh", MWH, "|the regions' deviation| per "
      "hourly period (their MTUs' mean, summed over the zone's regions) summed over periods: "
      "the part of the zone's imbalance the regions made (netted within the hour)."),
    E("national.zones.<zone>.der_balancing_mwh", MWH, "DER activated for balancing in the "
      "zone's regions (by their TSO agents; offering them to the zone's merit order is the "
      "next step)."),
]

TIER_TABLES: list[Entry] = [
    E("regions.region", "", "The distribution region."),
    E("regions.node", "", "Its transmission node."), E("regions.zone", "", "Its zone."),
    E("regions.period", "index", "The transmission period (hour) of the MTU."),
    E("regions.da_price_eur_mwh", EUR_MWH, "The zone's coupled price of the hour."),
    E("regions.da_import_mw", MW, "The region's day-ahead net position at the node.",
      "+ imported"),
    E("regions.real_import_mw", MW, "What it took from the grid above in real time.",
      "+ imported"),
    E("regions.deviation_mw", MW, "real_import_mw - da_import_mw: added to the zone's "
      "imbalance (hourly mean).", "+ short"),
    E("ledger.mtu_minutes", "min", "Runs with regions: the row's tier (60: a transmission "
      "period, whose index `mtu` is; else the region's MTU length, `mtu` its MTU)."),
]

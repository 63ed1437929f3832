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
    E("local.<region>.der_balancing_up_mwh", MWH, "DER the region's TSO agent activated "
      "upward (less consumption) for balancing inside the region (and, with pass_up, the "
      "zone's TSO), MW x h per party and MTU: parties moving up and down in one MTU do not "
      "cancel."),
    E("local.<region>.der_balancing_down_mwh", MWH, "As der_balancing_up_mwh, downward (more "
      "consumption)."),
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
      "(= regional.balancing.by_tso shared_eur for a TSO of one zone; passed-up DER it "
      "bought are in passed_up.cost_eur).", "+ paid by the TSO"),
    E("national.zones.<zone>.regions_da_import_mwh", MWH, "Net day-ahead purchase of the "
      "zone's regions.", "+ imported, - exported"),
    E("national.zones.<zone>.regions_deviation_abs_mwh", MWH, "|the regions' deviation| per "
      "hourly period (their MTUs' mean, summed over the zone's regions) summed over periods: "
      "the part of the zone's imbalance the regions made (netted within the hour)."),
    E("national.zones.<zone>.der_balancing_up_mwh", MWH, "DER activated upward for "
      "balancing in the zone's regions, by their TSO agents and (with pass_up) by the zone's "
      "TSO: the regions' local.<region>.der_balancing_up_mwh summed."),
    E("national.zones.<zone>.der_balancing_down_mwh", MWH, "As der_balancing_up_mwh, "
      "downward."),
    E("national.zones.<zone>.passed_up.regions", "", "With pass_up: the zone's regions that "
      "offer their flexibility up to its TSO (the national place)."),
    E("national.zones.<zone>.passed_up.value_eur", EUR, "With pass_up: the value of the "
      "pass-up to the zone, hour by hour the sharing's cost of the zones' own imbalances "
      "without the passed-up offers minus with them (their payments included), before the "
      "regions' deviations and rebound.", "+ saved"),
]

PASSED_UP = [
    ("offered_mwh", MWH, "balancing flexibility the local place did not clear, offered up to "
     "the zone's TSO hour by hour within the DSO's limits (up and down, hourly MW x 1 h)", ""),
    ("cut_by_dso_mwh", MWH, "what the aggregators could have offered beyond the DSO's limits "
     "(its grid's headroom), cut before the zone's merit order", ""),
    ("activated_up_mwh", MWH, "less consumption the zone's TSO activated of the offers", ""),
    ("activated_down_mwh", MWH, "more consumption the zone's TSO activated of the offers", ""),
    ("cost_eur", EUR, "what the zone's TSO paid for them, as bid (through <region>/tso; "
     "ledger markets national_der and balancing_national)", "+ paid by the TSO"),
]
TIERS += [E(f"{where}.passed_up.{key}", unit, f"With pass_up, {whose}: {text}.", sign)
          for where, whose in (("local.<region>", "the region's"),
                               ("national.zones.<zone>", "the zone's regions'"))
          for key, unit, text, sign in PASSED_UP]

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
    E("national.period", "index", "The transmission period (hour)."),
    E("national_der.period", "index", "The transmission period (hour)."),
    E("national.zone", "", "With pass_up: the bidding zone (the national place's table: a "
      "row per hour and zone)."),
    E("national.own_imbalance_mw", MW, "The zone's own imbalance as the national place sees "
      "it before the regions' real time (its loads' and renewables' errors; not the "
      "regions' deviations).", "+ short"),
    E("national.der_activated_mw", MW, "Passed-up DER the zones' sharing activated as "
      "offers of the zone (up and down)."),
    E("national.der_cost_eur", EUR, "What the zone's TSO pays for them.", "+ paid"),
    E("national.value_eur", EUR, "The sharing's cost of the hour without the passed-up "
      "offers minus with them, for the zone's TSO.", "+ saved"),
    E("national_der.region", "", "With pass_up: the region (a row per hour and region)."),
    E("national_der.zone", "", "Its zone."),
    E("national_der.offered_up_mw", MW, "Hourly offers of less consumption within the DSO's "
      "limits."),
    E("national_der.offered_down_mw", MW, "Hourly offers of more consumption within them."),
    E("national_der.cut_by_dso_mw", MW, "What the DSO's limits cut of the offers."),
    E("national_der.activated_up_mw", MW, "Of the up offers, activated by the zone's TSO."),
    E("national_der.activated_down_mw", MW, "Of the down offers, activated."),
    E("national_der.cost_eur", EUR, "Paid for them, as bid.", "+ paid by the zone's TSO"),
    E("ledger.mtu_minutes", "min", "Runs with regions: the row's tier (60: a transmission "
      "period, whose index `mtu` is; else the region's MTU length, `mtu` its MTU)."),
]

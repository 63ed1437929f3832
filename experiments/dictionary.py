"""The data dictionary: every summary key and table column a run writes, with its unit, sign
convention and definition, and a readable label.

One source for docs/outputs.md (`python -m experiments.dictionary > docs/outputs.md`, checked
by the tests), the reports' and figures' labels, and the browser view. A name with `<...>`
parts stands for a family (`settlement.brps.<brp>.imbalance_cost_eur`); tests/test_dictionary.py
fails for any key or column of a real run that no entry covers."""

from __future__ import annotations

import re
from functools import lru_cache

from experiments.dictionary_entry import EUR, EUR_MWH, MW, MWH, RECEIVED, E, Entry
from experiments.dictionary_tables import TABLES as RUN_TABLES
from experiments.dictionary_tiers import TIER_TABLES, TIERS

TABLES = [*RUN_TABLES, *TIER_TABLES]

CLASSES = "consumers, prosumers, producers, brps, aggregators, dso, tso, market_operators"

SUMMARY: list[Entry] = [
    # --- efficiency (issue 14) ---
    E("system_cost_eur", EUR, "The run's system cost: producers' fuel for what they generated, "
      "battery wear, emergency energy from outside, energy services not delivered and the "
      "least load to shed for grid violations left, both at the value of lost load. Payments "
      "between agents are transfers and cancel. Transmission: the fuel burnt (its only part).",
      label="system cost"),
    E("system_cost.<who>.fuel_eur", EUR, "Fuel of the run's or the planner's generation.",
      label="fuel, <who>"),
    E("system_cost.<who>.wear_eur", EUR, "Battery wear (aggregators' batteries).",
      label="wear, <who>"),
    E("system_cost.<who>.emergency_eur", EUR, "Emergency energy from outside the system, net of "
      "what surplus taken earned.", label="emergency energy, <who>"),
    E("system_cost.<who>.unserved_eur", EUR, "Energy services not delivered (EVs and heat pumps "
      "short, load curtailed or disconnected) at the value of lost load.",
      label="unserved energy, <who>"),
    E("system_cost.<who>.violation_eur", EUR, "Grid violations left, as the least load to shed "
      "that restores every limit, at the value of lost load.", label="violations, <who>"),
    E("system_cost.<who>.other_external_eur", EUR, "Any other payment to the outside world."),
    E("system_cost.<who>.total_eur", EUR, "The sum of the parts (run: = system_cost_eur; "
      "planner: = planner_system_cost_eur).", label="system cost, <who>"),
    E("truncation", "", "What the run cut short or clipped (empty: nothing), also warned once "
      "per run."),
    E("truncation.<kind>", "count or MWh", "lfm, tso_dso, planner: clearings or planner days "
      "stopped at their round limit with a limit still violated (count); battery_cut_mwh: "
      "battery set-points cut to keep states of charge within bounds; soc_clipped_mwh: energy "
      "clipped at the state-of-charge bounds (MWh)."),
    E("planner_system_cost_eur", EUR, "The perfect-foresight planner's system cost of the same "
      "days, on the same basis (transmission: the fuel of the grid-constrained optimum).",
      label="planner's system cost"),
    E("cost_efficiency", "share", "Planner's system cost over the run's, in (0, 1]; 1 is the "
      "social optimum.", label="cost efficiency"),
    # --- what ran ---
    E("run.scenario", "", "Scenario name."), E("run.seed", "", "Random seed."),
    E("run.id", "", "Run id: <name>-seed<S>-<length>-<hash of the resolved scenario and data>."),
    E("run.source", "", "The scenario file the run was made from."),
    E("run.overrides", "", "The overrides applied to the file, by dotted path (empty: none)."),
    E("run.overrides.<path>", "", "An override applied to the file (--set, --days, --seed), "
      "dotted path; the description in config.yaml is the file's."),
    E("run.days", "days", "Delivery days simulated."),
    E("run.mtu_minutes", "min", "Market time unit (transmission: 60, an hourly period)."),
    E("run.start", "", "First delivery day "
      "(transmission: first period, UTC where the data gave offsets)."),
    E("run.grid", "", "simbench grid code."), E("run.prosumers", "count", "Households simulated.",
                                                 count=True),
    E("run.aggregated_devices.<device>", "count", "Devices under an aggregator's contract.",
      count=True),
    E("run.devices.<device>.households", "count", "Households owning the device (pv, battery, "
      "ev, heat_pump): drawn by share, or simbench's at their connection points "
      "(prosumers[*].devices).", count=True),
    E("run.devices.<device>.mw", MW, "The owners' rated power summed (PV: peak; battery: "
      "charge and discharge power; EV: charger)."),
    E("run.devices.battery.mwh", MWH, "The batteries' capacity summed."),
    E("run.background.elements", "count", "Only with grid.background simbench: the grid "
      "data's loads, sgens and storages that are no household's, in every power flow.",
      count=True),
    E("run.background.load_mw", MW, "Their loads' rated power summed."),
    E("run.background.generation_mw", MW, "Their generators' and storages' rated power "
      "summed."),
    E("run.background.mwh", MWH, "Their net consumption over the run (- net injection); "
      "grid-only, its energy is the national load's."),
    E("run.coupling", "", "Coupling scheme."), E("run.tso_dso_scheme", "", "TSO-DSO scheme."),
    E("run.compensation", "", "Compensation regime."),
    E("run.profile_year", "", "How simbench's 2016 profiles were read for another year."),
    E("run.episodes", "count", "Transmission: repetitions of the periods.", count=True),
    E("run.periods", "count", "Transmission: hourly periods per episode.", count=True),
    E("run.nodes", "", "Transmission: node names."), E("run.lines", "", "Transmission: lines."),
    # --- welfare ---
    E("welfare_eur.<class>", EUR, f"Surplus of an agent class ({CLASSES}): value of the energy "
      "it consumed plus its net ledger receipts.", RECEIVED, "welfare of <class>"),
    E("welfare_eur.grid_violations", EUR, "Minus the cost of grid violations left unsolved "
      "(load to shed at the value of load).", "always <= 0", "grid violations"),
    E("welfare_eur.total", EUR, "Sum over classes: consumers' value of served energy less what "
      "left the system (fuel, wear, emergency imports) and violations.", label="welfare, total"),
    E("welfare_eur.external", EUR, "Net receipts of the outside world (fuel, wear, emergency "
      "assistance); not part of the total.", RECEIVED, "outside world"),
    E("grid_violation_cost_eur", EUR, "Cost of unsolved grid violations at the value of load.",
      label="grid violation cost"),
    E("load_to_shed_mwh", MWH, "Least curtailment that restores every grid limit, summed.",
      label="load to shed"),
    E("device_energy_shortfall_mwh", MWH, "Energy devices needed and did not get (EVs, heat "
      "pumps), valued at the value of load.", label="device energy shortfall"),
    # --- prices ---
    E("da_price_eur_mwh.<stat>", EUR_MWH, "Day-ahead price over the run's MTUs (mean, min, max, "
      "std).", label="day-ahead price (<stat>)"),
    E("da_price_forecast_mae", EUR_MWH, "Mean absolute error of the D-1 price forecast.",
      label="DA price forecast error"),
    E("imbalance_price_eur_mwh.<stat>", EUR_MWH, "Imbalance price for short parties.",
      label="imbalance price (<stat>)"),
    # --- imbalance ---
    E("imbalance.system_abs_mwh", MWH, "Absolute system imbalance before TSO activations.",
      label="system imbalance"),
    E("imbalance.activated_up_mwh", MWH, "Upward balancing energy activated by the TSO.",
      label="balancing up"),
    E("imbalance.activated_down_mwh", MWH, "Downward balancing energy activated.",
      label="balancing down"),
    E("imbalance.emergency_mwh", MWH, "Emergency assistance from outside (both directions).",
      label="emergency energy"),
    E("imbalance.by_party_abs_mwh.<party>", MWH, "Absolute imbalance of one balance "
      "responsible party.", label="imbalance of <party>"),
    # --- congestion ---
    E("congestion.mtu_locations", "count", "MTUs times grid locations (the denominator).",
      count=True),
    E("congestion.<light>", "count", "MTU-locations by traffic light (green, yellow, red, "
      "black).", label="<light> MTU-locations", count=True),
    E("congestion.forecast_violations", "count", "MTU-locations the D-1 forecast violated.",
      label="forecast violations", count=True),
    E("congestion.forecast_violations_after_markets", "count", "... still violated after the "
      "flexibility markets.", label="forecast violations after markets", count=True),
    E("congestion.real_violations_before_dso", "count", "MTU-locations violated in real time "
      "before the DSO's RED actions.", label="real violations before DSO", count=True),
    E("congestion.real_violations_remaining", "count", "... after them.",
      label="real violations remaining", count=True),
    E("congestion.overload_mwh", MWH, "Energy above the loading limits, summed over locations.",
      label="overload"),
    E("congestion.max_loading", "share", "Highest branch loading (1 = rating).",
      label="max loading"),
    E("congestion.v_min_pu", "p.u.", "Lowest bus voltage."),
    E("congestion.v_max_pu", "p.u.", "Highest bus voltage."),
    E("energy.demand_mwh", MWH, "Energy consumed in the system.", label="demand"),
    E("energy.max_abs_balance_residual_mw", MW, "Largest generation-demand mismatch (a check; "
      "0 up to round-off)."),
    E("ledger.exchange_max_abs_eur_per_mtu", EUR, "Largest net of the DA exchange in one MTU "
      "(a check: 0)."),
    E("ledger.rows", "count", "Ledger rows.", count=True),
    E("ledger.sum_eur", EUR, "Transmission: sum of all accounts' balances (a check: 0)."),
    # --- levels (grid.locations: levels) ---
    E("levels.<level>.locations", "count", "DSO locations at a voltage level (HV/MV "
      "substation, MV lines, MV/LV transformers, LV lines; per MV feeder), with "
      "grid.locations: levels.", label="locations at <level>", count=True),
    E("levels.<level>.<light>", "count", "MTU-locations of the level by traffic light (yellow, "
      "red, black).", label="<light> MTU-locations at <level>", count=True),
    E("levels.<level>.lfm_mwh", MWH, "Flexibility the DSO bought at the level's locations, "
      "where it sits (both directions, day-ahead and intraday rounds).",
      label="LFM volume at <level>"),
    E("levels.<level>.dso_cost_eur", EUR, "What the DSO paid at the level's locations (LFM and "
      "RED: compensation and direct control).", "+ paid by the DSO", "DSO cost at <level>"),
    E("levels.<level>.relieved_lfm_mwh", MWH, "Flexibility the DSO bought for the level: a "
      "purchase tagged at the locations it relieves, those on its buses' paths to the "
      "substation (its own included) violated at its MTU (forecast, or real time before the "
      "DSO acted), split evenly, else its own (LV flexibility for an overloaded transformer "
      "counts at MV/LV).", label="LFM volume for <level>"),
    E("levels.<level>.relieved_dso_cost_eur", EUR, "What the DSO paid for the level, tagged "
      "as relieved_lfm_mwh (RED payments, without an MTU: by the locations violated at any "
      "time of the run).", "+ paid by the DSO", "DSO cost for <level>"),
    E("levels.<level>.load_to_shed_mwh", MWH, "Grid violations left in real time at the "
      "level's locations, as the least load to shed (or injection to curtail) that restores "
      "them (the levels sum to load_to_shed_mwh): what the markets did not relieve there.",
      label="load to shed at <level>"),
    E("levels.dso_cost_unlocated_eur", EUR, "The rest of the DSO's flexibility cost, tied to no "
      "location (availability payments, real-time DER activations).", "+ paid by the DSO",
      "DSO cost without a location"),
    # --- region and national (markets.dayahead.wholesale.kind: national | exogenous) ---
    E("region.cost_of_supply_eur", EUR, "A price-taking region's cost of supply: what its "
      "accounts (households, suppliers, aggregators, its own plants, the DSO, the LEMO) paid, "
      "net, to every account outside it (exchanges, TSO, national plants and load, fuel and "
      "wear to external), plus its undelivered energy services and grid violations at the "
      "value of lost load. Payments among its own accounts cancel.",
      label="region's cost of supply"),
    E("region.paid_outside_eur", EUR, "The paid part of the cost of supply (without unserved "
      "and violations).", "+ paid by the region", "region's net payments outside"),
    E("region.paid_outside_by_market_eur.<market>", EUR, "The same per ledger market.",
      "+ paid by the region", "region's net payments outside: <market>"),
    E("region.unserved_eur", EUR, "Energy services the region left undelivered, at the value "
      "of lost load.", label="region's unserved energy"),
    E("region.violation_eur", EUR, "Grid violations left in the region's grid, as the least "
      "load to shed, at the value of lost load.", label="region's violations"),
    E("region.net_import_mwh", MWH, "The region's metered net consumption from outside (its "
      "suppliers', aggregators' and plants' realised positions).", "+ imported, - exported",
      "region's net import"),
    E("region.cost_per_mwh_imported_eur", EUR_MWH, "Cost of supply per MWh imported (null "
      "when the region exports on net).", label="region's cost per MWh imported"),
    E("region.consumption_mwh", MWH, "The region's households' consumption before their PV.",
      label="region's consumption"),
    E("region.imbalance_abs_mwh", MWH, "Absolute imbalance of the region's parties summed "
      "over MTUs.", label="region's imbalance"),
    E("region.dso_cost_eur", EUR, "The region's DSO's flexibility cost (= "
      "flexibility.dso_cost.total_eur).", "+ paid by the DSO", "region's DSO cost"),
    E("national.fuel_eur", EUR, "Fuel of the national plants (or the exchange) the region "
      "takes its price from; with regions under transmission nodes, of the transmission "
      "producers.", label="national fuel"),
    E("national.load_mwh", MWH, "The national load (system_load) over the run; with regions, "
      "the zones' load with the regions' day-ahead net positions.", label="national load"),
    E("national.imbalance_abs_mwh", MWH, "Absolute imbalance of the national parties (the "
      "national load's forecast errors); with regions, of the zones (their loads' and "
      "renewables' errors and the regions' deviations).", label="national imbalance"),
    # --- flexibility ---
    E("flexibility.curtailed_mwh", MWH, "Energy curtailed by the DSO in RED.",
      label="curtailed energy"),
    E("flexibility.dso_cost.<market>_eur", EUR, "What the DSO paid in a market (lfm_da, lfm_id, "
      "lfm_realtime: its real-time DER use, reservation: availability, red_compensation: "
      "curtailment, direct_control: contracted devices it steered in RED).",
      "+ paid by the DSO", "DSO cost: <market>"),
    E("flexibility.dso_cost.implicit_tariff_revenue_eur", EUR, "Locational tariff revenue "
      "(implicit LFM).", "+ received by the DSO"),
    E("flexibility.dso_cost.total_eur", EUR, "All the DSO paid for flexibility and RED.",
      "+ paid", "DSO flexibility cost"),
    E("flexibility.volumes.<stage>_<buyer>_<dir>_mwh", MWH, "Flexibility bought per stage (da, "
      "id), buyer (dso, platform, tso_held) and direction (up: less consumption / more "
      "injection).", label="flexibility <stage> <buyer> <dir>"),
    E("flexibility.<market>_avg_price_eur_mwh", EUR_MWH, "Volume-weighted price of a "
      "flexibility market (lfm_da, lfm_id, platform); null without trades.",
      label="<market> average price"),
    E("flexibility.double_sold_mwh", MWH, "Flexibility sold to the DSO and the platform at once "
      "(no coupling).", label="double-sold flexibility"),
    E("flexibility.counteracting_mwh", MWH, "Platform trades against the DSO's purchases.",
      label="counteracting trades"),
    # --- settlement ---
    E("settlement.brps.<brp>.imbalance_abs_mwh", MWH, "A supplier's absolute imbalance.",
      label="imbalance of <brp>"),
    E("settlement.brps.<brp>.imbalance_cost_eur", EUR, "What it paid for imbalance.",
      "+ paid", "imbalance cost of <brp>"),
    E("settlement.brps.<brp>.compensation_received_eur", EUR, "Compensation from independent "
      "aggregators for energy moved out of its perimeter.", RECEIVED,
      "compensation received by <brp>"),
    E("settlement.brps.<brp>.sourcing_cost_eur", EUR, "Net cost of its energy (DA, intraday, "
      "imbalance, platform, compensation).", "+ paid", "sourcing cost of <brp>"),
    E("settlement.aggregators.<agg>.by_market_eur.<market>", EUR, "An aggregator's net receipts "
      "per ledger market.", RECEIVED, "<agg> in <market>"),
    E("settlement.aggregators.<agg>.compensation_paid_eur", EUR, "Compensation it paid "
      "suppliers.", "+ paid", "compensation paid by <agg>"),
    E("settlement.aggregators.<agg>.margin_eur", EUR, "Its margin after compensation.",
      RECEIVED, "margin of <agg>"),
    E("settlement.tso_balancing_cost_eur", EUR, "The TSO's net balancing cost.", "+ paid",
      "TSO balancing cost"),
    E("settlement.tso_imbalance_revenue_eur", EUR, "The TSO's imbalance revenue.", RECEIVED,
      "TSO imbalance revenue"),
    E("settlement.der_balancing_<dir>_mwh", MWH, "DER balancing energy for the TSO (up, down).",
      label="DER balancing <dir>"),
    E("settlement.der_dso_realtime_mwh", MWH, "DER activated by the DSO in real time."),
    E("settlement.counteracting_tso_dso_mwh", MWH, "TSO activations that pushed a distribution "
      "limit."),
    E("settlement.realtime_<who>_cost_eur", EUR, "Real-time procurement cost of the TSO-DSO "
      "scheme (tso, dso, procurement).", "+ paid"),
    # --- planner ---
    E("planner.welfare_eur", EUR, "The planner's welfare (value of served energy less cost)."),
    E("planner.grid_constraints_added", "count", "Grid constraints the planner added.",
      count=True),
    E("planner.max_rounds", "count", "Most constraint rounds of a planner day.", count=True),
    E("timing.wall_s", "s", "Wall time of the simulation.", label="wall time"),
    E("timing.solver_s", "s", "Time in LP solvers.", label="solver time"),
    E("timing.planner_s", "s", "Time in the planner.", label="planner time"),
    E("timing.max_rss_mb", "MB", "Peak memory.", label="peak memory"),
    # --- transmission ---
    E("redispatch.mwh", MWH, "Transmission: energy redispatched upward (= downward).",
      label="redispatch"),
    E("redispatch.cost_eur", EUR, "Transmission: the grid operator's redispatch cost.",
      "+ paid by the grid operator", "redispatch cost"),
    # --- zones and the regional balance place (issue 20; only with `zones`) ---
    E("regional.sharing", "", "Transmission with zones: the regional balance place's sharing "
      "option (balancing.sharing: none, imbalance_netting, common_merit_order)."),
    E("regional.zones.<zone>.tso", "", "The zone's TSO."),
    E("regional.zones.<zone>.da_price_eur_mwh.<stat>", EUR_MWH, "The zone's coupled day-ahead "
      "price over the periods (mean, min, max).", label="day-ahead price of <zone>"),
    E("regional.zones.<zone>.load_mwh", MWH, "The zone's forecast load (what the day-ahead "
      "market cleared)."),
    E("regional.zones.<zone>.net_import_mwh", MWH, "Day-ahead exchange into the zone over "
      "its interconnectors.", "+ imported, - exported"),
    E("regional.zones.<zone>.short_mwh", MWH, "Real-time shortage (load above forecast, "
      "renewables below schedule), summed over periods where the zone was short."),
    E("regional.zones.<zone>.long_mwh", MWH, "Real-time surplus, summed over periods where "
      "the zone was long."),
    E("regional.zones.<zone>.redispatch_cost_eur", EUR, "The zone's TSO's redispatch cost "
      "(its own lines, its own zone's producers).", "+ paid"),
    E("regional.zones.<zone>.emergency_mwh", MWH, "Emergency energy (beyond every balancing "
      "offer the sharing option could reach) in either direction."),
    E("regional.interconnectors.<ic>.from", "", "Zone at the interconnector's from end."),
    E("regional.interconnectors.<ic>.to", "", "Zone at its to end."),
    E("regional.interconnectors.<ic>.limit_mw", MW, "NTC from -> to."),
    E("regional.interconnectors.<ic>.reverse_limit_mw", MW, "NTC to -> from."),
    E("regional.interconnectors.<ic>.flow_mwh", MWH, "Day-ahead exchange, net.",
      "+ from -> to"),
    E("regional.interconnectors.<ic>.flow_abs_mwh", MWH, "Day-ahead exchange in either "
      "direction."),
    E("regional.interconnectors.<ic>.hours_at_limit", "count", "Periods the day-ahead exchange "
      "reached the NTC in either direction (where zone prices can part).", count=True),
    E("regional.interconnectors.<ic>.congestion_rent_eur", EUR, "(price of to - price of "
      "from) x flow, summed: what the exchange collects from the price difference and pays "
      "the border's TSOs, half each (ledger market congestion_rent).", "+ received by the TSOs",
      "congestion rent of <ic>"),
    E("regional.interconnectors.<ic>.balancing_exchange_mwh", MWH, "Balancing energy the "
      "regional place sent over the interconnector, either direction (within the headroom "
      "the day-ahead exchange left)."),
    E("regional.congestion_rent_eur", EUR, "Congestion rent of all interconnectors.",
      "+ received by the TSOs", "congestion rent"),
    E("regional.imbalance_mwh", MWH, "Zones' real-time imbalances, |MW| x h summed over zones "
      "and periods."),
    E("regional.balancing.alone_eur", EUR, "What the TSOs' balancing would have cost with each "
      "balancing its own zone from its own merit order (activations and emergency energy; "
      "down activations earn the TSO their price).", "+ paid", "balancing cost alone"),
    E("regional.balancing.shared_eur", EUR, "What it cost under the sharing option (the "
      "settlements between TSOs cancel in the sum).", "+ paid", "balancing cost shared"),
    E("regional.balancing.value_eur", EUR, "Value of sharing: alone_eur - shared_eur.",
      "+ sharing saved", "value of sharing"),
    E("regional.balancing.periods_with_value", "count", "Periods in which sharing saved "
      "money.", count=True),
    E("regional.balancing.max_period_value_eur", EUR, "The largest saving of one period."),
    E("regional.balancing.by_tso.<tso>.alone_eur", EUR, "The TSO's balancing cost alone.",
      "+ paid"),
    E("regional.balancing.by_tso.<tso>.shared_eur", EUR, "Its cost shared: its activations "
      "plus what it paid other TSOs for energy they sent it (ledger market "
      "regional_balancing, settled at the mean of the two TSOs' marginal prices alone).",
      "+ paid"),
    E("regional.balancing.by_tso.<tso>.value_eur", EUR, "alone_eur - shared_eur.",
      "+ sharing saved it money", "value of sharing to <tso>"),
    E("regional.balancing.by_tso.<tso>.settlement_eur", EUR, "Net paid to other TSOs for "
      "balancing energy exchanged.", "+ paid, - received"),
    E("regional.balancing.by_tso.<tso>.congestion_rent_eur", EUR, "Its half of the "
      "congestion rent of each of its interconnectors.", "+ received"),
    # --- local electricity market (issue 21; only with markets.lem.enabled) ---
    E("lem.traded_mwh", MWH, "Energy households bought from peers on the LEM and settled "
      "(after RED/BLACK cancellations), each MWh counted once.", "", "LEM volume"),
    E("lem.matched_mwh", MWH, "Energy matched D-1, before RED/BLACK cancellations."),
    E("lem.mean_price_eur_mwh", EUR_MWH, "Volume-weighted mean price of the settled trades "
      "(null: none).", label="LEM price"),
    E("lem.price_sd_eur_mwh", EUR_MWH, "Volume-weighted standard deviation of the area-MTU "
      "prices around the mean: the price spread across areas and MTUs (null: no trade).",
      label="LEM price spread"),
    E("lem.self_consumption_share", "share", "Households' consumption covered by their own "
      "generation behind the meter or by energy bought from peers of their area (up to what "
      "they imported), over their consumption (grid import plus own generation used).",
      label="self-consumption incl. peers"),
    E("lem.self_consumption_share_without_lem", "share", "The same without the peers' part: "
      "own generation used behind the meter over consumption (what it is with the LEM off, "
      "which moves no device).", label="self-consumption, own only"),
    E("lem.lemo_fee_revenue_eur", EUR, "Fees the LEM operator collected (ledger market "
      "lem_fee).", "+ received by the LEMO", "LEMO fees"),
    E("lem.tariff_revenue_shifted_eur", EUR, "Network tariff the DSO did not collect because "
      "energy came from peers: (full - local tariff) x MWh at the local tariff.",
      "+ lost by the DSO", "tariff revenue shifted"),
    E("lem.battery_shift_mwh", MWH, "Home battery energy the managers moved for the LEM "
      "(markets.lem.hems_battery; 0 without): their D-1 plan minus the self-consumption rule on "
      "the same forecast, summed as |MW| x h over households and MTUs.",
      label="battery shifted for the LEM"),
    E("lem.paused_mtu_locations", "count", "Grid MTU-locations where YELLOW paused the LEM "
      "(explicit LFM).", count=True),
    E("lem.congested_mtu_locations", "count", "MTU-locations whose traffic light was YELLOW, "
      "RED or BLACK in the run with the LEM (real time; congestion_before/after give the D-1 "
      "effect of the LEM's battery re-plan).", count=True),
    E("lem.congestion_before_mtu_locations", "count", "MTU-locations the DSO's D-1 check flags "
      "(YELLOW) on the plans before the LEM: home batteries on the self-consumption rule, the "
      "same forecast and aggregator plans (grid.forecast_violated_before_lem). Without "
      "markets.lem.hems_battery the LEM moves no device and it equals the after count.",
      count=True, label="D-1 congestion before the LEM"),
    E("lem.congestion_after_mtu_locations", "count", "The same check on the plans after the "
      "managers re-planned their batteries for the LEM, which the day-ahead market trades "
      "(grid.forecast_violated).", count=True, label="D-1 congestion after the LEM"),
    E("lem.forecast_max_loading_before", "share", "Highest forecast branch loading of the run "
      "in that check before the LEM."),
    E("lem.forecast_max_loading_after", "share", "... after the LEM (grid.forecast_max_loading)."),
    E("welfare_loss_vs_planner_eur", EUR, "Transmission: extra fuel over the optimum "
      "(system_cost_eur - planner_system_cost_eur)."),
    E("eur_by_class.<class>", EUR, "Transmission: net receipts per class.", RECEIVED),
    E("eur_by_account.<account>", EUR, "Transmission: net receipts per account.", RECEIVED),
    E("twin.truthful_in_twin", "", "Producers bidding truthfully in the twin."),
    E("twin.gaming_profit_eur.<producer>", EUR, "A strategic producer's profit over its "
      "truthful twin (same seed).", "+ it gained", "gaming profit of <producer>"),
    E("twin.other_producers_profit_change_eur.<producer>", EUR, "Profit change of a producer "
      "that was not made truthful (not gaming profit).", "+ it gained"),
    E("twin.by_class_eur.<class>", EUR, "Change of a class's net receipts.", "+ it gained"),
    E("twin.grid_operator_extra_cost_eur", EUR, "Change of the redispatch bill.", "+ more paid"),
    E("twin.consumer_bill_change_eur", EUR, "Change of what consumers pay (DA and network "
      "charge).", "+ they pay more"),
    E("twin.welfare_lost_eur", EUR, "Extra fuel burnt (loads are inelastic).", "+ lost"),
    E("twin", "", "null: nobody strategic, no twin was run."),
    *TIERS,
]

@lru_cache(maxsize=4096)
def entry(name: str) -> Entry | None:
    """The entry documenting a summary path ("welfare_eur.total") or a table column
    ("series.da_price"); None if none does."""
    for e in (*SUMMARY, *TABLES):
        if e.name == name:
            return e
    for e in (*SUMMARY, *TABLES):
        if e.pattern.match(name):
            return e
    return None


def label(name: str, with_unit: bool = True) -> str:
    """A readable label: the entry's, its placeholders filled from `name`, with the unit."""
    e = entry(name)
    short = name.split(".")[-1]
    if e is None:
        return short.replace("_", " ")
    text = e.label or _words(short)
    m = e.pattern.match(name)
    if m and "<" in text:
        parts = dict(zip(re.findall(r"<([^>]+)>", e.name), _fills(e, name), strict=False))
        text = re.sub(r"<([^>]+)>", lambda g: parts.get(g.group(1), g.group(0)), text)
    unit = e.unit if e.unit not in ("", "count", "index", "code", "bool") else ""
    return f"{text} ({unit})" if with_unit and unit else text


def _fills(e: Entry, name: str) -> list[str]:
    rx = "^" + re.sub(r"<[^>]+>", r"([^.]+?)", re.escape(e.name).replace(r"\<", "<")
                      .replace(r"\>", ">")) + "$"
    m = re.match(rx, name)
    return [g.replace("_", " ") for g in m.groups()] if m else []


def _words(short: str) -> str:
    for suffix in ("_eur_mwh", "_eur", "_mwh", "_mw", "_pu", "_s"):
        if short.endswith(suffix):
            short = short[: -len(suffix)]
            break
    return short.replace("_", " ")


def is_count(name: str) -> bool:
    e = entry(name)
    return bool(e and e.count)


def undocumented(summary: dict, tables: dict) -> list[str]:
    """Summary paths and table columns of a run that no entry covers."""
    out = [p for p in _leaves(summary) if entry(p) is None]
    out += [f"{t}.{c}" for t, df in tables.items() for c in df.columns
            if entry(f"{t}.{c}") is None]
    return out


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        path = f"{prefix}{k}"
        if prefix.startswith("run.overrides."):
            out.append(prefix.rstrip(".") + ".<path>")
            break
        out += _leaves(v, path + ".") if isinstance(v, dict) and v else [path]
    return out


def markdown() -> str:
    """docs/outputs.md."""
    lines = ["# Outputs of a run: the data dictionary", "",
             "Generated from `experiments/dictionary.py` (`python -m experiments.dictionary > "
             "docs/outputs.md`); the tests check that every summary key and table column of a "
             "run is here. `<...>` stands for a name (an agent, a market, a class). Money: "
             "every ledger row says that `payer` pays `eur` to `payee`; a negative amount "
             "flows the other way. Energy signs are given per column.", ""]
    for title, entries in (("summary.json", SUMMARY), ("Tables (Parquet)", TABLES)):
        lines += [f"## {title}", "", "| name | unit | definition | sign |", "|---|---|---|---|"]
        lines += [f"| `{e.name}` | {e.unit} | {e.definition} | {e.sign} |" for e in entries]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")

"""The data dictionary's table columns (experiments/dictionary.py reads them with the summary
keys; docs/outputs.md is generated from both)."""

from __future__ import annotations

from experiments.dictionary_entry import EUR, EUR_MWH, MW, MWH, E, Entry

LIGHTS = "0 GREEN, 1 YELLOW (forecast violation), 2 RED (real violation), 3 BLACK"
TABLES: list[Entry] = [
    E("<table>.timestamp", "", "Start of the MTU (or period)."),
    E("<table>.mtu", "index", "MTU index from the first MTU of the run."),
    E("series.day", "index", "Delivery day (0-based)."),
    E("series.da_price", EUR_MWH, "Day-ahead price.", label="day-ahead"),
    E("series.da_price_forecast", EUR_MWH, "Aggregators' D-1 fundamental forecast.",
      label="day-ahead forecast (D-1)"),
    E("series.da_volume_mwh", MWH, "Energy traded day-ahead.", label="day-ahead"),
    E("series.da_curtailed_mwh", MWH, "Price-taking demand or must-run supply not cleared."),
    E("series.id_price", EUR_MWH, "Intraday price (NaN: no trade).", label="intraday"),
    E("series.id_volume_mwh", MWH, "Energy traded intraday.", label="intraday"),
    E("series.system_short_mw", MW, "System imbalance before TSO activations.", "+ short",
      "system short"),
    E("series.dso_imbalance_mwh", MWH, "Energy the DSO moved in real time (its perimeter).",
      "+ long"),
    E("series.activated_<dir>_mw", MW, "TSO balancing activations (up, down).",
      "both >= 0", "balancing <dir> (TSO)"),
    E("series.emergency_<dir>_mw", MW, "Emergency assistance (up, down).", "both >= 0",
      "emergency <dir>"),
    E("series.der_balancing_up_mw", MW, "DER activated for the TSO.", "+ up, - down"),
    E("series.der_dso_realtime_up_mw", MW, "DER activated by the DSO in real time.",
      "+ up, - down"),
    E("series.tso_dso_counteracting_mw", MW, "TSO activations pushing a distribution limit."),
    E("series.imbalance_price_<side>", EUR_MWH, "Imbalance price paid short / received long.",
      label="imbalance (<side>)"),
    E("series.generation_mw", MW, "Realised generation."),
    E("series.demand_mw", MW, "Realised consumption."),
    E("series.system_load_mw", MW, "Rest of the system's load."),
    E("series.prosumer_load_mw", MW, "Households' inflexible load."),
    E("series.pv_mw", MW, "Households' PV."), E("series.ev_mw", MW, "EV charging."),
    E("series.heat_pump_mw", MW, "Heat pumps."),
    E("series.battery_mw", MW, "Home batteries.", "+ charging, - discharging"),
    E("series.background_mw", MW, "Only with grid.background simbench: the grid's loads, "
      "generators and storages that are no household's, in the flows only (their energy is "
      "the national load's).", "+ consumption, - injection"),
    E("series.trafo_loading", "share", "Transformer loading (1 = rating)."),
    E("series.max_loading", "share", "Highest branch loading."),
    E("series.v_<end>_pu", "p.u.", "Lowest / highest bus voltage."),
    E("series.load_to_shed_mw", MW, "Least load to shed (or injection to curtail) that "
      "restores every violated grid limit in real time, counted once however many branches "
      "in series a violation overloads."),
    E("grid.location", "", "Grid location (the transformer or a feeder)."),
    E("grid.light", "code", f"Traffic light: {LIGHTS}."),
    E("grid.forecast_violated", "bool", "A limit violated in the D-1 forecast."),
    E("grid.forecast_violated_after_markets", "bool", "... still after the flexibility "
      "markets."),
    E("grid.real_violated_before_dso", "bool", "A limit violated in real time before the DSO's "
      "RED actions."),
    E("grid.real_violated", "bool", "... after them."),
    E("grid.forecast_max_loading", "share", "Highest forecast loading at the location."),
    E("grid.forecast_violated_before_lem", "bool", "Only with markets.lem.enabled: "
      "forecast_violated of the plans before the LEM's battery re-plan (home batteries on "
      "self-consumption; equal to forecast_violated without markets.lem.hems_battery)."),
    E("grid.forecast_max_loading_before_lem", "share", "Only with markets.lem.enabled: "
      "forecast_max_loading of those plans."),
    E("grid.max_loading", "share", "Highest realised loading at the location."),
    E("grid.v_<end>_pu", "p.u.", "Lowest / highest voltage at the location."),
    E("grid.overload_mw", MW, "Flow above the limit (the worst branch of the location)."),
    E("grid.load_to_shed_mw", MW, "The least load to shed, by the location of the bus where it "
      "is taken (sums to series.load_to_shed_mw)."),
    E("positions.party", "", "Balance responsible party."), E("positions.class", "",
                                                             "Its agent class."),
    E("positions.position_mwh", MWH, "Market position.", "+ bought, - sold"),
    E("positions.realised_mwh", MWH, "Metered net consumption.", "+ consumed, - produced"),
    E("positions.perimeter_correction_mwh", MWH, "Correction of the perimeter for others' "
      "activations."),
    E("positions.activated_mwh", MWH, "Activations sold from its own perimeter.", "+ up"),
    E("positions.balancing_mwh", MWH, "Balancing energy the TSO activated from a producer.",
      "+ up (more output), - down"),
    E("positions.imbalance_mwh", MWH, "Position less activations less consumption.",
      "+ long (pays nothing, receives the long price), - short"),
    E("aggregators.aggregator", "", "Aggregator."),
    E("aggregators.baseline_mw", MW, "Declared baseline.", "+ consumption"),
    E("aggregators.schedule_mw", MW, "Planned net consumption of its devices."),
    E("aggregators.<dir>_mw", MW, "Flexibility it could offer (up, down).", "both >= 0"),
    E("aggregators.missed_mw", MW, "Committed flexibility not delivered."),
    E("aggregators.battery_throughput_mwh", MWH, "Energy through its batteries (charge plus "
      "discharge), what battery wear is paid on."),
    E("flex.stage", "", "Flexibility round: da (D-1) or id (intraday)."),
    E("flex.location", "", "Grid location."),
    E("flex.<buyer>_<dir>_mw", MW, "Flexibility bought by the DSO (LFM), the platform (BRPs) "
      "or held for the TSO, up or down.", "both >= 0", "<buyer> <dir>"),
    E("flex.lfm_price_<dir>", EUR_MWH, "LFM price at the location (NaN: nothing priced).",
      label="LFM price <dir>"),
    E("flex.platform_price", EUR_MWH, "Platform price."),
    E("flex.double_sold_mw", MW, "Sold twice (no coupling)."),
    E("flex.counteracting_mw", MW, "Platform trades against the DSO."),
    E("days.day", "index", "Delivery day."),
    E("days.curtailed_mwh", MWH, "RED curtailment of the day."),
    E("days.balancing_unresolved_mw", MW, "Real-time excess over limits no scheme resolved."),
    E("days.balancing_<who>", EUR, "Real-time procurement of the day (tso, dso, procurement).",
      "+ paid"),
    E("days.<stage>_rounds", "count", "Flexibility rounds of the day.", count=True),
    E("days.<stage>_unresolved_mw", MW, "Excess over limits left after the rounds."),
    E("days.<stage>_refused_mw", MW, "Trades refused for worsening a violation."),
    E("lem_areas.area", "index", "LEM area (markets.lem.scope: feeder, transformer area or "
      "region), numbered from 0."),
    E("lem_areas.matched_mwh", MWH, "Bought from peers in the area, matched D-1."),
    E("lem_areas.traded_mwh", MWH, "Bought from peers in the area, settled."),
    E("lem_areas.traded_eur", EUR, "What buyers paid sellers for it (before fees)."),
    E("lem_areas.consumption_mwh", MWH, "Households' grid import plus own generation used."),
    E("lem_areas.own_generation_mwh", MWH, "Own generation used behind the meter."),
    E("lem_areas.peer_supply_mwh", MWH, "Grid import that came from peers (paid the local "
      "tariff)."),
    E("lem_areas.paused_locations", "count", "Grid locations of the area where YELLOW paused the "
      "LEM.", count=True),
    E("lem_areas.battery_shift_mwh", MWH, "Only with markets.lem.hems_battery: the area's home "
      "batteries' D-1 plan minus the self-consumption rule on the same forecast, |MW| x h."),
    E("ledger.payer", "", "Account that pays."), E("ledger.payee", "", "Account paid."),
    E("ledger.market", "", "Market or payment kind (dayahead, intraday, lfm_da, lfm_id, "
      "platform, balancing, imbalance, compensation, retail, feed_in, fuel, lem, lem_fee, "
      "lem_grid_price, network_tariff, network_tariff_local; transmission: day_ahead, "
      "redispatch_inc, redispatch_dec, network_charge, fuel, congestion_rent, balancing_up, "
      "balancing_down, balancing_emergency, regional_balancing, balancing_charge, ...)."),
    E("ledger.mwh", MWH, "Energy of the payment.", "with eur: a negative row flows the other way "
      "(compensation: the supplier pays an aggregator that moved consumption above the "
      "baseline)"),
    E("ledger.price_eur_mwh", EUR_MWH, "Price of the row."),
    E("ledger.eur", EUR, "mwh x price, paid by payer to payee.", "negative: payee pays payer"),
    E("periods.step", "index", "Transmission: period index over the run."),
    E("periods.episode", "index", "Transmission: episode."),
    E("periods.period", "index", "Transmission: period within the episode (hours from start)."),
    E("periods.da_price_eur_mwh", EUR_MWH, "Transmission: zonal day-ahead price (with several "
      "zones: their prices weighted by their loads; each zone's in zones)."),
    E("periods.load_mw", MW, "Transmission: inelastic demand."),
    E("periods.redispatch_mw", MW, "Transmission: upward redispatch."),
    E("periods.redispatch_cost_eur", EUR, "Transmission: redispatch cost.", "+ paid"),
    E("periods.fuel_eur", EUR, "Transmission: fuel burnt."),
    E("periods.flow_da_<line>_mw", MW, "Transmission: flow of the DA dispatch.", "+ from -> to"),
    E("periods.redispatch_price_<node>_eur_mwh", EUR_MWH, "Transmission: nodal price of the "
      "redispatch LP (NaN: none needed)."),
    E("producers.step", "index", "Transmission: period index over the run."),
    E("producers.episode", "index", "Transmission: episode."),
    E("producers.period", "index", "Transmission: period within the episode."),
    E("producers.producer", "", "Transmission: producer."),
    E("producers.da_mw", MW, "Transmission: sold day-ahead."),
    E("producers.inc_mw", MW, "Transmission: redispatched up (paid the inc price)."),
    E("producers.dec_mw", MW, "Transmission: redispatched down (pays the dec price)."),
    E("producers.final_mw", MW, "Transmission: output after redispatch (with zones: as "
      "delivered in real time, renewables' forecast errors and balancing included)."),
    E("producers.inc_price_eur_mwh", EUR_MWH, "Transmission: inc price (bid or cleared)."),
    E("producers.dec_price_eur_mwh", EUR_MWH, "Transmission: dec price."),
    E("producers.markup_eur_mwh", EUR_MWH, "Transmission: a learner's markup (NaN: none)."),
    E("zones.step", "index", "Transmission with zones: period index over the run."),
    E("zones.episode", "index", "Episode."), E("zones.period", "index", "Period in the episode."),
    E("zones.zone", "", "Bidding zone."), E("zones.tso", "", "Its TSO."),
    E("zones.da_price_eur_mwh", EUR_MWH, "The zone's coupled day-ahead price."),
    E("zones.load_mw", MW, "Forecast load."), E("zones.real_load_mw", MW, "Load in real time."),
    E("zones.net_import_mw", MW, "Day-ahead exchange into the zone.", "+ imported"),
    E("zones.imbalance_mw", MW, "Real-time imbalance: load above forecast plus renewables "
      "below schedule.", "+ short, - long"),
    E("zones.redispatch_cost_eur", EUR, "The zone's TSO's redispatch cost.", "+ paid"),
    E("zones.balancing_alone_eur", EUR, "Balancing cost had the TSO balanced alone.", "+ paid"),
    E("zones.balancing_activation_eur", EUR, "Cost of the activations in the zone under the "
      "sharing option (emergency energy included).", "+ paid"),
    E("zones.balancing_settlement_eur", EUR, "Paid to other TSOs for balancing energy.",
      "+ paid, - received"),
    E("zones.balancing_shared_eur", EUR, "activation + settlement: the TSO's cost shared, "
      "charged to the zone's loads (ledger market balancing_charge).", "+ paid"),
    E("zones.sharing_value_eur", EUR, "alone - shared.", "+ sharing saved"),
    E("zones.emergency_mw", MW, "Emergency energy.", "+ up, - down"),
    E("interconnectors.step", "index", "Transmission with zones: period index over the run."),
    E("interconnectors.episode", "index", "Episode."),
    E("interconnectors.period", "index", "Period in the episode."),
    E("interconnectors.interconnector", "", "Interconnector name (default from-to)."),
    E("interconnectors.from_zone", "", "Zone at its from end."),
    E("interconnectors.to_zone", "", "Zone at its to end."),
    E("interconnectors.flow_da_mw", MW, "Day-ahead exchange.", "+ from -> to"),
    E("interconnectors.limit_mw", MW, "NTC from -> to."),
    E("interconnectors.reverse_limit_mw", MW, "NTC to -> from."),
    E("interconnectors.price_spread_eur_mwh", EUR_MWH, "Price of to minus price of from."),
    E("interconnectors.congestion_rent_eur", EUR, "price spread x flow, paid by the exchange "
      "to the two TSOs, half each."),
    E("interconnectors.balancing_flow_mw", MW, "Balancing energy exchanged by the regional "
      "place.", "+ from -> to"),
    E("interconnectors.balancing_price_eur_mwh", EUR_MWH, "Its settlement price between the "
      "TSOs (the importer pays the exporter)."),
]

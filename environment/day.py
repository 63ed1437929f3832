"""The typed day: what each gate of a delivery day publishes for the gates after it.

`DayContext` declares every field a gate may set (slots: an undeclared one raises), so a
reader finds here what exists at which point of the day; `RealTime` is what the real-time gate
leaves for settlement and recording; `DayResult` is what an agent learns of its own day."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents.prosumer import DayProfiles, Envelope
from environment.markets.balancing import Activation, BalancingOffers
from environment.markets.orders import Clearing


@dataclass(slots=True)
class DayContext:
    """Everything the agents see of one delivery day; forecasts are filled before the auction,
    realised values after. A field left None is one no gate has published yet."""

    # opened with the day (`FlexMarketModel.open_day`)
    day: int
    mtu0: int                                        # first MTU of the day in the run
    n_mtu: int
    dt_h: float
    price_floor: float                               # day-ahead price floor and cap
    price_cap: float
    errors: dict                                     # forecast errors drawn for the day
    profiles: DayProfiles                            # realised profiles, MW per prosumer
    forecast: DayProfiles                            # their D-1 forecast
    ev_env: Envelope                                 # EVs' energy envelopes
    hp_env_forecast: Envelope                        # heat pumps', from the forecast
    retail_net_forecast: np.ndarray                  # (N, T) forecast metered consumption
    soc_start: np.ndarray                            # (N,) states of charge at the start
    ledger_mark: int                                 # ledger rows before the day
    position: np.ndarray                             # (parties, T) MW bought (+) or sold
    id_price: np.ndarray                             # (T,) intraday price (NaN: no trade)
    id_volume: np.ndarray                            # (T,) intraday MWh traded
    dso_bought: np.ndarray                           # (T, K) extra consumption bought by DSO
    # D-1 morning: the aggregators' plans (`dayahead.plan_day`)
    price_forecast: np.ndarray = field(default=None)  # (T,) fundamental DA price forecast
    adders: np.ndarray = field(default=None)         # (T, K) locational tariffs (implicit LFM)
    # D-1 gate closure: the day-ahead auction
    da_clearing: Clearing = field(default=None)
    da_price: np.ndarray = field(default=None)       # (T,)
    # D-1 afternoon: DSO validation and the flexibility rounds
    da_flags: dict = field(default=None)             # (T, K) flags of the D-1 schedules
    yellow: np.ndarray = field(default=None)         # (T, K) day-ahead YELLOW regime
    lfm_excluded: frozenset = frozenset()            # aggregators kept out of the day's LFM
    flex_stage: str = "da"                           # flexibility round being priced
    dso_sold: dict = field(default_factory=dict)     # aggregator id -> (T, K, up/down) MW the
                                                     # DSO bought from it in the LFM
    tso_offers: dict = field(default_factory=dict)   # aggregator id -> FlexOffers held for TSO
    round_stats: list = field(default_factory=list)  # per flexibility round: its figures
    lem: object = field(default=None)                # `lemstage.LemDay` (None: no LEM)
    retail_net_before_lem: np.ndarray = field(default=None)  # (N, T) the forecast with home
                                                     # batteries on self-consumption, before the
                                                     # LEM re-plan (`markets.lem.hems_battery`)
    lem_before_flags: dict = field(default=None)     # (T, K) flags of the D-1 schedules with
                                                     # those plans (= da_flags without re-plan)
    final_flags: dict = field(default=None)          # (T, K) flags after the markets
    interface_schedule: np.ndarray = field(default=None)  # (T,) agreed TSO-DSO exchange MW
    # real-time DER balancing (`balancingstage.der_balancing`)
    der_tso: np.ndarray = field(default=None)        # (parties, T) MW the TSO activated, + up
    der_dso: np.ndarray = field(default=None)        # (parties, T) MW the DSO activated
    der_price: np.ndarray = field(default=None)      # (T,) DER balancing price (NaN: none)
    counteracting: np.ndarray = field(default=None)  # (T, K) TSO and DSO moves that oppose
    dso_realtime_mw: np.ndarray = field(default=None)  # (T,) energy the DSO moved in corrected
                                                       # perimeters (it answers for it)
    balancing_cost: dict = field(default=None)       # EUR by buyer, and the MW left unresolved
    # real time (`realtime.realise`)
    retail_net: np.ndarray = field(default=None)     # (N, T) metered consumption, suppliers'
    planner_fixed: np.ndarray = field(default=None)  # (N, T) what the planner may not move
    realtime: RealTime = field(default=None)


@dataclass(slots=True)
class RealTime:
    """What the real-time gate leaves for settlement and recording (MW unless named)."""

    real: dict                      # device power per kind (N, T), after the DSO's actions
    prof: DayProfiles               # realised profiles after curtailment and disconnection
    before: np.ndarray              # (parties, T) metered before the DSO's RED actions
    realised: np.ndarray            # (parties, T) metered after them
    red: dict | None                # the DSO's RED/BLACK actions (None: not enabled)
    prosumer_net: np.ndarray        # (N, T) net consumption at the meter
    activated: np.ndarray           # (parties, T) DER activations counted as sold
    imbalance_mw: np.ndarray        # (parties, T) settled imbalance, + long
    dso_imbalance: np.ndarray       # (T,) the DSO's, for the energy it moved
    system_short: np.ndarray        # (T,) system imbalance before activations, + short
    offers: BalancingOffers         # producers' balancing offers
    act: Activation                 # producers' balancing activations
    price_short: np.ndarray         # (T,) imbalance prices
    price_long: np.ndarray
    balancing: np.ndarray           # (parties, T) producers' balancing energy, + up
    q_real: np.ndarray              # (T, B) reactive consumption
    flows: object                   # realised flows (`FlowResult`)
    flags: dict                     # (T, K) realised per-location flags
    light: np.ndarray               # (T, K) traffic light
    shed: object                    # least load to shed (`Shed`)


@dataclass(frozen=True)
class DayResult:
    """What an agent learns of its own day after settlement (for adaptive strategies)."""

    day: int
    eur_by_market: dict
    da_price: np.ndarray
    imbalance_price_short: np.ndarray
    imbalance_price_long: np.ndarray

    @property
    def profit_eur(self) -> float:
        return float(sum(self.eur_by_market.values()))

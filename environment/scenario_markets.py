"""Scenario schema, the markets' part: day-ahead, LFM, implicit LFM, intraday, platform, and
the coupling and TSO-DSO schemes that tie them together (`environment.scenario.Scenario`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from environment.scenario_common import Model as _Model
from environment.scenario_common import NonNeg, Positive, Share


class NationalPlant(_Model):
    """One technology of a national fleet (`Wholesale`): `capacity_per_mean_load` MW per MW of
    the national mean load (`system_load`), its marginal costs spread evenly from `cost_min` to
    `cost_max` over the wholesale's `blocks` (plants of one technology differ in efficiency,
    so the merit order rises within it); `profile` makes it weather-driven."""

    technology: str
    capacity_per_mean_load: Positive
    cost_min_eur_mwh: float
    cost_max_eur_mwh: float | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _rising(self) -> NationalPlant:
        if self.cost_max_eur_mwh is not None and self.cost_max_eur_mwh < self.cost_min_eur_mwh:
            raise ValueError(f"cost_max_eur_mwh {self.cost_max_eur_mwh} < cost_min_eur_mwh "
                             f"{self.cost_min_eur_mwh}")
        return self


class Wholesale(_Model):
    """Where the day-ahead price comes from (`environment.markets.wholesale_region`).

    * ``closed``: the scenario's `producers` and `system_load` are the whole system, sized to
      the modelled one: its own flexibility moves the price.
    * ``national``: the region is a price taker in a national merit order. `system_load` is
      the national load (set its `annual_mwh` to national scale), `fleet` is sized to its mean
      and split into `blocks` per technology; the scenario's `producers` stay, as the
      region's own plants, and the region's net load is added to the national load.
    * ``exogenous``: the price of each MTU is the user's series `prices` (the name of a `data`
      entry in EUR/MWh covering the run); an exchange buys and sells any volume at it."""

    kind: Literal["closed", "national", "exogenous"] = "closed"
    blocks: Annotated[int, Field(ge=1, le=100)] = 10
    fleet: list[NationalPlant] = []
    prices: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Wholesale:
        if self.kind == "national" and not self.fleet:
            raise ValueError("kind 'national' needs a `fleet` (the national plants)")
        if self.kind != "national" and self.fleet:
            raise ValueError(f"fleet: given with kind {self.kind!r}; only 'national' reads it")
        if (self.kind == "exogenous") != (self.prices is not None):
            raise ValueError(f"prices = {self.prices!r} with kind {self.kind!r}: the "
                             "'exogenous' kind, and only it, names its price series")
        return self


class DayAhead(_Model):
    """`tie_price`: the price when demand meets the supply curve exactly at a step, so that a
    whole interval of prices clears the market. `marginal_offer` (default) takes the lower end:
    with inelastic demand the price of the most expensive accepted offer, as the merit-order
    convention sets it and ASSUME's pay-as-clear clearing does; `midpoint` takes the middle of
    the interval. `wholesale`: a closed system (default), a national market the region takes
    its price from, or exogenous prices (`Wholesale`)."""

    clearing: str = "uniform_price"
    price_floor: float = -500.0
    price_cap: float = 4000.0
    tie_price: Literal["midpoint", "marginal_offer"] = "marginal_offer"
    wholesale: Wholesale = Wholesale()

    @model_validator(mode="after")
    def _floor_below_cap(self) -> DayAhead:
        if self.price_floor >= self.price_cap:
            raise ValueError(f"price_floor {self.price_floor} >= price_cap {self.price_cap}")
        return self


class Lfm(_Model):
    """Explicit local flexibility market: the DSO buys location-tagged flexibility, once after
    the day-ahead auction and (if `intraday`) again with day-D forecasts.

    Levers against gaming: `price_cap`; `reservation_eur_mw_h`, an availability payment per MW
    and hour: the day-ahead round then reserves capacity (weighing each offer at its ask plus
    the payment) and the intraday round activates from it only what the updated forecast needs;
    `publish_congestion`;
    `non_delivery_penalty_eur_mwh`, paid by an aggregator to the DSO per committed MWh it
    misses; `exclude_position_changers`, which keeps out of the day's flexibility rounds an
    aggregator whose D-1 plan at a forecast-congested MTU-location moved towards the congestion
    compared with a cost-based plan against the same prices (inc-dec gaming).

    After each round the DSO validates the re-planned schedules and buys again, up to `rounds`
    times, while the last round cut the forecast excess over the grid limits (MW summed over
    the tradable MTUs) by at least `min_relief` of it: flexibility whose rebound or
    non-delivery undoes what it sold is not bought again and again."""

    enabled: bool = True
    operator: Literal["dso", "independent"] = "dso"
    operator_fee_eur_mwh: NonNeg = 0.0
    pricing: Literal["pay_as_bid", "pay_as_clear"] = "pay_as_bid"
    price_cap: Positive | None = None
    reservation_eur_mw_h: NonNeg = 0.0
    publish_congestion: bool = True
    intraday: bool = True
    rounds: Annotated[int, Field(ge=0, le=10)] = 3
    min_relief: Annotated[float, Field(ge=0, le=1)] = 0.01
    unresolved_cost_eur_mwh: Positive = 5000.0
    non_delivery_penalty_eur_mwh: NonNeg = 0.0
    exclude_position_changers: bool = False

    @model_validator(mode="after")
    def _availability_needs_activation(self) -> Lfm:
        if self.reservation_eur_mw_h > 0 and not (self.enabled and self.intraday):
            raise ValueError(f"reservation_eur_mw_h = {self.reservation_eur_mw_h}: availability "
                             "bought at D-1 is activated in the intraday LFM, which is off "
                             f"(enabled = {self.enabled}, intraday = {self.intraday})")
        return self


class ImplicitLfm(_Model):
    """Locational grid tariffs in YELLOW that aggregators see when they schedule."""

    enabled: bool = False
    tariff_eur_mwh: NonNeg = 30.0
    iterations: Annotated[int, Field(ge=1, le=20)] = 5


class Intraday(_Model):
    """Periodic intraday auctions on day D: gate hour, lead time to the first traded MTU, and the
    share of the D-1 forecast error still left at each gate."""

    enabled: bool = True
    clearing: str = "uniform_price"
    gate_hours: list[Annotated[int, Field(ge=0, le=23)]] = [0, 6, 12, 18]
    lead_time_h: NonNeg = 1.0
    forecast_error_share: list[Share] = [0.6, 0.45, 0.3, 0.2]

    @model_validator(mode="after")
    def _sessions(self) -> Intraday:
        if len(self.gate_hours) != len(self.forecast_error_share):
            raise ValueError(f"gate_hours {self.gate_hours} and forecast_error_share "
                             f"{self.forecast_error_share} must have the same length")
        if any(b <= a for a, b in zip(self.gate_hours, self.gate_hours[1:], strict=False)):
            raise ValueError(f"gate_hours {self.gate_hours} must increase")
        return self


class Platform(_Model):
    """Market-oriented flexibility platform: BRPs buy flexibility from aggregators to cut
    their imbalance, paying up to their expected imbalance premium over the energy price."""

    enabled: bool = True
    brp_premium_eur_mwh: NonNeg = 30.0


class Lem(_Model):
    """PARITY's local electricity market (seed 003, D4.3 6.3.2-6.3.5; `environment.lemstage`):
    participating households trade their forecast surplus and deficit peer to peer, D-1,
    per LEM area (`scope`: `feeder`, `transformer` or `region`) and MTU.

    `clearing`: `double_auction` (uniform price per area and MTU) or `continuous` (pay-as-bid
    matching in a seeded random arrival order). `fee_eur_mwh`: the LEMO's fee per MWh traded,
    paid by each side (`fee_side: each`) or by the buyer or seller alone.
    `local_tariff_eur_mwh`: the network tariff a buyer pays on energy bought from peers instead
    of `dso.network_tariff_eur_mwh`. `participation`: share of households with a home energy
    manager on the platform. `strategy` (`hems` role, agents/strategies/hems.py) prices their
    orders. `red`: what happens to trades matched at an MTU-location that turns RED or BLACK in
    real time: `settle` them as matched, or `cancel` them (the other side of the area is cut
    back pro rata so that every area stays balanced). `hems_battery`: the managers re-plan
    their households' own home batteries (none an aggregator holds) against the expected local
    prices before the day-ahead market, and the batteries follow that plan in real time
    (environment/lem_batteries.py); off, the LEM moves no device."""

    enabled: bool = False
    clearing: Literal["double_auction", "continuous"] = "double_auction"
    scope: Literal["feeder", "transformer", "region"] = "feeder"
    fee_eur_mwh: NonNeg = 0.0
    fee_side: Literal["each", "buyer", "seller"] = "each"
    local_tariff_eur_mwh: NonNeg = 0.0
    participation: Share = 1.0
    strategy: str = "truthful"
    strategy_params: dict[str, float] = {}
    red: Literal["settle", "cancel"] = "settle"
    hems_battery: bool = False


class Markets(_Model):
    dayahead: DayAhead = DayAhead()
    coupling: str = "conditional"
    tso_dso_scheme: str = "centralized"
    lfm: Lfm = Lfm()
    implicit: ImplicitLfm = ImplicitLfm()
    intraday: Intraday = Intraday()
    platform: Platform = Platform()
    lem: Lem = Lem()

    @property
    def flex_price_cap(self) -> float:
        """What no flexibility bid is paid above, in the LFM and in real-time balancing with
        DER: the LFM's own cap, or the day-ahead market's (the harmonised maximum clearing
        price) where it has none."""
        return self.lfm.price_cap if self.lfm.price_cap is not None else self.dayahead.price_cap

"""Aggregators: pool prosumer flexibility into envelopes, schedule it, and dispatch set-points."""

from __future__ import annotations

import numpy as np

from agents.aggregator_baseline import Baselines
from agents.deliverable import OfferRound, each_mtu, kinds, location_boxes
from agents.party import Party
from agents.pool import Pool, least_laxity, members_by_mtu
from agents.strategies import agent_params, make_strategy
from environment.markets.baseline import History
from environment.markets.intraday import deviation_orders


def _kinds_of(agg, ctx, k: int) -> list[tuple]:
    """The device kinds of location k's pool around its current plan (`kinds`), kept in
    `agg._kinds` where it has one: every round and balancing block asks for them, and they
    change only with the pool (built each day) or the plan (a new dict on every re-plan),
    both compared by identity."""
    pool, plan = agg.pools[k], agg.plans[k]
    cache = getattr(agg, "_kinds", None)
    if cache is None:
        return kinds(pool, plan, ctx.dt_h)
    kept = cache.get(k)
    if kept is None or kept[0] is not pool or kept[1] is not plan:
        kept = cache[k] = (pool, plan, kinds(pool, plan, ctx.dt_h))
    return kept[2]


class Aggregator(Baselines, Party):
    """Pools the batteries, EVs and heat pumps of its contracted prosumers, one pool per grid
    location (so its flexibility can be offered with a location tag), and pays each prosumer a
    flexibility fee per device and day.

    Its balance perimeter depends on its `kind` (see `environment.scenario.Aggregator`): an
    `own_brp` aggregator is balance responsible for the devices it controls (sub-metered out of
    the supplier's perimeter) and sells them their energy at the retail price. An
    `independent` or `supplier` aggregator leaves the devices in the supplier's perimeter,
    declares a baseline per supplier before the day-ahead auction, and is responsible only for
    its deviations from it (when the perimeter is corrected)."""

    agent_class = "aggregators"

    def __init__(self, model, cfg, index: int):
        super().__init__(model)
        self.name = cfg.name
        self.index = index
        self.degradation = cfg.degradation_eur_mwh
        self.activation_cost = cfg.activation_cost_eur_mwh
        self.fee = cfg.fee_eur_per_device_day
        self.strategy = make_strategy("aggregator", cfg.strategy, **agent_params(
            "aggregator", cfg.strategy, cfg.strategy_params, model.run_seed, cfg.name))
        self.kind = cfg.kind
        self.supplier = cfg.supplier
        self.offers_balancing = cfg.balancing
        self.declared: np.ndarray | None = None   # (BRPs, T) baseline declared per supplier
        self.expected: dict[str, np.ndarray] = {}  # market -> (BRPs, T) its rule's, D-1
        self.settlement_baseline: np.ndarray | None = None  # (BRPs, T) its moves settled on
        self.history = History()
        self.real_by_brp: np.ndarray | None = None
        self.settled_by_brp: np.ndarray | None = None  # the reading compensation settles on
        self.pools: dict[int, Pool] = {}
        self.plans: dict[int, dict[str, np.ndarray]] = {}
        self.baseline: np.ndarray | None = None
        self.realised_net: np.ndarray | None = None
        self.version = 0  # bumped whenever the plans change, so set-points can be cached
        self._member_split: dict[int, tuple] = {}  # location -> (plan, EV and HP per member)
        self._masks: dict = {}
        self._layout: dict = {}  # (location, kind) -> (envelope, members' pmax, upper, lower)
        self._kinds: dict = {}   # location -> (pool, plan, its `kinds`) (`_kinds_of`)
        self.owed_kept = None    # (day-ahead prices, answers) of `compensation.owed`
        self.brp_share = None    # its members' shares per supplier (`compensation.owed`)
        self.split_loss_eur: dict[int, float] = {}  # day -> EUR (`_adopt`)

    @property
    def in_supplier_perimeter(self) -> bool:
        return self.kind != "own_brp"

    @property
    def corrected(self) -> bool:
        """Its deviations from the declared baseline are moved out of the suppliers'
        perimeters into its own (always inside a supplier's own firm)."""
        return self.kind == "supplier" or (
            self.kind == "independent" and self.model.config.settlement.corrects_perimeter)

    @property
    def trades_energy(self) -> bool:
        """Whether it has a balance perimeter of its own to trade energy against: without
        perimeter correction an independent aggregator sells services (LFM, balancing), not
        energy."""
        return self.kind == "own_brp" or self.corrected

    @property
    def members(self) -> np.ndarray:
        return self.model.fleet.aggregator == self.index

    def masks(self, location: int | None = None) -> dict[str, np.ndarray]:
        """Its members' enrolled devices (at one location), by kind. Contracts are fixed once
        the model is built, so each is computed once (read-only)."""
        kept = self._masks.get(location)
        if kept is None:
            f = self.model.fleet
            m = self.members
            if location is not None:
                m = m & (self.model.grid.bus_location[f.bus] == location)
            kept = self._masks[location] = {d: m & f.enrolled[d]
                                            for d in ("battery", "ev", "heat_pump")}
            for a in kept.values():
                a.flags.writeable = False
        return kept

    def build_pools(self, ctx) -> dict[int, Pool]:
        f = self.model.fleet
        locs = np.unique(self.model.grid.bus_location[f.bus[self.members]])
        self.pools = {}
        for k in locs:
            m = self.masks(int(k))
            b = m["battery"]
            eta = float(f.eta[b].mean()) if b.any() else 1.0
            ev, hp = ctx.ev_env.pooled(m["ev"]), ctx.hp_env_forecast.pooled(m["heat_pump"])
            ev.lower = np.minimum(ev.lower, ev.upper)
            hp.lower = np.minimum(hp.lower, hp.upper)
            self.pools[int(k)] = Pool(f.batt_mwh[b].sum(), f.batt_mw[b].sum(), f.soc[b].sum(),
                                      eta, ev, hp)
        return self.pools

    def schedule(self, ctx, supply, adders: np.ndarray | None = None) -> None:
        """D-1: plan every location's pool against the forecast merit order `supply` (a
        `SupplyCurve` with everybody else's demand fixed), plus the locational grid tariff
        (T, K) where the DSO set one (implicit LFM). It expects the day-ahead price its plan
        clears at (`prices`). EV and heat-pump plans are then split over the members, and the
        plan becomes what the members can do (`_adopt`)."""
        self.build_pools(ctx)
        self.n_mtu = t = len(supply.demand_mwh)
        self.supply, self.adders = self._within_reach(supply, ctx.dt_h), adders
        self.plans, self.prices = self.strategy.plan(self, ctx, self.pools, self.supply,
                                                     self._adders(adders))
        self.location_adders = {k: adders[:, k] if adders is not None else np.zeros(t)
                                for k in self.pools}
        self.baseline = self.pool_baseline(ctx)
        self.committed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.forgone: dict[int, np.ndarray] = {}  # location -> MW missed of replaced targets
        self.round_boxes = None  # location -> (up, down) MW of the open round
        shape = (self.model.grid.n_locations, t, 2)
        self.held = np.zeros(shape)       # held for the TSO (sequential coupling)
        self.reserved = np.zeros(shape)   # availability sold to the DSO at D-1
        self.reserved_price = np.zeros(shape)  # the activation price it asked for it
        self.withheld = np.zeros(shape)   # kept out of every market by its strategy
        self._adopt(ctx)
        self.version += 1

    def _within_reach(self, supply, dt_h: float):
        """The merit order trimmed to what its pools can move demand over (`near`): every
        plan and re-plan of the day stays within it, with fewer offers to clear against."""
        pools = self.pools.values()
        down = sum((p.battery_mw for p in pools), 0.0)
        up = sum((p.battery_mw + p.ev.pmax + p.hp.pmax for p in pools),
                 np.zeros(len(supply.demand_mwh)))
        return supply.near(-down * dt_h * np.ones_like(up), up * dt_h)

    def _adders(self, adders: np.ndarray | None) -> dict | None:
        return None if adders is None else {k: adders[:, k] for k in self.pools}

    def reference_net(self, ctx) -> dict[int, np.ndarray]:
        """Per location, the net plan a truthful aggregator would have made of the same pools
        against the same merit order and tariffs (the yardstick of inc-dec gaming)."""
        from agents.strategies.truthful import plan_pools

        plans, _ = plan_pools(self.pools, self.supply, ctx.dt_h, self.degradation,
                              self._adders(self.adders))
        return {k: self._net(self._split_plan(ctx, k, p)[0]) for k, p in plans.items()}

    def replan_supply(self, location: int):
        """The merit order a re-plan of one location faces: the D-1 one, with the aggregator's
        other locations at their current plans."""
        dt = self.model.calendar.mtu_hours
        others = sum((self._net(p) for k, p in self.plans.items() if k != location),
                     np.zeros(self.n_mtu))
        return self.supply.plus(others * dt)

    def commit(self, location: int, mtus: np.ndarray, target_mw: np.ndarray) -> None:
        """Flexibility sold at `location`: its net consumption at the masked MTUs is fixed to
        `target_mw` for the rest of the day (later re-plans keep every earlier commitment).
        A new target at an MTU replaces what the plan reached there; what the plan missed of
        the earlier one is kept in `forgone`, so that a miss stays counted (`missed_mw`). Only
        at MTUs already committed: elsewhere the plan's slack is against the grid headroom its
        re-plans keep to, not against anything sold."""
        fixed, target = self.committed.setdefault(
            location, (np.zeros(self.n_mtu, bool), np.zeros(self.n_mtu)))
        missed = self.plans[location]["missed"]
        self.forgone[location] = self.forgone.get(location, 0.0) + np.where(mtus & fixed, missed,
                                                                            0.0)
        target[mtus] = target_mw[mtus]
        fixed |= mtus

    def hold(self, offers) -> None:
        """Capacity held for the TSO is no longer offered to later buyers of the day."""
        d = np.where(offers.direction > 0, 0, 1)
        np.add.at(self.held, (offers.location, offers.mtu, d), offers.mw)

    def reserve(self, offers, mw: np.ndarray) -> None:
        """Availability sold to the DSO (`mw` of `offers`): kept for the DSO to activate at
        the offers' price in the intraday LFM, offered to nobody else until then."""
        d = np.where(offers.direction > 0, 0, 1)
        key = (offers.location, offers.mtu, d)
        np.add.at(self.reserved, key, mw)
        self.reserved_price[key] = offers.price

    def release(self) -> None:
        """The DSO's activation round is over: unused availability is free again."""
        self.reserved[:] = 0.0

    def reserved_offers(self, ctx):
        """The availability the DSO holds, as offers only the DSO may take (at the asked
        activation price), up to what the devices can still deliver."""
        from environment.markets.lfm import FlexOffers

        parts = []
        for k, pair in self.round_boxes.items():
            for d, direction in ((0, 1), (1, -1)):
                t = np.flatnonzero(self.reserved[k, :, d] > 1e-9)
                mw = np.minimum(self.reserved[k, t, d],
                                np.clip(pair[d][t] - self.withheld[k, t, d], 0, None))
                parts.append(FlexOffers(np.full(len(t), self.unique_id), np.full(len(t), k), t,
                                        np.full(len(t), direction), mw,
                                        self.reserved_price[k, t, d]))
        return FlexOffers.concat(parts)

    def withhold(self, location: int, d: int, mw: np.ndarray) -> None:
        """Keep `mw` (T,) of direction d (0 up, 1 down) at a location out of every market."""
        self.withheld[location, :, d] += mw

    def redispatch(self, ctx, changed: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        """Re-plan the locations with new commitments against the merit order: every committed
        MTU at its target, the others free but within (net_max, net_min) where a coupled
        scheme left grid headroom; the free MTUs absorb the rebound."""
        for k, (net_max, net_min) in changed.items():
            fixed, target = self.committed[k]
            self.plans[k] = self.strategy.schedule(
                self, ctx, self.pools[k], self.location_adders[k],
                np.where(fixed, target, net_max), np.where(fixed, target, net_min),
                supply=self.replan_supply(k))
        self.version += 1

    def id_orders(self, gate):
        """Price-taking orders closing the gap between the position its current plan needs
        (`planned_position_mw`) and the one it holds."""
        ctx = gate.ctx
        dev = (self.planned_position_mw() - self.position_mw(ctx)) * ctx.dt_h
        return deviation_orders(self.unique_id, dev, gate.session, ctx.price_floor,
                                ctx.price_cap)

    def planned_position_mw(self) -> np.ndarray:
        """The net energy it must hold in the markets for its current plan: its devices'
        consumption (own BRP), its planned deviation from the declared baseline (corrected
        perimeter), or nothing (no perimeter of its own)."""
        if self.kind == "own_brp":
            return self.planned_net_mw()
        if self.trades_energy:
            return self.planned_net_mw() - self.declared_mw()
        return np.zeros(self.n_mtu)

    @staticmethod
    def _net(p: dict) -> np.ndarray:
        return p["ch"] - p["dis"] + p["ev"] + p["hp"]

    def location_net_mw(self) -> dict[int, np.ndarray]:
        return {k: self._net(p) for k, p in self.plans.items()}

    def planned_net_mw(self) -> np.ndarray:
        return sum(self.location_net_mw().values(), np.zeros(self.n_mtu))

    def missed_mw(self, location: int | None = None) -> np.ndarray:
        """Committed flexibility the re-plans could not honour (MW per MTU; at one location)."""
        keys = self.plans if location is None else [location]
        return sum((self.plans[k]["missed"] + self.forgone.get(k, 0.0) for k in keys),
                   np.zeros(self.n_mtu))

    def flexibility(self, ctx, held: bool = True) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per location, MW it could move up (consume less) and down (consume more) around its
        plan each MTU, respecting power limits, state of charge and the devices' energy
        envelopes at that MTU alone (what it could do there, not what it offers: offers are
        deliverable together, `deliverable`). Availability sold to the DSO and capacity its
        strategy withholds are never included; `held=False` leaves in the capacity held for
        the TSO."""
        return {k: self._less_kept(k, pair, held) for k, pair in self._each_mtu(ctx).items()}

    def _less_kept(self, k: int, pair: tuple, held: bool) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) at location k less what is sold, withheld and (`held`) held for the TSO."""
        kept = self.reserved[k] + self.withheld[k] + (self.held[k] if held else 0.0)
        return np.clip(pair[0] - kept[:, 0], 0, None), np.clip(pair[1] - kept[:, 1], 0, None)

    def _each_mtu(self, ctx) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        return {k: each_mtu(self.pools[k], p, ctx.dt_h) for k, p in self.plans.items()}

    def deliverable(self, ctx, window: np.ndarray, after: int = 0,
                    room: np.ndarray | None = None,
                    cap: np.ndarray | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per location, MW up and down it can offer at the MTUs of `window` (T,) (zero
        elsewhere; at most `cap` (T, K, 2) where given) such that any part of them, bought by
        any buyer at any of those MTUs and locations, is delivered together with every
        earlier commitment.

        The rebound goes to the free MTUs (from `after` on, neither in the window nor
        committed): per device kind, the energy moved stays within the kind's envelope (the
        battery's charge, the EV's and heat pump's cumulative bounds) until spare power at
        free MTUs has made it up, by the end of the day at the latest (the battery ends it at
        its starting charge), and at free MTUs within the grid headroom `room` (T, K, 2:
        less, more consumption; its share at each location) a coupled scheme holds the
        re-plan to, shared over the kinds (`agents.deliverable`). Losses are counted at their
        worst and buying everything is the worst case, so any part is deliverable. Reserved,
        withheld and held capacity is not subtracted here."""
        t_n = self.n_mtu
        window = np.asarray(window, bool)
        later = np.arange(t_n) >= after
        out = {}
        for k, p in self.plans.items():
            fixed = self.committed[k][0] if k in self.committed else np.zeros(t_n, bool)
            out[k] = location_boxes(self.pools[k], p, ctx.dt_h, window, later & ~window & ~fixed,
                                    None if room is None else room[:, k],
                                    None if cap is None else cap[:, k], _kinds_of(self, ctx, k))
        return out

    def open_round(self, ctx, offered: OfferRound) -> None:
        """A flexibility round opens (`OfferRound`): what it offers in it to the DSO and the
        platform (`flex_offers`, `reserved_offers`) is one set, deliverable together at the
        MTUs it may be bought at: up to the DSO's request where only the DSO may buy and,
        where it sells energy on the platform in this round, all it can there and at every
        other tradable MTU (the MTUs between take the rebound where the DSO does not buy:
        offers spread over the day, each with room to be made up next to it; the platform may
        buy any of them). In a round where the TSO holds
        capacity, each other MTU's own flexibility is offered too: nobody activates it in the
        round."""
        t_n = self.n_mtu
        tradable = np.arange(t_n) >= offered.after
        cap = np.where(tradable[:, None, None], offered.dso, 0.0)
        window = (cap > 1e-9).any((1, 2))
        if offered.platform and self.trades_energy:
            window = window | (tradable & (np.arange(t_n) % 2 == 0))
            cap[window] = np.inf
        boxes = self.deliverable(ctx, window, offered.after, offered.room, cap)
        if offered.hold:
            each = self._each_mtu(ctx)
            boxes = {k: tuple(np.where(window, b, e) for b, e in zip(pair, each[k], strict=True))
                     for k, pair in boxes.items()}
        self.round_boxes = boxes

    def flex_offers(self, ctx, locations: np.ndarray | None = None, balancing: bool = False,
                    mtus: np.ndarray | None = None, room: np.ndarray | None = None):
        """Location-tagged offers (one per location, MTU and direction) at the strategy's
        price, deliverable together (`deliverable`): for the LFM and the platform, the open
        round's (`open_round`), or (`balancing`) for the TSO's balancing market, against the
        day-ahead price, over the block `mtus` with the rebound after it within the grid
        headroom `room` (T, K, 2) the scheme holds re-plans to, including the capacity held
        for the TSO; `mtus` restricts them to some MTUs."""
        from environment.markets.lfm import FlexOffers

        parts = []
        if balancing:
            flex = self.deliverable(ctx, np.isin(np.arange(self.n_mtu), mtus),
                                    int(mtus.max()) + 1, room)
        else:
            if self.round_boxes is None:
                raise RuntimeError(f"{self.name}: flexibility offered before a round opened")
            flex = self.round_boxes
        for k, pair in flex.items():
            if locations is not None and k not in locations:
                continue
            up, down = self._less_kept(k, pair, held=not balancing)
            t = len(up)
            for direction, mw in ((1, up), (-1, down)):
                if balancing:  # asked per MWh moved: minus what it would pay for energy
                    price = direction * self.strategy.balancing_prices(self, ctx, direction,
                                                                       ctx.da_price)
                else:
                    price = self.strategy.flex_prices(self, ctx, direction, self.prices,
                                                     location=k)
                parts.append(FlexOffers(np.full(t, self.unique_id), np.full(t, k), np.arange(t),
                                        np.full(t, direction), mw, price))
        offers = FlexOffers.concat(parts)
        return offers if mtus is None else offers.take(np.isin(offers.mtu, mtus))

    def _adopt(self, ctx) -> None:
        """Make the D-1 plans what the members can do (`_split_plan`), so that the aggregator
        nominates, trades and is settled on energy its devices will consume. Re-plans around
        later commitments are split when set-points are asked for (`setpoints`): what a split
        misses of a commitment is then settled as imbalance. What following the members
        costs the system over the pooled plan, on the forecast merit order, is kept per day
        (`split_loss_eur`)."""
        pooled = self.planned_net_mw()
        for k, plan in self.plans.items():
            p, split = self._split_plan(ctx, k, plan)
            self.plans[k] = p
            self._member_split[k] = (p, split)
        dt = ctx.dt_h
        self.split_loss_eur[ctx.day] = (self.supply.cost(self.planned_net_mw() * dt)
                                        - self.supply.cost(pooled * dt))

    def _split_plan(self, ctx, k: int, plan: dict) -> tuple[dict, dict]:
        """A location's plan with its EV and heat-pump parts split over the members (least
        laxity first) and replaced by what the split delivers, and the split. A pool's
        envelope is the sum of its members' (it contains their joint feasible set, not only
        it), so a pooled plan may promise more than any split delivers; the aggregator
        nominates, trades and is settled on what its devices will consume. Members' envelopes
        are laid out for the split once a day."""
        p, m, split = dict(plan), self.masks(k), {}
        for key, dev, env in (("ev", "ev", ctx.ev_env), ("hp", "heat_pump", ctx.hp_env_forecast)):
            if not m[dev].any():
                continue
            kept = self._layout.get((k, key))
            if kept is None or kept[0] is not env:
                kept = self._layout[(k, key)] = (env, *members_by_mtu(env, m[dev]))
            split[key] = least_laxity(*kept[1:], np.ascontiguousarray(p[key], dtype=float),
                                float(ctx.dt_h)).T
            p[key] = split[key].sum(0)
        return p, split

    def setpoints(self, ctx, devices: dict[str, np.ndarray]) -> None:
        """Each location's plan as per-device set-points (MW), in place: batteries in
        proportion to their capacity (exact: members share duration, efficiency and state of
        charge), EVs and heat pumps split least laxity first, kept until the plan (a new dict on
        every re-plan) changes."""
        f = self.model.fleet
        for k, p in self.plans.items():
            m = self.masks(k)
            b = m["battery"]
            if b.any():
                share = f.batt_mwh[b] / f.batt_mwh[b].sum()
                devices["battery"][b] = np.outer(share, p["ch"] - p["dis"])
            kept = self._member_split.get(k)
            if kept is None or kept[0] is not p:
                kept = self._member_split[k] = (p, self._split_plan(ctx, k, p)[1])
            for key, dev in (("ev", "ev"), ("hp", "heat_pump")):
                if key in kept[1]:
                    devices[key][m[dev]] = kept[1][key]

    def realise(self, ctx, devices: dict[str, np.ndarray]) -> None:
        """Real time: batteries follow set-points (and cycle back to their start), heat pumps
        deviate by the error in their heat-demand forecast."""
        f, m = self.model.fleet, self.masks()
        h = m["heat_pump"]
        if h.any():
            dev = ctx.profiles.hp[h] - ctx.forecast.hp[h]
            devices["hp"][h] = np.clip(devices["hp"][h] + dev, 0, f.hp_mw[h][:, None])

    def meter(self, ctx, devices: dict[str, np.ndarray], settle: bool = True) -> None:
        """Metered consumption of its devices after everything real time did to them, in
        total and per supplier of the members. `settle`: this reading is the one its moves
        are settled on (the one before the DSO's RED actions, for which the DSO answers): it
        enters its history and fixes the baseline they are measured against."""
        net = self.device_net(devices)
        self.realised_net = net.sum(0)
        self.real_by_brp = self._by_brp(net)
        if settle:
            self.settled_by_brp = self.real_by_brp
            if self.declared is not None:
                self.history.record(ctx.day, self._weekend(ctx), self.real_by_brp)
                self.settlement_baseline = self._settled_baseline(ctx)

    def realised_mw(self, ctx, position_mw=None) -> np.ndarray:
        """Metered quantity of its own perimeter: its devices (own BRP), its deviation from the
        baseline (corrected perimeter), or nothing."""
        if self.kind == "own_brp":
            return self.realised_net
        if self.corrected:
            return self.realised_net - self.settlement_baseline.sum(0)
        return np.zeros_like(self.realised_net)


"""An aggregator's baselines: what it declares to each supplier before the day-ahead auction,
and the baseline its moves are settled against after real time, under each market's rule
(`settlement.baseline`)."""

from __future__ import annotations

import numpy as np

from environment.markets.baseline import BASELINES, MARKETS, held_before


class Baselines:
    """The baseline methods of `agents.aggregator.Aggregator` (its members, masks, history and
    declaration are the aggregator's)."""

    def declare_baseline(self, ctx, devices: dict[str, np.ndarray]) -> None:
        """Before the day-ahead auction an aggregator in the suppliers' perimeters tells each
        supplier the consumption of its enrolled devices to expect: the baseline its moves
        will be measured against in the day-ahead market (`settlement.baseline.dayahead`),
        its own schedule under the `declared` rule. The strategy decides what it declares
        (truthfully, that baseline) and it sells the difference to its plan. `devices` are the
        current per-device set-points."""
        if not self.in_supplier_perimeter:
            self.declared = None
            return
        f = self.model.fleet
        n_brp = len(self.model.brps)
        plan = self._by_brp(self.device_net(devices))
        self.expected = {m: self._rule_baseline(ctx, m, plan) for m in MARKETS}
        expected = self.expected["dayahead"]
        total = self.strategy.baseline(self, ctx, expected.sum(0))
        extra = total - expected.sum(0)
        share = np.bincount(f.brp[self.members], minlength=n_brp) / max(self.members.sum(), 1)
        self.declared = expected + share[:, None] * extra[None, :]
        self.settlement_baseline = self.declared

    def _by_brp(self, per_member: np.ndarray) -> np.ndarray:
        """(BRPs, T) sums of a (members, T) array by each member's supplier."""
        b = self.model.fleet.brp[self.members]
        return np.stack([per_member[b == i].sum(0) for i in range(len(self.model.brps))])

    def _weekend(self, ctx) -> bool:
        return self.model.calendar.date(ctx.day).weekday() >= 5

    def _rule_baseline(self, ctx, market: str, plan: np.ndarray) -> np.ndarray:
        """(BRPs, T) the baseline a market's rule gives before the day-ahead auction: its own
        schedule `plan` where the rule takes a declaration (or a reading not known yet), the
        rule's figure from its metered history otherwise (the devices' uncontrolled forecast
        until it has one)."""
        rule = getattr(self.model.config.settlement.baseline, market)
        if rule.n_days is None:   # declared or metered: no history, no fallback
            return plan
        m, mine = self.masks(), self.members
        alone = (np.where(m["ev"][mine, None], ctx.forecast.ev[mine], 0.0)
                 + np.where(m["heat_pump"][mine, None], ctx.forecast.hp[mine], 0.0))
        history = self.history.similar(ctx.day, self._weekend(ctx), rule.n_days)
        return BASELINES[rule.rule](rule, plan, history, self._by_brp(alone))

    def device_net(self, devices: dict[str, np.ndarray]) -> np.ndarray:
        """(members, T) net consumption of each member's enrolled devices."""
        f, m = self.model.fleet, self.members
        e = f.enrolled
        return sum(np.where(e[d][m][:, None], devices[k][m], 0.0)
                   for d, k in (("battery", "battery"), ("ev", "ev"), ("heat_pump", "hp")))

    def declared_mw(self) -> np.ndarray:
        return self.declared.sum(0) if self.declared is not None else np.zeros(self.n_mtu)

    def pool_baseline(self, ctx) -> np.ndarray:
        m = self.masks()
        return ctx.forecast.ev[m["ev"]].sum(0) + ctx.forecast.hp[m["heat_pump"]].sum(0)

    def _settled_baseline(self, ctx) -> np.ndarray:
        """(BRPs, T) the baseline of each MTU under the rule of the market that moved its
        devices then: real-time balancing, else the DSO's local market, else the day-ahead
        schedule. The `declared` rule takes the declaration, `metered` the reading before
        each of that market's activations, the others their figure of the morning."""
        rules = self.model.config.settlement.baseline
        slot = self.model.party_slot[self.unique_id]
        lfm = ctx.dso_sold.get(self.unique_id)
        active = {"dayahead": np.ones(self.n_mtu, bool),
                  "lfm": np.zeros(self.n_mtu, bool) if lfm is None else lfm.any((1, 2)),
                  "balancing": np.zeros(self.n_mtu, bool) if ctx.der_tso is None
                  else (ctx.der_tso[slot] != 0) | (ctx.der_dso[slot] != 0)}
        out = None
        for market in MARKETS:
            rule = getattr(rules, market).rule
            base = self.declared if rule == "declared" else self.expected[market]
            if rule == "metered":
                base = held_before(self.real_by_brp, active[market], self.declared)
            out = base if out is None else np.where(active[market][None, :], base, out)
        return out

    def moved_by_brp(self) -> np.ndarray:
        """(BRPs, T) MW its devices consumed above (+) or below the baseline, per supplier:
        the energy it moved in or out of each supplier's perimeter (not counting what the
        DSO curtailed in RED)."""
        return self.settled_by_brp - self.settlement_baseline

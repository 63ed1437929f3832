"""The figures of a run against its truthful twin (experiments/twin.py runs the pairs): who
gained what by market and class, the gaming profit of the strategic agents, and the welfare
change split into its parts; built on the profit tables of experiments/statistics.py."""

from __future__ import annotations

from experiments.statistics import CLASSES, profit_by_market


def twin_comparison(game, fair, agents: list[str]) -> dict:
    """A distribution-grid run (`game`) against its truthful twin (`fair`), both run results
    with tables, summary, scenario and model: each account's change of net receipts by market,
    each class's, the gaming profit of `agents`, the welfare change split into receipts, valued
    energy and violation cost, and what that split leaves (0 up to round-off)."""
    pa = profit_by_market(game.tables["ledger"], game.model.ledger.account_classes())
    pb = profit_by_market(fair.tables["ledger"], fair.model.ledger.account_classes())
    keys = ["account", "class", "market"]
    by_agent = pa.merge(pb, on=keys, how="outer", suffixes=("_s", "_t")).fillna(
        {"eur_s": 0.0, "eur_t": 0.0}).rename(columns={"eur_s": "strategic", "eur_t": "truthful"})
    by_agent["change"] = by_agent["strategic"] - by_agent["truthful"]
    by_class = by_agent.groupby("class")[["strategic", "truthful", "change"]].sum()
    per_agent = by_agent.groupby("account")["change"].sum()
    gaming = {a: float(per_agent.get(a, 0.0)) for a in agents}
    wg, wf = game.summary["welfare_eur"], fair.summary["welfare_eur"]
    valued = valued_energy_eur(game) - valued_energy_eur(fair)
    violations = game.summary["grid_violation_cost_eur"] - fair.summary["grid_violation_cost_eur"]
    change = wg["total"] - wf["total"]
    receipts = float(by_class["change"].reindex(CLASSES, fill_value=0.0).sum())
    welfare = {"strategic": wg["total"], "truthful": wf["total"], "change": change,
               "lost": -change, "valued_energy_change": valued,
               "violation_cost_change": violations}
    return {"by_agent": by_agent.sort_values(keys).reset_index(drop=True), "by_class": by_class,
            "gaming_profit_eur": gaming, "welfare": welfare,
            "identity_residual_eur": change - (receipts + valued - violations)}


def valued_energy_eur(run) -> float:
    """The energy consumers and prosumers were served, at the value of load."""
    v = run.scenario.value_of_load_eur_mwh
    return v * sum(run.model.valued_energy_mwh().values())


def transmission_twin_summary(run, twin, truthful: list[str]) -> dict:
    """A transmission run against its truthful twin (summary key `twin`), all EUR over the whole
    run, run minus twin: the gaming profit of each producer made truthful in the twin (what its
    strategy earned it); the profit change of every other producer (their profits move too,
    but it is not their gaming); the change of each ledger class's net income; the change of the
    grid operator's redispatch bill; what consumers pay more (day-ahead plus network charge);
    the welfare lost, the extra fuel burnt (loads are inelastic, so welfare is minus the fuel
    cost)."""
    delta = run.profits() - twin.profits()
    classes = run.ledger.account_classes()
    producers = delta[classes == "producer"]
    gaming = producers[producers.index.isin(truthful)].reindex(truthful)
    others = producers[~producers.index.isin(truthful)]
    by_class = delta.groupby(classes).sum()
    a, b = run.totals(), twin.totals()
    return {"truthful_in_twin": list(truthful),
            "gaming_profit_eur": {k: float(v) for k, v in gaming.items()},
            "other_producers_profit_change_eur": {k: float(v) for k, v in others.items()},
            "by_class_eur": {k: float(v) for k, v in by_class.items()},
            "grid_operator_extra_cost_eur": a["redispatch_cost_eur"] - b["redispatch_cost_eur"],
            "consumer_bill_change_eur": -float(by_class.get("consumer", 0.0)),
            "welfare_lost_eur": a["fuel_eur"] - b["fuel_eur"]}

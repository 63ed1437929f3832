"""D-1 up to gate closure: the aggregators plan their pools against a fundamental forecast
(with the implicit LFM, against the DSO's locational tariffs too), then every balance
responsible party answers the day-ahead auction with its own orders and the market clears."""

from __future__ import annotations

import numpy as np

from environment.markets.dayahead import SupplyCurve
from environment.markets.orders import OrderBook
from environment.settlement import EXCHANGE, book_auction

PLAN_ROUNDS = 5  # best-response rounds among several aggregators planning against one merit order


def plan(model, ctx) -> None:
    """D-1 morning: the price forecast and the aggregators' plans and declared baselines."""
    supply = model.supply_forecast(ctx)
    ctx.price_forecast = model.price_forecast(ctx, supply)
    ctx.adders = schedule_aggregators(model, ctx, supply)


def order_book(model, ctx) -> OrderBook:
    """Each party's day-ahead orders (`Party.da_orders`, priced by its strategy), in the
    parties' fixed order."""
    return OrderBook.concat(model.parties.map("da_orders", ctx))


def auction(model, ctx, book: OrderBook | None = None, clear=None) -> None:
    """D-1 gate closure: the parties' `order_book`, cleared by the scenario's mechanism;
    positions and payments. A coordinator that cleared the book elsewhere (the coupled
    market of environment/tiers) passes that book and a `clear` returning its outcome."""
    clear = model.clear_da if clear is None else clear
    book = (order_book(model, ctx) if book is None else book).arrived(clear, model.arrival_rng)
    clearing = clear(book, ctx.n_mtu, ctx.price_floor, ctx.price_cap)
    ctx.da_clearing, ctx.da_price = clearing, clearing.price
    rows = np.array([model.party_slot[o] for o in book.owner])
    np.add.at(ctx.position, (rows, book.mtu), clearing.accepted / ctx.dt_h)
    book_auction(model.ledger, book, clearing, "dayahead", model.ledger.id(EXCHANGE),
                 model.account_of, ctx.mtu0)


def schedule_aggregators(model, ctx, supply: SupplyCurve) -> np.ndarray:
    """Aggregators plan their pools against the forecast merit order `supply`, each with
    the others' plans as fixed demand (best responses in turn, `PLAN_ROUNDS` times at
    most, until no plan moves); with the implicit LFM the DSO answers forecast violations
    with locational tariffs (+ where consumption hurts, - where injection does) and the
    aggregators plan again, `iterations` times. Returns the tariffs (T, K) EUR/MWh."""
    adders = np.zeros((ctx.n_mtu, model.grid.n_locations))
    plan_rounds(model, ctx, supply, None)
    imp = model.config.markets.implicit
    if imp.enabled and model.aggregators:
        for _ in range(imp.iterations):
            _, _, flags = model.forecast_grid(ctx, ctx.retail_net_forecast, ctx.forecast)
            if not flags["violated"].any():
                break
            adders = adders + imp.tariff_eur_mwh * flags["violated"] * flags["direction"]
            plan_rounds(model, ctx, supply, adders)
    devices = model.device_plan(ctx)
    for agg in model.aggregators:
        agg.declare_baseline(ctx, devices)
    return adders


def plan_rounds(model, ctx, supply: SupplyCurve, adders) -> None:
    """Each aggregator plans against the merit order with every other aggregator's devices
    in the fixed demand: their plan of this day if they have one, else their baseline."""
    dt, aggs = ctx.dt_h, model.aggregators
    fixed = {a.unique_id: a.planned_net_mw() * dt if adders is not None
             else a.pool_baseline(ctx) * dt for a in aggs}
    rest = supply.plus(-sum((a.pool_baseline(ctx) * dt for a in aggs), np.zeros(ctx.n_mtu)))
    for _ in range(PLAN_ROUNDS if len(aggs) > 1 else 1):
        moved = 0.0
        for agg in aggs:
            others = sum((v for u, v in fixed.items() if u != agg.unique_id),
                         np.zeros(ctx.n_mtu))
            agg.schedule(ctx, rest.plus(others), adders)
            new = agg.planned_net_mw() * dt
            moved = max(moved, float(np.abs(new - fixed[agg.unique_id]).max()))
            fixed[agg.unique_id] = new
        if moved < 1e-9:
            break

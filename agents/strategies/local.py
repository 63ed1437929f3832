"""What a strategic aggregator can know of a local market: its share of the flexibility at each
grid location, the congestion the DSO published, and the price ceiling the LFM allows.

Every helper reads the model's state only; none draws random numbers, so strategic and
truthful twins of a run see the same realisations."""

from __future__ import annotations

import numpy as np


def lfm_ceiling(agg, wanted: float) -> float:
    """The highest price worth asking: `wanted`, or the LFM price cap if lower (an offer above
    the cap is not bought at all)."""
    cap = agg.model.config.markets.lfm.price_cap
    return wanted if cap is None else min(wanted, cap)


def location_of(agg, pool) -> int:
    """The grid location of one of the aggregator's pools."""
    return next(k for k, p in agg.pools.items() if p is pool)


def upstream_locations(model) -> np.ndarray:
    """Locations without prosumers (the transformer): flexibility anywhere below relieves them."""
    served = np.unique(model.grid.bus_location[model.fleet.bus])
    return np.setdiff1d(np.arange(model.grid.n_locations), served)


def relieved(agg, location: int | None = None) -> list[int]:
    """Locations an offer from the pool at `location` relieves: that location and those
    upstream of every pool (the transformer); all its pools' when no location is given."""
    own = set(agg.pools) if location is None else {location}
    return sorted(own | set(upstream_locations(agg.model).tolist()))


def serves(agg, congestion: np.ndarray, location: int | None = None) -> np.ndarray:
    """(T,) MTUs where a (T, K) congestion map touches a location an offer from `location`
    (default: any of the aggregator's pools) relieves."""
    cols = relieved(agg, location)
    return congestion[:, cols].any(1) if cols else np.zeros(len(congestion), bool)


def local_shares(agg, ctx, direction: int) -> np.ndarray:
    """(T, K) the aggregator's share of all aggregators' flexibility in `direction` (+1 up) at
    each location; where no one has any there (upstream), its share of the whole grid's."""
    d = 0 if direction > 0 else 1
    shape = (ctx.n_mtu, agg.model.grid.n_locations)
    own, total = np.zeros(shape), np.zeros(shape)
    for a in agg.model.aggregators:
        for k, flex in a.flexibility(ctx).items():
            total[:, k] += flex[d]
            if a is agg:
                own[:, k] += flex[d]
    grid_total = total.sum(1)
    grid_share = np.divide(own.sum(1), grid_total, out=np.zeros(ctx.n_mtu),
                           where=grid_total > 1e-9)
    local = np.divide(own, total, out=np.zeros(shape), where=total > 1e-9)
    return np.where(total > 1e-9, local, grid_share[:, None])


def published(agg) -> np.ndarray | None:
    """The DSO's published congestion map of the current round, or None (supermarket)."""
    return agg.model.published_congestion


def check_share(name: str, value: float, upper_open: bool = False) -> float:
    if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
        raise ValueError(f"{name} = {value}: must lie in [0, 1{')' if upper_open else ']'}")
    return float(value)

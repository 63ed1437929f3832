"""summary.json's `lem` block: the local electricity market's volume, price, self-consumption,
fees, lost tariff revenue and batteries moved (only with `markets.lem.enabled`; called from
experiments/statistics.py, the run's one reading surface, like the `levels` block)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def lem_summary(table: pd.DataFrame, ledger: pd.DataFrame, grid: pd.DataFrame,
                saving: float) -> dict:
    """The local electricity market: volume, price and its spread over areas and MTUs,
    self-consumption of the areas with and without the energy from peers, the LEMO's fees,
    the network tariff the DSO did not collect, the battery energy the managers moved for it
    (`hems_battery`), and the MTU-locations it paused or congested."""
    traded, cons = float(table["traded_mwh"].sum()), float(table["consumption_mwh"].sum())
    own, peer = float(table["own_generation_mwh"].sum()), float(table["peer_supply_mwh"].sum())
    has = table[table["traded_mwh"] > 0]
    price = has["traded_eur"] / has["traded_mwh"]
    mean = float(has["traded_eur"].sum() / traded) if traded > 0 else None
    sd = float(np.sqrt(np.average((price - mean) ** 2, weights=has["traded_mwh"]))) \
        if traded > 0 else None
    local = ledger[ledger["market"] == "network_tariff_local"]
    return {"traded_mwh": traded, "matched_mwh": float(table["matched_mwh"].sum()),
            "mean_price_eur_mwh": mean, "price_sd_eur_mwh": sd,
            "self_consumption_share": (own + peer) / cons if cons > 0 else None,
            "self_consumption_share_without_lem": own / cons if cons > 0 else None,
            "lemo_fee_revenue_eur": float(ledger.loc[ledger["market"] == "lem_fee", "eur"].sum()),
            "tariff_revenue_shifted_eur": float(local["mwh"].sum() * saving),
            "battery_shift_mwh": float(table["battery_shift_mwh"].sum())
            if "battery_shift_mwh" in table else 0.0,
            "paused_mtu_locations": int(table["paused_locations"].sum()),
            "congested_mtu_locations": int((grid["light"] > 0).sum()),
            **congestion_before_after(grid)}


def congestion_before_after(grid: pd.DataFrame) -> dict:
    """The DSO's day-ahead check of the same run's plans before the LEM (home batteries on
    self-consumption) and after it (the plans re-planned for the LEM, which the day-ahead
    market trades): YELLOW MTU-locations and the highest forecast branch loading."""
    before, after = grid["forecast_violated_before_lem"], grid["forecast_violated"]
    return {"congestion_before_mtu_locations": int(before.sum()),
            "congestion_after_mtu_locations": int(after.sum()),
            "forecast_max_loading_before": float(grid["forecast_max_loading_before_lem"].max()),
            "forecast_max_loading_after": float(grid["forecast_max_loading"].max())}

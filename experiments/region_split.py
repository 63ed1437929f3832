"""summary.json's `region` and `national` blocks: a price-taking region's own figures apart
from the national system it takes its price from (`markets.dayahead.wholesale.kind`
`national` or `exogenous`).

The run's system cost and imbalance are the whole modelled system's: with a national load of
hundreds of TWh a year they are the nation's fuel and forecast errors, and a region's own
decisions vanish in them. The region's figure is its **cost of supply**: what its accounts
(households, suppliers, aggregators, its own plants, the DSO, the LEMO) paid, net, to every
account outside it (the exchanges, the TSO, the national plants and load, `external` for fuel
and wear), plus the energy services it left undelivered and the grid violations it left, both
at the value of lost load as in `statistics.system_cost`. Payments among the region's accounts
(retail bills, LFM purchases, compensation) are transfers inside it and cancel, as payments
between agents cancel in the system cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from environment.markets.wholesale_region import national_accounts

OUTSIDE_CLASSES = ("market_operators", "tso", "external")
"""Account classes no region owns: pass-through operators, the TSO, the world outside."""


def region_accounts(classes: pd.Series, national: set[str]) -> set[str]:
    """The region's accounts: every account that is neither national nor of a class that
    stands outside every region."""
    return {a for a, c in classes.items() if c not in OUTSIDE_CLASSES and a not in national}


def cost_of_supply(ledger: pd.DataFrame, region: set[str]) -> dict[str, float]:
    """Net EUR the region's accounts paid to accounts outside it, per market and in total."""
    payer_in = ledger["payer"].isin(region).to_numpy()
    payee_in = ledger["payee"].isin(region).to_numpy()
    sign = np.where(payer_in & ~payee_in, 1.0, np.where(payee_in & ~payer_in, -1.0, 0.0))
    net = (ledger["eur"].to_numpy() * sign)
    by_market = pd.Series(net).groupby(ledger["market"].astype(str).to_numpy()).sum()
    out = {str(k): float(v) for k, v in by_market.items() if v != 0.0}
    return {"by_market_eur": out, "total_eur": float(net.sum())}


def region_summary(model, tables: dict[str, pd.DataFrame], violation_mwh: float,
                   dso_cost_eur: float) -> dict:
    """The `region` and `national` blocks of a price-taking region's run."""
    s, dt = model.config, model.calendar.mtu_hours
    national = national_accounts(s)
    region = region_accounts(model.ledger.account_classes(), national)
    ledger, positions = tables["ledger"], tables["positions"]
    paid = cost_of_supply(ledger, region)
    v = s.value_of_load_eur_mwh
    unserved = model.shortfall_mwh * v
    violation = violation_mwh * v
    total = paid["total_eur"] + unserved + violation
    mine = positions["party"].isin(region)
    net_import = float(positions.loc[mine, "realised_mwh"].sum())
    series = tables["series"]
    fuel = ledger[(ledger["market"] == "fuel") & ledger["payer"].isin(national)]
    return {
        "region": {
            "cost_of_supply_eur": total,
            "paid_outside_eur": paid["total_eur"],
            "paid_outside_by_market_eur": paid["by_market_eur"],
            "unserved_eur": unserved,
            "violation_eur": violation,
            "net_import_mwh": net_import,
            "cost_per_mwh_imported_eur": total / net_import if net_import > 0 else None,
            "consumption_mwh": float(series["prosumer_load_mw"].sum() * dt),
            "imbalance_abs_mwh": float(positions.loc[mine, "imbalance_mwh"].abs().sum()),
            "dso_cost_eur": dso_cost_eur,
        },
        "national": {
            "fuel_eur": float(fuel["eur"].sum()),
            "load_mwh": float(series["system_load_mw"].sum() * dt),
            "imbalance_abs_mwh": float(positions.loc[positions["party"].isin(national),
                                                     "imbalance_mwh"].abs().sum()),
        },
    }

"""Settlement ledger: every payment of a run is one row.

A row says that `payer` pays `eur` to `payee` for `mwh` at `price` (EUR/MWh) in `market` for
MTU `mtu`; a negative amount flows the other way (e.g. buying at a negative price). Balances
are kept per account, and the model checks that pass-through accounts (the DA exchange) net to
zero every MTU."""

from __future__ import annotations

import numpy as np
import pandas as pd


class Ledger:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.classes: list[str] = []
        self._ids: dict[str, int] = {}
        self._rows: list[tuple] = []

    def account(self, name: str, cls: str) -> int:
        if name in self._ids:
            raise ValueError(f"ledger account {name!r} opened twice")
        self._ids[name] = len(self.names)
        self.names.append(name)
        self.classes.append(cls)
        return self._ids[name]

    def id(self, name: str) -> int:
        return self._ids[name]

    def pay(self, payer, payee, market: str, mtu, mwh, price) -> None:
        """Book payments (arrays broadcast together); rows with no energy and no money drop."""
        payer, payee, mtu, mwh, price = np.broadcast_arrays(
            np.asarray(payer, np.int64), np.asarray(payee, np.int64), np.asarray(mtu, np.int64),
            np.asarray(mwh, float), np.asarray(price, float))
        eur = mwh * price
        keep = (np.abs(eur) > 0) | (np.abs(mwh) > 0)
        if keep.any():
            self._rows.append((payer[keep].ravel(), payee[keep].ravel(), market,
                               mtu[keep].ravel(), mwh[keep].ravel(), price[keep].ravel(),
                               eur[keep].ravel()))

    def frame(self) -> pd.DataFrame:
        cols = ["payer", "payee", "market", "mtu", "mwh", "price_eur_mwh", "eur"]
        if not self._rows:
            return pd.DataFrame({c: [] for c in cols})
        # categoricals built from integer codes: a year has millions of rows, and object
        # columns of names cost more to make than the rest of the frame
        markets = sorted({r[2] for r in self._rows})
        code = {m: i for i, m in enumerate(markets)}
        parts = {c: np.concatenate([r[i] for r in self._rows]) for i, c in enumerate(cols)
                 if c != "market"}
        market = np.concatenate([np.full(len(r[0]), code[r[2]], np.int32) for r in self._rows])
        accounts = pd.CategoricalDtype(self.names)
        return pd.DataFrame({
            "payer": pd.Categorical.from_codes(parts["payer"], dtype=accounts),
            "payee": pd.Categorical.from_codes(parts["payee"], dtype=accounts),
            "market": pd.Categorical.from_codes(market, markets),
            **{c: parts[c] for c in cols[3:]}})

    def mark(self) -> int:
        """A position in the ledger; `received_since` sums the rows booked after it."""
        return len(self._rows)

    def rows_since(self, mark: int) -> list[tuple]:
        """The row chunks booked after `mark`: (payer, payee, market, mtu, mwh, price, eur)
        with arrays except `market`."""
        return self._rows[mark:]

    def received_since(self, mark: int, account: int) -> dict[str, float]:
        """Net EUR `account` received per market from the rows booked after `mark`."""
        out: dict[str, float] = {}
        for payer, payee, market, _t, _q, _p, eur in self._rows[mark:]:
            net = float(eur[payee == account].sum() - eur[payer == account].sum())
            if net or (payee == account).any() or (payer == account).any():
                out[market] = out.get(market, 0.0) + net
        return out

    def balances(self) -> pd.Series:
        """Net EUR received per account over the whole run (sums to zero by construction of
        double entry; a non-zero sum means a row was written wrong)."""
        bal = np.zeros(len(self.names))
        for payer, payee, _m, _t, _q, _p, eur in self._rows:
            np.subtract.at(bal, payer, eur)
            np.add.at(bal, payee, eur)
        return pd.Series(bal, index=self.names, name="eur")

    def account_classes(self) -> pd.Series:
        return pd.Series(self.classes, index=self.names, name="class")
